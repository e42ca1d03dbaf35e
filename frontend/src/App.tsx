import type { ReactNode } from 'react';
import { Link, Redirect, matchPath, navigate, useLocation } from './router';
import { defaultSite, membershipFor, rememberSite, useSession } from './session';
import { ErrorNotice, Loading } from './components/ui';
import { SignInPage } from './pages/SignIn';
import { InvitationAcceptPage } from './pages/InvitationAccept';
import { DatasetsPage } from './pages/Datasets';
import { DatasetPage } from './pages/Dataset';
import { TrainPage } from './pages/Train';
import { JobsPage } from './pages/Jobs';
import { JobPage } from './pages/Job';
import { MembersPage, TokensPage, AuditPage } from './pages/Admin';
import { NotFoundPage, NotMemberPage } from './pages/Misc';
import { MarketplacePage, ModelPage } from './pages/Marketplace';
import { ApplyPage } from './pages/Apply';
import { FederatedJobPage, FederatedPage } from './pages/Federated';
import { NewFederatedJobPage } from './pages/FederatedNew';
import { InvitationBadge } from './components/InvitationBadge';
import type { Me, Membership } from './api/types';

type SitePage = (props: { site: Membership; params: Record<string, string> }) => ReactNode;

const SITE_ROUTES: [string, SitePage, boolean][] = [
  ['/sites/:slug/datasets', DatasetsPage, false],
  ['/sites/:slug/datasets/:id', DatasetPage, false],
  ['/sites/:slug/train', TrainPage, false],
  ['/sites/:slug/jobs', JobsPage, false],
  ['/sites/:slug/jobs/:id', JobPage, false],
  ['/sites/:slug/apply', ApplyPage, false],
  ['/sites/:slug/federated', FederatedPage, false],
  ['/sites/:slug/federated/new', NewFederatedJobPage, false],
  ['/sites/:slug/federated/:id', FederatedJobPage, false],
  ['/sites/:slug/admin/members', MembersPage, true],
  ['/sites/:slug/admin/tokens', TokensPage, true],
  ['/sites/:slug/admin/audit', AuditPage, true],
];

/** Pages that belong to no one site. */
const GLOBAL_ROUTES: [string, (props: { me: Me; params: Record<string, string> }) => ReactNode][] = [
  ['/marketplace', () => <MarketplacePage />],
  ['/marketplace/models/:id', ({ me, params }) => <ModelPage me={me} params={params} />],
];

export function App() {
  const { me, loading, error } = useSession();
  const { pathname, search } = useLocation();

  if (loading) return <Loading what="Opening Pollen" />;
  // An invitation link opens for anyone: the invitee may have no account yet.
  if (pathname === '/invitation') return <InvitationAcceptPage />;
  if (pathname === '/sign-in') {
    if (me) return <Redirect to={search.get('next') || '/'} />;
    return <SignInPage />;
  }
  if (!me) {
    if (error) return <main className="page"><ErrorNotice error={error} onRetry={() => window.location.reload()} /></main>;
    const next = pathname === '/' ? '' : `?next=${encodeURIComponent(pathname + (search.toString() ? `?${search}` : ''))}`;
    return <Redirect to={`/sign-in${next}`} />;
  }
  return <Shell me={me} pathname={pathname} />;
}

function Shell({ me, pathname }: { me: Me; pathname: string }) {
  const slugMatch = /^\/sites\/([^/]+)/.exec(pathname);
  const slug = slugMatch ? decodeURIComponent(slugMatch[1]) : null;
  const current = slug ? membershipFor(me, slug) : defaultSite(me);

  let content: ReactNode;
  if (pathname === '/') {
    const site = defaultSite(me);
    content = site ? <Redirect to={`/sites/${site.site.slug}/datasets`} /> : <NoSites />;
  } else if (GLOBAL_ROUTES.some(([pattern]) => matchPath(pattern, pathname))) {
    const [pattern, Page] = GLOBAL_ROUTES.find(([p]) => matchPath(p, pathname))!;
    content = <Page key={pathname} me={me} params={matchPath(pattern, pathname)!} />;
  } else if (pathname === '/apply' || pathname === '/federated') {
    const site = defaultSite(me);
    content = site ? <Redirect to={`/sites/${site.site.slug}${pathname}`} /> : <NoSites />;
  } else {
    content = <NotFoundPage />;
    for (const [pattern, Page, adminOnly] of SITE_ROUTES) {
      const params = matchPath(pattern, pathname);
      if (!params) continue;
      const site = membershipFor(me, params.slug);
      if (!site) content = <NotMemberPage />;
      else if (adminOnly && site.role !== 'admin') content = <NotMemberPage adminOnly />;
      else {
        rememberSite(site.site.slug);
        content = <Page key={pathname} site={site} params={params} />;
      }
      break;
    }
  }

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <Header me={me} current={current} pathname={pathname} />
      <main id="main" className="page" tabIndex={-1}>
        {content}
      </main>
      <Footer />
    </>
  );
}

