// The browser tests' setup: a mock OpenAI model (tests/js/support/mock-openai.js), chatfn-local
// serving the built page (web/dist), and Debian's Chromium driven by playwright-core.
//
// Environment:
//   CHATFN_LOCAL_BIN   the server binary (default: <repo>/target/debug/chatfn-local)
//   CHATFN_WEB_DIR     the built page (default: <repo>/web/dist)
//   CHROMIUM_PATH      the browser (default: /usr/bin/chromium)
//   CHATFN_TEST_LOG=1  echo the server's output while the tests run

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { contentText, lastMessage, startMockOpenAI } from '../../js/support/mock-openai.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const BROWSER_ROOT = path.resolve(here, '..');
export const REPO_ROOT = path.resolve(BROWSER_ROOT, '..', '..');
export const ARTIFACTS = path.join(BROWSER_ROOT, 'artifacts');
const BIN = process.env.CHATFN_LOCAL_BIN
  ? path.resolve(process.env.CHATFN_LOCAL_BIN)
  : path.join(REPO_ROOT, 'target', 'debug', 'chatfn-local');
const WEB_DIR = process.env.CHATFN_WEB_DIR ? path.resolve(process.env.CHATFN_WEB_DIR) : path.join(REPO_ROOT, 'web', 'dist');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const START_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;

