// A path router in front of the three Lambda functions, so the scenario files that talk to one
// base URL run unchanged against them. It does what the CloudFront front door of the SAM template
// does: each path goes to the function that owns it. `cargo lambda watch` serves function `fn`
// at `/lambda-url/<fn>/<path>`.
//
// Requests and responses are piped through as they come (a streamed reply reaches the test chunk
// by chunk), and a client that hangs up makes the router hang up on the function too, so a
// dropped connection reaches the function as it would on AWS.

import http from 'node:http';

/** The function that owns `path`, as in infra/template.yaml's cache behaviours. */
export function functionFor(path) {
  if (/^\/api\/v1\/sessions\/[^/]+\/token$/.test(path)) return 'token-refresh';
  if (path.startsWith('/api/v1/auth/')) return 'token-refresh';
  if (path === '/api/v1/sessions' || path.startsWith('/api/v1/sessions/')) return 'session-start';
  if (path.startsWith('/api/v1/owners/')) return 'session-start';
  if (path === '/api/chat' || path.startsWith('/api/chat/')) return 'agent-turn';
  if (path.startsWith('/realtime/')) return 'agent-turn';
  // Unknown paths go where CloudFront's default behaviour sends them: every function answers a
  // JSON 404 for routes it does not own.
  return 'agent-turn';
}

/** The URL of `path` (with its query) on the function that owns it, under `lambdaUrl`. */
export function lambdaUrlFor(lambdaUrl, pathAndQuery) {
  const path = pathAndQuery.split('?')[0];
  return `${lambdaUrl.replace(/\/+$/, '')}/lambda-url/${functionFor(path)}${pathAndQuery}`;
}

/**
 * Starts the router on a free loopback port in front of `lambdaUrl` (the `cargo lambda watch`
 * address). Returns `{ baseUrl, close(), routed }`; `routed` counts requests per function.
 */
export async function startLambdaRouter(lambdaUrl) {
  const routed = { 'session-start': 0, 'token-refresh': 0, 'agent-turn': 0 };
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const target = new URL(lambdaUrlFor(lambdaUrl, req.url));
    routed[functionFor(req.url.split('?')[0])] += 1;
    const headers = { ...req.headers, host: target.host };
    const upstream = http.request(
      { method: req.method, hostname: target.hostname, port: target.port, path: target.pathname + target.search, headers },
      (answer) => {
        // cargo lambda adds the runtime's streaming marker; a function URL does not pass it on.
        const { 'lambda-runtime-function-response-mode': _mode, ...answerHeaders } = answer.headers;
        res.writeHead(answer.statusCode, answerHeaders);
        res.flushHeaders();
        answer.on('data', (chunk) => res.write(chunk));
        answer.on('end', () => res.end());
        answer.on('error', () => res.destroy());
        answer.on('aborted', () => res.destroy());
      },
    );
    upstream.on('error', (error) => {
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ok: false, error: `lambda router: ${error.message}`, code: 'bad_gateway' }));
      } else {
        res.destroy();
      }
    });
    // The client went away before the reply ended: hang up on the function as well.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    routed,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * The test suites' server when CHATFN_LAMBDA_URL is set: the router in front of an already
 * running `cargo lambda watch` (see scripts/lambda-e2e.sh). The functions must use the tests'
 * CHATFN_SECRET_KEY and the mock model on MOCK_OPENAI_PORT. With CHATFN_LAMBDA_LOG (the file
 * `cargo lambda watch` writes to), a failing test shows the functions' logs of that test.
 */
export async function attachToLambda() {
  const secretKey = process.env.CHATFN_SECRET_KEY;
  if (!secretKey) {
    throw new Error('CHATFN_LAMBDA_URL is set, so CHATFN_SECRET_KEY must be set too (the key the functions use)');
  }
  const router = await startLambdaRouter(process.env.CHATFN_LAMBDA_URL);
  const logFile = process.env.CHATFN_LAMBDA_LOG;
  const { readFileSync, statSync } = await import('node:fs');
  const size = () => {
    try {
      return statSync(logFile).size;
    } catch {
      return 0;
    }
  };
  return {
    baseUrl: router.baseUrl,
    secretKey,
    lambda: true,
    routed: router.routed,
    external: !logFile,
    mark: () => (logFile ? size() : undefined),
    logs: (mark = 0) => {
      if (!logFile) return '(cargo lambda watch: set CHATFN_LAMBDA_LOG to see its logs)';
      const text = readFileSync(logFile, 'utf8').slice(mark ?? 0);
      return `--- cargo lambda watch (the three functions) ---\n${text.length > 8000 ? `…${text.slice(-8000)}` : text}`;
    },
    /** Runs the event sweeper once, as its EventBridge schedule does on AWS. */
    sweep: () => invokeSweeper(process.env.CHATFN_LAMBDA_URL),
    stop: () => router.close(),
  };
}

/** Invokes the `event-sweeper` function through `cargo lambda watch`'s Lambda invoke API. */
async function invokeSweeper(lambdaUrl) {
  const url = `${lambdaUrl.replace(/\/+$/, '')}/2015-03-31/functions/event-sweeper/invocations`;
  const scheduled = {
    version: '0', id: 'e2e-sweep', 'detail-type': 'Scheduled Event', source: 'aws.scheduler',
    account: '123456789012', time: new Date().toISOString(), region: 'us-east-1', resources: [], detail: {},
  };
  const res = await fetch(url, { method: 'POST', body: JSON.stringify(scheduled) });
  const text = await res.text();
  if (!res.ok) throw new Error(`event-sweeper invocation: ${res.status} ${text}`);
  return text;
}
