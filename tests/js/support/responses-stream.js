// The events of a streamed OpenAI Responses API call (`POST /v1/responses`), built from the mock
// model's reply script, shaped as the API streams them (see the recordings in
// shared/tests/data/openai-responses/): each output item `added`, its deltas, `done`, and the
// response `completed` with its usage. The mock (mock-openai.js) writes each as an SSE event
// whose `event:` line names its type.
//
// Script fields used here (beside mock-openai.js's `text` and `toolCalls`):
//   reasoning: { summary: 'text' | ['frag', 'ments'], encrypted: 'opaque' }
//     a reasoning item first, with its summary streamed and its encrypted content, as a
//     reasoning model sends it with `include: ["reasoning.encrypted_content"]`.

/** A script field as a list: one value, several, or none. Shared with mock-openai.js. */
export function toArray(value) {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}

/** The events of one response, in order, for `script`. */
export function responsesEvents(script, { id, model }) {
  const events = [];
  const output = [];
  const response = (status, extra = {}) => ({
    id,
    object: 'response',
    created_at: Math.floor(Date.now() / 1000),
    status,
    model,
    output: status === 'completed' ? output : [],
    store: false,
    ...extra,
  });
  events.push({ type: 'response.created', response: response('in_progress') });
  events.push({ type: 'response.in_progress', response: response('in_progress') });

  let reasoningTokens = 0;
  if (script.reasoning) {
    const outputIndex = output.length;
    const itemId = `rs_${id}_${outputIndex}`;
    const fragments = toArray(script.reasoning.summary);
    const text = fragments.join('');
    const encrypted = script.reasoning.encrypted;
    events.push({
      type: 'response.output_item.added',
      output_index: outputIndex,
      item: { id: itemId, type: 'reasoning', encrypted_content: encrypted, summary: [] },
    });
    if (fragments.length) {
      const part = { item_id: itemId, output_index: outputIndex, summary_index: 0 };
      events.push({ type: 'response.reasoning_summary_part.added', ...part, part: { type: 'summary_text', text: '' } });
      for (const delta of fragments) events.push({ type: 'response.reasoning_summary_text.delta', ...part, delta });
      events.push({ type: 'response.reasoning_summary_text.done', ...part, text });
      events.push({ type: 'response.reasoning_summary_part.done', ...part, part: { type: 'summary_text', text } });
    }
    const item = {
      id: itemId,
      type: 'reasoning',
      encrypted_content: encrypted,
      summary: fragments.length ? [{ type: 'summary_text', text }] : [],
    };
    events.push({ type: 'response.output_item.done', output_index: outputIndex, item });
    output.push(item);
    reasoningTokens = Math.max(1, Math.ceil(text.length / 4));
  }

  const texts = toArray(script.text);
  if (texts.length) {
    const outputIndex = output.length;
    const itemId = `msg_${id}_${outputIndex}`;
    const text = texts.join('');
    const at = { item_id: itemId, output_index: outputIndex, content_index: 0 };
    events.push({
      type: 'response.output_item.added',
      output_index: outputIndex,
      item: { id: itemId, type: 'message', status: 'in_progress', content: [], role: 'assistant' },
    });
    events.push({ type: 'response.content_part.added', ...at, part: { type: 'output_text', annotations: [], text: '' } });
    for (const delta of texts) events.push({ type: 'response.output_text.delta', ...at, delta });
    events.push({ type: 'response.output_text.done', ...at, text });
    events.push({ type: 'response.content_part.done', ...at, part: { type: 'output_text', annotations: [], text } });
    const item = {
      id: itemId,
      type: 'message',
      status: 'completed',
      content: [{ type: 'output_text', annotations: [], text }],
      role: 'assistant',
    };
    events.push({ type: 'response.output_item.done', output_index: outputIndex, item });
    output.push(item);
  }

  for (const call of toArray(script.toolCalls)) {
    const outputIndex = output.length;
    const itemId = `fc_${id}_${outputIndex}`;
    const fragments = toArray(call.args ?? '{}');
    const args = fragments.join('');
    events.push({
      type: 'response.output_item.added',
      output_index: outputIndex,
      item: { id: itemId, type: 'function_call', status: 'in_progress', arguments: '', call_id: call.id, name: call.name },
    });
    for (const delta of fragments) {
      events.push({ type: 'response.function_call_arguments.delta', item_id: itemId, output_index: outputIndex, delta });
    }
    events.push({ type: 'response.function_call_arguments.done', item_id: itemId, output_index: outputIndex, arguments: args });
    const item = { id: itemId, type: 'function_call', status: 'completed', arguments: args, call_id: call.id, name: call.name };
    events.push({ type: 'response.output_item.done', output_index: outputIndex, item });
    output.push(item);
  }

  const outputTokens = Math.max(1, Math.ceil(JSON.stringify(output).length / 16));
  const inputTokens = 42;
  events.push({
    type: 'response.completed',
    response: response('completed', {
      usage: {
        input_tokens: inputTokens,
        input_tokens_details: { cached_tokens: 0 },
        output_tokens: outputTokens,
        output_tokens_details: { reasoning_tokens: reasoningTokens },
        total_tokens: inputTokens + outputTokens,
      },
    }),
  });
  return events.map((event, sequence) => ({ ...event, sequence_number: sequence }));
}
