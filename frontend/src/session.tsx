/** Who is signed in, and at which site they are working. */
import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from 'react';
import { api, onUnauthorized, ApiError } from './api/client';
import type { Me, Membership } from './api/types';

interface SessionValue {
  me: Me | null;
  loading: boolean;
  error: ApiError | null;
  signIn: (username: string, password: string) => Promise<Me>;
  signOut: () => Promise<void>;
  refresh: () => Promise<void>;
}

const SessionContext = createContext<SessionValue | null>(null);

export function SessionProvider({ children }: { children: ReactNode }) {
  const [me, setMe] = useState<Me | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<ApiError | null>(null);

  const refresh = useCallback(async () => {
    try {
      const who = await api.get<Me>('/auth/me/');
      setMe(who.username ? who : null);
      setError(null);
    } catch (err) {
      setMe(null);
      if (err instanceof ApiError && !err.needsSignIn) setError(err);
    } finally {
      setLoading(false);
    }
  }, []);

  useEffect(() => {
    void refresh();
    return onUnauthorized(() => setMe(null));
  }, [refresh]);

  const signIn = useCallback(async (username: string, password: string) => {
    const who = await api.post<Me>('/auth/login/', { username, password });
    setMe(who);
    setError(null);
    return who;
  }, []);

  const signOut = useCallback(async () => {
    try {
      await api.post('/auth/logout/');
    } finally {
      setMe(null);
    }
  }, []);

  return (
    <SessionContext.Provider value={{ me, loading, error, signIn, signOut, refresh }}>{children}</SessionContext.Provider>
  );
}

export function useSession(): SessionValue {
  const value = useContext(SessionContext);
  if (!value) throw new Error('useSession needs a SessionProvider');
  return value;
}

const LAST_SITE = 'pollen.lastSite';

export function rememberSite(slug: string) {
  try {
    localStorage.setItem(LAST_SITE, slug);
  } catch {
    /* private mode: nothing to remember */
  }
}

/** The site to open after sign-in: the last one used, if still a member, else the first. */
export function defaultSite(me: Me): Membership | null {
  let last: string | null = null;
  try {
    last = localStorage.getItem(LAST_SITE);
  } catch {
    last = null;
  }
  return me.memberships.find((m) => m.site.slug === last) ?? me.memberships[0] ?? null;
}

export function membershipFor(me: Me | null, slug: string): Membership | null {
  return me?.memberships.find((m) => m.site.slug === slug) ?? null;
}
