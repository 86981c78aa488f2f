// The stock SDK's sessions API against chatfn: `sessions.list(...)` paging both ways with each
// filter, `sessions.update(...)` then `sessions.retrieve(...)`, what a sidebar reads (title, last
// activity), and erasing a chat: every route and every old token of it answer as for a chat
// that never existed, also once a chat is created again under the same id.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { e2eSuite } from '../support/harness.js';
import { chatUrl, createSession, newChatId, request, sessionBody } from '../support/server.js';
import { sendTurn, textOf, userMessage } from '../support/stream.js';
import { appendRaw, messageInput, sessionUrl, triggerServerActions } from '../support/trigger.js';

const worker = process.env.CHATFN_WORKER === '1';
const lambda = Boolean(process.env.CHATFN_LAMBDA_URL);

/**
 * Every item of DynamoDB Local's table (the Lambda run's) that belongs to the chat: its
 * partition, its session alias, or any item naming it outside the outbox (whose `chat.deleted`
 * event is meant to stay until delivered). DynamoDB Local checks that a request is signed, not
 * the signature. The erased chat's tombstone (its head item, with when it was erased and when
 * TTL deletes it, and nothing else) is left out after checking that it holds nothing more.
 */
async function chatItems(chatId, sessionId) {
  const endpoint = process.env.AWS_ENDPOINT_URL_DYNAMODB;
  const items = [];
  let start;
  do {
    const response = await fetch(endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': 'DynamoDB_20120810.Scan',
        authorization: 'AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0',
      },
      body: JSON.stringify({
        TableName: process.env.CHATFN_TABLE_NAME,
        FilterExpression: 'begins_with(pk, :chat) OR pk = :alias OR (chat_id = :id AND NOT begins_with(pk, :outbox))',
        ExpressionAttributeValues: {
          ':chat': { S: `chat#${chatId}` },
          ':alias': { S: `sid#${sessionId}` },
          ':id': { S: chatId },
          ':outbox': { S: 'outbox#' },
        },
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    });
    const body = await response.json();
    assert.equal(response.status, 200, JSON.stringify(body));
    items.push(...body.Items);
    start = body.LastEvaluatedKey;
  } while (start);
  return items.filter((item) => {
    if (!item.erased_ms) return true;
    assert.deepEqual(Object.keys(item).sort(), ['erased_ms', 'expires_at', 'pk', 'sk'], JSON.stringify(item));
    assert.equal(item.sk.S, 'head');
    return false;
  });
}

