// The page's two servers: the backend that holds the secret key (sessions, tokens, model info)
// and chatfn itself (history, stop, the Trigger output log's cursor).

import { errorDetail, Refused, Unreachable } from './errors.js';

const BACKEND = 'the token backend';
const CHATFN = 'the chatfn server';

async function readError(response) {
  const text = await response.text().catch(() => '');
  return errorDetail(text) || response.statusText;
}

/** `fetch`, with a failure to connect named after the server that could not be reached. */
async function reach(what, base, url, init) {
  try {
    return await fetch(url, init);
  } catch (error) {
    if (init?.signal?.aborted) throw error;
    throw new Unreachable(what, base, error);
  }
}

async function sendJson(base, url, body, method = 'POST') {
  const response = await reach(BACKEND, base, url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Refused(BACKEND, response.status, await readError(response));
  return response.json();
}

export function backendApi(backend) {
  return {
    /** Creates the chat's session (idempotent): `{publicAccessToken, chatId, model, offline}`. */
    startSession: (chatId) => sendJson(backend, `${backend}/dev/sessions`, { chatId }),
    /** A fresh token for a chat whose session exists: `{publicAccessToken, expiresAt}`. */
    token: (chatId) => sendJson(backend, `${backend}/dev/sessions/${encodeURIComponent(chatId)}/token`),
    /** The user's chats, last active first: `[{chatId, title, lastActivityAt, createdAt}]`. */
    async chats() {
      const response = await reach(BACKEND, backend, `${backend}/dev/sessions`, { cache: 'no-store' });
      if (!response.ok) throw new Refused(BACKEND, response.status, await readError(response));
      const body = await response.json();
      return Array.isArray(body.chats) ? body.chats.filter((chat) => typeof chat?.chatId === 'string') : [];
    },
    /** Renames a chat (`null` goes back to its first message): the chat as listed. */
    rename: (chatId, title) => sendJson(backend, `${backend}/dev/sessions/${encodeURIComponent(chatId)}`, { title }, 'PATCH'),
    /** Erases a chat on the server: `{chatId, deleted}`. */
    remove: (chatId) => sendJson(backend, `${backend}/dev/sessions/${encodeURIComponent(chatId)}`, undefined, 'DELETE'),
    /** `{model, offline, approvalTools}`, or null when the backend does not say. */
    async info() {
      try {
        const response = await fetch(`${backend}/dev/info`);
        return response.ok ? await response.json() : null;
      } catch {
        return null;
      }
    },
  };
}

/**
 * A chat's token and a `fetch` that sends it, refreshing it once on a 401 (tokens expire after
 * an hour; the page may stay open longer).
 */
export function chatAuth(backend, chatId, initialToken, server) {
  let token = initialToken;
  let refreshing = null;
  const refresh = () => {
    refreshing ??= backend
      .token(chatId)
      .then((answer) => {
        token = answer.publicAccessToken;
        return token;
      })
      .finally(() => {
        refreshing = null;
      });
    return refreshing;
  };
  const authFetch = async (input, init = {}) => {
    const attempt = (bearer) => {
      const headers = new Headers(init.headers);
      headers.set('Authorization', `Bearer ${bearer}`);
      return reach(CHATFN, server, input, { ...init, headers });
    };
    const response = await attempt(token);
    if (response.status !== 401) return response;
    return attempt(await refresh());
  };
  return {
    get token() {
      return token;
    },
    refresh,
    fetch: authFetch,
  };
}

// The most records one `…/records` answer holds; a full page means there may be more.
const RECORDS_PAGE = 1000;

function headerOf(record, name) {
  return (record.headers ?? []).find(([key]) => key === name)?.[1];
}

function controlOf(record) {
  return headerOf(record, 'trigger-control');
}

/** `message` or `stop`: the kind of an input record (its data is the JSON the client sent). */
function inputKind(record) {
  try {
    const body = typeof record.data === 'string' ? JSON.parse(record.data) : record.data;
    return body?.kind;
  } catch {
    return undefined;
  }
}

export function chatfnApi(server, chatId, auth) {
  const chatUrl = (suffix) => `${server}/api/chat/${encodeURIComponent(chatId)}/${suffix}`;
  const outputUrl = () => `${server}/realtime/v1/sessions/${encodeURIComponent(chatId)}/out`;
  /** Every record of the `in` or `out` log after `after` (all of them when undefined), page by page. */
  const allRecords = async (log, after) => {
    const all = [];
    let cursor = after;
    for (;;) {
      const query = cursor === undefined ? '' : `?afterEventId=${encodeURIComponent(cursor)}`;
      const url = `${server}/realtime/v1/sessions/${encodeURIComponent(chatId)}/${log}/records${query}`;
      const response = await auth.fetch(url, { cache: 'no-store' });
      if (!response.ok) throw new Refused(CHATFN, response.status, await readError(response));
      const page = (await response.json()).records ?? [];
      all.push(...page);
      if (page.length < RECORDS_PAGE) return all;
      cursor = String(page.at(-1).seqNum);
    }
  };
  return {
    /** The persisted history. */
    async messages() {
      const response = await auth.fetch(chatUrl('messages'), { cache: 'no-store' });
      if (!response.ok) throw new Refused(CHATFN, response.status, await readError(response));
      const body = await response.json();
      return Array.isArray(body.messages) ? body.messages : [];
    },
    /** Ends the running turn on the server; resolves once it has ended (or the server gave up waiting). */
    async stop() {
      const response = await auth.fetch(chatUrl('stop'), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      if (!response.ok) throw new Refused(CHATFN, response.status, await readError(response));
      return response.json();
    },
    /**
     * The output log's last record number as the server says it (`0` also for an empty log): a
     * cheap question whose answer changes whenever any tab or device runs a turn.
     */
    async outputHead() {
      const head = await auth.fetch(outputUrl(), { method: 'HEAD', cache: 'no-store' });
      if (!head.ok) throw new Refused(CHATFN, head.status, head.statusText);
      return head.headers.get('x-last-chunk-index');
    },
    /**
     * The number of the last turn-complete record after `after` (or `after` itself when there is
     * none): a cursor from which the output log holds the running turn alone.
     */
    async lastTurnEndAfter(after) {
      const query = after === undefined ? '' : `?afterEventId=${encodeURIComponent(after)}`;
      const response = await auth.fetch(`${outputUrl()}/records${query}`, { cache: 'no-store' });
      if (!response.ok) throw new Refused(CHATFN, response.status, await readError(response));
      const body = await response.json();
      let cursor = after;
      for (const record of body.records ?? []) {
        const ends = (record.headers ?? []).some(([name, value]) => name === 'trigger-control' && value === 'turn-complete');
        if (ends) cursor = String(record.seqNum);
      }
      return cursor;
    },
    /**
     * Where the chat's logs stand before a send over the Trigger transport, read from `cursor` on
     * (the transport's `lastEventId`): `end`, the output log's last record (undefined while it is
     * empty); `lastInput`, the input log's last record (-1 while it is empty); `unanswered`, the
     * last message no turn has answered yet (one running or waiting; undefined when there is
     * none).
     */
    async sendView(cursor) {
      const turnEnd = (records) => records.findLast((record) => controlOf(record) === 'turn-complete');
      // From the cursor's own record, which is the last turn's end when this tab read it whole.
      const from = cursor === undefined || cursor === '0' ? undefined : String(Number(cursor) - 1);
      let output = await allRecords('out', from);
      let ended = turnEnd(output);
      if (!ended && from !== undefined) {
        output = await allRecords('out', undefined);
        ended = turnEnd(output);
      }
      const end = output.length > 0 ? String(output.at(-1).seqNum) : undefined;
      const answered = ended ? headerOf(ended, 'session-in-event-id') : undefined;
      const inputs = await allRecords('in', answered);
      const lastInput = inputs.length > 0 ? inputs.at(-1).seqNum : answered === undefined ? -1 : Number(answered);
      const messages = inputs.filter((record) => inputKind(record) === 'message');
      return { end, lastInput, unanswered: messages.at(-1)?.seqNum };
    },
    /**
     * The Trigger output log's last record number, as the transport's `lastEventId`, or undefined
     * when the log is empty.
     */
    async lastOutputEventId() {
      const base = `${server}/realtime/v1/sessions/${encodeURIComponent(chatId)}/out`;
      const head = await auth.fetch(base, { method: 'HEAD', cache: 'no-store' });
      if (!head.ok) throw new Error(`the output log answered ${head.status}`);
      const last = head.headers.get('x-last-chunk-index');
      if (last === null) return undefined;
      if (last !== '0') return last;
      // `0` is both "one record" and "none": the records say which.
      const records = await auth.fetch(`${base}/records`, { cache: 'no-store' });
      if (!records.ok) throw new Error(`the output records answered ${records.status}`);
      const body = await records.json();
      const list = Array.isArray(body) ? body : (body.records ?? body.data ?? []);
      return list.length > 0 ? '0' : undefined;
    },
  };
}
