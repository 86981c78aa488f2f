import { useChat } from '@ai-sdk/react';
import { TriggerChatTransport } from '@trigger.dev/sdk/chat';
import { DefaultChatTransport, lastAssistantMessageIsCompleteWithApprovalResponses } from 'ai';
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'react';
import { chatAuth, chatfnApi } from './api.js';
import { loadTriggerSession, saveTriggerSession } from './config.js';
import { describeError } from './errors.js';
import { useFollowOtherTabs } from './follow.js';
import { Message } from './Message.jsx';

/**
 * One chat: gets the chat's session token from the backend, loads the history, then mounts the
 * `useChat` view (which resumes a reply still streaming).
 */
export function Chat({ config, backend, chatId, transportKind, onTitle, onBusyChange, onOpenSettings }) {
  const [ready, setReady] = useState(null);
  const [failure, setFailure] = useState(null);
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    let cancelled = false;
    setReady(null);
    setFailure(null);
    (async () => {
      const session = await backend.startSession(chatId);
      const auth = chatAuth(backend, chatId, session.publicAccessToken, config.server);
      const api = chatfnApi(config.server, chatId, auth);
      const messages = await api.messages();
      let triggerSession;
      if (transportKind === 'trigger') triggerSession = await triggerState(config.server, chatId, auth, api);
      return { auth, api, messages, triggerSession };
    })().then(
      (loaded) => !cancelled && setReady(loaded),
      (error) => !cancelled && setFailure(error),
    );
    return () => {
      cancelled = true;
    };
  }, [config.server, backend, chatId, transportKind, attempt]);

  if (failure) {
    const problem = describeError(failure, config);
    return (
      <div className="chat-failure" role="alert">
        <p>
          <strong>This chat could not be opened. {problem.title}</strong>
        </p>
        <p>{problem.advice}</p>
        <div className="error-actions">
          <button type="button" className="button primary" onClick={() => setAttempt((n) => n + 1)}>
            Try again
          </button>
          {onOpenSettings && (
            <button type="button" className="button" onClick={onOpenSettings}>
              Open settings
            </button>
          )}
        </div>
      </div>
    );
  }
  if (!ready) {
    return (
      <p className="chat-loading" role="status">
        Opening the chat…
      </p>
    );
  }
  return (
    <ChatView
      key={`${chatId}:${transportKind}:${attempt}`}
      config={config}
      backend={backend}
      chatId={chatId}
      transportKind={transportKind}
      loaded={ready}
      onTitle={onTitle}
      onBusyChange={onBusyChange}
    />
  );
}

/**
 * The Trigger transport's saved state for the chat, brought up to date: when no reply is in
 * flight, the cursor moves to the end of the output log, so turns sent over the other transport
 * (or another tab) are not replayed into the next reply.
 */
async function triggerState(server, chatId, auth, api) {
  const saved = loadTriggerSession(server, chatId);
  if (saved?.closed) return saved;
  if (saved?.isStreaming) return { ...saved, publicAccessToken: auth.token };
  const last = await api.lastOutputEventId();
  const state = { ...saved, publicAccessToken: auth.token, isStreaming: false };
  if (last !== undefined) state.lastEventId = last;
  else delete state.lastEventId;
  delete state.activeInputSeq;
  return state;
}

function makeTransport({ kind, config, backend, chatId, loaded, onNothingToResume }) {
  if (kind === 'trigger') return triggerTransport({ config, backend, chatId, loaded, onNothingToResume });
  return new ResumeAwareTransport(onNothingToResume, {
    api: `${config.server}/api/chat`,
    // Sends the token (refreshed on a 401); the secret key stays on the backend.
    fetch: loaded.auth.fetch,
    // The server keeps the history: only the new message travels.
    prepareSendMessagesRequest: ({ id, messages, trigger, messageId, body }) => ({
      body: { ...body, id, messages: messages.slice(-1), trigger, messageId },
    }),
  });
}

/**
 * The stock `TriggerChatTransport`, kept from folding another tab's turns into this tab's reply.
 * It reads a reply from its cursor in the output log, and only a turn's end carries the input it
 * answered, so whatever another tab's turn wrote after the cursor would show as this reply:
 * before a send the cursor moves to the log's end, and when another tab's turn runs or waits
 * there (or another tab's message was recorded between that look and this send), the SDK's own
 * supersede gate (the one `stopGeneration` arms) skips the output up to that turn's end.
 */
