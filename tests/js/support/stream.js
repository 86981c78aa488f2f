// Reading UI message streams with the `ai` package, and comparing UIMessages.
//
// Every chunk reaches the tests only through `DefaultChatTransport` (which parses the SSE body
// and validates each chunk against `uiMessageChunkSchema`, erroring the stream otherwise) and
// `readUIMessageStream` (which folds chunks into a UIMessage and errors on inconsistent chunks,
// e.g. a `text-delta` without its `text-start`). `readChunks` runs the fold with
// `terminateOnError: true` and rethrows, so any such error fails the calling test.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { readUIMessageStream } from 'ai';

/** True for the error a fetch body raises after its AbortController fired. */
export function isAbortError(error) {
  for (let e = error, depth = 0; e && depth < 5; e = e.cause, depth++) {
    if (e.name === 'AbortError' || e.code === 'ABORT_ERR' || e.code === 'UND_ERR_ABORTED') return true;
  }
  return false;
}

/**
 * Reads a `ReadableStream<UIMessageChunk>` (from `sendMessages` / `reconnectToStream`) to its end.
 *
 * Returns `{ chunks, arrivals, message, aborted }`: the chunks in order, `performance.now()` at
 * which the test read each one, the final folded UIMessage, and whether the read ended with an
 * expected abort. `onChunk(chunk, index, chunks)` runs as each chunk is read.
 *
 * Throws on any stream error (schema failure, inconsistent chunk, `error` chunk, network error),
 * except an abort error when `expectAbort` is set. `message` seeds the fold (as `useChat` does
 * when it continues an assistant message). `readUIMessageStream` replaces the installed `ai`'s fold
 * (an older major's, in test/25-client-versions).
 */
export async function readChunks(stream, { onChunk, expectAbort = false, message: seed, timeout = 25000, label = 'stream', readUIMessageStream: fold = readUIMessageStream } = {}) {
  assert.ok(stream, `${label}: expected a ReadableStream, got ${stream}`);
  const chunks = [];
  const arrivals = [];
  const tapped = stream.pipeThrough(
    new TransformStream({
      transform(chunk, controller) {
        chunks.push(chunk);
        arrivals.push(performance.now());
        controller.enqueue(chunk);
        onChunk?.(chunk, chunks.length - 1, chunks);
      },
    }),
  );

  let firstError;
  let message;
  const folding = (async () => {
    const messages = fold({
      stream: tapped,
      message: seed,
      terminateOnError: true,
      onError: (error) => {
        firstError ??= error;
      },
    });
    for await (const snapshot of messages) message = snapshot;
  })().catch((error) => {
    firstError ??= error;
  });

  let timer;
  const timedOut = new Promise((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeout);
  });
  const outcome = await Promise.race([folding.then(() => 'done'), timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    throw new Error(`${label}: not finished after ${timeout} ms; chunks so far: ${describeChunks(chunks)}`);
  }

  if (firstError) {
    if (expectAbort && isAbortError(firstError)) {
      return { chunks, arrivals, message, aborted: true };
    }
    const error = new Error(`${label}: the ai package reported a stream error: ${firstError?.message ?? firstError}\n` +
      `chunks read: ${describeChunks(chunks)}`);
    error.cause = firstError;
    throw error;
  }
  return { chunks, arrivals, message, aborted: false };
}

/** `transport.sendMessages(...)` then `readChunks`. */
export async function sendTurn(transport, { chatId, messages, trigger = 'submit-message', messageId, abortSignal, ...readOptions }) {
  const stream = await transport.sendMessages({ chatId, messages, trigger, messageId, abortSignal });
  return readChunks(stream, { label: `sendMessages(${chatId})`, ...readOptions });
}

export function describeChunks(chunks) {
  return chunks.map((c) => c.type).join(', ') || '(none)';
}

export function userMessage(text, id = `u-${randomUUID()}`) {
  return { id, role: 'user', parts: [{ type: 'text', text }] };
}

/** The text parts of a UIMessage, joined. */
export function textOf(message) {
  return (message?.parts ?? []).filter((p) => p.type === 'text').map((p) => p.text).join('');
}

const isToolPart = (part) => part.type.startsWith('tool-') || part.type === 'dynamic-tool';

