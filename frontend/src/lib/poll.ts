import { useEffect, useRef } from 'react';

/**
 * One polling loop: call `step`, wait for its answer, pause `gapMs`, call it again, while `active` and
 * until `step` returns true (done). Unlike an interval, a slow answer (a long-poll that waits on the hub)
 * never overlaps the next request, so a page holds at most one request open per loop. A hidden tab pauses
 * the loop to spare the hub. `key` restarts it (for example another prediction).
 */
export function usePollLoop(step: (signal: AbortSignal) => Promise<boolean | void>, gapMs: number, active: boolean, key: unknown = null) {
  const ref = useRef(step);
  ref.current = step;
  useEffect(() => {
    if (!active) return;
    const controller = new AbortController();
    const { signal } = controller;
    const pause = (ms: number) => new Promise<void>((resolve) => {
      const id = window.setTimeout(resolve, ms);
      signal.addEventListener('abort', () => { window.clearTimeout(id); resolve(); }, { once: true });
    });
    (async () => {
      while (!signal.aborted) {
        if (document.visibilityState === 'hidden') {
          await pause(gapMs);
          continue;
        }
        let done: boolean | void = false;
        try {
          done = await ref.current(signal);
        } catch {
          // The step shows its own errors; the loop simply tries again after the pause.
        }
        if (done || signal.aborted) return;
        await pause(gapMs);
      }
    })();
    return () => controller.abort();
  }, [gapMs, active, key]);
}
