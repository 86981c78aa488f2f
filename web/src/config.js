// Where the page finds chatfn and its backend, and what it keeps in localStorage.
//
// - `server`: chatfn's base URL (the AI SDK routes `/api/chat…` and the Trigger routes
//   `/realtime/v1/sessions/…`). Default: the page's own origin (the local server serves both).
// - `backend`: the web app backend that creates sessions and mints tokens with the secret key
//   (`POST {backend}/dev/sessions`, `POST {backend}/dev/sessions/{chatId}/token`,
//   `GET {backend}/dev/info`) and lists, renames and deletes chats (`GET {backend}/dev/sessions`,
//   `PATCH` and `DELETE {backend}/dev/sessions/{chatId}`). Default: the page's own origin, where
//   the local server has them.
//
// Each is taken from the query string (`?server=…&backend=…`), else from the saved settings,
// else the default. So the same page can drive deployed functions from another origin.

const SETTINGS_KEY = 'chatfn.settings';

function readJson(key, fallback) {
  try {
    const raw = localStorage.getItem(key);
    return raw ? JSON.parse(raw) : fallback;
  } catch {
    return fallback;
  }
}

function writeJson(key, value) {
  try {
    if (value === undefined || value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage full or disabled: the page still works for this visit.
  }
}

export function trimUrl(url) {
  return String(url ?? '').trim().replace(/\/+$/, '');
}

/** Checks that `text` is an http(s) URL; returns it trimmed, or throws with a message. */
export function checkUrl(text) {
  const trimmed = trimUrl(text);
  if (trimmed === '') return '';
  let url;
  try {
    url = new URL(trimmed);
  } catch {
    throw new Error(`"${trimmed}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`"${trimmed}" is not an http(s) URL`);
  return trimmed;
}

export function savedSettings() {
  const saved = readJson(SETTINGS_KEY, {});
  return {
    server: typeof saved.server === 'string' ? saved.server : '',
    backend: typeof saved.backend === 'string' ? saved.backend : '',
    transport: saved.transport === 'trigger' ? 'trigger' : 'ai-sdk',
  };
}

export function saveSettings(changes) {
  writeJson(SETTINGS_KEY, { ...savedSettings(), ...changes });
}

/** The settings in force for this page load. */
export function currentConfig() {
  const query = new URLSearchParams(window.location.search);
  const saved = savedSettings();
  const origin = window.location.origin;
  const server = trimUrl(query.get('server') || saved.server || origin);
  const backend = trimUrl(query.get('backend') || saved.backend || origin);
  const fromQuery = query.has('server') || query.has('backend');
  const transportParam = query.get('transport');
  const transport = transportParam === 'trigger' || transportParam === 'ai-sdk' ? transportParam : saved.transport;
  return { server, backend, transport, fromQuery, sameOrigin: server === origin };
}

// ---------------------------------------------------------------------------------------------
// Per chatfn server: the chat last open here, and the Trigger transport's state per chat.

export function lastChatId(server) {
  return readJson(`chatfn.current:${server}`, null);
}

export function rememberCurrentChat(server, chatId) {
  writeJson(`chatfn.current:${server}`, chatId);
}

/** The Trigger transport's state for one chat (`onSessionChange`), kept for resume. */
export function loadTriggerSession(server, chatId) {
  return readJson(`chatfn.trigger:${server}:${chatId}`, undefined);
}

export function saveTriggerSession(server, chatId, state) {
  writeJson(`chatfn.trigger:${server}:${chatId}`, state ?? null);
}

export function forgetChat(server, chatId) {
  saveTriggerSession(server, chatId, null);
}

/** A new chat id; `crypto.randomUUID` is missing on plain-http pages other than localhost. */
export function newChatId() {
  if (typeof crypto.randomUUID === 'function') return `chat-${crypto.randomUUID()}`;
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `chat-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** Puts `chat=<id>` in the address bar, keeping the other parameters. */
export function showChatInUrl(chatId) {
  const url = new URL(window.location.href);
  if (url.searchParams.get('chat') === chatId) return;
  url.searchParams.set('chat', chatId);
  window.history.replaceState(null, '', url);
}

export function chatIdFromUrl() {
  return new URLSearchParams(window.location.search).get('chat');
}
