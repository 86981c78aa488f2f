// One suite per test file: a mock model and a chatfn-local process shared by the file's tests.

import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { startMockOpenAI } from './mock-openai.js';
import { createSession, makeTransport, newChatId, setupFile } from './server.js';

export const TEST_TIMEOUT_MS = 30_000;

/**
 * `describe(name)` with `before`/`after` hooks that start and always stop the mock model and
 * the server. `body(ctx, e2e)` defines the tests with `e2e(name, fn)`; `ctx` holds `mock`,
 * `server` and `newChat()`. A failing test gets the server's recent logs appended, and every
 * test also fails if the server process died or the mock's handler threw. `env` adds
 * environment variables for the spawned server (e.g. `CHATFN_APPROVAL_TOOLS`); with `dataDir`
 * the server keeps its chats there (its default SQLite store) rather than in memory.
 */
export function e2eSuite(name, body, { env, dataDir } = {}) {
  describe(name, () => {
    const ctx = {
      /** A fresh chat: its id, its session token and a DefaultChatTransport using that token. */
      async newChat(prefix = 'chat') {
        const chatId = newChatId(prefix);
        const token = await createSession(ctx.server, chatId);
        return { chatId, token, transport: makeTransport(ctx.server, token) };
      },
    };

    before(async () => {
      Object.assign(ctx, await setupFile(startMockOpenAI, { env, dataDir }));
    }, { timeout: 45_000 });

    after(async () => {
      await ctx.teardown?.();
    }, { timeout: 20_000 });

    beforeEach(() => {
      ctx.mock?.reset();
    });

    const e2e = (testName, fn, options = {}) =>
      test(testName, { timeout: TEST_TIMEOUT_MS, ...options }, async (t) => {
        assert.ok(ctx.server, 'the suite setup failed (see the before hook error)');
        const mark = ctx.server.mark();
        try {
          await fn(t);
          assert.deepEqual(ctx.mock.errors.map(String), [], 'the mock model handler threw');
          if (ctx.server.alive) assert.ok(ctx.server.alive(), 'chatfn-local exited during the test');
        } catch (error) {
          if (error && typeof error === 'object' && !ctx.server.external) {
            try {
              error.message = `${error.message}\n\n${ctx.server.logs(mark)}`;
            } catch {
              // read-only message; keep the original
            }
          }
          throw error;
        }
      });

    body(ctx, e2e);
  });
}
