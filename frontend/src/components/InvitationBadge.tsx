import { useState } from 'react';
import { api, type Page } from '../api/client';
import type { FederatedJob } from '../api/types';
import { usePollLoop } from '../lib/poll';
import { plural } from '../lib/format';

/** Looked at again after each page change, and every minute while the tab is open. */
const EVERY_MS = 60_000;

/**
 * How many invitations to train across hospitals wait for this site's answer, beside the link to that
 * page: an invitation nobody opens holds up every other hospital. Nothing shows when none waits (or when
 * the hub has no cross-site training).
 */
export function InvitationBadge({ slug, pathname }: { slug: string; pathname: string }) {
  const [count, setCount] = useState(0);
  usePollLoop(
    async (signal) => {
      try {
        const waiting = await api.get<Page<FederatedJob>>('/federated-jobs/', { site: slug, awaiting_answer: 'true', page_size: 1 }, signal);
        setCount(waiting.count);
      } catch (err) {
        if ((err as Error).name !== 'AbortError') setCount(0);
      }
    },
    EVERY_MS,
    true,
    `${slug} ${pathname}`,
  );
  if (!count) return null;
  return (
    <span className="nav-badge" data-testid="invitation-badge">
      <span aria-hidden="true">{count}</span>
      <span className="visually-hidden">{`, ${plural(count, 'invitation')} waiting for an answer`}</span>
    </span>
  );
}
