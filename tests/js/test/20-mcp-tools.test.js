// Tools of MCP servers (CHATFN_MCP_SERVERS) with the stock client: the reference server's tools
// offered to the model and called, an MCP tool whose name providers refuse (`files.read`, offered
// as `files_read`) behind approval and answered in a later request, a server that never answers
// (the turn is not held past its timeout), and the reference server killed mid-conversation
// (the turn goes on without it). On Lambda, scripts/lambda-e2e.sh configures the functions with
// the ports of CHATFN_E2E_MCP_PORTS; this file starts the servers on them.

import assert from 'node:assert/strict';
import { after } from 'node:test';
import { e2eSuite } from '../support/harness.js';
import { contentText } from '../support/mock-openai.js';
import { getMessages } from '../support/server.js';
import { SILENT_TIMEOUT_S, startMcpServers } from '../support/mcp-servers.js';
import { assertWellFormedReply, sendTurn, textOf, userMessage } from '../support/stream.js';

const servers = await startMcpServers();
const { reference, own } = servers;
after(() => servers.stop());

/** The mock model: calls `name` with `args`, then repeats what the tool message said. */
function callsOnce(name, args, id = `call_${name.replace(/\W/g, '_')}`) {
  return (req) => {
    const last = req.messages.at(-1);
    if (last?.role === 'tool') return { text: ['Tool said: ', contentText(last.content)] };
    return { toolCalls: [{ id, name, args: [JSON.stringify(args)] }] };
  };
}

function offered(request) {
  return (request.body?.tools ?? request.tools ?? []).map((tool) => tool.function?.name ?? tool.name);
}

e2eSuite('MCP tools', (ctx, e2e) => {
  e2e('a server that never answers holds the turn no longer than its timeout', async () => {
    const { chatId, transport } = await ctx.newChat('mcp-silent');
    ctx.mock.handle(() => ({ text: 'Hello.' }));
    const started = Date.now();
    const turn = await sendTurn(transport, { chatId, messages: [userMessage('hi')] });
    const took = Date.now() - started;
    assertWellFormedReply(turn.chunks);
    assert.equal(textOf(turn.message), 'Hello.');
    assert.ok(took < (SILENT_TIMEOUT_S + 5) * 1000, `the turn took ${took} ms`);
  });

  e2e('the reference server\'s tools are offered and called', async () => {
    const { chatId, transport } = await ctx.newChat('mcp-echo');
    ctx.mock.handle(callsOnce('echo', { message: 'hello mcp' }));
    const turn = await sendTurn(transport, { chatId, messages: [userMessage('echo it')] });
    assertWellFormedReply(turn.chunks);
    const names = offered(ctx.mock.requests[0]);
    for (const expected of ['current_time', 'roll_dice', 'echo', 'get-sum', 'files_read']) {
      assert.ok(names.includes(expected), `${expected} not offered: ${names.join(', ')}`);
    }
    const tool = turn.message.parts.find((part) => part.type === 'tool-echo');
    assert.ok(tool, `no tool-echo part: ${JSON.stringify(turn.message.parts)}`);
    assert.equal(tool.state, 'output-available');
    assert.equal(tool.output, 'Echo: hello mcp');
    assert.equal(textOf(turn.message), 'Tool said: Echo: hello mcp');
  });

  e2e('a dotted tool behind approval runs when approved in a later request', async () => {
    const { chatId, token, transport } = await ctx.newChat('mcp-approval');
    ctx.mock.handle(callsOnce('files_read', { path: 'notes.txt' }));
    const first = await sendTurn(transport, { chatId, messages: [userMessage('read my notes')] });
    assertWellFormedReply(first.chunks);
    const request = first.chunks.find((chunk) => chunk.type === 'tool-approval-request');
    assert.ok(request, `no approval request: ${first.chunks.map((c) => c.type).join(', ')}`);
    assert.equal(own.calls.length, 0, 'the tool ran before its approval');

    const [user, assistant] = await getMessages(ctx.server, chatId, token);
    const answered = {
      ...assistant,
      parts: assistant.parts.map((part) => (part.state === 'approval-requested'
        ? { ...part, state: 'approval-responded', approval: { ...part.approval, approved: true } }
        : part)),
    };
    const second = await sendTurn(transport, { chatId, messages: [user, answered], messageId: answered.id, message: structuredClone(answered) });
    assertWellFormedReply(second.chunks, { continues: answered });
    const tool = second.message.parts.find((part) => part.type === 'tool-files_read');
    assert.ok(tool, `no tool-files_read part: ${JSON.stringify(second.message.parts)}`);
    assert.equal(tool.state, 'output-available');
    assert.equal(tool.output, 'contents of notes.txt');
    assert.deepEqual(own.calls, [{ name: 'files.read', arguments: { path: 'notes.txt' } }]);
  });

  e2e('a server killed mid-conversation costs its tools, not the turn', async () => {
    const { chatId, token, transport } = await ctx.newChat('mcp-killed');
    ctx.mock.handle(callsOnce('echo', { message: 'one' }, 'call_echo_1'));
    const first = await sendTurn(transport, { chatId, messages: [userMessage('one')] });
    assertWellFormedReply(first.chunks);
    assert.ok(first.message.parts.some((part) => part.type === 'tool-echo' && part.state === 'output-available'));

    await reference.stop();
    ctx.mock.handle(callsOnce('echo', { message: 'two' }, 'call_echo_2'));
    const history = await getMessages(ctx.server, chatId, token);
    const second = await sendTurn(transport, { chatId, messages: [...history, userMessage('two')] });
    assertWellFormedReply(second.chunks);
    // Offered from the cached list (the call fails), or left out (the model's call is refused).
    const failed = second.chunks.find((chunk) => chunk.type === 'tool-output-error' || chunk.type === 'tool-input-error');
    assert.ok(failed, `the call did not fail: ${second.chunks.map((c) => c.type).join(', ')}`);
    assert.equal(second.chunks.at(-1).type, 'finish');
    assert.ok(!second.chunks.some((chunk) => chunk.type === 'error'), 'the turn failed');
    assert.match(textOf(second.message), /^Tool said: /);
  });
}, { env: { CHATFN_MCP_SERVERS: servers.config, CHATFN_APPROVAL_TOOLS: 'files_read' } });
