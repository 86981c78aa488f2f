import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'react';
import { backendApi } from './api.js';
import { Chat } from './Chat.jsx';
import { useChatList } from './chats.js';
import { ChatList } from './ChatList.jsx';
import {
  chatIdFromUrl,
  checkUrl,
  currentConfig,
  forgetChat,
  lastChatId,
  newChatId,
  rememberCurrentChat,
  saveSettings,
  savedSettings,
  showChatInUrl,
} from './config.js';

// The width under which the chat list is a drawer (the `max-width` media query in styles.css).
const DRAWER_MAX_WIDTH = 720;

// The offline notice, once read, stays hidden for this tab.
const BANNER_KEY = 'chatfn.offline-banner';

const TRANSPORTS = [
  { value: 'ai-sdk', label: 'AI SDK', detail: 'DefaultChatTransport → /api/chat' },
  { value: 'trigger', label: 'Trigger.dev', detail: 'TriggerChatTransport → /realtime/v1/sessions' },
];

export function App() {
  const config = useMemo(() => currentConfig(), []);
  const backend = useMemo(() => backendApi(config.backend), [config.backend]);
  const [info, setInfo] = useState(undefined);
  const [transportKind, setTransportKind] = useState(config.transport);
  const [chatId, setChatId] = useState(() => chatIdFromUrl() || lastChatId(config.server) || newChatId());
  const [busy, setBusy] = useState(false);
  const { chats, problem: listProblem, refresh: refreshList, onTitle, rename, remove } = useChatList({ backend, config, chatId, busy });
  const [showSettings, setShowSettings] = useState(false);
  const [bannerHidden, setBannerHidden] = useState(() => sessionStorage.getItem(BANNER_KEY) === 'hidden');
  const hideBanner = () => {
    sessionStorage.setItem(BANNER_KEY, 'hidden');
    setBannerHidden(true);
  };
  // On narrow screens the chat list is a drawer over the chat.
  const [drawerOpen, setDrawerOpen] = useState(false);
  const menuButtonRef = useRef(null);
  const sidebarRef = useRef(null);

  const closeDrawer = useCallback(() => {
    setDrawerOpen((open) => {
      if (open) requestAnimationFrame(() => menuButtonRef.current?.focus());
      return false;
    });
  }, []);
  // The drawer exists on narrow screens only: widening the window closes it.
  useEffect(() => {
    const wide = window.matchMedia(`(min-width: ${DRAWER_MAX_WIDTH + 1}px)`);
    const onChange = () => wide.matches && setDrawerOpen(false);
    wide.addEventListener('change', onChange);
    return () => wide.removeEventListener('change', onChange);
  }, []);
  useEffect(() => {
    if (!drawerOpen) return undefined;
    sidebarRef.current?.querySelector('[aria-current="page"], button')?.focus();
    const onKey = (event) => {
      if (event.key === 'Escape') closeDrawer();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [drawerOpen, closeDrawer]);

  useEffect(() => {
    backend.info().then(setInfo);
  }, [backend]);

  // The chat in view is in the address bar, so a reload reopens it. A layout effect runs in the
  // same commit as the page's change: a reload right after a delete or a switch never finds the
  // address of the chat that was on screen before.
  useLayoutEffect(() => {
    showChatInUrl(chatId);
    rememberCurrentChat(config.server, chatId);
  }, [chatId, config.server]);

  const openChat = (id) => {
    setChatId(id);
    setDrawerOpen(false);
  };

  const startNewChat = () => {
    const current = chats.find((chat) => chat.id === chatId);
    setDrawerOpen(false);
    if (current && !current.title) {
      document.getElementById('prompt')?.focus();
      return;
    }
    setChatId(newChatId());
  };

  const deleteChat = async (id) => {
    await remove(id);
    forgetChat(config.server, id);
    if (id === chatId) {
      // The next chat's message box takes the focus as it opens.
      setChatId(chats.find((chat) => chat.id !== id && chat.listed)?.id ?? newChatId());
    } else {
      // The row that had the focus is gone: it goes to the chat open here.
      requestAnimationFrame(() => sidebarRef.current?.querySelector('[aria-current="page"]')?.focus());
    }
  };

  const chooseTransport = (value) => {
    setTransportKind(value);
    saveSettings({ transport: value });
  };

  return (
    <div className={`app${drawerOpen ? ' drawer-open' : ''}`}>
      <aside className="sidebar" id="sidebar" aria-label="Chats" ref={sidebarRef}>
        <div className="brand">
          <span className="brand-mark" aria-hidden="true" />
          chatfn
          <button type="button" className="drawer-close" aria-label="Close the chat list" onClick={closeDrawer}>
            ×
          </button>
        </div>
        <button type="button" className="button primary new-chat" onClick={startNewChat} disabled={busy}>
          New chat
        </button>
        <ChatList chats={chats} currentId={chatId} busy={busy} onOpen={openChat} onRename={rename} onDelete={deleteChat} />
        {listProblem ? (
          <div className={`sidebar-note list-problem${listProblem.retry ? ' failed' : ''}`} role="status">
            <p>{listProblem.text}</p>
            {listProblem.retry && (
              <button type="button" className="link-button" onClick={refreshList}>
                Try again
              </button>
            )}
          </div>
        ) : (
          <p className="sidebar-note">Kept on the server: the same list on every device.</p>
        )}
      </aside>

      <div className="drawer-backdrop" aria-hidden="true" onClick={closeDrawer} />

      {/* While the drawer is open, the chat behind it takes no focus or clicks. */}
      <main className="main" inert={drawerOpen || undefined}>
        <header className="topbar">
          <button
            type="button"
            className="button ghost menu-button"
            ref={menuButtonRef}
            aria-expanded={drawerOpen}
            aria-controls="sidebar"
            aria-label="Chats"
            onClick={() => setDrawerOpen((open) => !open)}
          >
            <span className="menu-icon" aria-hidden="true" />
          </button>
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
        {info?.offline && !bannerHidden && (
          <div className="offline-banner">
            <p role="note">
              <strong>Offline model.</strong> No model provider is configured, so replies are canned. Set{' '}
              <code>CHATFN_MODEL_API_KEY</code> (or <code>OPENAI_API_KEY</code>) and restart the server for a real model.
            </p>
            <button type="button" className="link-button" onClick={hideBanner}>
              Hide
            </button>
          </div>
        )}
        <Chat
          key={`${chatId}:${transportKind}`}
          config={config}
          backend={backend}
          chatId={chatId}
          transportKind={transportKind}
          onTitle={onTitle}
          onBusyChange={setBusy}
          onOpenSettings={() => setShowSettings(true)}
        />
      </main>
    </div>
  );
}

function ModelBadge({ info }) {
  if (info === undefined) return <span className="badge">Model: …</span>;
  if (info === null) return <span className="badge" title="The backend has no /dev/info">Model: unknown</span>;
  // `provider:model`; on a phone only the model's own name is shown.
  const [provider, name] = info.model?.includes(':') ? info.model.split(/:(.*)/s) : [undefined, info.model];
  return (
    <span
      className={`badge ${info.offline ? 'badge-offline' : 'badge-online'}`}
      data-model={info.model}
      title={info.offline ? undefined : info.model}
      role="status"
    >
      <span className="dot" aria-hidden="true" />
      <span className="badge-text">
        {info.offline ? (
          'Offline model'
        ) : (
          <>
            <span className="badge-label">Model: </span>
            {provider && <span className="badge-label">{provider}:</span>}
            {name}
          </>
        )}
      </span>
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
