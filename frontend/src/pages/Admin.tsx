import { useState, type FormEvent, type ReactNode } from 'react';
import { api, ApiError, type Page } from '../api/client';
import type { ApiToken, AuditEvent, CreatedInvitation, CreatedToken, Invitation, Member, Membership, Role } from '../api/types';
import { Link, useDocumentTitle } from '../router';
import { CopyButton, ErrorNotice, Loading, Pager, useApi } from '../components/ui';
import { ago, dateTime } from '../lib/format';
import { useSession } from '../session';

const ROLE_NAMES: Record<Role, string> = { admin: 'Administrator', clinician: 'Clinician' };

function AdminTabs({ site, current, children }: { site: Membership; current: string; children: ReactNode }) {
  const base = `/sites/${site.site.slug}/admin`;
  const tabs: [string, string][] = [['members', 'Members'], ['tokens', 'API tokens'], ['audit', 'Audit log']];
  return (
    <section>
      <h1>Site administration · {site.site.name}</h1>
      <p className="small muted">
        Site agent last heard from: {site.site.agent_last_seen_at ? ago(site.site.agent_last_seen_at) : 'never — start the site agent so uploads and training can run'}.
      </p>
      <nav className="tabs" aria-label="Administration">
        {tabs.map(([slug, name]) => (
          <Link key={slug} to={`${base}/${slug}`} aria-current={slug === current ? 'page' : undefined}>{name}</Link>
        ))}
      </nav>
      {children}
    </section>
  );
}