function triggerTransport({ config, backend, chatId, loaded, onNothingToResume }) {
  const transport = new TriggerChatTransport({
    task: 'chat',
    baseURL: config.server,
    // The stock callbacks: your server mints tokens and starts sessions with the secret key.
    accessToken: async ({ chatId: id }) => (await backend.token(id)).publicAccessToken,
    startSession: async ({ chatId: id }) => ({ publicAccessToken: (await backend.startSession(id)).publicAccessToken }),
    sessions: loaded.triggerSession ? { [chatId]: loaded.triggerSession } : undefined,
    onSessionChange: (id, state) => saveTriggerSession(config.server, id, state),
  });
  const reconnect = transport.reconnectToStream;
  transport.reconnectToStream = async (options) => {
    const stream = await reconnect(options);
    if (!stream) onNothingToResume();
    return stream;
  };
  const send = transport.sendMessages;
  transport.sendMessages = async (options) => {
    const state = transport.getSession(options.chatId);
    let view;
    if (state && !state.isStreaming && !state.closed) {
      view = await loaded.api.sendView(state.lastEventId);
      transport.setSession(options.chatId, { ...state, lastEventId: view.end, isStreaming: false, activeInputSeq: undefined });
    }
    const stream = await send(options);
    // No record of the reply is read before the stream's first network round trip, so the gate
    // is armed in time.
    if (view) gateForeignTurns(transport, options.chatId, view);
    return stream;
  };
  return transport;
}

/**
 * Arms the transport's supersede gate past the other tabs' turns between the cursor and this
 * send's own: `view` is what the logs held just before the send.
 */
function gateForeignTurns(transport, chatId, view) {
  // The transport's live state: `getSession` answers a copy.
  const live = transport.sessions?.get(chatId);
  const own = live?.activeInputSeq;
  if (!live || typeof own !== 'number') return;
  // Inputs recorded between the look and this send's own are another tab's.
  const foreign = own > view.lastInput + 1 ? own - 1 : view.unanswered;
  if (foreign === undefined || foreign >= own) return;
  live.skipToTurnComplete = true;
  live.supersededInputSeq = foreign;
}

// How long a send waits for another tab's turn to end, asking again on a backoff.
const BUSY_CHAT_WAIT_MS = 180_000;
const BUSY_CHAT_FIRST_DELAY_MS = 300;
const BUSY_CHAT_MAX_DELAY_MS = 2_000;

/**
 * `DefaultChatTransport`, telling the page when a resume found nothing in flight, and sending a
 * message made while another tab's turn runs (the server answers 409 `turn_in_progress` and
 * records nothing) once that turn has ended, as the Trigger transport's input log does, rather
 * than failing it.
 */
class ResumeAwareTransport extends DefaultChatTransport {
  constructor(onNothingToResume, options) {
    super(options);
    this.onNothingToResume = onNothingToResume;
  }

  async sendMessages(options) {
    const giveUpAt = Date.now() + BUSY_CHAT_WAIT_MS;
    let delay = BUSY_CHAT_FIRST_DELAY_MS;
    for (;;) {
      try {
        return await super.sendMessages(options);
      } catch (error) {
        if (!isTurnInProgress(error) || options.abortSignal?.aborted || Date.now() + delay > giveUpAt) throw error;
      }
      await sleep(delay, options.abortSignal);
      delay = Math.min(delay * 2, BUSY_CHAT_MAX_DELAY_MS);
    }
  }

  async reconnectToStream(options) {
    const stream = await super.reconnectToStream(options);
    if (!stream) this.onNothingToResume();
    return stream;
  }
}

function isTurnInProgress(error) {
  if (error?.statusCode !== 409) return false;
  try {
    return JSON.parse(error.responseBody ?? '').code === 'turn_in_progress';
  } catch {
    return false;
  }
}

/** Resolves after `ms`, or rejects as soon as `signal` aborts. */
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}

function titleOf(text) {
  const line = text.trim().split('\n')[0];
  return line.length > 48 ? `${line.slice(0, 47)}…` : line;
}

