#!/usr/bin/env node
// A throwaway stand-in for chatfn-local, used only to check the JS test harness itself
// (`npm run test:fake`). It is not a specification of chatfn and not kept in sync with it.
// FAKE_BUG=<name> switches on one deliberate bug, to check that the tests catch it
// (`npm run test:mutants`).
import http from 'node:http';
import { createHmac, randomUUID, randomInt } from 'node:crypto';

const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const host = arg('--host', '127.0.0.1');
const port = Number(arg('--port', '0'));
const SECRET = process.env.CHATFN_SECRET_KEY;
const MODEL_URL = process.env.CHATFN_MODEL_BASE_URL;
const MODEL = process.env.CHATFN_MODEL;
const MODEL_KEY = process.env.CHATFN_MODEL_API_KEY;
const BUG = process.env.FAKE_BUG ?? '';

const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
const sign = (input) => createHmac('sha256', Buffer.from(SECRET, 'utf8')).update(input).digest('base64url');
function mint(chatId, ttl = 3600) {
  const iat = Math.floor(Date.now() / 1000);
  const p = { sub: 'env_local', pub: true, scopes: [`read:sessions:${chatId}`, `write:sessions:${chatId}`], iat, exp: iat + ttl };
  const input = `${b64({ alg: 'HS256' })}.${b64(p)}`;
  return { token: `${input}.${sign(input)}`, exp: p.exp };
}
function verify(token) {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  let header, payload;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url'));
    payload = JSON.parse(Buffer.from(parts[1], 'base64url'));
  } catch {
    return null;
  }
  if (header.alg !== 'HS256') return null;
  if (BUG !== 'skip-sig' && sign(`${parts[0]}.${parts[1]}`) !== parts[2]) return null;
  if (typeof payload.exp !== 'number' || payload.exp < Date.now() / 1000) return null;
  return payload;
}

const sessions = new Map(); // chatId -> session
const chats = new Map(); // chatId -> { messages, active }

const err = (res, status, code, error) => {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ ok: false, error, code }));
};
const json = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

async function readBody(req, limit = 1024 * 1024) {
  const chunks = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size <= limit) chunks.push(c);
  }
  if (size > limit) throw Object.assign(new Error('too large'), { status: 413 });
  return Buffer.concat(chunks).toString('utf8');
}

function bearer(req) {
  const h = req.headers.authorization ?? '';
  const m = /^Bearer (.+)$/.exec(h);
  return m ? m[1] : null;
}
function authChat(req, res, chatId) {
  const t = bearer(req);
  if (!t) return err(res, 401, 'unauthorized', 'missing token'), false;
  const p = verify(t);
  if (!p) return err(res, 401, 'unauthorized', 'invalid token'), false;
  if (BUG !== 'no-scope-check' && !p.scopes?.includes(`read:sessions:${chatId}`)) return err(res, 403, 'forbidden', 'wrong chat'), false;
  return true;
}

function chat(chatId) {
  if (!chats.has(chatId)) chats.set(chatId, { messages: [], active: null });
  return chats.get(chatId);
}

// ---- UI -> OpenAI
function toOpenAI(messages) {
  if (BUG === 'no-history') messages = messages.filter((m, i) => i >= messages.length - 2);
  const out = [{ role: 'system', content: 'You are a test agent.' }];
  for (const m of messages) {
    const text = (ps) => ps.filter((p) => p.type === 'text').map((p) => p.text).join('');
    if (m.role === 'user') out.push({ role: 'user', content: text(m.parts) });
    else if (m.role === 'assistant') {
      const blocks = [[]];
      for (const p of m.parts) {
        if (p.type === 'step-start') { if (blocks.at(-1).length) blocks.push([]); } else blocks.at(-1).push(p);
      }
      for (const b of blocks) {
        if (!b.length) continue;
        const tools = b.filter((p) => p.type.startsWith('tool-'));
        const msg = { role: 'assistant', content: text(b) || null };
        if (tools.length) msg.tool_calls = tools.map((t) => ({ id: t.toolCallId, type: 'function', function: { name: t.type.slice(5), arguments: JSON.stringify(t.input) } }));
        out.push(msg);
        if (BUG !== 'drop-tool-result') for (const t of tools) out.push({ role: 'tool', tool_call_id: t.toolCallId, content: JSON.stringify(t.output) });
      }
    }
  }
  return out;
}
const TOOLS = [
  { type: 'function', function: { name: 'roll_dice', description: 'Roll dice', parameters: { type: 'object', properties: { sides: { type: 'integer' }, count: { type: 'integer' } } } } },
  { type: 'function', function: { name: 'current_time', description: 'Time', parameters: { type: 'object', properties: {} } } },
];
function runTool(name, input) {
  if (name === 'roll_dice') {
    const sides = input.sides ?? 6;
    const count = input.count ?? 1;
    const rolls = Array.from({ length: count }, () => randomInt(1, sides + 1));
    return { rolls, total: rolls.reduce((a, b) => a + b, 0) };
  }
  const now = Date.now();
  return { iso: new Date(now).toISOString(), unixMs: now };
}

