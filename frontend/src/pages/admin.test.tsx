import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import type { CreatedInvitation, Invitation, Me, Membership } from '../api/types';
import { SessionProvider } from '../session';
import { MembersPage } from './Admin';
import { InvitationAcceptPage } from './InvitationAccept';
import { fakeHub, refusal, type Routes } from '../testing/fakeHub';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  window.history.replaceState(null, '', '/');
});

const ANNE = { slug: 'st-anne', name: 'St Anne’s Hospital', agent_last_seen_at: null };
const ADMIN: Membership = { site: ANNE, role: 'admin' };
const TOKEN = 'inv_secret-from-the-link';

function me(username: string, ...memberships: Membership[]): Me {
  return { username, display_name: '', is_token: false, is_operator: false, memberships };
}

function invitation(extra: Partial<Invitation> = {}): Invitation {
  return {
    id: 5, email: 'nina@stanne.example', role: 'clinician', site: 'st-anne', status: 'pending', created_by: 'alice',
    created_at: '2026-01-01T09:00:00Z', expires_at: '2026-01-08T09:00:00Z', accepted_at: null, accepted_by: null,
    revoked_at: null, ...extra,
  };
}

const EMPTY = { count: 0, next: null, previous: null, results: [] };

function renderMembers(routes: Routes) {
  const hub = fakeHub({ 'GET /auth/me/': me('alice', ADMIN), 'GET /sites/st-anne/members/': EMPTY, ...routes });
  render(<SessionProvider><MembersPage site={ADMIN} /></SessionProvider>);
  return hub;
}

describe('inviting people to a site', () => {
  it('invites by e-mail and role, shows the link once, and never adds an account by name', async () => {
    const created: CreatedInvitation = {
      ...invitation({ role: 'admin' }), token: TOKEN, accept_url: `https://pollen.example/invitation#${TOKEN}`,
    };
    const hub = renderMembers({
      'GET /sites/st-anne/invitations/': EMPTY,
      'POST /sites/st-anne/invitations/': created,
    });
    fireEvent.click(await screen.findByText('Invite someone'));
    expect(screen.queryByLabelText(/username/i)).toBeNull();
    expect(screen.queryByLabelText(/password/i)).toBeNull();
    fireEvent.change(screen.getByLabelText('Their e-mail address'), { target: { value: ' nina@stanne.example ' } });
    fireEvent.change(screen.getByLabelText('Role'), { target: { value: 'admin' } });
    fireEvent.click(screen.getByRole('button', { name: 'Make an invitation link' }));
    const shown = await screen.findByTestId('new-invitation');
    expect((within(shown).getByLabelText('Invitation link') as HTMLInputElement).value).toBe(created.accept_url);
    expect(shown.textContent).toMatch(/only time Pollen shows it/);
    expect(hub.sent('POST', '/sites/st-anne/invitations/').map((c) => c.body)).toEqual([
      { email: 'nina@stanne.example', role: 'admin' },
    ]);
    expect(hub.sent('POST', '/sites/st-anne/members/')).toHaveLength(0);
  });

  it('lists the invitations still waiting and withdraws one after a confirmation', async () => {
    vi.stubGlobal('confirm', () => true);
    let revoked = false;
    const hub = renderMembers({
      'GET /sites/st-anne/invitations/': () => ({
        ...EMPTY, count: 2,
        results: [invitation({ status: revoked ? 'revoked' : 'pending' }), invitation({ id: 6, email: 'old@x.example', status: 'accepted' })],
      }),
      'POST /sites/st-anne/invitations/5/revoke/': () => { revoked = true; return invitation({ status: 'revoked' }); },
    });
    const table = await screen.findByTestId('invitations-table');
    expect(within(table).queryByText('old@x.example')).toBeNull(); // accepted ones show as members
    fireEvent.click(within(table).getByRole('button', { name: 'Withdraw' }));
    await waitFor(() => expect(screen.queryByTestId('invitations-table')).toBeNull());
    expect(hub.sent('POST', '/sites/st-anne/invitations/5/revoke/')).toHaveLength(1);
  });
});

function renderAccept(who: Me | null, routes: Routes) {
  window.history.replaceState(null, '', `/invitation#${TOKEN}`);
  const hub = fakeHub({
    'GET /auth/me/': who ?? refusal(403, 'not_authenticated', 'Sign in.'),
    'POST /invitations/preview/': { site: ANNE, role: 'clinician', expires_at: '2026-01-08T09:00:00Z' },
    ...routes,
  });
  render(<SessionProvider><InvitationAcceptPage /></SessionProvider>);
  return hub;
}

describe('accepting an invitation', () => {
  it('lets a new person choose a username and password, then opens their site', async () => {
    let joined = false;
    const hub = renderAccept(null, {
      'GET /auth/me/': () => (joined ? me('nina', { site: ANNE, role: 'clinician' }) : refusal(403, 'not_authenticated', 'Sign in.')),
      'POST /invitations/accept/': () => { joined = true; return me('nina', { site: ANNE, role: 'clinician' }); },
    });
    expect(await screen.findByRole('heading', { name: 'Join St Anne’s Hospital' })).toBeTruthy();
    expect(hub.sent('POST', '/invitations/preview/').map((c) => c.body)).toEqual([{ token: TOKEN }]);
    fireEvent.change(screen.getByLabelText('Choose a username'), { target: { value: 'nina' } });
    fireEvent.change(screen.getByLabelText(/Choose a password/), { target: { value: 'a-long-enough-pass' } });
    fireEvent.change(screen.getByLabelText('The password again'), { target: { value: 'a-long-enough-pass' } });
    fireEvent.click(screen.getByRole('button', { name: 'Create my account and join' }));
    await waitFor(() => expect(window.location.pathname).toBe('/sites/st-anne/datasets'));
    expect(hub.sent('POST', '/invitations/accept/').map((c) => c.body)).toEqual([
      { token: TOKEN, username: 'nina', password: 'a-long-enough-pass' },
    ]);
  });

  it('joins a signed-in person with their own account, sending the secret only', async () => {
    const hub = renderAccept(me('oscar', { site: { ...ANNE, slug: 'borough', name: 'Borough' }, role: 'admin' }), {
      'POST /invitations/accept/': me('oscar'),
    });
    fireEvent.click(await screen.findByRole('button', { name: 'Join as oscar' }));
    await waitFor(() => expect(hub.sent('POST', '/invitations/accept/')).toHaveLength(1));
    expect(hub.sent('POST', '/invitations/accept/')[0].body).toEqual({ token: TOKEN });
  });

  it('says plainly when a link is no longer valid', async () => {
    renderAccept(null, {
      'POST /invitations/preview/': refusal(404, 'invitation_invalid', 'This invitation link is not valid: it may have expired.'),
    });
    expect((await screen.findByRole('alert')).textContent).toMatch(/not valid/);
    expect(screen.queryByRole('button', { name: 'Create my account and join' })).toBeNull();
  });
});