export function MembersPage({ site }: { site: Membership }) {
  useDocumentTitle(`Members · ${site.site.name}`);
  const { me, refresh } = useSession();
  const [page, setPage] = useState(1);
  const members = useApi((signal) => api.get<Page<Member>>(`/sites/${site.site.slug}/members/`, { page, page_size: 50 }, signal), [site.site.slug, page]);
  const [error, setError] = useState<unknown>(null);

  const changeRole = async (member: Member, role: Role) => {
    setError(null);
    try {
      await api.patch(`/sites/${site.site.slug}/members/${member.id}/`, { role });
      members.reload();
      if (member.username === me?.username) void refresh();
    } catch (err) {
      setError(err);
    }
  };
  const remove = async (member: Member) => {
    if (!window.confirm(`Remove ${member.username} from ${site.site.name}? They lose access to this site straight away.`)) return;
    setError(null);
    try {
      await api.del(`/sites/${site.site.slug}/members/${member.id}/`);
      members.reload();
    } catch (err) {
      setError(err);
    }
  };

  return (
    <AdminTabs site={site} current="members">
      <Invitations site={site} onJoined={members.reload} />
      <ErrorNotice error={error} />
      <ErrorNotice error={members.error} onRetry={members.reload} />
      {members.loading && !members.data && <Loading what="Loading members" />}
      {members.data && (
        <div className="table-wrap">
          <table className="table" data-testid="members-table">
            <caption className="visually-hidden">Members of {site.site.name}</caption>
            <thead><tr><th scope="col">Username</th><th scope="col">Email</th><th scope="col">Role</th><th scope="col">Member since</th><th scope="col"><span className="visually-hidden">Actions</span></th></tr></thead>
            <tbody>
              {members.data.results.map((m) => (
                <tr key={m.id}>
                  <th scope="row">{m.username}{m.username === me?.username ? ' (you)' : ''}</th>
                  <td>{m.email || '—'}</td>
                  <td>
                    <label className="visually-hidden" htmlFor={`role-${m.id}`}>Role of {m.username}</label>
                    <select id={`role-${m.id}`} value={m.role} onChange={(e) => changeRole(m, e.target.value as Role)}>
                      {Object.entries(ROLE_NAMES).map(([value, name]) => <option key={value} value={value}>{name}</option>)}
                    </select>
                  </td>
                  <td>{dateTime(m.created_at)}</td>
                  <td><button type="button" className="btn btn-small btn-danger" onClick={() => remove(m)}>Remove</button></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {members.data && <Pager page={page} count={members.data.count} pageSize={50} onPage={setPage} />}
    </AdminTabs>
  );
}

/**
 * People join by accepting an invitation: the hub has no way to add an account by name, so a site
 * never learns which usernames exist at other sites and never annexes another site's people.
 */
function Invitations({ site, onJoined }: { site: Membership; onJoined: () => void }) {
  const slug = site.site.slug;
  const invitations = useApi((signal) => api.get<Page<Invitation>>(`/sites/${slug}/invitations/`, { page_size: 50 }, signal), [slug]);
  const [created, setCreated] = useState<CreatedInvitation | null>(null);
  const [error, setError] = useState<unknown>(null);
  const pending = (invitations.data?.results ?? []).filter((i) => i.status === 'pending');

  const revoke = async (invitation: Invitation) => {
    if (!window.confirm(`Withdraw the invitation for ${invitation.email}? Its link stops working at once.`)) return;
    setError(null);
    try {
      await api.post(`/sites/${slug}/invitations/${invitation.id}/revoke/`);
      invitations.reload();
      onJoined(); // it may have been accepted meanwhile
    } catch (err) {
      setError(err);
    }
  };

  return (
    <>
      <InviteForm site={site} onCreated={(i) => { setCreated(i); invitations.reload(); }} />
      {created && (
        <div className="card token-once" role="alert" data-testid="new-invitation">
          <h2>Send this link to {created.email}</h2>
          <p>
            This is the only time Pollen shows it. Send it through your hospital’s own e-mail or messaging. It works once, until{' '}
            {dateTime(created.expires_at)}: {created.email} opens it, signs in or chooses a username and password, and joins{' '}
            {site.site.name} as {ROLE_NAMES[created.role].toLowerCase()}.
          </p>
          <div className="token-row">
            <label className="visually-hidden" htmlFor="new-invitation-link">Invitation link</label>
            <input id="new-invitation-link" readOnly value={created.accept_url} onFocus={(e) => e.target.select()} className="mono" data-testid="new-invitation-link" />
            <CopyButton text={created.accept_url} label="Copy link" />
          </div>
          <button type="button" className="btn btn-small" onClick={() => setCreated(null)}>I have sent it</button>
        </div>
      )}
      <ErrorNotice error={error} />
      <ErrorNotice error={invitations.error} onRetry={invitations.reload} />
      {pending.length > 0 && (
        <div className="table-wrap">
          <table className="table" data-testid="invitations-table">
            <caption className="visually-hidden">Invitations waiting to be accepted</caption>
            <thead><tr><th scope="col">Invited</th><th scope="col">Role</th><th scope="col">By</th><th scope="col">Link works until</th><th scope="col"><span className="visually-hidden">Actions</span></th></tr></thead>
            <tbody>
              {pending.map((i) => (
                <tr key={i.id}>
                  <th scope="row">{i.email}</th>
                  <td>{ROLE_NAMES[i.role]}</td>
                  <td>{i.created_by ?? '—'}</td>
                  <td>{dateTime(i.expires_at)}</td>
                  <td><button type="button" className="btn btn-small btn-danger" onClick={() => revoke(i)}>Withdraw</button></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

function InviteForm({ site, onCreated }: { site: Membership; onCreated: (invitation: CreatedInvitation) => void }) {
  const [form, setForm] = useState({ email: '', role: 'clinician' as Role });
  const [error, setError] = useState<unknown>(null);
  const fields = error instanceof ApiError ? error.fields : {};
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    try {
      const invitation = await api.post<CreatedInvitation>(`/sites/${site.site.slug}/invitations/`, { email: form.email.trim(), role: form.role });
      setForm({ email: '', role: 'clinician' });
      onCreated(invitation);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <details className="card">
      <summary>Invite someone</summary>
      <form onSubmit={submit}>
        <p className="small muted">
          Pollen makes a link that works once, for 7 days. The person opens it and joins {site.site.name}, with the Pollen
          account they have or a new one they create.
        </p>
        <div className="grid-fields">
          <div className="field">
            <label htmlFor="invite-email">Their e-mail address</label>
            <input id="invite-email" type="email" autoComplete="off" required value={form.email}
              onChange={(e) => setForm({ ...form, email: e.target.value })} aria-invalid={fields.email ? true : undefined} />
            {fields.email && <p className="field-error">{fields.email}</p>}
          </div>
          <div className="field">
            <label htmlFor="invite-role">Role</label>
            <select id="invite-role" value={form.role} onChange={(e) => setForm({ ...form, role: e.target.value as Role })}>
              {Object.entries(ROLE_NAMES).map(([value, name]) => <option key={value} value={value}>{name}</option>)}
            </select>
          </div>
        </div>
        <ErrorNotice error={error} />
        <button type="submit" className="btn btn-primary" disabled={!form.email.trim()}>Make an invitation link</button>
      </form>
    </details>
  );
}

export function TokensPage({ site }: { site: Membership }) {
  useDocumentTitle(`API tokens · ${site.site.name}`);
  const [page, setPage] = useState(1);
  const tokens = useApi((signal) => api.get<Page<ApiToken>>(`/sites/${site.site.slug}/tokens/`, { page, page_size: 50 }, signal), [site.site.slug, page]);
  const [created, setCreated] = useState<CreatedToken | null>(null);
  const [error, setError] = useState<unknown>(null);

  const revoke = async (token: ApiToken) => {
    if (!window.confirm(`Revoke “${token.name}”? Systems using it stop working at once.`)) return;
    setError(null);
    try {
      await api.post(`/sites/${site.site.slug}/tokens/${token.id}/revoke/`);
      tokens.reload();
    } catch (err) {
      setError(err);
    }
  };

  return (
    <AdminTabs site={site} current="tokens">
      <p className="muted">Tokens let hospital systems (PACS, research pipelines) and the site agent call Pollen without a person signing in.</p>
      <CreateToken site={site} onCreated={(t) => { setCreated(t); tokens.reload(); }} />
      {created && (
        <div className="card token-once" role="alert" data-testid="new-token">
          <h2>Copy your new token now</h2>
          <p>This is the only time Pollen shows it. Store it in your system’s secret store; if it is lost, revoke it and create another.</p>
          <div className="token-row">
            <label className="visually-hidden" htmlFor="new-token-value">New token</label>
            <input id="new-token-value" readOnly value={created.token} onFocus={(e) => e.target.select()} className="mono" data-testid="new-token-value" />
            <CopyButton text={created.token} label="Copy token" />
          </div>
          <button type="button" className="btn btn-small" onClick={() => setCreated(null)}>I have stored it</button>
        </div>
      )}
      <ErrorNotice error={error} />
      <ErrorNotice error={tokens.error} onRetry={tokens.reload} />
      {tokens.loading && !tokens.data && <Loading what="Loading tokens" />}
      {tokens.data && tokens.data.results.length === 0 && <p className="muted">No tokens yet.</p>}
      {tokens.data && tokens.data.results.length > 0 && (
        <div className="table-wrap">
          <table className="table" data-testid="tokens-table">
            <thead><tr><th scope="col">Name</th><th scope="col">Used by</th><th scope="col">Acts as</th><th scope="col">Starts with</th><th scope="col">Last used</th><th scope="col">Expires</th><th scope="col">State</th><th scope="col"><span className="visually-hidden">Actions</span></th></tr></thead>
            <tbody>
              {tokens.data.results.map((t) => {
                const expired = !!t.expires_at && new Date(t.expires_at) < new Date();
                return (
                  <tr key={t.id}>
                    <th scope="row">{t.name}</th>
                    <td>{t.kind === 'agent' ? 'Site agent' : 'Hospital system'}</td>
                    <td>{ROLE_NAMES[t.role]}</td>
                    <td className="mono">{t.prefix}…</td>
                    <td>{t.last_used_at ? ago(t.last_used_at) : 'never'}</td>
                    <td>{t.expires_at ? dateTime(t.expires_at) : 'never'}</td>
                    <td>{t.revoked_at ? <span className="status status-rejected">Revoked</span> : expired ? <span className="status status-pending">Expired</span> : <span className="status status-accepted">Active</span>}</td>
                    <td>{!t.revoked_at && <button type="button" className="btn btn-small btn-danger" onClick={() => revoke(t)}>Revoke</button>}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {tokens.data && <Pager page={page} count={tokens.data.count} pageSize={50} onPage={setPage} />}
    </AdminTabs>
  );
}

function CreateToken({ site, onCreated }: { site: Membership; onCreated: (t: CreatedToken) => void }) {
  const [name, setName] = useState('');
  const [kind, setKind] = useState<'system' | 'agent'>('system');
  const [role, setRole] = useState<Role>('clinician');
  const [days, setDays] = useState('90');
  const [error, setError] = useState<unknown>(null);
  const fields = error instanceof ApiError ? error.fields : {};
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    try {
      const token = await api.post<CreatedToken>(`/sites/${site.site.slug}/tokens/`, {
        name: name.trim(), kind, role, expires_in_days: days ? Number(days) : null,
      });
      setName('');
      onCreated(token);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form className="card form-card" onSubmit={submit} aria-labelledby="create-token-title">
      <h2 id="create-token-title">Create a token</h2>
      <div className="grid-fields">
        <div className="field">
          <label htmlFor="token-name">Name</label>
          <input id="token-name" required value={name} onChange={(e) => setName(e.target.value)} placeholder="e.g. PACS bridge" aria-invalid={fields.name ? true : undefined} />
          {fields.name && <p className="field-error">{fields.name}</p>}
        </div>
        <div className="field">
          <label htmlFor="token-kind">Used by</label>
          <select id="token-kind" value={kind} onChange={(e) => setKind(e.target.value as 'system' | 'agent')}>
            <option value="system">A hospital system</option>
            <option value="agent">The site agent</option>
          </select>
        </div>
        <div className="field">
          <label htmlFor="token-role">Acts as</label>
          <select id="token-role" value={role} onChange={(e) => setRole(e.target.value as Role)}>
            {Object.entries(ROLE_NAMES).map(([value, label]) => <option key={value} value={value}>{label}</option>)}
          </select>
        </div>
        <div className="field">
          <label htmlFor="token-days">Expires after (days)</label>
          <input id="token-days" type="number" min={1} max={3650} value={days} onChange={(e) => setDays(e.target.value)} aria-describedby="token-days-help" aria-invalid={fields.expires_in_days ? true : undefined} />
          <p className="small muted" id="token-days-help">Leave empty for a token that never expires.</p>
          {fields.expires_in_days && <p className="field-error">{fields.expires_in_days}</p>}
        </div>
      </div>
      <ErrorNotice error={error} />
      <button type="submit" className="btn btn-primary" disabled={!name.trim()}>Create token</button>
    </form>
  );
}

export function AuditPage({ site }: { site: Membership }) {
  useDocumentTitle(`Audit log · ${site.site.name}`);
  const [filters, setFilters] = useState({ action: '', actor: '', since: '', until: '' });
  const [applied, setApplied] = useState(filters);
  const [page, setPage] = useState(1);
  const events = useApi(
    (signal) =>
      api.get<Page<AuditEvent>>(`/sites/${site.site.slug}/audit/`, {
        action: applied.action.trim(),
        actor: applied.actor.trim(),
        since: applied.since ? new Date(`${applied.since}T00:00:00`).toISOString() : '',
        until: applied.until ? new Date(new Date(`${applied.until}T00:00:00`).getTime() + 86400000).toISOString() : '',
        page,
        page_size: 50,
      }, signal),
    [site.site.slug, applied, page],
  );
  const submit = (event: FormEvent) => {
    event.preventDefault();
    setPage(1);
    setApplied(filters);
  };
  const field = (key: keyof typeof filters, label: string, type = 'text', placeholder = '') => (
    <div className="field">
      <label htmlFor={`audit-${key}`}>{label}</label>
      <input id={`audit-${key}`} type={type} value={filters[key]} placeholder={placeholder} onChange={(e) => setFilters({ ...filters, [key]: e.target.value })} />
    </div>
  );
  return (
    <AdminTabs site={site} current="audit">
      <form className="filters" onSubmit={submit} aria-label="Filter the audit log">
        {field('action', 'Action', 'text', 'e.g. token.create')}
        {field('actor', 'Who', 'text', 'username or token')}
        {field('since', 'From', 'date')}
        {field('until', 'To (inclusive)', 'date')}
        <div className="field field-button">
          <button type="submit" className="btn btn-primary">Show</button>
        </div>
      </form>
      <ErrorNotice error={events.error} onRetry={events.reload} />
      {events.loading && !events.data && <Loading what="Loading the audit log" />}
      {events.data && events.data.results.length === 0 && <p className="muted">No events match these filters.</p>}
      {events.data && events.data.results.length > 0 && (
        <div className="table-wrap">
          <table className="table" data-testid="audit-table">
            <thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">Action</th><th scope="col">On</th><th scope="col">Details</th><th scope="col">From</th></tr></thead>
            <tbody>
              {events.data.results.map((e) => (
                <tr key={e.id}>
                  <td>{dateTime(e.created_at)}</td>
                  <td>{e.actor}</td>
                  <td className="mono">{e.action}</td>
                  <td>{e.target_type}{e.target_id ? ` #${e.target_id}` : ''}</td>
                  <td className="small">{Object.entries(e.detail ?? {}).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(' · ')}</td>
                  <td className="mono small">{e.ip_address ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {events.data && <Pager page={page} count={events.data.count} pageSize={50} onPage={setPage} />}
    </AdminTabs>
  );
}
