import { useEffect, useState } from 'react';
import { copyText } from './clipboard.js';

const SHOWN_MS = 1500;

/** A button that copies `text` and says so for a moment (or says that it could not). */
export function CopyButton({ text, label, className = 'action-button' }) {
  const [outcome, setOutcome] = useState(null);
  useEffect(() => {
    if (!outcome) return undefined;
    const timer = setTimeout(() => setOutcome(null), SHOWN_MS);
    return () => clearTimeout(timer);
  }, [outcome]);

  const copy = async () => {
    try {
      await copyText(text);
      setOutcome('copied');
    } catch {
      setOutcome('failed');
    }
  };

  const shown = outcome === 'copied' ? 'Copied' : outcome === 'failed' ? 'Copy failed' : 'Copy';
  return (
    <button type="button" className={className} aria-label={outcome ? shown : label} onClick={copy} data-outcome={outcome ?? undefined}>
      {shown}
    </button>
  );
}
