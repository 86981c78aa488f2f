// The page as the frontend of chatfn elsewhere: served by one server, it talks to chatfn on
// another origin (`?server=`) and gets its tokens from a backend of its own (`?backend=`), here a
// small server holding that chatfn's secret key, as a web app's server actions would.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import {
  countingReply,
  newChatId,
  persistedMessages,
  sampleReply,
  send,
  setupSuite,
  shownMessages,
  startServer,
  textOf,
  waitForStatus,
  withPage,
} from '../support/harness.js';

/** The app backend: `/dev/sessions` and its token route over chatfn's secret-key routes, with CORS. */
async function startBackend(chatfn) {
  const calls = [];
  const server = http.createServer(async (req, res) => {
    const cors = {
      'access-control-allow-origin': req.headers.origin ?? '*',
      'access-control-allow-methods': 'GET, POST',
      'access-control-allow-headers': 'content-type',
    };
    if (req.method === 'OPTIONS') {
      res.writeHead(204, cors).end();
      return;
    }
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    calls.push(`${req.method} ${req.url}`);
    const forward = async (path, body) => {
      const answer = await fetch(`${chatfn.baseUrl}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${chatfn.secretKey}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const json = await answer.json();
      res.writeHead(answer.ok ? 200 : answer.status, { ...cors, 'content-type': 'application/json' });
      res.end(JSON.stringify(answer.ok ? { publicAccessToken: json.publicAccessToken } : json));
    };
    try {
      const token = req.url.match(/^\/dev\/sessions\/([^/]+)\/token$/);
      if (req.method === 'POST' && req.url === '/dev/sessions') {
        const { chatId } = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        await forward('/api/v1/sessions', { type: 'chat.agent', externalId: chatId, taskIdentifier: 'chat' });
      } else if (req.method === 'POST' && token) {
        await forward(`/api/v1/sessions/${token[1]}/token`);
      } else {
        res.writeHead(404, cors).end();
      }
    } catch (error) {
      res.writeHead(500, cors).end(String(error));
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    calls,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

describe('the page against chatfn on another origin', () => {
  let suite;
  let remote;
  let backend;
  before(async () => {
    suite = await setupSuite();
    remote = await startServer({ mock: suite.mock });
    backend = await startBackend(remote);
  });
  after(async () => {
    await backend?.close();
    await remote?.stop();
    await suite?.teardown();
  });

  for (const transport of ['ai-sdk', 'trigger']) {
    test(`over the ${transport} transport`, { timeout: 60_000 }, async () => {
      await withPage(suite, `cross-origin-${transport}`, async (page, shot) => {
        const chatId = newChatId(`cross-${transport}`);
        const query = new URLSearchParams({ server: remote.baseUrl, backend: backend.url, chat: chatId, transport });
        await page.goto(`${suite.server.baseUrl}/?${query}`);
        await waitForStatus(page, 'ready');
        await page.getByText('Model: unknown').waitFor();
        await send(page, 'Count to 8.');
        await sampleReply(page, { until: (s) => s.status === 'ready' && s.text === countingReply(8) });
        await shot('done');

        const shown = await shownMessages(page);
        const persisted = await persistedMessages(remote, chatId);
        assert.deepEqual(
          shown.map((m) => [m.id, m.text]),
          persisted.map((m) => [m.id, textOf(m)]),
          'the chat lives on the other server',
        );
        assert.ok(backend.calls.includes('POST /dev/sessions'), backend.calls.join(', '));
        assert.deepEqual(await persistedMessages(suite.server, chatId), [], 'the server that served the page has none of it');
        // This backend has the token routes only: the list says so, and shows the chat open.
        await page.getByRole('status').filter({ hasText: 'The token backend does not list chats' }).waitFor();
        const listed = await page.getByRole('navigation', { name: 'Your chats' }).locator('.chat-link').allInnerTexts();
        assert.deepEqual(listed, ['Count to 8.']);
      });
    });
  }
});
