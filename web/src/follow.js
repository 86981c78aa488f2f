// Following a chat that another tab or device drives. While this tab is visible and idle it asks
// the server for the output log's last record number (a HEAD: cheap on every host, and on Lambda
// no connection is held open), on a backoff from 1 s to 4 s. When the number moves, the history
// is read again; when it ends with a user message, a turn answers it now, and the page attaches
// to that turn's stream.

import { useEffect, useRef } from 'react';

const FIRST_DELAY_MS = 1_000;
const MAX_DELAY_MS = 4_000;

/**
 * Calls `onMoved()` whenever the chat's output log moved since the last look, while the tab is
 * visible and `idle` is true.
 */
export function useFollowOtherTabs({ api, idle, onMoved }) {
  const idleRef = useRef(idle);
  idleRef.current = idle;
  const onMovedRef = useRef(onMoved);
  onMovedRef.current = onMoved;

  useEffect(() => {
    let stopped = false;
    let timer;
    let delay = FIRST_DELAY_MS;
    let known;
    let looking = false;

    const look = async () => {
      timer = undefined;
      if (stopped || looking || document.visibilityState !== 'visible') return;
      looking = true;
      try {
        const head = await api.outputHead();
        const moved = known !== undefined && head !== known;
        known = head;
        if (moved && idleRef.current) {
          delay = FIRST_DELAY_MS;
          await onMovedRef.current();
        } else {
          delay = Math.min(delay * 2, MAX_DELAY_MS);
        }
      } catch {
        // A server that cannot be reached now is asked again later; sends say what failed.
        delay = MAX_DELAY_MS;
      } finally {
        looking = false;
      }
      schedule();
    };
    const schedule = () => {
      if (stopped || timer !== undefined || document.visibilityState !== 'visible') return;
      timer = setTimeout(look, delay);
    };
    const onVisibility = () => {
      if (document.visibilityState !== 'visible') return;
      delay = FIRST_DELAY_MS;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      look();
    };
    document.addEventListener('visibilitychange', onVisibility);
    look();
    return () => {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisibility);
    };
  }, [api]);
}
