// The Lambda functions' traces under `cargo lambda watch` (run by scripts/lambda-e2e.sh, which
// starts an OTLP/HTTP receiver of its own, scripts/otlp-receiver.py, and points the functions at
// it with OTEL_EXPORTER_OTLP_ENDPOINT and the default protocol, http/protobuf): a turn with a tool
// call, sent with a W3C traceparent, reaches the receiver as one trace rooted at the caller's
// span, before the invocation's response ends. The batch processor's own schedule is set to ten
// minutes there, so only the function's flush can have sent the spans in time.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { e2eSuite } from '../support/harness.js';
import { contentText } from '../support/mock-openai.js';
import { userMessage } from '../support/stream.js';

/** The spans the receiver has written so far. */
function receivedSpans() {
  const file = process.env.CHATFN_OTLP_SPANS;
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line));
}

e2eSuite('the Lambda functions\' traces', (ctx, e2e) => {
  e2e('a turn with a tool call is one trace under the caller\'s span, exported before the response ends', async () => {
    assert.ok(process.env.CHATFN_OTLP_SPANS, 'run this file with scripts/lambda-e2e.sh (CHATFN_OTLP_SPANS)');
    const { chatId, token } = await ctx.newChat('traced');
    ctx.mock.handle((req) => {
      const last = req.messages.at(-1);
      if (last?.role === 'tool') {
        const result = JSON.parse(contentText(last.content));
        return { text: ['You rolled ', `${result.total}.`], delayMs: 5 };
      }
      return { toolCalls: [{ id: 'call_traced_1', name: 'roll_dice', args: ['{"sides": 6, "count": 2}'] }] };
    });
    const traceId = randomBytes(16).toString('hex');
    const callerSpanId = randomBytes(8).toString('hex');
    const response = await fetch(`${ctx.server.baseUrl}/api/chat`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        traceparent: `00-${traceId}-${callerSpanId}-01`,
      },
      body: JSON.stringify({ id: chatId, trigger: 'submit-message', messages: [userMessage('Roll two dice')] }),
    });
    assert.equal(response.status, 200);
    const body = await response.text();
    const ended = Date.now();
    assert.match(body, /You rolled/);

    const spans = receivedSpans().filter((span) => span.traceId === traceId);
    const names = spans.map((span) => span.name);
    const late = spans.filter((span) => span.receivedMs > ended);
    assert.deepEqual(late.map((span) => span.name), [], 'every span arrived before the response ended');
    const named = (name) => spans.filter((span) => span.name === name);
    const attribute = (span, key) => span.attributes[key];

    const requests = named('POST');
    assert.equal(requests.length, 1, `one request span in the caller's trace: ${names}`);
    const [request] = requests;
    assert.equal(request.parentSpanId, callerSpanId, 'the request continues the caller\'s span');
    assert.equal(request.kind, 2, 'a server span');
    assert.equal(attribute(request, 'http.request.method'), 'POST');

    const turns = named('invoke_agent');
    assert.equal(turns.length, 1, `one turn: ${names}`);
    const [turn] = turns;
    assert.equal(turn.parentSpanId, request.spanId);
    assert.equal(attribute(turn, 'gen_ai.conversation.id'), chatId);
    assert.equal(attribute(turn, 'gen_ai.operation.name'), 'invoke_agent');
    assert.equal(attribute(turn, 'gen_ai.request.model'), 'mock-model');
    assert.equal(attribute(turn, 'gen_ai.response.finish_reasons'), 'stop');
    assert.equal(attribute(turn, 'chatfn.turn.tool_calls'), 1);
    assert.equal(attribute(turn, 'chatfn.turn.input_seq'), 0);
    assert.ok(Number.isInteger(attribute(turn, 'gen_ai.usage.input_tokens')), JSON.stringify(turn.attributes));
    assert.ok(attribute(turn, 'gen_ai.usage.input_tokens') > 0);
    const units = attribute(turn, 'chatfn.turn.store_write_units');
    if (process.env.CHATFN_STORE === 'dynamodb') {
      assert.ok(units > 0, `the turn's DynamoDB write units: ${JSON.stringify(turn.attributes)}`);
    }

    const calls = named('chat mock-model');
    assert.equal(calls.length, 2, `two model calls: ${names}`);
    for (const call of calls) {
      assert.equal(call.parentSpanId, turn.spanId);
      assert.equal(call.kind, 3, 'a client span');
      assert.equal(attribute(call, 'gen_ai.operation.name'), 'chat');
      assert.ok(attribute(call, 'gen_ai.provider.name'));
      assert.equal(attribute(call, 'gen_ai.provider.name'), attribute(turn, 'gen_ai.provider.name'));
      assert.equal(attribute(call, 'gen_ai.request.model'), 'mock-model');
      assert.equal(attribute(call, 'gen_ai.response.model'), 'mock-model', 'the model the chunks name');
      assert.ok(Number.isInteger(attribute(call, 'gen_ai.usage.output_tokens')), 'token counts are integers');
    }
    assert.deepEqual(
      calls.map((call) => attribute(call, 'gen_ai.response.finish_reasons')).sort(),
      ['stop', 'tool-calls'],
    );
    assert.equal(attribute(turn, 'gen_ai.response.model'), attribute(calls[0], 'gen_ai.response.model'));

    const tools = named('execute_tool roll_dice');
    assert.equal(tools.length, 1, `one tool call: ${names}`);
    assert.equal(tools[0].parentSpanId, turn.spanId);
    assert.equal(attribute(tools[0], 'gen_ai.tool.name'), 'roll_dice');
    assert.equal(attribute(tools[0], 'gen_ai.tool.call.id'), 'call_traced_1');
    assert.equal(attribute(tools[0], 'error.type'), undefined);

    const inTurn = new Set([turn.spanId, ...calls.map((call) => call.spanId)]);
    const stores = spans.filter((span) => span.name.startsWith('store ') && inTurn.has(span.parentSpanId));
    assert.ok(
      stores.some((span) => span.name === 'store append_output'),
      `the turn's output writes are its children: ${names}`,
    );
    for (const store of stores) assert.equal(attribute(store, 'gen_ai.conversation.id'), chatId);
    const ids = new Set(spans.map((span) => span.spanId));
    for (const span of spans) {
      assert.ok(span.parentSpanId === callerSpanId || ids.has(span.parentSpanId), `${span.name} hangs in the trace`);
    }
  });
});
