// What went wrong, said so that a person knows which server failed and what to do next. The AI
// SDK hands over a failed response's body as the error's message; a network failure is a bare
// "Failed to fetch" (Chromium), "NetworkError …" (Firefox) or "Load failed" (Safari).

const NETWORK_FAILURE = /failed to fetch|networkerror|load failed|network request failed|fetch failed/i;

/** A server the page could not reach (no answer at all, not an error answer). */
export class Unreachable extends Error {
  constructor(what, url, cause) {
    super(`Could not reach ${what} at ${url}.`, { cause });
    this.name = 'Unreachable';
    this.what = what;
    this.url = url;
  }
}

/** A server that answered with an error. */
export class Refused extends Error {
  constructor(what, status, detail) {
    super(`${capitalize(what)} answered ${status}${detail ? `: ${detail}` : ''}.`);
    this.name = 'Refused';
    this.what = what;
    this.status = status;
    this.detail = detail;
  }
}

function capitalize(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// By its message only: a TypeError is also what a bug in the page throws.
export function isNetworkFailure(error) {
  return NETWORK_FAILURE.test(String(error?.message ?? ''));
}

/** The `error` field of chatfn's JSON error bodies (`{"ok":false,"error":"…","code":"…"}`). */
export function errorDetail(text) {
  const trimmed = String(text ?? '').trim();
  try {
    const body = JSON.parse(trimmed);
    if (typeof body?.error === 'string') return body.error;
    if (typeof body?.error?.message === 'string') return body.error.message;
    if (typeof body?.message === 'string') return body.message;
  } catch {
    // not JSON
  }
  return trimmed.slice(0, 200);
}

/**
 * `{title, advice}` for an error from sending a message or opening a chat. `servers` names the
 * page's two servers: `{server, backend}`.
 */
export function describeError(error, servers) {
  if (error instanceof Unreachable) {
    return { title: error.message, advice: adviceFor(error.what, servers) };
  }
  if (error instanceof Refused) {
    return { title: error.message, advice: refusedAdvice(error.status) };
  }
  const message = String(error?.message ?? '');
  if (isNetworkFailure(error)) {
    return {
      title: `Could not reach the chatfn server at ${servers.server}.`,
      advice: adviceFor('the chatfn server', servers),
    };
  }
  const detail = errorDetail(message);
  return {
    title: detail ? `The chatfn server could not answer: ${detail}` : 'The reply failed.',
    advice: 'Retry; if it fails again, the server log says why.',
  };
}

function adviceFor(what, servers) {
  // On one origin both are the same server; naming two would send a person looking for two.
  const where = servers.server === servers.backend ? 'the server' : what;
  return `Check that ${where} is running (or change its address in Settings), then retry.`;
}

function refusedAdvice(status) {
  if (status === 401 || status === 403) return 'The chat token was refused: reload the page to get a new one.';
  if (status === 404) return 'The address in Settings may not be a chatfn server.';
  if (status >= 500) return 'The server failed; retry, and if it fails again, its log says why.';
  return 'Retry, or start a new chat.';
}