// ---- active stream
function makeActive() {
  const a = { chunks: [], subs: new Set(), done: false, abort: new AbortController() };
  a.emit = (c) => {
    a.chunks.push(c);
    for (const s of a.subs) s(c);
  };
  a.end = () => {
    a.done = true;
    for (const s of a.subs) s(null);
  };
  return a;
}
function pipeActive(a, res, { post = false } = {}) {
  if (post && BUG === 'buffer') {
    const held = [];
    const hold = (c) => {
      if (c !== null) return held.push(c);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(held.map((h) => `data: ${JSON.stringify(h)}\n\n`).join('') + 'data: [DONE]\n\n');
    };
    a.subs.add(hold);
    return;
  }
  if (post && BUG === 'cancel-on-disconnect') res.on('close', () => { if (!a.done) a.abort.abort(); });
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-vercel-ai-ui-message-stream': 'v1', 'x-accel-buffering': 'no' });
  const write = (c) => {
    if (res.destroyed) return;
    if (c === null) { res.end('data: [DONE]\n\n'); a.subs.delete(write); return; }
    res.write(`data: ${JSON.stringify(c)}\n\n`);
  };
  for (const c of BUG === 'resume-from-middle' && !post ? [] : a.chunks) write(c);
  if (a.done) write(null);
  else {
    a.subs.add(write);
    res.on('close', () => a.subs.delete(write));
  }
}