/**
 * The parts of a UIMessage that must survive persistence, without client-only bookkeeping:
 * `undefined` fields, streaming state of text, `rawInput`, provider metadata.
 */
export function canonicalMessage(message) {
  return {
    id: message.id,
    role: message.role,
    parts: (message.parts ?? []).map((part) => {
      if (part.type === 'text' || part.type === 'reasoning') return { type: part.type, text: part.text };
      if (part.type === 'step-start') return { type: 'step-start' };
      if (isToolPart(part)) {
        const out = { type: part.type, toolCallId: part.toolCallId, state: part.state, input: part.input };
        if (part.type === 'dynamic-tool') out.toolName = part.toolName;
        if (part.output !== undefined) out.output = part.output;
        if (part.errorText !== undefined) out.errorText = part.errorText;
        return JSON.parse(JSON.stringify(out));
      }
      const { providerMetadata, ...rest } = part;
      return JSON.parse(JSON.stringify(rest));
    }),
  };
}

/**
 * Asserts that `persisted` (from GET /messages) carries the same content as `folded` (what the
 * client built from the stream): same ids, roles and parts. Metadata the client saw must be
 * persisted too; extra server-side metadata is allowed.
 */
export function assertSameMessages(persisted, folded, label = 'messages') {
  assert.deepEqual(persisted.map(canonicalMessage), folded.map(canonicalMessage), `${label}: persisted history differs from what the client folded`);
  folded.forEach((message, i) => {
    if (message.metadata !== undefined && message.metadata !== null) {
      assert.deepEqual(
        pick(persisted[i].metadata ?? {}, Object.keys(message.metadata)),
        JSON.parse(JSON.stringify(message.metadata)),
        `${label}[${i}]: streamed metadata was not persisted`,
      );
    }
  });
}

function pick(object, keys) {
  return Object.fromEntries(keys.filter((k) => k in object).map((k) => [k, object[k]]));
}

