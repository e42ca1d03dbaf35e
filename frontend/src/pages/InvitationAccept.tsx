import { useState, type FormEvent } from 'react';
import { api, ApiError } from '../api/client';
import type { InvitationPreview, Me } from '../api/types';
import { navigate, useDocumentTitle } from '../router';
import { useSession } from '../session';
import { ErrorNotice, Loading, useApi } from '../components/ui';

const ROLE_WORDS = { admin: 'an administrator', clinician: 'a clinician' } as const;

/** The secret travels in the link's #fragment, which browsers never send to a server or a log. */
function tokenFromLink(): string {
  return decodeURIComponent(window.location.hash.replace(/^#/, ''));
}

/**
 * Where an invitation link lands. A signed-in person joins with their account; anyone else signs in
 * first or chooses a username and password for a new account. The hub checks the link each time.
 */
export function InvitationAcceptPage() {
  useDocumentTitle('Join a site');
  const [token] = useState(tokenFromLink);
  const { me, refresh, signOut } = useSession();
  const preview = useApi(
    () => (token ? api.post<InvitationPreview>('/invitations/preview/', { token }) : Promise.reject(new Error(
      'This link has no invitation in it. Open the whole link you were sent, or ask your site administrator for a new one.',
    ))),
    [token],
  );
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const join = async (credentials: Record<string, string> = {}) => {
    setBusy(true);
    setError(null);
    try {
      await api.post<Me>('/invitations/accept/', { token, ...credentials });
      await refresh();
      navigate(`/sites/${preview.data?.site.slug ?? ''}/datasets`, { replace: true });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" className="signin">
      <section className="card signin-card" aria-labelledby="invitation-title">
        <p className="brand brand-large"><span className="brand-dot" aria-hidden="true" /> Pollen</p>
        <h1 id="invitation-title">{preview.data ? `Join ${preview.data.site.name}` : 'Join a site'}</h1>
        {preview.loading && <Loading what="Checking the invitation" />}
        <ErrorNotice error={preview.error} />
        {preview.data && (
          <>
            <p className="muted">
              You are invited to {preview.data.site.name} as {ROLE_WORDS[preview.data.role]}. Images never leave the hospital;
              you train and apply models from the dashboard.
            </p>
            <ErrorNotice error={error} />
            {me ? (
              <>
                <button type="button" className="btn btn-primary btn-block" disabled={busy} onClick={() => join()}>
                  Join as {me.username}
                </button>
                <p className="small muted">
                  Not you?{' '}
                  <button type="button" className="btn btn-small" onClick={() => void signOut()}>Sign out</button> to create a new
                  account or sign in with another.
                </p>
              </>
            ) : (
              <NewOrExisting busy={busy} error={error} onCreate={(username, password) => join({ username, password })} />
            )}
          </>
        )}
      </section>
    </main>
  );
}

function NewOrExisting({ busy, error, onCreate }: { busy: boolean; error: unknown; onCreate: (username: string, password: string) => void }) {
  const { signIn } = useSession();
  const [existing, setExisting] = useState(false);
  const [form, setForm] = useState({ username: '', password: '', repeat: '' });
  const [signInError, setSignInError] = useState<unknown>(null);
  const fields = error instanceof ApiError ? error.fields : {};
  const mismatch = !existing && form.repeat !== '' && form.repeat !== form.password;

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!existing) return onCreate(form.username.trim(), form.password);
    setSignInError(null);
    try {
      await signIn(form.username.trim(), form.password); // then "Join as …" appears
    } catch (err) {
      setSignInError(err);
    }
  };

  return (
    <form onSubmit={submit} noValidate>
      <div className="tabs" role="group" aria-label="Your account">
        <button type="button" className="btn btn-small" aria-pressed={!existing} onClick={() => setExisting(false)}>I am new to Pollen</button>
        <button type="button" className="btn btn-small" aria-pressed={existing} onClick={() => setExisting(true)}>I have a Pollen account</button>
      </div>
      <ErrorNotice error={signInError} />
      <div className="field">
        <label htmlFor="invite-username">{existing ? 'Your username' : 'Choose a username'}</label>
        <input id="invite-username" autoComplete="username" required value={form.username}
          onChange={(e) => setForm({ ...form, username: e.target.value })} aria-invalid={fields.username ? true : undefined} />
        {!existing && fields.username && <p className="field-error">{fields.username}</p>}
      </div>
      <div className="field">
        <label htmlFor="invite-password">{existing ? 'Your password' : 'Choose a password (10 characters or more)'}</label>
        <input id="invite-password" type="password" autoComplete={existing ? 'current-password' : 'new-password'} required
          value={form.password} onChange={(e) => setForm({ ...form, password: e.target.value })}
          aria-invalid={fields.password ? true : undefined} />
        {!existing && fields.password && <p className="field-error">{fields.password}</p>}
      </div>
      {!existing && (
        <div className="field">
          <label htmlFor="invite-repeat">The password again</label>
          <input id="invite-repeat" type="password" autoComplete="new-password" required value={form.repeat}
            onChange={(e) => setForm({ ...form, repeat: e.target.value })} aria-invalid={mismatch ? true : undefined} />
          {mismatch && <p className="field-error">The two passwords differ.</p>}
        </div>
      )}
      <button type="submit" className="btn btn-primary btn-block"
        disabled={busy || !form.username.trim() || !form.password || (!existing && (mismatch || !form.repeat))}>
        {existing ? 'Sign in' : 'Create my account and join'}
      </button>
    </form>
  );
}
