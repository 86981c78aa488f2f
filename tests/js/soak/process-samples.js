// What a soak watches of the server's processes, and how it judges that a figure stayed flat.
//
// A sample sums, over the processes watched (the local server; or every Lambda instance), the
// resident memory (VmRSS), the open files (entries of /proc/PID/fd) and the threads (the kernel's
// tasks: tokio's workers and its blocking pool). Summing is what a leak shows in: a Lambda instance
// serves one invocation at a time, so load spreads over many processes.
//
// Flat, after warm-up: the run is cut into thirds; the first is warm-up (caches, pools and the
// allocator's arenas filling) and is not judged. A figure is flat when
// - the last third's mean is within `relative` of the second third's (or `absolute`, whichever is
//   larger: a few threads or files more is noise on a small count), and
// - it does not rise steadily: the judged two thirds cut into six windows whose means rise from
//   each to the next, by more than half the allowance in all, is a creep even within the bound.

import { readdirSync, readFileSync } from 'node:fs';

/** The figures judged, with how much each may move (see the header). */
export const FIGURES = {
  rssKiB: { label: 'RSS (MiB)', relative: 0.1, absolute: 4096, show: (kib) => (kib / 1024).toFixed(1) },
  fds: { label: 'open files', relative: 0.15, absolute: 8, show: (n) => n.toFixed(0) },
  threads: { label: 'threads', relative: 0.15, absolute: 4, show: (n) => n.toFixed(0) },
};

/** One process's figures, or null when it is gone. */
export function sampleProcess(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name) => Number(status.match(new RegExp(`^${name}:\\s+(\\d+)`, 'm'))?.[1] ?? NaN);
    return { rssKiB: field('VmRSS'), threads: field('Threads'), fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return null;
  }
}

/** The figures summed over `pids` at `atMs` (since the start); `missing` counts exited ones. */
export function sampleProcesses(pids, atMs) {
  const sample = { atMs, rssKiB: 0, fds: 0, threads: 0, missing: 0 };
  for (const pid of pids) {
    const figures = sampleProcess(pid);
    if (!figures) {
      sample.missing += 1;
      continue;
    }
    sample.rssKiB += figures.rssKiB;
    sample.fds += figures.fds;
    sample.threads += figures.threads;
  }
  return sample;
}

const mean = (values) => values.reduce((sum, v) => sum + v, 0) / values.length;

/**
 * Judges figure `key` of `samples` (in time order) as the header says. Returns
 * `{ flat, reason, start, warmedUp, end, secondThird, lastThird }` (means of the thirds).
 */
export function judgeFlat(samples, key, { relative, absolute, show = (v) => v.toFixed(1) } = FIGURES[key]) {
  const values = samples.map((s) => s[key]);
  const third = Math.floor(values.length / 3);
  if (third < 2) {
    return { flat: false, reason: `only ${values.length} samples: too few to judge (at least 6)` };
  }
  const judged = values.slice(third);
  const secondThird = mean(values.slice(third, 2 * third));
  const lastThird = mean(values.slice(values.length - third));
  const allowance = Math.max(relative * secondThird, absolute);
  const figures = { start: values[0], warmedUp: values[third], end: values.at(-1), secondThird, lastThird };
  if (lastThird - secondThird > allowance) {
    return { flat: false, reason: `the last third's mean ${show(lastThird)} is above the second third's ${show(secondThird)} by more than ${show(allowance)}`, ...figures };
  }
  const windows = Array.from({ length: 6 }, (_, i) =>
    mean(judged.slice(Math.floor((i * judged.length) / 6), Math.max(Math.floor(((i + 1) * judged.length) / 6), Math.floor((i * judged.length) / 6) + 1))));
  const rising = windows.every((w, i) => i === 0 || w > windows[i - 1]);
  if (rising && windows.at(-1) - windows[0] > allowance / 2) {
    return { flat: false, reason: `it rises in every sixth after warm-up: ${windows.map(show).join(' → ')}`, ...figures };
  }
  return { flat: true, reason: 'flat', ...figures };
}
