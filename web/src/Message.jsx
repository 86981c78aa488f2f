import { memo, useEffect, useRef, useState } from 'react';
import { CopyButton } from './CopyButton.jsx';
import { Markdown } from './Markdown.jsx';

const TOOL_STATES = {
  'input-streaming': 'preparing the call',
  'input-available': 'running',
  'approval-requested': 'waiting for your approval',
  'approval-responded': 'answered, waiting for the agent',
  'output-available': 'done',
  'output-error': 'failed',
  'output-denied': 'denied',
};

function toolName(part) {
  if (part.type === 'dynamic-tool') return part.toolName;
  return part.type.slice('tool-'.length);
}

function isToolPart(part) {
  return part.type === 'dynamic-tool' || part.type.startsWith('tool-');
}

function Json({ value, label }) {
  if (value === undefined) return null;
  const text = typeof value === 'string' ? value : JSON.stringify(value, null, 2);
  return (
    <div className="tool-field">
      <span className="tool-field-label">{label}</span>
      <pre className="tool-json">{text}</pre>
    </div>
  );
}

function ToolPart({ part, onApproval, busy }) {
  const name = toolName(part);
  const state = part.state;
  const approval = part.approval;
  return (
    <section className={`tool tool-${state}`} aria-label={`Tool call ${name}`} data-tool={name} data-state={state}>
      <header className="tool-header">
        <span className="tool-icon" aria-hidden="true">⚙</span>
        <code className="tool-name">{name}</code>
        <span className="tool-state">{TOOL_STATES[state] ?? state}</span>
      </header>
      <Json label="Input" value={part.input ?? (state === 'input-streaming' ? undefined : {})} />
      {state === 'output-available' && <Json label="Output" value={part.output} />}
      {state === 'output-error' && (
        <p className="tool-error" role="status">
          {part.errorText}
        </p>
      )}
      {state === 'approval-requested' && approval && (
        <div className="tool-approval" role="group" aria-label={`Approve the call of ${name}?`}>
          <span>Run this tool?</span>
          <button type="button" className="button approve" disabled={busy} onClick={() => onApproval(approval.id, true)}>
            Approve
          </button>
          <button type="button" className="button deny" disabled={busy} onClick={() => onApproval(approval.id, false)}>
            Deny
          </button>
        </div>
      )}
      {approval && approval.approved !== undefined && (
        <p className={`tool-verdict ${approval.approved ? 'approved' : 'denied'}`}>
          {approval.approved ? '✓ Approved' : '✕ Denied'}
        </p>
      )}
    </section>
  );
}

function Reasoning({ part }) {
  const streaming = part.state === 'streaming';
  return (
    <details className="reasoning" open={streaming || undefined}>
      <summary>{streaming ? 'Thinking…' : 'Reasoning'}</summary>
      <p className="reasoning-text">{part.text}</p>
    </details>
  );
}

function Part({ part, role, onApproval, busy, streaming }) {
  if (part.type === 'text') {
    // A person's words are shown as typed; a model's reply is Markdown.
    if (role === 'user') return <p className="text-part plain">{part.text}</p>;
    return (
      <div className={`text-part markdown${streaming ? ' streaming' : ''}`}>
        <Markdown text={part.text} streaming={streaming} />
      </div>
    );
  }
  if (part.type === 'reasoning') return <Reasoning part={part} />;
  if (isToolPart(part)) return <ToolPart part={part} onApproval={onApproval} busy={busy} />;
  if (part.type === 'source-url') {
    return (
      <p className="source">
        Source:{' '}
        <a href={part.url} target="_blank" rel="noopener noreferrer">
          {part.title || part.url}
        </a>
      </p>
    );
  }
  if (part.type === 'file') {
    if (part.mediaType?.startsWith('image/')) return <img className="file-image" src={part.url} alt={part.filename ?? 'image'} />;
    return (
      <p className="source">
        File:{' '}
        <a href={part.url} target="_blank" rel="noopener noreferrer">
          {part.filename ?? part.mediaType}
        </a>
      </p>
    );
  }
  return null;
}

