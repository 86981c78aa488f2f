// Send a message and watch the reply stream in: the text grows over time, sample by sample, and
// ends equal to what the server kept. Over both transports.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  countingReply,
  newChatId,
  openChat,
  persistedMessages,
  sampleReply,
  send,
  setupSuite,
  shownMessages,
  textOf,
  waitForStatus,
  withPage,
} from '../support/harness.js';

describe('a reply streams into the page', () => {
  let suite;
  before(async () => {
    suite = await setupSuite();
  });
  after(async () => {
    await suite?.teardown();
  });

  test('reasoning shows while the model thinks, then the answer', { timeout: 60_000 }, async () => {
    await withPage(suite, 'reasoning', async (page, shot) => {
      const chatId = newChatId('reasoning');
      await openChat(page, suite.server, { chatId, transport: 'ai-sdk' });
      await waitForStatus(page, 'ready');
      await send(page, 'Think: what is two and two?');
      const reasoning = page.locator('article.message[data-role="assistant"] details.reasoning');
      await reasoning.getByText('Thinking…').waitFor();
      await shot('thinking');
      await waitForStatus(page, 'ready');
      assert.equal(await reasoning.locator('summary').innerText(), 'Reasoning');
      await reasoning.locator('summary').click();
      assert.equal(await reasoning.locator('.reasoning-text').innerText(), 'The user wants me to think. Two and two make four.');
      const [, reply] = await shownMessages(page);
      assert.equal(reply.text, 'After thinking: four.');
      await shot('done');
      const persisted = await persistedMessages(suite.server, chatId);
      const part = persisted[1].parts.find((p) => p.type === 'reasoning');
      assert.equal(part?.text, 'The user wants me to think. Two and two make four.');
    });
  });

  for (const transport of ['ai-sdk', 'trigger']) {
    test(`over the ${transport} transport, the text grows while it streams`, { timeout: 60_000 }, async () => {
      await withPage(suite, `stream-${transport}`, async (page, shot) => {
        const chatId = newChatId(`stream-${transport}`);
        await openChat(page, suite.server, { chatId, transport });
        await waitForStatus(page, 'ready');
        const expected = countingReply(30);
        await send(page, 'Count to 30.');
        const early = await sampleReply(page, { until: (sample) => sample.text.length > 40, everyMs: 60 });
        await shot('streaming');
        const rest = await sampleReply(page, {
          until: (sample) => sample.status === 'ready' && sample.text === expected,
          everyMs: 60,
        });
        const offset = early.at(-1).t;
        const samples = [...early, ...rest.map((s) => ({ ...s, t: s.t + offset }))];
        assert.ok(rest[0].text.length < expected.length, 'the screenshot was taken mid-reply');
        const texts = samples.map((s) => s.text).filter(Boolean);
        const distinct = [...new Set(texts)];
        assert.ok(distinct.length >= 5, `the text grew in steps, not at once: ${distinct.length} distinct samples`);
        for (let i = 1; i < distinct.length; i++) {
          assert.ok(distinct[i].startsWith(distinct[i - 1]), `each sample extends the one before: ${JSON.stringify(distinct.slice(i - 1, i + 1))}`);
        }
        assert.ok(samples.some((s) => s.status === 'streaming'), 'the page reported streaming');
        const firstText = samples.find((s) => s.text);
        const last = samples.at(-1);
        assert.ok(last.t - firstText.t >= 800, `streamed over time (${last.t - firstText.t} ms from the first words to the end)`);
        await shot('done');

        const shown = await shownMessages(page);
        const persisted = await persistedMessages(suite.server, chatId);
        assert.deepEqual(
          shown.map((m) => [m.id, m.role, m.text]),
          persisted.map((m) => [m.id, m.role, textOf(m)]),
          'the page shows what the server kept',
        );
        assert.equal(textOf(persisted.at(-1)), expected);
      });
    });
  }
});