/** Polls `fn` until it returns a truthy value; returns that value. */
export async function waitFor(fn, { timeout = 15000, interval = 100, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let lastError;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${message}${lastError ? `: ${lastError.message}` : ''}`);
    }
    await sleep(interval);
  }
}

/**
 * Checks the chunk sequence is one well-formed reply, beyond what the schema checks:
 * one `start` first (with a messageId); balanced steps; every text/reasoning part opened before
 * its deltas and closed before the end; tool chunks in order; it ends with `finish`, or with
 * `abort` when `end: 'abort'`. A call may end the reply waiting for approval
 * (`tool-approval-request`). `continues` is the assistant message a continuation extends (after
 * a tool approval answer): its unanswered calls may get their output (or denial) here, before
 * the first step. Returns the sequence for chaining.
 */
export function assertWellFormedReply(chunks, { end = 'finish', continues } = {}) {
  const types = describeChunks(chunks);
  const fail = (msg) => assert.fail(`${msg}\nchunks: ${types}`);

  if (chunks.length === 0) fail('empty reply');
  if (chunks[0].type !== 'start') fail(`the first chunk is ${chunks[0].type}, not start`);
  if (typeof chunks[0].messageId !== 'string' || chunks[0].messageId === '') fail('start has no messageId');
  if (chunks.filter((c) => c.type === 'start').length !== 1) fail('more than one start chunk');
  const last = chunks.at(-1);
  if (last.type !== end) fail(`the last chunk is ${last.type}, not ${end}`);
  if (chunks.filter((c) => c.type === 'finish' || c.type === 'abort').length !== 1) fail('more than one finish/abort chunk');

  const usesSteps = chunks.some((c) => c.type === 'start-step');
  let inStep = false;
  const openText = new Set();
  const openReasoning = new Set();
  const seenText = new Set();
  const tools = new Map(); // toolCallId -> { name, stage, carried }
  for (const part of continues?.parts ?? []) {
    if (!part.type.startsWith('tool-') && part.type !== 'dynamic-tool') continue;
    const stage = { 'input-available': 'input', 'approval-responded': 'input', 'approval-requested': 'awaiting-approval' }[part.state] ?? 'done';
    tools.set(part.toolCallId, { name: part.toolName ?? part.type.slice('tool-'.length), stage, carried: true });
  }
  const isOutcome = (type) => ['tool-output-available', 'tool-output-error', 'tool-output-denied'].includes(type);

  for (const chunk of chunks) {
    const isContent = !['start', 'finish', 'abort', 'start-step', 'finish-step', 'message-metadata', 'error'].includes(chunk.type);
    const carriedOutcome = isOutcome(chunk.type) && tools.get(chunk.toolCallId)?.carried;
    if (usesSteps && isContent && !inStep && !carriedOutcome) fail(`${chunk.type} outside a start-step/finish-step pair`);
    switch (chunk.type) {
      case 'start-step':
        if (inStep) fail('start-step inside an open step');
        inStep = true;
        break;
      case 'finish-step':
        if (!inStep) fail('finish-step without start-step');
        if (openText.size || openReasoning.size) fail('finish-step with open text/reasoning parts');
        inStep = false;
        break;
      case 'text-start':
        if (openText.has(chunk.id) || seenText.has(chunk.id)) fail(`text-start reuses id ${chunk.id}`);
        openText.add(chunk.id);
        seenText.add(chunk.id);
        break;
      case 'text-delta':
        if (!openText.has(chunk.id)) fail(`text-delta for a part that is not open: ${chunk.id}`);
        break;
      case 'text-end':
        if (!openText.delete(chunk.id)) fail(`text-end for a part that is not open: ${chunk.id}`);
        break;
      case 'reasoning-start':
        openReasoning.add(chunk.id);
        break;
      case 'reasoning-delta':
        if (!openReasoning.has(chunk.id)) fail(`reasoning-delta for a part that is not open: ${chunk.id}`);
        break;
      case 'reasoning-end':
        if (!openReasoning.delete(chunk.id)) fail(`reasoning-end for a part that is not open: ${chunk.id}`);
        break;
      case 'tool-input-start':
        if (tools.has(chunk.toolCallId)) fail(`tool-input-start repeats ${chunk.toolCallId}`);
        tools.set(chunk.toolCallId, { name: chunk.toolName, stage: 'streaming' });
        break;
      case 'tool-input-delta': {
        const tool = tools.get(chunk.toolCallId);
        if (!tool || tool.stage !== 'streaming') fail(`tool-input-delta out of order for ${chunk.toolCallId}`);
        break;
      }
      case 'tool-input-available': {
        const tool = tools.get(chunk.toolCallId) ?? { name: chunk.toolName, stage: 'streaming' };
        if (tool.stage !== 'streaming') fail(`tool-input-available out of order for ${chunk.toolCallId}`);
        if (tool.name !== chunk.toolName) fail(`tool name changed for ${chunk.toolCallId}`);
        tools.set(chunk.toolCallId, { ...tool, stage: 'input' });
        break;
      }
      case 'tool-input-error':
        tools.set(chunk.toolCallId, { name: chunk.toolName, stage: 'done' });
        break;
      case 'tool-approval-request': {
        const tool = tools.get(chunk.toolCallId);
        if (!tool || tool.stage !== 'input') fail(`tool-approval-request before tool-input-available for ${chunk.toolCallId}`);
        if (typeof chunk.approvalId !== 'string' || chunk.approvalId === '') fail('tool-approval-request without approvalId');
        tool.stage = 'awaiting-approval';
        break;
      }
      case 'tool-output-available':
      case 'tool-output-error':
      case 'tool-output-denied': {
        const tool = tools.get(chunk.toolCallId);
        if (!tool || tool.stage !== 'input') fail(`${chunk.type} before tool-input-available for ${chunk.toolCallId}`);
        tool.stage = 'done';
        break;
      }
      case 'error':
        fail(`error chunk: ${chunk.errorText}`);
        break;
      default:
        break;
    }
  }
  if (end === 'finish') {
    if (inStep) fail('the reply finished inside an open step');
    if (openText.size || openReasoning.size) fail('the reply finished with open text/reasoning parts');
    for (const [id, tool] of tools) {
      if (tool.stage !== 'done' && tool.stage !== 'awaiting-approval') fail(`tool call ${id} (${tool.name}) never got an output`);
    }
  }
  return chunks;
}
