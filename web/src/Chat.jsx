import { useChat } from '@ai-sdk/react';
import { TriggerChatTransport } from '@trigger.dev/sdk/chat';
import { DefaultChatTransport, lastAssistantMessageIsCompleteWithApprovalResponses } from 'ai';
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'react';
import { chatAuth, chatfnApi } from './api.js';
import { loadTriggerSession, saveTriggerSession } from './config.js';
import { Message } from './Message.jsx';

/**
 * One chat: gets the chat's session token from the backend, loads the history, then mounts the
 * `useChat` view (which resumes a reply still streaming).
 */
export function Chat({ config, backend, chatId, transportKind, onTitle, onBusyChange }) {
  const [ready, setReady] = useState(null);
  const [failure, setFailure] = useState(null);
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    let cancelled = false;
    setReady(null);
    setFailure(null);
    (async () => {
      const session = await backend.startSession(chatId);
      const auth = chatAuth(backend, chatId, session.publicAccessToken);
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
    return (
      <div className="chat-failure" role="alert">
        <p>This chat could not be opened: {failure.message}</p>
        <button type="button" className="button" onClick={() => setAttempt((n) => n + 1)}>
          Try again
        </button>
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
  if (kind === 'trigger') {
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
    return transport;
  }
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

/** `DefaultChatTransport`, telling the page when a resume found nothing in flight. */
class ResumeAwareTransport extends DefaultChatTransport {
  constructor(onNothingToResume, options) {
    super(options);
    this.onNothingToResume = onNothingToResume;
  }

  async reconnectToStream(options) {
    const stream = await super.reconnectToStream(options);
    if (!stream) this.onNothingToResume();
    return stream;
  }
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
  // Replies stopped on this page, marked as such.
  const [stopped, setStopped] = useState(() => new Set());
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

  const { messages, setMessages, sendMessage, status, stop, error, clearError, addToolApprovalResponse } = useChat({
    id: chatId,
    messages: loaded.messages,
    transport,
    resume: true,
    sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses,
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
      setNotice(`Could not reload the history: ${failure.message}`);
    }
  }, [api, setMessages]);
  syncRef.current = syncFromServer;

  const busy = status === 'submitted' || status === 'streaming';
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

  const send = (event) => {
    event.preventDefault();
    const text = input.trim();
    if (!text || busy || stopping) return;
    setNotice(null);
    stickToBottom.current = true;
    sendMessage({ text });
    setInput('');
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
      setNotice(`Stopping failed: ${failure.message}`);
    } finally {
      setStopping(false);
    }
  };

  const onApproval = useCallback(
    (id, approved) => addToolApprovalResponse({ id, approved, reason: approved ? undefined : 'The user denied this call.' }),
    [addToolApprovalResponse],
  );

  const lastId = messages.at(-1)?.id;
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
            stopped={stopped.has(message.id)}
            onApproval={onApproval}
            busy={busy || stopping}
          />
        ))}
        {status === 'submitted' && (
          <p className="waiting" role="status">
            Waiting for the reply…
          </p>
        )}
      </div>
      {error && (
        <div className="error" role="alert">
          <span>{error.message || 'The reply failed.'}</span>
          <button type="button" className="link-button" onClick={clearError}>
            Dismiss
          </button>
        </div>
      )}
      {notice && (
        <div className="error" role="alert">
          <span>{notice}</span>
          <button type="button" className="link-button" onClick={() => setNotice(null)}>
            Dismiss
          </button>
        </div>
      )}
      <form className="composer" onSubmit={send}>
        <label htmlFor="prompt" className="visually-hidden">
          Message
        </label>
        <textarea
          id="prompt"
          name="prompt"
          rows={1}
          ref={promptRef}
          placeholder="Write a message… (Enter sends, Shift+Enter for a new line)"
          value={input}
          onChange={(event) => setInput(event.target.value)}
          onKeyDown={onKeyDown}
          autoFocus
        />
        {busy || stopping ? (
          <button type="button" className="button stop" onClick={onStop} disabled={stopping}>
            {stopping ? 'Stopping…' : 'Stop'}
          </button>
        ) : (
          <button type="submit" className="button primary" disabled={!input.trim()}>
            Send
          </button>
        )}
      </form>
    </div>
  );
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