function Footer() {
  // The API documentation is served by the hub itself, outside this app: a plain link, not a route.
  return (
    <footer className="page muted">
      Connecting a PACS, a lab system or a research pipeline? <a href="/api/v1/docs/">API for hospital systems</a>
    </footer>
  );
}

function Header({ me, current, pathname }: { me: Me; current: Membership | null; pathname: string }) {
  const { signOut } = useSession();
  const base = current ? `/sites/${current.site.slug}` : '';
  const section = current && pathname.startsWith(`${base}/`) ? pathname.slice(base.length) : '/datasets';

  const switchSite = (slug: string) => {
    // Keep the section (datasets, train, admin…) but drop ids that belong to the other site.
    const target = membershipFor(me, slug);
    const top = section.split('/').filter(Boolean);
    let rest = top[0] === 'admin' ? `/admin/${top[1] ?? 'members'}` : `/${top[0] ?? 'datasets'}`;
    if (top[0] === 'admin' && target?.role !== 'admin') rest = '/datasets';
    navigate(`/sites/${slug}${rest}`);
  };

  const links: [string, string][] = [
    ...(current
      ? ([
          [`${base}/datasets`, 'Datasets'],
          [`${base}/train`, 'Train a model'],
          [`${base}/jobs`, 'Training runs'],
        ] as [string, string][])
      : []),
    ['/marketplace', 'Marketplace'],
    ...(current
      ? ([
          [`${base}/apply`, 'Apply a model'],
          [`${base}/federated`, 'Across hospitals'],
        ] as [string, string][])
      : []),
  ];
  const isActive = (href: string) => pathname === href || pathname.startsWith(`${href}/`);

  return (
    <header className="topbar">
      <div className="topbar-row">
        <Link to="/" className="brand" aria-label="Pollen home">
          <span className="brand-dot" aria-hidden="true" /> Pollen
        </Link>
        {me.memberships.length > 0 && (
          <div className="site-switcher">
            <label htmlFor="site-switcher">Site</label>
            <select id="site-switcher" value={current?.site.slug ?? ''} onChange={(e) => switchSite(e.target.value)}>
              {!current && <option value="">Choose a site</option>}
              {me.memberships.map((m) => (
                <option key={m.site.slug} value={m.site.slug}>
                  {m.site.name}
                </option>
              ))}
            </select>
            {current && <span className="badge role-badge">{current.role === 'admin' ? 'administrator' : 'clinician'}</span>}
          </div>
        )}
        <div className="user-box">
          <span className="muted" data-testid="signed-in-as">
            {me.display_name || me.username}
          </span>
          <button
            type="button"
            className="btn btn-small"
            onClick={async () => {
              await signOut();
              navigate('/sign-in');
            }}
          >
            Sign out
          </button>
        </div>
      </div>
      <nav aria-label="Main" className="mainnav">
        {links.map(([href, text]) => (
          <Link key={href} to={href} aria-current={isActive(href) ? 'page' : undefined}>
            {text}
            {current && href === `${base}/federated` && <InvitationBadge slug={current.site.slug} pathname={pathname} />}
          </Link>
        ))}
        {current?.role === 'admin' && (
          <Link to={`${base}/admin/members`} aria-current={pathname.startsWith(`${base}/admin`) ? 'page' : undefined}>
            Administration
          </Link>
        )}
      </nav>
    </header>
  );
}

function NoSites() {
  return (
    <section>
      <h1>You are not a member of any site yet</h1>
      <p>Ask your site administrator to add you to your hospital’s site in Pollen, then sign in again.</p>
    </section>
  );
}
