// The sidebar's list of chats, as the server keeps them (last active first): open one, rename it
// in place, delete it after a confirmation in its own row.

import { useEffect, useRef, useState } from 'react';

export function ChatList({ chats, currentId, busy, onOpen, onRename, onDelete }) {
  return (
    <nav aria-label="Your chats">
      <ul className="chat-list">
        {chats.map((chat) => (
          <ChatRow
            key={chat.id}
            chat={chat}
            current={chat.id === currentId}
            busy={busy}
            onOpen={onOpen}
            onRename={onRename}
            onDelete={onDelete}
          />
        ))}
      </ul>
    </nav>
  );
}

function ChatRow({ chat, current, busy, onOpen, onRename, onDelete }) {
  // `view`, `rename` (a title field in the row) or `confirm` (delete, or keep).
  const [mode, setMode] = useState('view');
  const [problem, setProblem] = useState(null);
  const [working, setWorking] = useState(false);
  const name = chat.title || 'New chat';
  const renameButtonRef = useRef(null);
  const deleteButtonRef = useRef(null);
  const cancelRef = useRef(null);
  const focusAfterRef = useRef(null);

  // Back to the list, the focus on the button that opened the form (it exists again now).
  const backToView = (focusOn) => {
    focusAfterRef.current = focusOn;
    setProblem(null);
    setMode('view');
  };
  useEffect(() => {
    if (mode === 'confirm') cancelRef.current?.focus();
    if (mode === 'view' && focusAfterRef.current) {
      focusAfterRef.current.current?.focus();
      focusAfterRef.current = null;
    }
  }, [mode]);

  if (mode === 'rename') {
    return (
      <li className={`chat-row editing${current ? ' active' : ''}`}>
        <RenameForm
          title={chat.title}
          onCancel={() => backToView(renameButtonRef)}
          onSave={async (title) => {
            await onRename(chat.id, title);
            backToView(renameButtonRef);
          }}
        />
      </li>
    );
  }

  if (mode === 'confirm') {
    const confirm = async () => {
      setWorking(true);
      try {
        await onDelete(chat.id);
      } catch (error) {
        setProblem(error.message);
        setWorking(false);
      }
    };
    return (
      <li className={`chat-row confirming${current ? ' active' : ''}`}>
        <div className="chat-confirm" role="group" aria-label={`Delete “${name}”?`}>
          <p className="chat-confirm-text">
            Delete “<span className="chat-confirm-title">{name}</span>”? Its messages are erased on the server.
          </p>
          {problem && (
            <p className="chat-row-problem" role="alert">
              {problem}
            </p>
          )}
          <div className="chat-confirm-actions">
            <button type="button" className="button danger" onClick={confirm} disabled={working}>
              {working ? 'Deleting…' : 'Delete'}
            </button>
            <button type="button" className="button" ref={cancelRef} onClick={() => backToView(deleteButtonRef)} disabled={working}>
              Cancel
            </button>
          </div>
        </div>
      </li>
    );
  }

  return (
    <li className={`chat-row${current ? ' active' : ''}`}>
      <button
        type="button"
        className="chat-link"
        aria-current={current ? 'page' : undefined}
        disabled={busy && !current}
        onClick={() => onOpen(chat.id)}
        title={name}
      >
        {name}
      </button>
      {chat.listed && (
        <>
          <button
            type="button"
            className="chat-action"
            ref={renameButtonRef}
            aria-label={`Rename “${name}”`}
            title="Rename"
            onClick={() => setMode('rename')}
          >
            <span aria-hidden="true">✎</span>
          </button>
          <button
            type="button"
            className="chat-action chat-remove"
            ref={deleteButtonRef}
            aria-label={`Delete “${name}”`}
            title="Delete"
            disabled={busy && current}
            onClick={() => setMode('confirm')}
          >
            <span aria-hidden="true">×</span>
          </button>
        </>
      )}
    </li>
  );
}

function RenameForm({ title, onCancel, onSave }) {
  const [text, setText] = useState(title ?? '');
  const [problem, setProblem] = useState(null);
  const [saving, setSaving] = useState(false);
  const inputRef = useRef(null);
  useEffect(() => {
    inputRef.current?.focus();
    inputRef.current?.select();
  }, []);

  const save = async (event) => {
    event.preventDefault();
    setSaving(true);
    try {
      await onSave(text.trim() === '' ? null : text);
    } catch (error) {
      setProblem(error.message);
      setSaving(false);
    }
  };
  return (
    <form className="chat-rename" onSubmit={save} aria-label="Rename the chat">
      <input
        ref={inputRef}
        className="chat-rename-input"
        aria-label="Chat title"
        value={text}
        maxLength={200}
        placeholder="Its first message"
        disabled={saving}
        onChange={(event) => setText(event.target.value)}
        onKeyDown={(event) => {
          if (event.key === 'Escape') {
            event.preventDefault();
            event.stopPropagation();
            onCancel();
          }
        }}
      />
      {problem && (
        <p className="chat-row-problem" role="alert">
          {problem}
        </p>
      )}
      <div className="chat-confirm-actions">
        <button type="submit" className="button primary" disabled={saving}>
          {saving ? 'Saving…' : 'Save'}
        </button>
        <button type="button" className="button" onClick={onCancel} disabled={saving}>
          Cancel
        </button>
      </div>
    </form>
  );
}
