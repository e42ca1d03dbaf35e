import { api, ApiError, type Page } from '../api/client';
import type { Dataset } from '../api/types';

/**
 * New images brought in only to be checked with a model live in one plain dataset per site, so that they
 * stay in the site's storage. It holds no labels and is never meant for training: it is made on the first
 * upload (never by merely opening a page), and training choices leave it out.
 */
export const INBOX_NAME = 'Images checked with a model';

export function isApplyInbox(dataset: Pick<Dataset, 'name'>): boolean {
  return dataset.name === INBOX_NAME;
}

/** Datasets one can train on: every dataset but the holding place for images checked with a model. */
export function trainable<T extends Pick<Dataset, 'name'>>(datasets: T[]): T[] {
  return datasets.filter((d) => !isApplyInbox(d));
}

async function findInbox(slug: string): Promise<Dataset | null> {
  const list = await api.get<Page<Dataset>>('/datasets/', { site: slug, search: INBOX_NAME, page_size: 100 });
  return list.results.find(isApplyInbox) ?? null;
}

/** The site's holding dataset, made now if it does not exist yet (call this only when images are sent). */
export async function inboxEnsure(slug: string): Promise<Dataset> {
  const found = await findInbox(slug);
  if (found) return found;
  try {
    return await api.post<Dataset>('/datasets/', {
      site: slug,
      name: INBOX_NAME,
      description: 'Images brought in to be checked with a model from the marketplace.',
    });
  } catch (err) {
    // Someone at the site made it a moment ago (the name is unique per site): use theirs.
    const again = err instanceof ApiError ? await findInbox(slug) : null;
    if (again) return again;
    throw err;
  }
}

/** A page of datasets for a training choice: the holding dataset left out. */
export function withoutInbox<T extends Pick<Dataset, 'name'>>(page: Page<T>): Page<T> {
  return { ...page, results: trainable(page.results) };
}
