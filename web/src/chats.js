// The chat list as the server keeps it (through the backend, which holds the secret key), so it
// is the same on every device: read when the page opens, when another chat opens, when a turn
// ends (its title and order change) and when the tab or window comes back into view or focus.

import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { describeError, Refused } from './errors.js';

/**
 * `problem`: `{text, retry}` when the list could not be read.
 * `chats`: `[{id, title, listed}]`, last active first; the chat in view is always there (first
 * when the server does not list it yet), chats nothing was said in are left out otherwise.
 */
export function useChatList({ backend, config, chatId, busy }) {
  const [listed, setListed] = useState([]);
  const [problem, setProblem] = useState(null);
  // Titles this page knows before the server lists them (the first message, just sent).
  const [draftTitles, setDraftTitles] = useState({});
  const [removed, setRemoved] = useState(() => new Set());
  // Only the newest answer counts: an older read may arrive after a newer one.
  const readsRef = useRef(0);

  const refresh = useCallback(async () => {
    const read = ++readsRef.current;
    try {
      const chats = await backend.chats();
      if (read !== readsRef.current) return;
      setListed(chats);
      setRemoved(new Set());
      setProblem(null);
    } catch (error) {
      if (read !== readsRef.current) return;
      // A backend with the token routes only (no `GET /dev/sessions`): asking again won't help.
      if (error instanceof Refused && (error.status === 404 || error.status === 405)) {
        setProblem({ text: 'The token backend does not list chats: only the chat open here is shown.', retry: false });
      } else {
        setProblem({ text: `Could not load your chats. ${describeError(error, config).title}`, retry: true });
      }
    }
  }, [backend, config]);

  useEffect(() => {
    refresh();
  }, [refresh, chatId]);

  const wasBusy = useRef(busy);
  useEffect(() => {
    if (wasBusy.current && !busy) refresh();
    wasBusy.current = busy;
  }, [busy, refresh]);

  // Back from another tab or window, where this list may have changed.
  useEffect(() => {
    const onVisible = () => document.visibilityState === 'visible' && refresh();
    document.addEventListener('visibilitychange', onVisible);
    window.addEventListener('focus', refresh);
    return () => {
      document.removeEventListener('visibilitychange', onVisible);
      window.removeEventListener('focus', refresh);
    };
  }, [refresh]);

  const onTitle = useCallback((id, title) => {
    setDraftTitles((titles) => (titles[id] === title ? titles : { ...titles, [id]: title }));
  }, []);

  const rename = useCallback(
    async (id, title) => {
      const renamed = await backend.rename(id, title);
      setListed((chats) => chats.map((chat) => (chat.chatId === id ? { ...chat, title: renamed.title } : chat)));
      refresh();
    },
    [backend, refresh],
  );

  const remove = useCallback(
    async (id) => {
      await backend.remove(id);
      setRemoved((ids) => new Set(ids).add(id));
      setDraftTitles(({ [id]: _, ...rest }) => rest);
      refresh();
    },
    [backend, refresh],
  );

  const chats = useMemo(() => {
    const shown = listed
      .filter((chat) => !removed.has(chat.chatId))
      .map((chat) => ({ id: chat.chatId, title: chat.title || draftTitles[chat.chatId] || '', listed: true }))
      .filter((chat) => chat.title || chat.id === chatId);
    if (!shown.some((chat) => chat.id === chatId)) shown.unshift({ id: chatId, title: draftTitles[chatId] || '', listed: false });
    return shown;
  }, [listed, removed, draftTitles, chatId]);

  return { chats, problem, refresh, onTitle, rename, remove };
}