function ChatView({ config, backend, chatId, transportKind, loaded, onTitle, onBusyChange }) {
  const { api } = loaded;
  const [input, setInput] = useState('');
  const [stopping, setStopping] = useState(false);
  const [notice, setNotice] = useState(null);
  // Replies stopped on this page, marked as such until the history's copy (whose metadata says
  // it was stopped) replaces them.
  const [stopped, setStopped] = useState(() => new Set());
  // The message whose send (or reply) failed: marked, with a Retry, until something is sent.
  const [failedId, setFailedId] = useState(null);
  const syncRef = useRef(() => {});

  const transport = useMemo(
    () =>
      makeTransport({
        kind: transportKind,
        config,
        backend,
        chatId,
        loaded,
        onNothingToResume: () => syncRef.current(),
      }),
    // One transport for the life of this view (it is keyed by chat and transport).
    [],
  );

  const { messages, setMessages, sendMessage, regenerate, resumeStream, status, stop, error, clearError, addToolApprovalResponse } = useChat({
    id: chatId,
    messages: loaded.messages,
    transport,
    resume: true,
    sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses,
    onData: (part) => {
      if (part.type === 'data-approval-skipped') setMessages((shown) => markSkipped(shown, part.data));
    },
  });

  // The server's history, when it has more than this page shows (a reply that finished while the
  // page loaded, or a stopped reply's last words).
  const statusRef = useRef(status);
  statusRef.current = status;
  const syncFromServer = useCallback(async () => {
    try {
      const persisted = await api.messages();
      const idle = statusRef.current === 'ready' || statusRef.current === 'error';
      if (idle) setMessages((shown) => (needsSync(shown, persisted) ? persisted : shown));
    } catch (failure) {
      setNotice(`Could not reload the history. ${describeError(failure, config).title}`);
    }
  }, [api, setMessages, config]);
  syncRef.current = syncFromServer;

  // A turn another tab or device started: the history shows its message, and the page attaches
  // to its reply as a reload would. The Trigger transport reads it from just after the last
  // turn that ended, never from its own older cursor, so no ended turn is folded into it.
  const followTurn = useCallback(async () => {
    const persisted = await api.messages();
    if (statusRef.current !== 'ready' && statusRef.current !== 'error') return;
    setMessages((shown) => (needsSync(shown, persisted) ? persisted : shown));
    if (persisted.at(-1)?.role !== 'user') return;
    if (transportKind === 'trigger') {
      const state = transport.getSession(chatId);
      if (!state || state.closed) return;
      const cursor = await api.lastTurnEndAfter(state.lastEventId);
      transport.setSession(chatId, { ...state, lastEventId: cursor, isStreaming: true, activeInputSeq: undefined });
    }
    await resumeStream();
  }, [api, setMessages, transportKind, transport, chatId, resumeStream]);

  const busy = status === 'submitted' || status === 'streaming';
  const lastId = messages.at(-1)?.id;
  useEffect(() => {
    if (status === 'error') setFailedId(lastId ?? null);
  }, [status, lastId]);
  useEffect(() => {
    onBusyChange?.(busy || stopping);
  }, [busy, stopping, onBusyChange]);
  useEffect(() => () => onBusyChange?.(false), [onBusyChange]);

  const firstUserText = messages.find((m) => m.role === 'user')?.parts.find((p) => p.type === 'text')?.text;
  useEffect(() => {
    if (firstUserText) onTitle?.(chatId, titleOf(firstUserText));
  }, [chatId, firstUserText, onTitle]);

  const logRef = useRef(null);
  const stickToBottom = useRef(true);
  useEffect(() => {
    const log = logRef.current;
    if (log && stickToBottom.current) log.scrollTop = log.scrollHeight;
  }, [messages]);
  const onScroll = () => {
    const log = logRef.current;
    if (log) stickToBottom.current = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  };

  // The text box grows with its text (up to the CSS max-height).
  const promptRef = useRef(null);
  useLayoutEffect(() => {
    const box = promptRef.current;
    if (!box) return;
    box.style.height = 'auto';
    box.style.height = `${box.scrollHeight + 2}px`;
  }, [input]);

  // After Send, Stop, Approve, Deny, Retry and edits the person types next: the button they
  // pressed may be gone (Send turns into Stop), so focus goes back to the message box.
  const focusPrompt = useCallback(() => {
    requestAnimationFrame(() => promptRef.current?.focus());
  }, []);

  const idle = !busy && !stopping;
  useFollowOtherTabs({ api, idle, onMoved: followTurn });
  const send = (event) => {
    event.preventDefault();
    const text = input.trim();
    if (!text || !idle) return;
    setNotice(null);
    setFailedId(null);
    stickToBottom.current = true;
    sendMessage({ text });
    setInput('');
    focusPrompt();
  };

  const onKeyDown = (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) send(event);
  };

  // Stops the reply here and on the server, then shows what the server kept.
  const onStop = async () => {
    const reply = messages.at(-1)?.role === 'assistant' ? messages.at(-1).id : undefined;
    setStopping(true);
    try {
      if (transportKind === 'trigger') await transport.stopGeneration(chatId);
      await stop();
      await api.stop();
      await syncFromServer();
      if (reply) setStopped((ids) => new Set(ids).add(reply));
    } catch (failure) {
      setNotice(`Stopping failed. ${describeError(failure, config).title}`);
    } finally {
      setStopping(false);
      focusPrompt();
    }
  };

  const onApproval = useCallback(
    (id, approved) => {
      addToolApprovalResponse({ id, approved, reason: approved ? undefined : 'The user denied this call.' });
      focusPrompt();
    },
    [addToolApprovalResponse, focusPrompt],
  );

  // A user message sent again under its own id: the server replaces it and drops what followed
  // (an edit, or a retry of a message that failed to send, which the server may never have seen).
  const resend = useCallback(
    (message, text) => {
      const files = message.parts.filter((part) => part.type === 'file');
      stickToBottom.current = true;
      setNotice(null);
      setFailedId(null);
      clearError();
      sendMessage({ text, files, messageId: message.id });
      focusPrompt();
    },
    [sendMessage, clearError, focusPrompt],
  );

  const onEdit = useCallback((message, text) => resend(message, text), [resend]);

  const onRegenerate = useCallback(
    (message) => {
      stickToBottom.current = true;
      setNotice(null);
      setFailedId(null);
      clearError();
      regenerate({ messageId: message.id });
      focusPrompt();
    },
    [regenerate, clearError, focusPrompt],
  );

  // A failed send: the user's message again; a reply that broke off: that reply again.
  const messagesRef = useRef(messages);
  messagesRef.current = messages;
  const onRetry = useCallback(() => {
    const last = messagesRef.current.at(-1);
    if (last?.role === 'user') resend(last, textOfMessage(last));
    else if (last) onRegenerate(last);
  }, [resend, onRegenerate]);

  const lastAssistantId = messages.findLast((message) => message.role === 'assistant')?.id;
  const problem = error ? describeError(error, config) : null;
  return (
    <div className="chat" data-status={stopping ? 'stopping' : status} data-chat-id={chatId}>
      <div className="log" role="log" aria-label="Messages" aria-live="polite" ref={logRef} onScroll={onScroll}>
        {messages.length === 0 && (
          <div className="empty">
            <p>Start the conversation below.</p>
            <p className="hint">Ask to roll dice or for the time to see a tool call.</p>
          </div>
        )}
        {messages.map((message) => (
          <Message
            key={message.id}
            message={message}
            streaming={status === 'streaming' && message.id === lastId && message.role === 'assistant'}
            stopped={stopped.has(message.id) || message.metadata?.finishReason === 'stopped'}
            failed={message.id === failedId}
            canRegenerate={message.id === lastAssistantId && message.id === lastId}
            onApproval={onApproval}
            onEdit={onEdit}
            onRegenerate={onRegenerate}
            onRetry={onRetry}
            busy={!idle}
          />
        ))}
        {status === 'submitted' && (
          <p className="waiting" role="status">
            Waiting for the reply…
          </p>
        )}
      </div>
      {problem && (
        <div className="error" role="alert">
          <div className="error-text">
            <strong>{problem.title}</strong> <span>{problem.advice}</span>
          </div>
          <div className="error-actions">
            {messages.length > 0 && (
              <button type="button" className="button" onClick={onRetry}>
                Retry
              </button>
            )}
            <button type="button" className="link-button" onClick={clearError}>
              Dismiss
            </button>
          </div>
        </div>
      )}
      {notice && (
        <div className="error" role="alert">
          <div className="error-text">{notice}</div>
          <div className="error-actions">
            <button type="button" className="link-button" onClick={() => setNotice(null)}>
              Dismiss
            </button>
          </div>
        </div>
      )}
      <form className="composer" onSubmit={send} aria-label="Send a message">
        <label htmlFor="prompt" className="visually-hidden">
          Message
        </label>
        <textarea
          id="prompt"
          name="prompt"
          rows={1}
          ref={promptRef}
          placeholder="Write a message…"
          aria-describedby="prompt-hint"
          value={input}
          onChange={(event) => setInput(event.target.value)}
          onKeyDown={onKeyDown}
          autoFocus
        />
        <span id="prompt-hint" className="visually-hidden">
          Enter sends, Shift+Enter starts a new line.
        </span>
        {idle ? (
          <button type="submit" className="button primary" disabled={!input.trim()}>
            Send
          </button>
        ) : (
          <button type="button" className="button stop" onClick={onStop} disabled={stopping}>
            {stopping ? 'Stopping…' : 'Stop'}
          </button>
        )}
      </form>
    </div>
  );
}

function textOfMessage(message) {
  return message.parts
    .filter((part) => part.type === 'text')
    .map((part) => part.text)
    .join('');
}

/** Whether the server's history differs from what the page shows (ids or the last message). */
function needsSync(shown, persisted) {
  if (persisted.length === 0) return false;
  if (persisted.length !== shown.length) return true;
  for (let i = 0; i < persisted.length; i++) {
    if (persisted[i].id !== shown[i].id) return true;
  }
  return JSON.stringify(persisted.at(-1)) !== JSON.stringify(shown.at(-1));
}

/**
 * The server closed an approval request the user moved past (they sent a new message instead):
 * the call shows as skipped, as the history has it, with no buttons left.
 */
function markSkipped(messages, { messageId, toolCallId, approvalId, reason }) {
  return messages.map((message) => {
    if (message.id !== messageId) return message;
    const parts = message.parts.map((part) =>
      part.toolCallId === toolCallId && part.state === 'approval-requested'
        ? { ...part, state: 'output-denied', approval: { ...part.approval, id: approvalId, approved: false, reason } }
        : part,
    );
    return { ...message, parts };
  });
}