async function runTurn(chatId, c, a) {
  const messageId = `msg_${randomUUID()}`;
  const reply = { id: messageId, role: 'assistant', parts: [] };
  c.messages.push(reply);
  a.emit({ type: 'start', messageId });
  if (BUG === 'bad-chunk') a.emit({ type: 'text-chunk', id: 'x', delta: 'x' });
  let step = 0;
  let openText = null;
  try {
    for (;;) {
      step++;
      a.emit({ type: 'start-step' });
      reply.parts.push({ type: 'step-start' });
      const resp = await fetch(`${MODEL_URL}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${MODEL_KEY}` },
        body: JSON.stringify({ model: MODEL, messages: toOpenAI(c.messages.slice(0, -1).concat(reply.parts.length > 1 ? [reply] : [])), tools: TOOLS, stream: true, stream_options: { include_usage: true } }),
        signal: a.abort.signal,
      });
      const calls = [];
      let finish = 'stop';
      let buf = '';
      const dec = new TextDecoder();
      for await (const bytes of resp.body) {
        buf += dec.decode(bytes, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const ev = buf.slice(0, i); buf = buf.slice(i + 2);
          const data = ev.replace(/^data: /, '');
          if (data === '[DONE]') continue;
          const j = JSON.parse(data);
          const ch = j.choices?.[0];
          if (!ch) continue;
          if (ch.delta?.content) {
            if (!openText) {
              openText = { id: `txt_${randomUUID()}`, part: { type: 'text', text: '', state: 'streaming' } };
              reply.parts.push(openText.part);
              a.emit({ type: 'text-start', id: openText.id });
            }
            openText.part.text += ch.delta.content;
            a.emit({ type: 'text-delta', id: openText.id, delta: ch.delta.content });
          }
          for (const tc of ch.delta?.tool_calls ?? []) {
            if (!calls[tc.index]) {
              calls[tc.index] = { id: tc.id, name: tc.function.name, args: '' };
              a.emit({ type: 'tool-input-start', toolCallId: tc.id, toolName: tc.function.name });
            }
            if (tc.function?.arguments) {
              calls[tc.index].args += tc.function.arguments;
              a.emit({ type: 'tool-input-delta', toolCallId: calls[tc.index].id, inputTextDelta: tc.function.arguments });
            }
          }
          if (ch.finish_reason) finish = ch.finish_reason;
        }
      }
      if (openText) { a.emit({ type: 'text-end', id: openText.id }); openText.part.state = 'done'; openText = null; }
      for (const call of calls) {
        const input = JSON.parse(call.args || '{}');
        a.emit({ type: 'tool-input-available', toolCallId: call.id, toolName: call.name, input });
        const output = runTool(call.name, input);
        a.emit({ type: 'tool-output-available', toolCallId: call.id, output });
        reply.parts.push({ type: `tool-${call.name}`, toolCallId: call.id, state: 'output-available', input, output });
      }
      a.emit({ type: 'finish-step' });
      if (!calls.length || step > 5) {
        a.emit({ type: 'finish', finishReason: finish === 'length' ? 'length' : finish === 'tool_calls' ? 'tool-calls' : 'stop' });
        break;
      }
    }
  } catch (e) {
    if (a.abort.signal.aborted) {
      if (openText) openText.part.state = 'done';
      if (BUG === 'no-persist-partial') c.messages.pop();
      a.emit(BUG === 'no-abort-chunk' ? { type: 'finish' } : { type: 'abort' });
    } else {
      a.emit({ type: 'error', errorText: String(e) });
    }
  }
  if (BUG !== 'never-idle') c.active = null;
  a.end();
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://x');
    const p = url.pathname;
    let m;
    if (req.method === 'POST' && p === '/api/v1/sessions') {
      if (bearer(req) !== SECRET) return err(res, 401, 'unauthorized', 'bad key');
      const body = JSON.parse(await readBody(req));
      const chatId = body.externalId;
      const cached = sessions.has(chatId);
      if (!cached) sessions.set(chatId, { id: `session_${randomUUID()}`, createdAt: new Date().toISOString() });
      const s = sessions.get(chatId);
      chat(chatId);
      return json(res, cached ? 200 : 201, { id: s.id, externalId: chatId, type: 'chat.agent', taskIdentifier: 'chat', tags: [], metadata: null, closedAt: null, closedReason: null, expiresAt: null, createdAt: s.createdAt, updatedAt: s.createdAt, runId: 'run_1', publicAccessToken: mint(chatId).token, isCached: cached });
    }
    if (req.method === 'POST' && (m = /^\/api\/v1\/sessions\/([^/]+)\/token$/.exec(p))) {
      if (bearer(req) !== SECRET) return err(res, 401, 'unauthorized', 'bad key');
      const { token, exp } = mint(decodeURIComponent(m[1]));
      return json(res, 200, { publicAccessToken: token, expiresAt: new Date(exp * 1000).toISOString() });
    }
    if (req.method === 'POST' && p === '/api/chat') {
      const t = bearer(req);
      if (!t) return err(res, 401, 'unauthorized', 'missing token');
      const payload = verify(t);
      if (!payload) return err(res, 401, 'unauthorized', 'invalid token');
      let raw;
      try { raw = await readBody(req); } catch (e) { res.setHeader('connection', 'close'); return err(res, 413, 'payload_too_large', 'too large'); }
      let body;
      try { body = JSON.parse(raw); } catch { return err(res, 400, 'invalid_json', 'bad json'); }
      if (!body || typeof body !== 'object' || Array.isArray(body) || !Array.isArray(body.messages)) return err(res, 422, 'invalid_body', 'bad body');
      if (BUG !== 'no-scope-check' && !payload.scopes?.includes(`write:sessions:${body.id}`)) return err(res, 403, 'forbidden', 'wrong chat');
      if (!['submit-message', 'regenerate-message'].includes(body.trigger)) return err(res, 400, 'invalid_trigger', 'bad trigger');
      const c = chat(body.id);
      const last = body.messages.at(-1);
      if (last && !c.messages.some((x) => x.id === last.id)) c.messages.push(last);
      const a = makeActive();
      c.active = a;
      pipeActive(a, res, { post: true });
      runTurn(body.id, c, a);
      return;
    }
    if ((m = /^\/api\/chat\/([^/]+)\/(stream|stop|messages)$/.exec(p))) {
      const chatId = decodeURIComponent(m[1]);
      if (m[2] === 'stop' || m[2] === 'stream' ) {
        // no-op
      }
      if (!authChat(req, res, chatId)) return;
      const c = chat(chatId);
      if (m[2] === 'messages') return json(res, 200, { messages: c.messages });
      if (m[2] === 'stream') {
        if (!c.active || BUG === 'no-resume') { res.writeHead(204); return res.end(); }
        return pipeActive(c.active, res);
      }
      if (m[2] === 'stop') {
        await readBody(req).catch(() => '');
        c.active?.abort.abort();
        return json(res, 200, { ok: true, stopped: !!c.active });
      }
    }
    err(res, 404, 'not_found', 'no route');
  } catch (e) {
    err(res, 500, 'internal', String(e));
  }
});
server.listen(port, host, () => {
  console.log(`INFO chatfn_local: listening on http://${host}:${server.address().port}`);
});
process.on('SIGTERM', () => process.exit(0));
