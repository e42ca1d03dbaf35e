import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, render, screen, waitFor, within } from '@testing-library/react';
import type { Me } from '../api/types';
import { App } from '../App';
import { SessionProvider } from '../session';
import { fakeHub, type Routes } from '../testing/fakeHub';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const ME: Me = {
  username: 'bert-admin', display_name: 'Bert', is_token: false, is_operator: false,
  memberships: [{ site: { slug: 'borough', name: 'Borough General', agent_last_seen_at: null }, role: 'admin' }],
};

function renderAt(path: string, routes: Routes) {
  window.history.replaceState(null, '', path);
  const hub = fakeHub({ 'GET /auth/me/': ME, ...routes });
  render(<SessionProvider><App /></SessionProvider>);
  return hub;
}

const waiting = (count: number) => ({ count, next: null, previous: null, results: [] });

describe('the navigation', () => {
  it('shows how many cross-site invitations wait for this site’s answer', async () => {
    const hub = renderAt('/sites/borough/datasets', { 'GET /federated-jobs/': waiting(2) });
    const nav = await screen.findByRole('navigation', { name: 'Main' });
    const link = await within(nav).findByRole('link', { name: 'Across hospitals, 2 invitations waiting for an answer' });
    expect(within(link).getByTestId('invitation-badge').textContent).toMatch(/^2/);
    const asked = hub.sent('GET', '/federated-jobs/');
    expect(asked[0].query).toMatchObject({ site: 'borough', awaiting_answer: 'true' });
  });

  it('shows no badge when nothing waits', async () => {
    const hub = renderAt('/sites/borough/datasets', { 'GET /federated-jobs/': waiting(0) });
    const nav = await screen.findByRole('navigation', { name: 'Main' });
    await waitFor(() => expect(hub.sent('GET', '/federated-jobs/')).toHaveLength(1));
    expect(within(nav).getByRole('link', { name: 'Across hospitals' })).toBeTruthy();
    expect(screen.queryByTestId('invitation-badge')).toBeNull();
  });
});

describe('the footer', () => {
  it('links the API documentation for hospital systems on every page', async () => {
    renderAt('/sites/borough/datasets', { 'GET /federated-jobs/': waiting(0) });
    const footer = await screen.findByRole('contentinfo');
    const link = within(footer).getByRole('link', { name: 'API for hospital systems' });
    expect(link.getAttribute('href')).toBe('/api/v1/docs/');
  });
});
