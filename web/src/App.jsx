import { useCallback, useEffect, useMemo, useState } from 'react';
import { backendApi } from './api.js';
import { Chat } from './Chat.jsx';
import {
  chatIdFromUrl,
  checkUrl,
  currentConfig,
  forgetChat,
  lastChatId,
  loadChats,
  newChatId,
  rememberCurrentChat,
  saveChats,
  saveSettings,
  savedSettings,
  showChatInUrl,
} from './config.js';

const TRANSPORTS = [
  { value: 'ai-sdk', label: 'AI SDK', detail: 'DefaultChatTransport → /api/chat' },
  { value: 'trigger', label: 'Trigger.dev', detail: 'TriggerChatTransport → /realtime/v1/sessions' },
];

export function App() {
  const config = useMemo(() => currentConfig(), []);
  const backend = useMemo(() => backendApi(config.backend), [config.backend]);
  const [info, setInfo] = useState(undefined);
  const [transportKind, setTransportKind] = useState(config.transport);
  const [chats, setChats] = useState(() => loadChats(config.server));
  const [chatId, setChatId] = useState(() => chatIdFromUrl() || lastChatId(config.server) || newChatId());
  const [busy, setBusy] = useState(false);
  const [showSettings, setShowSettings] = useState(false);

  useEffect(() => {
    backend.info().then(setInfo);
  }, [backend]);

  // The chat in view is in the address bar (so a reload reopens it) and in the list.
  useEffect(() => {
    showChatInUrl(chatId);
    rememberCurrentChat(config.server, chatId);
    setChats((list) => {
      if (list.some((chat) => chat.id === chatId)) return list;
      const next = [{ id: chatId, title: '', createdAt: Date.now() }, ...list];
      saveChats(config.server, next);
      return next;
    });
  }, [chatId, config.server]);

  const onTitle = useCallback(
    (id, title) =>
      setChats((list) => {
        if (!list.some((chat) => chat.id === id && chat.title !== title)) return list;
        const next = list.map((chat) => (chat.id === id ? { ...chat, title } : chat));
        saveChats(config.server, next);
        return next;
      }),
    [config.server],
  );

  const startNewChat = () => {
    const current = chats.find((chat) => chat.id === chatId);
    if (current && !current.title) {
      document.getElementById('prompt')?.focus();
      return;
    }
    setChatId(newChatId());
  };

  const removeChat = (id) => {
    const next = chats.filter((chat) => chat.id !== id);
    saveChats(config.server, next);
    forgetChat(config.server, id);
    setChats(next);
    if (id === chatId) setChatId(next[0]?.id ?? newChatId());
  };

  const chooseTransport = (value) => {
    setTransportKind(value);
    saveSettings({ transport: value });
  };

  return (
    <div className="app">
      <aside className="sidebar" aria-label="Chats">
        <div className="brand">
          <span className="brand-mark" aria-hidden="true" />
          chatfn
        </div>
        <button type="button" className="button primary new-chat" onClick={startNewChat} disabled={busy}>
          New chat
        </button>
        <nav aria-label="Your chats">
          <ul className="chat-list">
            {chats.map((chat) => (
              <li key={chat.id} className={chat.id === chatId ? 'active' : undefined}>
                <button
                  type="button"
                  className="chat-link"
                  aria-current={chat.id === chatId ? 'page' : undefined}
                  disabled={busy && chat.id !== chatId}
                  onClick={() => setChatId(chat.id)}
                  title={chat.id}
                >
                  {chat.title || 'New chat'}
                </button>
                <button
                  type="button"
                  className="chat-remove"
                  aria-label={`Remove “${chat.title || 'New chat'}” from this list`}
                  disabled={busy && chat.id === chatId}
                  onClick={() => removeChat(chat.id)}
                >
                  ×
                </button>
              </li>
            ))}
          </ul>
        </nav>
        <p className="sidebar-note">Kept in this browser. The server keeps each chat's history.</p>
      </aside>

      <main className="main">
        <header className="topbar">
          <ModelBadge info={info} />
          <fieldset className="transport" disabled={busy}>
            <legend className="visually-hidden">Transport</legend>
            {TRANSPORTS.map((option) => (
              <label key={option.value} title={option.detail} className={transportKind === option.value ? 'checked' : undefined}>
                <input
                  type="radio"
                  name="transport"
                  value={option.value}
                  checked={transportKind === option.value}
                  onChange={() => chooseTransport(option.value)}
                />
                {option.label}
              </label>
            ))}
          </fieldset>
          <button
            type="button"
            className="button ghost"
            aria-expanded={showSettings}
            aria-controls="settings"
            onClick={() => setShowSettings((shown) => !shown)}
          >
            Settings
          </button>
        </header>
        {showSettings && <Settings config={config} />}
        {info?.offline && (
          <p className="offline-banner" role="note">
            <strong>Offline model.</strong> No model provider is configured, so replies are canned. Set{' '}
            <code>CHATFN_MODEL_API_KEY</code> (or <code>OPENAI_API_KEY</code>) and restart the server for a real model.
          </p>
        )}
        <Chat
          key={`${chatId}:${transportKind}`}
          config={config}
          backend={backend}
          chatId={chatId}
          transportKind={transportKind}
          onTitle={onTitle}
          onBusyChange={setBusy}
        />
      </main>
    </div>
  );
}

function ModelBadge({ info }) {
  if (info === undefined) return <span className="badge">Model: …</span>;
  if (info === null) return <span className="badge" title="The backend has no /dev/info">Model: unknown</span>;
  return (
    <span className={`badge ${info.offline ? 'badge-offline' : 'badge-online'}`} data-model={info.model} role="status">
      <span className="dot" aria-hidden="true" />
      {info.offline ? 'Offline model' : `Model: ${info.model}`}
      {info.approvalTools?.length > 0 && <span className="badge-extra"> · approval: {info.approvalTools.join(', ')}</span>}
    </span>
  );
}

function Settings({ config }) {
  const saved = savedSettings();
  const [server, setServer] = useState(saved.server);
  const [backend, setBackend] = useState(saved.backend);
  const [problem, setProblem] = useState(null);

  const apply = (event) => {
    event.preventDefault();
    try {
      const changes = { server: checkUrl(server), backend: checkUrl(backend) };
      saveSettings(changes);
      const url = new URL(window.location.href);
      url.searchParams.delete('server');
      url.searchParams.delete('backend');
      url.searchParams.delete('chat');
      window.location.assign(url);
    } catch (error) {
      setProblem(error.message);
    }
  };

  return (
    <form id="settings" className="settings" onSubmit={apply} aria-label="Settings" noValidate>
      <p className="settings-now">
        Now: chatfn at <code>{config.server}</code>, tokens from <code>{config.backend}/dev/…</code>
        {config.fromQuery ? ' (from the address bar)' : ''}.
      </p>
      <label>
        <span>chatfn server</span>
        <input
          type="url"
          value={server}
          placeholder={window.location.origin}
          onChange={(event) => setServer(event.target.value)}
        />
      </label>
      <label>
        <span>
          Token backend (answers <code>/dev/sessions</code>)
        </span>
        <input
          type="url"
          value={backend}
          placeholder={window.location.origin}
          onChange={(event) => setBackend(event.target.value)}
        />
      </label>
      {problem && (
        <p className="error" role="alert">
          {problem}
        </p>
      )}
      <div className="settings-actions">
        <button type="submit" className="button primary">
          Save and reload
        </button>
        <span className="hint">Empty means this page's own server. <code>?server=</code> and <code>?backend=</code> work too.</span>
      </div>
    </form>
  );
}
