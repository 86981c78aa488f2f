// chatfn's Cloudflare Worker under `wrangler dev` (workerd, locally), for the scenario files.
//
// Each call starts its own wrangler dev with infra/wrangler.toml (the config `wrangler deploy`
// publishes), on a free loopback port, with the Durable Objects' storage persisted in a folder
// (`persistDir`, a fresh temp folder by default) so a restart keeps every chat. The Worker must
// be built first (scripts/worker-e2e.sh does it); CHATFN_WORKER_PREBUILT=1 makes the config's
// build command keep that build instead of building again.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(here, '..', '..', '..');
const WRANGLER = path.join(REPO_ROOT, 'functions', 'worker', 'node_modules', '.bin', 'wrangler');
/** chatfn's Worker; other Worker crates (examples) pass their own `crate` folder. */
const DEFAULT_CRATE = { dir: 'functions/worker', config: 'infra/wrangler.toml' };
const START_TIMEOUT_MS = 90_000;
const STOP_GRACE_MS = 5_000;
const READY = /Ready on (http:\/\/[^\s]+)/;
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

const live = new Set();
process.once('exit', () => {
  for (const child of live) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** A free loopback port (the OS picks it; wrangler needs a number up front). */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts the Worker wired to the mock model at `modelBaseUrl`. `env` adds Worker vars (the
 * `CHATFN_…` settings); `persistDir` keeps the Durable Objects' storage across restarts.
 * Returns the same shape as startChatfn: `{ baseUrl, secretKey, pid, logs(), mark(), alive(),
 * stop(), persistDir }`, and `kill()` (SIGKILL, no grace). `crate` is `{ dir, config }`: the
 * Worker crate's folder and its wrangler.toml (default: chatfn's Worker and infra/wrangler.toml);
 * a Worker of plain JavaScript has only `{ config }`.
 */
export async function startWorker({ modelBaseUrl, env = {}, persistDir, secretKey, crate = DEFAULT_CRATE } = {}) {
  // A crate with no `dir` is a Worker of plain JavaScript, served as its config says.
  const built = crate.dir && path.join(REPO_ROOT, crate.dir, 'build', 'index.js');
  if (built && !existsSync(built)) {
    throw new Error(`the Worker is not built (${built}): run bash scripts/worker-build.sh --test ${crate.dir}`);
  }
  if (!existsSync(WRANGLER)) {
    throw new Error(`wrangler is not installed (${WRANGLER}): run bash scripts/worker-tools.sh`);
  }
  persistDir ??= mkdtempSync(path.join(os.tmpdir(), 'chatfn-worker-state-'));
  secretKey ??= process.env.CHATFN_SECRET_KEY || `sk_test_${randomBytes(24).toString('hex')}`;
  const vars = {
    CHATFN_SECRET_KEY: secretKey,
    ...(modelBaseUrl
      ? {
          CHATFN_MODEL_PROVIDER: 'openai',
          CHATFN_MODEL_BASE_URL: modelBaseUrl,
          CHATFN_MODEL: 'mock-model',
          CHATFN_MODEL_API_KEY: 'test-key',
        }
      : {}),
    ...env,
  };
  const port = await freePort();
  const inspectorPort = await freePort();
  const args = [
    'dev',
    '--config', path.join(REPO_ROOT, crate.config),
    '--ip', '127.0.0.1',
    '--port', String(port),
    '--inspector-port', String(inspectorPort),
    '--persist-to', persistDir,
    '--show-interactive-dev-session=false',
    '--log-level', 'info',
  ];
  for (const [name, value] of Object.entries(vars)) args.push('--var', `${name}:${value}`);

  const child = spawn(WRANGLER, args, {
    cwd: REPO_ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      CHATFN_WORKER_PREBUILT: '1',
      WRANGLER_SEND_METRICS: 'false',
      CI: 'true',
      NO_COLOR: '1',
      FORCE_COLOR: '0',
    },
  });
  live.add(child);
  let output = '';
  const echo = process.env.CHATFN_TEST_LOG === '1';
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
  let exitInfo;
  exited.then((info) => {
    exitInfo = info;
  });
  const logs = (mark = 0) => {
    const text = output.slice(mark);
    return `--- wrangler dev ---\n${text.length > 8000 ? `…${text.slice(-8000)}` : text}`;
  };

  const baseUrl = await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`wrangler dev did not get ready within ${START_TIMEOUT_MS} ms\n${logs()}`)),
      START_TIMEOUT_MS,
    );
    const onData = (data) => {
      output += data;
      if (echo) process.stderr.write(`[wrangler] ${data}`);
      const match = output.replace(ANSI, '').match(READY);
      if (match) {
        clearTimeout(timer);
        resolve(match[1].replace(/\/+$/, ''));
      }
    };
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`could not spawn wrangler: ${error.message}`));
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`wrangler dev exited early (code ${code}, signal ${signal})\n${logs()}`));
    });
  }).catch(async (error) => {
    await stop(child, exited, 'SIGTERM');
    throw error;
  });

  return {
    baseUrl,
    secretKey,
    worker: true,
    external: false,
    pid: child.pid,
    persistDir,
    logs,
    /** All of wrangler's output since `mark`, untrimmed (for a search through a long run). */
    wholeLog: (mark = 0) => output.slice(mark),
    mark: () => output.length,
    alive: () => exitInfo === undefined,
    stop: () => stop(child, exited, 'SIGTERM'),
    kill: () => stop(child, exited, 'SIGKILL'),
  };
}

/** Stops wrangler and the workerd it runs: the whole process group. */
async function stop(child, exited, signal) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const signalGroup = (sig) => {
    try {
      process.kill(-child.pid, sig);
    } catch {
      // already gone
    }
  };
  signalGroup(signal);
  let timer;
  const killed = new Promise((resolve) => {
    timer = setTimeout(() => {
      signalGroup('SIGKILL');
      resolve();
    }, STOP_GRACE_MS);
  });
  await Promise.race([exited, killed]);
  clearTimeout(timer);
  await exited;
  // workerd may outlive wrangler by a moment: make sure the group is gone.
  signalGroup('SIGKILL');
}
