import { useState, type FormEvent } from 'react';
import { ApiError } from '../api/client';
import { navigate, useDocumentTitle, useLocation } from '../router';
import { defaultSite, useSession } from '../session';
import { ErrorNotice } from '../components/ui';

export function SignInPage() {
  useDocumentTitle('Sign in');
  const { signIn } = useSession();
  const { search } = useLocation();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const fields = error instanceof ApiError ? error.fields : {};

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const me = await signIn(username.trim(), password);
      const next = search.get('next');
      const site = defaultSite(me);
      navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : site ? `/sites/${site.site.slug}/datasets` : '/', { replace: true });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" className="signin">
      <form className="card signin-card" onSubmit={submit} noValidate aria-labelledby="signin-title">
        <p className="brand brand-large">
          <span className="brand-dot" aria-hidden="true" /> Pollen
        </p>
        <h1 id="signin-title">Sign in</h1>
        <p className="muted">Train and share imaging models without images ever leaving your hospital.</p>
        <ErrorNotice error={error} />
        <div className="field">
          <label htmlFor="username">Username</label>
          <input
            id="username"
            name="username"
            autoComplete="username"
            autoFocus
            required
            value={username}
            onChange={(e) => setUsername(e.target.value)}
            aria-invalid={fields.username ? true : undefined}
          />
          {fields.username && <p className="field-error">{fields.username}</p>}
        </div>
        <div className="field">
          <label htmlFor="password">Password</label>
          <input
            id="password"
            name="password"
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            aria-invalid={fields.password ? true : undefined}
          />
          {fields.password && <p className="field-error">{fields.password}</p>}
        </div>
        <button type="submit" className="btn btn-primary btn-block" disabled={busy || !username || !password}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <p className="muted small">Forgotten your password? Ask your site administrator to reset it.</p>
      </form>
    </main>
  );
}
