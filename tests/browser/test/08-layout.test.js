// The page from a phone to a laptop: at 390x844 the chat list is a drawer, long titles end in an
// ellipsis, and nothing sticks out sideways after a long message and a wide reply; at 1280x800 the
// list is a column beside the chat.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  horizontalOverflow,
  LAPTOP,
  newChatId,
  openChat,
  PHONE,
  send,
  setupSuite,
  waitForStatus,
  withPage,
} from '../support/harness.js';

const LONG_MESSAGE = `A long message: ${'averyveryverylongwordwithoutanyspaces'.repeat(4)} and then a long sentence that goes on and on so that it wraps over several lines on a phone.`;

async function assertInside(page, label) {
  const overflow = await horizontalOverflow(page);
  assert.equal(overflow.scrolls, false, `${label}: the page scrolls sideways (${JSON.stringify(overflow)})`);
  assert.deepEqual(overflow.offenders, [], `${label}: elements stick out of the ${overflow.width}px viewport`);
}

describe('the layout', () => {
  let suite;
  before(async () => {
    suite = await setupSuite();
  });
  after(async () => {
    await suite?.teardown();
  });

  test('on a phone (390x844): a drawer for the chats, nothing wider than the screen', { timeout: 60_000 }, async () => {
    await withPage(
      suite,
      'layout-phone',
      async (page, shot) => {
        const chatId = newChatId('layout-phone');
        await openChat(page, suite.server, { chatId, transport: 'ai-sdk' });
        await waitForStatus(page, 'ready');
        const chats = page.getByRole('navigation', { name: 'Your chats' });
        assert.equal(await chats.isVisible(), false, 'the list starts hidden on a phone');
        const composerTop = await page.locator('.composer').evaluate((element) => element.getBoundingClientRect().top);
        assert.ok(composerTop > 844 * 0.8, `the chat gets the height: the message box is at ${composerTop}px`);
        await shot('empty');

        await send(page, LONG_MESSAGE);
        await waitForStatus(page, 'ready');
        await assertInside(page, 'after a long message');
        await shot('long-message');

        await send(page, 'Now something wide.');
        await page.locator('.code-block').waitFor();
        await waitForStatus(page, 'ready');
        await assertInside(page, 'after a wide reply');
        const send_ = page.getByRole('button', { name: 'Send' });
        const box = await send_.boundingBox();
        assert.ok(box && box.x + box.width <= 390, `the Send button is on screen: ${JSON.stringify(box)}`);
        const pre = page.locator('.code-block pre');
        assert.ok(await pre.evaluate((element) => element.scrollWidth > element.clientWidth), 'the code line scrolls inside its block');
        await shot('wide-reply');

        // The drawer: opens over the chat, lists the chat with its title cut short, closes again.
        const menu = page.getByRole('button', { name: 'Chats' });
        assert.equal(await menu.getAttribute('aria-expanded'), 'false');
        await menu.click();
        await chats.waitFor();
        assert.equal(await menu.getAttribute('aria-expanded'), 'true');
        // The drawer slides in (no faster than a reduced-motion setting allows).
        await page.waitForFunction(() => document.querySelector('.sidebar').getBoundingClientRect().left >= 0);
        const title = chats.locator('[aria-current="page"]');
        assert.ok(await title.evaluate((element) => element.scrollWidth > element.clientWidth), 'the long title is cut');
        assert.equal(await title.evaluate((element) => getComputedStyle(element).textOverflow), 'ellipsis');
        const drawer = await page.locator('.sidebar').boundingBox();
        assert.ok(drawer.x >= 0 && drawer.x + drawer.width <= 390, `the drawer fits: ${JSON.stringify(drawer)}`);
        await assertInside(page, 'with the drawer open');
        assert.equal(await page.evaluate(() => Boolean(document.activeElement?.closest('.sidebar'))), true, 'the focus moved into the drawer');
        assert.equal(await page.evaluate(() => document.querySelector('main').inert), true, 'the chat behind the drawer is inert');
        await shot('drawer');
        await page.keyboard.press('Escape');
        await chats.waitFor({ state: 'hidden' });
        assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Chats', 'focus back on the menu button');

        // A new chat from the drawer closes it.
        await menu.click();
        await page.getByRole('button', { name: 'New chat' }).click();
        await chats.waitFor({ state: 'hidden' });
        await page.waitForFunction((first) => new URL(location.href).searchParams.get('chat') !== first, chatId);
        await waitForStatus(page, 'ready');
        await assertInside(page, 'a new chat');
      },
      { viewport: PHONE, isMobile: true, hasTouch: true },
    );
  });

  test('on a laptop (1280x800): the list beside the chat, no menu button', { timeout: 60_000 }, async () => {
    await withPage(
      suite,
      'layout-laptop',
      async (page, shot) => {
        const chatId = newChatId('layout-laptop');
        await openChat(page, suite.server, { chatId, transport: 'ai-sdk' });
        await waitForStatus(page, 'ready');
        await send(page, LONG_MESSAGE);
        await waitForStatus(page, 'ready');
        await send(page, 'Now something wide.');
        await page.locator('.code-block').waitFor();
        await waitForStatus(page, 'ready');
        const chats = page.getByRole('navigation', { name: 'Your chats' });
        assert.equal(await chats.isVisible(), true);
        assert.equal(await page.getByRole('button', { name: 'Chats' }).isVisible(), false);
        const sidebar = await page.locator('.sidebar').boundingBox();
        const log = await page.locator('.log').boundingBox();
        assert.ok(sidebar.x + sidebar.width <= log.x + 1, 'the list is beside the chat');
        const title = chats.locator('[aria-current="page"]');
        assert.equal(await title.evaluate((element) => getComputedStyle(element).textOverflow), 'ellipsis');
        await assertInside(page, 'a laptop');
        await shot('wide-reply');
      },
      { viewport: LAPTOP },
    );
  });
});