function textOf(message) {
  return (message.parts ?? [])
    .filter((part) => part.type === 'text')
    .map((part) => part.text)
    .join('\n\n');
}

/** A user message being edited: sent again under its id, the server drops what followed it. */
function EditBox({ text, onSave, onCancel }) {
  const [draft, setDraft] = useState(text);
  const boxRef = useRef(null);
  useEffect(() => {
    const box = boxRef.current;
    box?.focus();
    box?.setSelectionRange(box.value.length, box.value.length);
  }, []);
  const save = (event) => {
    event.preventDefault();
    if (draft.trim()) onSave(draft.trim());
  };
  const onKeyDown = (event) => {
    if (event.key === 'Escape') onCancel();
    else if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) save(event);
  };
  return (
    <form className="edit-box" onSubmit={save} aria-label="Edit your message">
      <label className="visually-hidden" htmlFor="edit-message">
        Edited message
      </label>
      <textarea id="edit-message" ref={boxRef} value={draft} rows={3} onChange={(event) => setDraft(event.target.value)} onKeyDown={onKeyDown} />
      <div className="edit-actions">
        <button type="button" className="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="button primary" disabled={!draft.trim()}>
          Send edit
        </button>
      </div>
      <p className="hint">Replies after this message are replaced.</p>
    </form>
  );
}

function MessageView({ message, streaming, stopped, failed, canRegenerate, onApproval, onEdit, onRegenerate, onRetry, busy }) {
  const mine = message.role === 'user';
  const parts = message.parts ?? [];
  const empty = !parts.some((part) => part.type !== 'step-start');
  const [editing, setEditing] = useState(false);
  const editButtonRef = useRef(null);
  // While streaming, a cursor follows the text when the text is what grows.
  const last = parts.findLastIndex((part) => part.type !== 'step-start');
  const textGrows = streaming && parts[last]?.type === 'text';
  const text = textOf(message);
  const cancelEdit = () => {
    setEditing(false);
    requestAnimationFrame(() => editButtonRef.current?.focus());
  };
  return (
    <article
      className={`message message-${message.role}${failed ? ' message-failed' : ''}`}
      aria-label={mine ? 'You said' : 'Assistant said'}
      data-role={message.role}
      data-message-id={message.id}
      data-failed={failed || undefined}
      aria-busy={streaming || undefined}
    >
      <div className="message-author" aria-hidden="true">
        {mine ? 'You' : 'Assistant'}
      </div>
      {editing ? (
        <EditBox
          text={text}
          onCancel={cancelEdit}
          onSave={(edited) => {
            setEditing(false);
            onEdit(message, edited);
          }}
        />
      ) : (
        <div className="message-body">
          {parts.map((part, index) => (
            <Part key={index} part={part} role={message.role} onApproval={onApproval} busy={busy} streaming={textGrows && index === last} />
          ))}
          {streaming && empty && <p className="text-part pending">…</p>}
          {streaming && !textGrows && !empty && <span className="cursor" aria-hidden="true" />}
          {stopped && <p className="stopped-note">Stopped</p>}
        </div>
      )}
      {failed && (
        <p className="failed-note" role="status">
          {mine ? 'Not sent.' : 'The reply broke off.'}{' '}
          <button type="button" className="link-button" onClick={onRetry} disabled={busy}>
            Retry
          </button>
        </p>
      )}
      {!streaming && !editing && !empty && (
        <div className="message-actions" role="group" aria-label={mine ? 'Your message' : 'The reply'}>
          {text && <CopyButton text={text} label={mine ? 'Copy your message' : 'Copy the reply'} />}
          {mine && (
            <button type="button" className="action-button" ref={editButtonRef} onClick={() => setEditing(true)} disabled={busy}>
              Edit
            </button>
          )}
          {!mine && canRegenerate && (
            <button type="button" className="action-button" onClick={() => onRegenerate(message)} disabled={busy}>
              Regenerate
            </button>
          )}
        </div>
      )}
    </article>
  );
}

export const Message = memo(MessageView);
