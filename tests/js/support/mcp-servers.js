// MCP servers for the tests of MCP tools: the reference server (npm
// `@modelcontextprotocol/server-everything`, Streamable HTTP, installed in tests/mcp), a small one
// of the test's own with a tool named `files.read`, and one that accepts connections and never
// answers. Each on a port of its own: the ports of CHATFN_E2E_MCP_PORTS (`reference,own,silent`,
// set by scripts/lambda-e2e.sh, whose functions are configured before the tests start), else
// free ones.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { REPO_ROOT } from './server.js';

const REFERENCE_ENTRY = path.join(
  REPO_ROOT, 'tests', 'mcp', 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js',
);

/** How long a silent server is waited for, per operation. */
export const SILENT_TIMEOUT_S = 2;

async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * The three servers and CHATFN_MCP_SERVERS naming them (the JSON form, as a host reads it). On the
 * ports of CHATFN_E2E_MCP_PORTS when set; else the test's own two listen on ports the system gives
 * them as they bind (a port picked beforehand may be another process's by then, an outgoing
 * connection's among them), and the reference server, which binds in a process of its own, on a
 * free one, tried again on another if it cannot have it. `stop()` stops all three.
 */
export async function startMcpServers() {
  const given = process.env.CHATFN_E2E_MCP_PORTS?.split(',').map(Number);
  const fixed = given?.length === 3 ? given : undefined;
  const own = await startOwnServer(fixed?.[1] ?? 0);
  const silent = await startSilentServer(fixed?.[2] ?? 0);
  let reference;
  for (let attempt = 1; !reference; attempt += 1) {
    try {
      reference = await startReference(fixed?.[0] ?? (await freePort()));
    } catch (error) {
      if (fixed || attempt === 3) throw error;
    }
  }
  const servers = [
    { name: 'everything', url: `http://127.0.0.1:${reference.port}/mcp` },
    { name: 'files', url: `http://127.0.0.1:${own.port}/mcp` },
    { name: 'silent', url: `http://127.0.0.1:${silent.port}/mcp`, timeout: `${SILENT_TIMEOUT_S}s` },
  ];
  return {
    reference,
    own,
    silent,
    config: JSON.stringify(servers),
    stop: async () => {
      await reference.stop();
      await own.stop();
      await silent.stop();
    },
  };
}

/** Listens on 127.0.0.1:`port` (0: one the system gives), failing as a promise, not an event. */
function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Starts the reference server on `port`; `stop()` kills it. */
export async function startReference(port) {
  if (!existsSync(REFERENCE_ENTRY)) {
    throw new Error(`the reference MCP server is not installed: run \`bash scripts/npm-install.sh tests/mcp\` (${REFERENCE_ENTRY})`);
  }
  const child = spawn(process.execPath, [REFERENCE_ENTRY, 'streamableHttp'], {
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (chunk) => { log += chunk; });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the reference MCP server exited: ${log}`);
    const listening = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true); });
      socket.on('error', () => resolve(false));
    });
    if (listening) break;
    if (Date.now() > deadline) throw new Error(`the reference MCP server did not listen within 30 s: ${log}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return {
    port,
    stop: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * A small MCP server (JSON answers, no session) offering `files.read`; `calls` keeps the params of
 * every `tools/call`.
 */
export async function startOwnServer(port) {
  const calls = [];
  const server = http.createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    let message;
    try {
      message = JSON.parse(body);
    } catch {
      res.writeHead(400).end();
      return;
    }
    let result;
    switch (message.method) {
      case 'initialize':
        result = { protocolVersion: '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'own', version: '1' } };
        break;
      case 'tools/list':
        result = { tools: [{ name: 'files.read', description: 'Reads a file.', inputSchema: { type: 'object', properties: { path: { type: 'string' } } } }] };
        break;
      case 'tools/call':
        calls.push(message.params);
        result = { content: [{ type: 'text', text: `contents of ${message.params?.arguments?.path}` }] };
        break;
      default:
        res.writeHead(202).end();
        return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result }));
  });
  await listen(server, port);
  return { calls, port: server.address().port, stop: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }) };
}

/** Accepts connections on `port` and never answers. */
export async function startSilentServer(port) {
  const sockets = new Set();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await listen(server, port);
  return {
    port: server.address().port,
    stop: () => new Promise((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(resolve);
    }),
  };
}
