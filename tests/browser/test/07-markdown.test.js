// A reply in Markdown renders as it streams: bold, code, lists and a highlighted code block with a
// copy button; half-written emphasis never shows its markers; raw HTML from the model is shown as
// text and never runs; a `javascript:` link is no link; an image is a link, never fetched.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MARKDOWN_REPLY, newChatId, openChat, persistedMessages, send, setupSuite, textOf, waitForStatus, withPage } from '../support/harness.js';

describe('Markdown replies', () => {
  let suite;
  before(async () => {
    suite = await setupSuite();
  });
  after(async () => {
    await suite?.teardown();
  });

  for (const transport of ['ai-sdk', 'trigger']) {
    test(`over the ${transport} transport, a reply renders as Markdown while it streams`, { timeout: 60_000 }, async () => {
      await withPage(suite, `markdown-${transport}`, async (page, shot) => {
        const fetched = [];
        page.on('request', (request) => fetched.push(request.url()));
        const chatId = newChatId(`markdown-${transport}`);
        await openChat(page, suite.server, { chatId, transport });
        await waitForStatus(page, 'ready');
        await send(page, 'Show me some markdown.');

        // Sample the reply while it streams: what a person sees at each moment.
        const samples = [];
        let shotTaken = false;
        for (const start = Date.now(); Date.now() - start < 30_000; ) {
          const sample = await page.evaluate(() => {
            const replies = document.querySelectorAll('article.message[data-role="assistant"] .text-part');
            const reply = replies[replies.length - 1];
            return {
              status: document.querySelector('.chat')?.dataset.status,
              text: reply?.innerText ?? '',
              pre: Boolean(reply?.querySelector('pre')),
            };
          });
          samples.push(sample);
          if (!shotTaken && sample.pre && sample.status === 'streaming') {
            await shot('streaming-code');
            shotTaken = true;
          }
          if (sample.status === 'ready' && sample.text.includes('a tracker')) break;
          await new Promise((resolve) => setTimeout(resolve, 30));
        }
        const streaming = samples.filter((sample) => sample.status === 'streaming' && sample.text);
        assert.ok(streaming.length >= 5, `sampled mid-reply: ${streaming.length} samples`);
        for (const sample of streaming) {
          assert.doesNotMatch(sample.text, /\*\*/, `no bold markers mid-stream: ${JSON.stringify(sample.text)}`);
          if (sample.text.includes('const answer')) assert.ok(sample.pre, `code mid-fence is a code block: ${JSON.stringify(sample.text)}`);
        }
        assert.ok(streaming.some((sample) => sample.pre), 'a code block showed before the fence closed or the reply ended');

        const reply = page.locator('article.message[data-role="assistant"]').last();
        assert.equal(await reply.locator('strong').innerText(), 'bold text');
        assert.equal(await reply.locator('p code').innerText(), 'inline code');
        assert.deepEqual(await reply.locator('ul > li').allInnerTexts(), ['first item', 'second item with emphasis']);
        assert.equal(await reply.locator('li em').innerText(), 'emphasis');
        const block = reply.locator('.code-block');
        assert.equal(await block.getAttribute('data-language'), 'js');
        await block.locator('code .hljs-keyword').first().waitFor();
        assert.equal(await block.locator('code .hljs-keyword').first().innerText(), 'const');
        assert.equal(await block.locator('pre').innerText(), 'const answer = 40 + 2;\nconsole.log(answer);');

        // Raw HTML is text; nothing of it ran or loaded.
        assert.match(await reply.innerText(), /<script>window.__pwned = true<\/script>/);
        assert.equal(await reply.locator('img, script').count(), 0);
        assert.equal(await page.evaluate(() => window.__pwned), undefined);
        assert.equal(await reply.locator('a[href^="javascript"]').count(), 0);
        assert.equal(await reply.getByText('a bad link').evaluate((element) => element.tagName), 'SPAN');
        const image = reply.locator('a.image-link');
        assert.equal(await image.getAttribute('href'), 'http://127.0.0.1:9/pixel.png');
        assert.equal(await image.getAttribute('rel'), 'noopener noreferrer');
        assert.ok(!fetched.some((url) => url.includes('127.0.0.1:9/')), 'the image was not fetched');

        // The code block's copy button copies the code as written.
        await block.getByRole('button', { name: 'Copy code' }).click();
        await block.getByRole('button', { name: 'Copied' }).waitFor();
        assert.equal(await page.evaluate(() => navigator.clipboard.readText()), 'const answer = 40 + 2;\nconsole.log(answer);');
        await shot('rendered');

        const persisted = await persistedMessages(suite.server, chatId);
        assert.equal(textOf(persisted.at(-1)), MARKDOWN_REPLY, 'the server keeps the Markdown source');
      });
    });
  }
});