// Whatever happens, no server or browser outlives the test process.
const livePids = new Set();
process.once('exit', () => {
  for (const pid of livePids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

// ---------------------------------------------------------------------------------------------
// The mock model's script: deterministic replies, slow enough to reload or stop mid-reply.

/** The text the mock streams for "Count to N": every number once, so a repeat shows. */
export function countingReply(n) {
  return `Counting to ${n}:${Array.from({ length: n }, (_, i) => ` ${i + 1}`).join('')}.`;
}

/**
 * A reply in Markdown: bold, inline code, a list, a highlighted code block, and what a reply must
 * not be able to do (raw HTML that would run script, a `javascript:` link, an image that would be
 * fetched).
 */
export const MARKDOWN_REPLY = [
  'Here is **bold text** and `inline code`.',
  '',
  '- first item',
  '- second item with *emphasis*',
  '',
  '```js',
  'const answer = 40 + 2;',
  'console.log(answer);',
  '```',
  '',
  '<img src="x" onerror="window.__pwned = true"> <script>window.__pwned = true</script>',
  '',
  '[a bad link](javascript:window.__pwned=true) and ![a tracker](http://127.0.0.1:9/pixel.png)',
].join('\n');

/** A reply with a word and a code line far wider than a phone. */
export const WIDE_REPLY = [
  `A long word: ${'supercalifragilistic'.repeat(8)}.`,
  '',
  '```',
  `const wide = [${Array.from({ length: 40 }, (_, i) => i * 1000).join(', ')}];`,
  '```',
].join('\n');

/**
 * "Count to N" → N numbers, 60 ms apart ("slowly": 250 ms); "think" → reasoning, then an answer;
 * "roll" → a `roll_dice` call; "markdown" → `MARKDOWN_REPLY` in 6-character pieces; "wide" →
 * `WIDE_REPLY`; "numbered" → a sentence with the request's number; after a tool result → a
 * sentence quoting it; anything else → one short sentence.
 */
export function mockScript(request) {
  const last = request.messages.at(-1);
  if (last?.role === 'tool') {
    const text = `The tool answered ${contentText(last.content)}.`;
    return { text: text.match(/.{1,12}/gs), delayMs: 40 };
  }
  const said = contentText(lastMessage(request.messages, 'user')?.content);
  if (/markdown/i.test(said)) return { text: MARKDOWN_REPLY.match(/[\s\S]{1,6}/g), delayMs: 25 };
  if (/wide/i.test(said)) return { text: WIDE_REPLY.match(/[\s\S]{1,24}/g), delayMs: 20 };
  // Numbered answers differ from one request to the next: a regenerated reply shows.
  if (/numbered/i.test(said)) return { text: ['This is ', `answer ${request.index}.`], delayMs: 40 };
  const count = said.match(/count to (\d+)/i);
  if (count) {
    const n = Number(count[1]);
    const words = [`Counting to ${n}:`, ...Array.from({ length: n }, (_, i) => ` ${i + 1}`), '.'];
    return { text: words, delayMs: /slowly/i.test(said) ? 250 : 60 };
  }
  if (/think/i.test(said)) {
    const thoughts = ['The user wants ', 'me to think. ', 'Two and two ', 'make four.'];
    const answer = ['After thinking: ', 'four.'];
    return {
      chunks: [
        ...thoughts.map((reasoning_content) => ({ delta: { reasoning_content } })),
        ...answer.map((content) => ({ delta: { content } })),
      ],
      delayMs: 150,
    };
  }
  if (/roll/i.test(said)) {
    return { toolCalls: [{ id: `call_${request.index}`, name: 'roll_dice', args: ['{"sides":6,', '"count":2}'] }] };
  }
  return { text: ['This is ', 'the mock ', 'model.'], delayMs: 40 };
}

export async function startMock() {
  const mock = await startMockOpenAI({ port: 0 });
  mock.handle(mockScript);
  return mock;
}

// ---------------------------------------------------------------------------------------------
// chatfn-local

/** Starts chatfn-local on a free port with the mock model (or the offline one). */
export async function startServer({ mock, env = {} } = {}) {
  if (!existsSync(BIN)) {
    throw new Error(`chatfn-local not found at ${BIN}: cargo build -p local, or set CHATFN_LOCAL_BIN`);
  }
  if (!existsSync(path.join(WEB_DIR, 'index.html'))) {
    throw new Error(`the chat page is not built in ${WEB_DIR}: bash scripts/build-web.sh`);
  }
  const modelEnv = mock
    ? {
        CHATFN_MODEL_PROVIDER: 'openai',
        CHATFN_MODEL_BASE_URL: mock.baseUrl,
        CHATFN_MODEL: 'mock-model',
        CHATFN_MODEL_API_KEY: 'test-key',
      }
    : { CHATFN_MODEL_PROVIDER: 'offline' };
  const secretKey = `sk_browser_${process.pid}_${Date.now()}_${Math.random().toString(36).slice(2)}`;
  const child = spawn(BIN, ['--host', '127.0.0.1', '--port', '0', '--memory', '--web-dir', WEB_DIR], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      CHATFN_SECRET_KEY: secretKey,
      CHATFN_APPROVAL_TOOLS: 'roll_dice',
      RUST_LOG: 'info',
      NO_COLOR: '1',
      ...modelEnv,
      ...env,
    },
  });
  livePids.add(child.pid);
  let output = '';
  const echo = process.env.CHATFN_TEST_LOG === '1';
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      livePids.delete(child.pid);
      resolve({ code, signal });
    });
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  };
  const baseUrl = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`chatfn-local did not start within ${START_TIMEOUT_MS} ms\n${output}`)), START_TIMEOUT_MS);
    const take = (data) => {
      output += data;
      if (echo) process.stderr.write(data);
      const match = output.match(/listening on (http:\/\/[^\s]+)/);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout.setEncoding('utf8').on('data', take);
    child.stderr.setEncoding('utf8').on('data', (data) => {
      output += data;
      if (echo) process.stderr.write(data);
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`chatfn-local exited early (code ${code}, signal ${signal})\n${output}`));
    });
  }).catch(async (error) => {
    await stop();
    throw error;
  });
  return { baseUrl, secretKey, pid: child.pid, stop, logs: () => output.slice(-6000) };
}

