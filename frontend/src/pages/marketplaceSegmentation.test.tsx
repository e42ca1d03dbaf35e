import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, render, screen } from '@testing-library/react';
import type { Membership } from '../api/types';
import { ModelPage } from './Marketplace';
import { fakeHub } from '../testing/fakeHub';
import { EVALUATION } from '../testing/fixtures';

// Its own file: whether the hub offers the marketplace is asked once per page load (apiHasPath).
afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const SITE: Membership = { site: { slug: 'st-anne', name: 'St Anne', agent_last_seen_at: null }, role: 'clinician' };

describe('an outlining model in the marketplace', () => {
  it('says what it outlines and shows its publisher’s Dice card, with no AUC column', async () => {
    const version = {
      id: 11, published_model: 4, model_name: 'Lesion outliner', site: 'st-anne', number: 1, status: 'published' as const, status_text: 'Published',
      status_reason: '', attempt: 1, model_version: null, weights_sha256: 'ab'.repeat(32), manifest_sha256: 'cd'.repeat(32), weights_bytes: 1024, auc: null,
      card: { task: 'segmentation' }, error_code: '', message: '', created_at: '', published_at: '2026-01-02T10:00:00Z', status_changed_at: null, can_manage: false,
    };
    fakeHub({
      'GET /marketplace/models/4/': {
        id: 4, name: 'Lesion outliner', site: 'st-anne', site_name: 'St Anne', modality: 'ultrasound', task: 'segmentation', architecture: 'unet_efficientnet_lite0',
        label_names: ['background', 'lesion'], visibility: 'consortium', named_sites: null, intended_use: '', limitations: '',
        latest_version: { id: 11, number: 1, status: 'published', auc: null, positive_class: '', weights_sha256: '', published_at: '' },
        version_count: 1, created_at: '', updated_at: '', versions: [version], card: { task: 'segmentation', metrics: EVALUATION },
        lineage: { parents: [], descendants: [] }, positive_class: '', evaluations: [],
      },
      'GET /datasets/': { count: 0, next: null, previous: null, results: [] },
      'GET /marketplace/evaluations/': { count: 0, next: null, previous: null, results: [] },
    }, { schemaPaths: ['/marketplace/models/'] });
    const me = { username: 'a', display_name: '', is_token: false, is_operator: false, memberships: [{ site: SITE.site, role: 'clinician' as const }] };
    render(<ModelPage me={me} params={{ id: '4' }} />);
    expect((await screen.findByText(/outlines lesion/)).textContent).not.toMatch(/tells apart/);
    expect(screen.getByTestId('tile-dice').textContent).toMatch(/^Overlap with the expert’s outline \(Dice\)0\.80/);
    expect(screen.queryByRole('columnheader', { name: 'Separates cases (AUC)' })).toBeNull();
    expect(screen.getByTestId('no-outline-results')).toBeTruthy();
    expect(screen.queryByTestId('site-results')).toBeNull();
  });
});