e2eSuite('sessions API: list, update, retrieve, erase', (ctx, e2e) => {
  let sessions;
  const sdk = () => {
    sessions ??= triggerServerActions(ctx.server).sessions;
    return sessions;
  };
  const admin = (path, method, body) =>
    request(`${ctx.server.baseUrl}${path}`, { method, token: ctx.server.secretKey, body });

  /** `count` chats tagged `tag`, each created after the one before. */
  async function taggedChats(tag, count, prefix = 'list') {
    const ids = [];
    for (let i = 0; i < count; i += 1) {
      const chatId = newChatId(prefix);
      await createSession(ctx.server, chatId);
      await sdk().update(chatId, { tags: [tag] });
      ids.push(chatId);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return ids;
  }

  const ids = (page) => page.data.map((session) => session.externalId);

  e2e('list pages newest first, forward and back, neither skipping nor repeating', async () => {
    const tag = `run-${randomUUID()}`;
    const created = await taggedChats(tag, 5);
    const all = await sdk().list({ tag, limit: 100 });
    assert.deepEqual(ids(all), [...created].reverse(), 'newest first');
    assert.equal(all.hasNextPage(), false);

    const pages = [await sdk().list({ tag, limit: 2 })];
    while (pages.at(-1).hasNextPage()) pages.push(await pages.at(-1).getNextPage());
    assert.deepEqual(pages.map(ids), [ids(all).slice(0, 2), ids(all).slice(2, 4), ids(all).slice(4)]);
    assert.equal(pages[0].hasPreviousPage(), false);

    const back = await pages[2].getPreviousPage();
    assert.deepEqual(ids(back), ids(pages[1]));
    const top = await back.getPreviousPage();
    assert.deepEqual(ids(top), ids(pages[0]));
    assert.equal(top.hasPreviousPage(), false);

    // `for await` walks every page.
    const walked = [];
    for await (const session of sdk().list({ tag, limit: 2 })) walked.push(session.externalId);
    assert.deepEqual(walked, ids(all));

    // The SDK's schema reads every item: dates are Dates.
    assert.ok(all.data[0].createdAt instanceof Date);
    assert.ok(all.data[0].updatedAt instanceof Date);
  });

  e2e('list filters by tag, status, type, task, externalId and creation time', async () => {
    const tag = `run-${randomUUID()}`;
    const [a, b, c] = await taggedChats(tag, 3, 'filter');
    await sdk().close(b, { reason: 'done' });

    assert.deepEqual(ids(await sdk().list({ tag, status: 'CLOSED' })), [b]);
    assert.deepEqual(ids(await sdk().list({ tag, status: ['ACTIVE'] })), [c, a]);
    assert.deepEqual(ids(await sdk().list({ tag, status: 'EXPIRED' })), []);
    assert.deepEqual(ids(await sdk().list({ tag, type: 'chat.agent' })), [c, b, a]);
    assert.deepEqual(ids(await sdk().list({ tag, type: 'something.else' })), []);
    assert.deepEqual(ids(await sdk().list({ tag, taskIdentifier: 'chat' })), [c, b, a]);
    assert.deepEqual(ids(await sdk().list({ tag, taskIdentifier: ['other', 'nope'] })), []);
    assert.deepEqual(ids(await sdk().list({ externalId: a })), [a]);
    assert.deepEqual(ids(await sdk().list({ tag: [tag, 'unused-tag'], limit: 1 })), [c]);

    const times = (await sdk().list({ tag })).data.map((s) => s.createdAt.getTime());
    assert.deepEqual(ids(await sdk().list({ tag, from: times[1], to: times[1] })), [b]);
    assert.deepEqual(ids(await sdk().list({ tag, from: new Date(times[1]) })), [c, b]);
    assert.deepEqual(ids(await sdk().list({ tag, period: '1h' })), [c, b, a]);

    const bad = await request(`${ctx.server.baseUrl}/api/v1/sessions?filter[status]=DONE`, { token: ctx.server.secretKey });
    assert.equal(bad.status, 422, bad.text);
    const tooBig = await request(`${ctx.server.baseUrl}/api/v1/sessions?page[size]=101`, { token: ctx.server.secretKey });
    assert.equal(tooBig.status, 422, tooBig.text);
    const noKey = await request(`${ctx.server.baseUrl}/api/v1/sessions`, { token: 'nope' });
    assert.equal(noKey.status, 401, noKey.text);
  });

  e2e('update then retrieve: tags and metadata, null clears, the chat id cannot change', async () => {
    const chatId = newChatId('update');
    await createSession(ctx.server, chatId);
    const updated = await sdk().update(chatId, { tags: ['work', 'starred'], metadata: { title: 'Trip plans', n: 1 } });
    assert.deepEqual(updated.tags, ['work', 'starred']);
    assert.deepEqual(updated.metadata, { title: 'Trip plans', n: 1 });
    const retrieved = await sdk().retrieve(chatId);
    assert.deepEqual(retrieved.tags, ['work', 'starred']);
    assert.deepEqual(retrieved.metadata, { title: 'Trip plans', n: 1 });
    assert.equal(retrieved.id, updated.id);
    // By session id too (not on the Worker yet: a `session_…` id does not say which chat's
    // object holds it).
    if (!worker) assert.deepEqual((await sdk().retrieve(updated.id)).tags, ['work', 'starred']);

    // Only what is sent changes.
    assert.deepEqual((await sdk().update(chatId, { metadata: { n: 2 } })).tags, ['work', 'starred']);
    const cleared = await sdk().update(chatId, { tags: [], metadata: null });
    assert.deepEqual(cleared.tags, []);
    assert.equal(cleared.metadata, null);

    // The same chat id is no change; another is refused.
    await sdk().update(chatId, { externalId: chatId });
    await assert.rejects(sdk().update(chatId, { externalId: `${chatId}-x` }), (error) => error.status === 422);
    const tooMany = await admin(`/api/v1/sessions/${chatId}`, 'PATCH', { tags: Array.from({ length: 11 }, (_, i) => `t${i}`) });
    assert.equal(tooMany.status, 422, tooMany.text);
    const unknown = await admin(`/api/v1/sessions/${newChatId('none')}`, 'PATCH', { tags: [] });
    assert.equal(unknown.status, 404, unknown.text);
  });

  e2e('a sidebar reads the title, the last activity and the tags from the server', async () => {
    const { chatId, transport } = await ctx.newChat('sidebar');
    ctx.mock.handle(() => ({ text: 'Sure.' }));
    const before = Date.now();
    const turn = await sendTurn(transport, { chatId, messages: [userMessage('Plan a   trip\nto Lisbon in May')] });
    assert.equal(textOf(turn.message), 'Sure.');

    // The turn's end is the chat's last activity.
    let raw;
    for (let i = 0; i < 50; i += 1) {
      raw = (await admin(`/api/v1/sessions/${chatId}`, 'GET')).json;
      if (Date.parse(raw.lastActivityAt) >= before) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(raw.title, 'Plan a trip to Lisbon in May');
    assert.ok(Date.parse(raw.lastActivityAt) >= before, `lastActivityAt ${raw.lastActivityAt}`);
    assert.equal(raw.updatedAt, raw.lastActivityAt, 'updatedAt is the last activity');

    const fromMessages = await admin(`/api/v1/sessions?filter[externalId]=${chatId}`, 'GET');
    assert.equal(fromMessages.status, 200, fromMessages.text);
    assert.equal(fromMessages.json.data[0].title, 'Plan a trip to Lisbon in May');
    await sdk().update(chatId, { metadata: { title: 'Lisbon' } });
    const listed = await admin(`/api/v1/sessions?filter[externalId]=${chatId}`, 'GET');
    assert.equal(listed.status, 200, listed.text);
    assert.equal(listed.json.data[0].title, 'Lisbon');
    assert.equal(listed.json.data[0].lastActivityAt, raw.lastActivityAt);
  });

  e2e('an erased chat answers as one that never existed, and its old tokens open nothing', async () => {
    const { chatId, token, transport } = await ctx.newChat('erase');
    ctx.mock.handle(() => ({ text: 'Remember this.' }));
    await sendTurn(transport, { chatId, messages: [userMessage('A secret')] });
    const sessionId = (await sdk().retrieve(chatId)).id;

    const erased = await admin(`/api/v1/sessions/${chatId}`, 'DELETE');
    assert.equal(erased.status, 200, erased.text);
    assert.equal(erased.json.deleted, true);
    const again = await admin(`/api/v1/sessions/${chatId}`, 'DELETE');
    assert.equal(again.status, 200, again.text);
    assert.equal(again.json.deleted, false, 'erasing twice is no error');

    const routes = [
      ['GET', `${ctx.server.baseUrl}/api/v1/sessions/${chatId}`, token],
      ['GET', `${ctx.server.baseUrl}/api/v1/sessions/${sessionId}`, ctx.server.secretKey],
      ['GET', chatUrl(ctx.server, chatId, 'messages'), token],
      ['GET', chatUrl(ctx.server, chatId, 'stream'), token],
      ['POST', chatUrl(ctx.server, chatId, 'stop'), token],
      ['POST', `${ctx.server.baseUrl}/api/v1/sessions/${chatId}/token`, ctx.server.secretKey],
      ['POST', `${ctx.server.baseUrl}/api/v1/sessions/${chatId}/close`, ctx.server.secretKey],
      ['PATCH', `${ctx.server.baseUrl}/api/v1/sessions/${chatId}`, ctx.server.secretKey],
      ['GET', sessionUrl(ctx.server, chatId, 'out'), token],
    ];
    for (const [method, url, credential] of routes) {
      const res = await request(url, { method, token: credential, body: method === 'GET' ? undefined : {}, timeout: 5000 });
      assert.equal(res.status, 404, `${method} ${url}: ${res.status} ${res.text}`);
    }
    const append = await appendRaw(ctx.server, chatId, token, messageInput(chatId, userMessage('again?')));
    assert.equal(append.status, 404, append.text);
    const send = await request(`${ctx.server.baseUrl}/api/chat`, {
      method: 'POST',
      token,
      body: { id: chatId, messages: [userMessage('again?')], trigger: 'submit-message' },
    });
    assert.equal(send.status, 404, send.text);
    assert.deepEqual(ids(await sdk().list({ externalId: chatId })), []);
    if (lambda && process.env.AWS_ENDPOINT_URL_DYNAMODB && process.env.CHATFN_TABLE_NAME) {
      assert.deepEqual(await chatItems(chatId, sessionId), [], 'no item of the erased chat is left in the table');
    }

    // The same id again is a new, empty chat, and the old token does not open it.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const fresh = await createSession(ctx.server, chatId);
    const old = await request(chatUrl(ctx.server, chatId, 'messages'), { token });
    assert.equal(old.status, 401, `an old token on the new chat: ${old.text}`);
    const oldOut = await request(sessionUrl(ctx.server, chatId, 'out'), { token, timeout: 5000 });
    assert.equal(oldOut.status, 401, oldOut.text);
    const messages = await request(chatUrl(ctx.server, chatId, 'messages'), { token: fresh });
    assert.equal(messages.status, 200, messages.text);
    assert.deepEqual(messages.json.messages, []);
  });

  e2e('erasing a chat stops its running turn first', async () => {
    const { chatId, token, transport } = await ctx.newChat('erase-running');
    ctx.mock.handle(() => ({ text: Array.from({ length: 40 }, (_, i) => `w${i} `), delayMs: 100 }));
    let erasing;
    const turn = sendTurn(transport, {
      chatId,
      messages: [userMessage('Talk for a while')],
      onChunk: (_chunk, _i, chunks) => {
        if (!erasing && chunks.filter((c) => c.type === 'text-delta').length === 3) {
          erasing = admin(`/api/v1/sessions/${chatId}`, 'DELETE');
        }
      },
    }).catch((error) => ({ error }));
    await turn;
    assert.ok(erasing, 'the erase was sent mid-turn');
    const erased = await erasing;
    assert.equal(erased.status, 200, erased.text);
    assert.equal(erased.json.deleted, true);
    // Nothing of the turn was written back after the erase.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const gone = await request(chatUrl(ctx.server, chatId, 'messages'), { token });
    assert.equal(gone.status, 404, gone.text);
  });

  e2e("an owner's erasure takes only that owner's chats, with the secret key", async () => {
    const owner = `user-${randomUUID()}`;
    const tag = `run-${randomUUID()}`;
    const theirs = [newChatId('owned'), newChatId('owned')];
    for (const chatId of theirs) {
      const started = await admin('/api/v1/sessions', 'POST', { ...sessionBody(chatId), owner, tags: [tag] });
      assert.ok(started.status === 200 || started.status === 201, started.text);
    }
    const [other] = await taggedChats(tag, 1, 'unowned');
    assert.equal(ids(await sdk().list({ tag })).length, 3);

    const res = await admin(`/api/v1/owners/${owner}/sessions`, 'DELETE');
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.deleted, 2);
    assert.deepEqual(ids(await sdk().list({ tag })), [other]);
    for (const chatId of theirs) {
      const gone = await admin(`/api/v1/sessions/${chatId}`, 'GET');
      assert.equal(gone.status, 404, gone.text);
    }
    const none = await admin(`/api/v1/owners/nobody-${randomUUID()}/sessions`, 'DELETE');
    assert.equal(none.status, 200, none.text);
    assert.equal(none.json.deleted, 0);
    const denied = await request(`${ctx.server.baseUrl}/api/v1/owners/someone/sessions`, { method: 'DELETE', token: 'nope' });
    assert.equal(denied.status, 401, denied.text);
  });

  e2e('CORS lets a browser send PATCH and DELETE', async () => {
    const res = await request(`${ctx.server.baseUrl}/api/v1/sessions/x`, {
      method: 'OPTIONS',
      headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'DELETE', 'access-control-request-headers': 'authorization' },
    });
    assert.ok(res.status < 300, `preflight: ${res.status}`);
    const allowed = (res.headers.get('access-control-allow-methods') ?? '').toUpperCase();
    for (const method of ['PATCH', 'DELETE']) assert.ok(allowed.includes(method), `${method} in ${allowed}`);
  }, { skip: lambda && "the function URL's own CORS answers there (infra/template.yaml)" });
});