/** The chat's history as the server keeps it (a token from the dev route, as the page gets it). */
export async function persistedMessages(server, chatId) {
  const session = await fetch(`${server.baseUrl}/dev/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ chatId }),
    signal: AbortSignal.timeout(10_000),
  });
  if (!session.ok) throw new Error(`/dev/sessions answered ${session.status}: ${await session.text()}`);
  const { publicAccessToken } = await session.json();
  const response = await fetch(`${server.baseUrl}/api/chat/${encodeURIComponent(chatId)}/messages`, {
    headers: { authorization: `Bearer ${publicAccessToken}` },
    signal: AbortSignal.timeout(10_000),
  });
  if (!response.ok) throw new Error(`messages answered ${response.status}: ${await response.text()}`);
  return (await response.json()).messages;
}

export function textOf(message) {
  return (message?.parts ?? [])
    .filter((part) => part.type === 'text')
    .map((part) => part.text)
    .join('');
}

// ---------------------------------------------------------------------------------------------
// The browser

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Debian's Chromium, headless, with a fresh profile (playwright makes a new --user-data-dir).
 * Launched as a browser server so its PID is known: `close` ends it even when the protocol hangs.
 */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM}: apt-get install -y chromium, or set CHROMIUM_PATH`);
  const server = await chromium.launchServer({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
  const pid = server.process().pid;
  livePids.add(pid);
  const kill = () => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  let browser;
  try {
    browser = await chromium.connect(server.wsEndpoint(), { timeout: 30_000 });
  } catch (error) {
    kill();
    livePids.delete(pid);
    throw error;
  }
  return {
    browser,
    pid,
    async close() {
      const timer = setTimeout(kill, 10_000);
      try {
        await browser.close().catch(() => {});
        await server.close();
      } finally {
        clearTimeout(timer);
        livePids.delete(pid);
      }
    },
  };
}

/**
 * A suite's setup: mock model, server and browser, started once, always stopped. `options.mock`
 * false runs the offline model instead.
 */
export async function setupSuite({ mock: useMock = true, env } = {}) {
  const stack = [];
  const teardown = async () => {
    for (const stop of stack.reverse()) {
      try {
        await stop();
      } catch (error) {
        process.stderr.write(`teardown: ${error.message}\n`);
      }
    }
  };
  try {
    const mock = useMock ? await startMock() : undefined;
    if (mock) stack.push(() => mock.close());
    const server = await startServer({ mock, env });
    stack.push(() => server.stop());
    const browser = await launchBrowser();
    stack.push(() => browser.close());
    return { mock, server, browser: browser.browser, teardown };
  } catch (error) {
    await teardown();
    throw error;
  }
}

export function artifactPath(name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, `${name.replace(/[^a-z0-9.-]+/gi, '-').toLowerCase()}.png`);
}

export const PHONE = { width: 390, height: 844 };
export const LAPTOP = { width: 1280, height: 800 };

/**
 * Runs `body(page)` in a fresh browser context (its own localStorage; the clipboard allowed;
 * `options` are the context's, e.g. `viewport` or `reducedMotion`). On failure it saves a
 * screenshot and adds the page's errors and the server's output to the error; it always closes
 * the context.
 */
export async function withPage(suite, name, body, options = {}) {
  const context = await suite.browser.newContext({
    viewport: { width: 1180, height: 760 },
    permissions: ['clipboard-read', 'clipboard-write'],
    ...options,
  });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  const pageErrors = [];
  const consoleErrors = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  rmSync(artifactPath(`${name}-failure`), { force: true });
  const shot = async (step) => {
    await page.screenshot({ path: artifactPath(`${name}-${step}`), fullPage: false });
  };
  try {
    await body(page, shot);
    if (pageErrors.length) throw new Error(`the page threw: ${pageErrors.join('\n')}`);
  } catch (error) {
    await shot('failure').catch(() => {});
    error.message += `\n--- page errors ---\n${pageErrors.join('\n')}\n--- console errors ---\n${consoleErrors.join('\n')}\n--- server ---\n${suite.server.logs()}`;
    throw error;
  } finally {
    await context.close().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// Reading and driving the page

export function newChatId(prefix) {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

export async function openChat(page, server, { chatId, transport }) {
  await page.goto(`${server.baseUrl}/?chat=${encodeURIComponent(chatId)}&transport=${transport}`);
  await page.locator('.chat').waitFor();
}

export async function send(page, text) {
  await page.getByRole('textbox', { name: 'Message' }).fill(text);
  await page.getByRole('button', { name: 'Send' }).click();
}

/** The status useChat reports (`ready`, `submitted`, `streaming`, `error`; `stopping` while a stop settles). */
export function chatStatus(page) {
  return page.locator('.chat').getAttribute('data-status', { timeout: 5_000 });
}

export async function waitForStatus(page, status, timeout = 30_000) {
  await page.locator(`.chat[data-status="${status}"]`).waitFor({ timeout });
}

/** Every message shown: `{id, role, text, tools: [{name, state}]}`. */
export function shownMessages(page) {
  return page.evaluate(() =>
    Array.from(document.querySelectorAll('article.message'), (article) => ({
      id: article.dataset.messageId,
      role: article.dataset.role,
      text: Array.from(article.querySelectorAll('.text-part:not(.pending)'), (p) => p.textContent).join(''),
      tools: Array.from(article.querySelectorAll('section.tool'), (tool) => ({ name: tool.dataset.tool, state: tool.dataset.state })),
    })),
  );
}

/** The text of the last assistant message shown ('' when none). */
export function lastAssistantText(page) {
  return page.evaluate(() => {
    const all = document.querySelectorAll('article.message[data-role="assistant"]');
    const last = all[all.length - 1];
    return last ? Array.from(last.querySelectorAll('.text-part:not(.pending)'), (p) => p.textContent).join('') : '';
  });
}

/**
 * Samples the last assistant text every `everyMs` until `until(sample)` holds; returns the
 * samples `{t, text, status}`. Survives reloads (a sample taken while the page navigates is
 * skipped).
 */
export async function sampleReply(page, { until, everyMs = 80, timeoutMs = 30_000 }) {
  const samples = [];
  const start = Date.now();
  for (;;) {
    try {
      const sample = await page.evaluate(() => {
        const all = document.querySelectorAll('article.message[data-role="assistant"]');
        const last = all[all.length - 1];
        const text = last ? Array.from(last.querySelectorAll('.text-part:not(.pending)'), (p) => p.textContent).join('') : '';
        return { text, status: document.querySelector('.chat')?.dataset.status ?? 'none' };
      });
      samples.push({ t: Date.now() - start, ...sample });
      if (until(sample)) return samples;
    } catch {
      // navigating
    }
    if (Date.now() - start > timeoutMs) {
      throw new Error(`sampleReply: condition not met within ${timeoutMs} ms; last samples: ${JSON.stringify(samples.slice(-3))}`);
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** Whether the numbers in a counting reply are exactly 1..k once each, in order (no repeats). */
export function countsInOrder(text) {
  const numbers = (text.split(':')[1] ?? '').match(/\d+/g)?.map(Number) ?? [];
  return numbers.every((n, i) => n === i + 1);
}

/** The elements that stick out of the viewport sideways, and whether the page scrolls sideways. */
export function horizontalOverflow(page) {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const scrolls = document.documentElement.scrollWidth > width || document.body.scrollWidth > width;
    const offenders = [];
    for (const element of document.querySelectorAll('#root *')) {
      const box = element.getBoundingClientRect();
      if (box.width === 0 || getComputedStyle(element).visibility === 'hidden') continue;
      // Inside a scroller of its own (a code block, a table) a wide line is fine.
      let clipped = false;
      for (let up = element.parentElement; up && up.id !== 'root'; up = up.parentElement) {
        const overflowX = getComputedStyle(up).overflowX;
        if (overflowX === 'auto' || overflowX === 'scroll' || overflowX === 'hidden') {
          clipped = true;
          break;
        }
      }
      if (!clipped && (box.right > width + 1 || box.left < -1)) {
        offenders.push(`${element.tagName.toLowerCase()}.${element.className} [${Math.round(box.left)}, ${Math.round(box.right)}]`);
      }
    }
    return { width, scrolls, offenders: offenders.slice(0, 10) };
  });
}
