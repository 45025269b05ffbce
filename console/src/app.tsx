/**
 * The console's shell: who is signed in (GET /api/v1/session), the navigation that user's permissions allow,
 * and the page for the current path. A customer user (one whose session names a tenant) has one page, its
 * own tenant's view: every other path leads there, so the page never asks main for another tenant's data.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { can, onSignedOut, signOut, whoAmI, type Session, type SessionUser } from './api.js';
import { navigate, useLocation } from './router.js';
import { useAction, toApiError } from './hooks.js';
import { Busy, ErrorLine } from './components/ui.js';
import { SignIn } from './pages/signin.js';
import { OverviewPage } from './pages/overview.js';
import { TenantsPage } from './pages/tenants.js';
import { TenantView } from './pages/tenant-view.js';
import { ContentItemPage, ContentPage } from './pages/content.js';
import { SearchPage } from './pages/search.js';
import { AccessPage, AuditPage } from './pages/access.js';
import type { ApiError } from './api.js';

const NAV: { href: string; label: string; permission: string }[] = [
  { href: '/overview', label: 'Overview', permission: 'tenants:read' },
  { href: '/tenants', label: 'Tenants', permission: 'tenants:read' },
  { href: '/content', label: 'Content', permission: 'content:read' },
  { href: '/search', label: 'Search', permission: 'search:read' },
  { href: '/access', label: 'Users & keys', permission: 'users:read' },
  { href: '/audit', label: 'Audit log', permission: 'audit:read' },
];

export function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [error, setError] = useState<ApiError>();
  useEffect(() => {
    whoAmI().then(setSession, (e: unknown) => setError(toApiError(e)));
    return onSignedOut(() => setSession(null));
  }, []);
  if (error) return <ErrorLine error={error} />;
  if (session === undefined) return <Busy label="Loading…" />;
  if (session === null)
    return (
      <SignIn
        onSignedIn={(s) => {
          setSession(s);
          navigate(homeOf(s.user), true);
        }}
      />
    );
  return <Shell user={session.user} onSignedOut={() => setSession(null)} />;
}

const homeOf = (u: SessionUser) => (u.tenant ? `/tenants/${encodeURIComponent(u.tenant)}` : '/overview');

function Shell({ user, onSignedOut: done }: { user: SessionUser; onSignedOut: () => void }) {
  const { path, query } = useLocation();
  const mainRef = useRef<HTMLElement>(null);
  const out = useAction(async () => {
    await signOut();
    done();
    navigate('/', true);
  });
  const nav = user.tenant
    ? [{ href: homeOf(user), label: `Tenant ${user.tenant}`, permission: '' }]
    : NAV.filter((n) => can(user, n.permission));
  // A new page moves focus to its heading, so screen-reader and keyboard users start at the top of it. Not on the
  // first render: a page just loaded starts, as any page does, before the skip link.
  const firstRender = useRef(true);
  useEffect(() => {
    if (firstRender.current) {
      firstRender.current = false;
      return;
    }
    const h = mainRef.current?.querySelector<HTMLElement>('h1');
    if (h) {
      h.tabIndex = -1;
      h.focus();
    }
  }, [path]);
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Palisade</span>
        <nav aria-label="Main">
          <ul>
            {nav.map((n) => (
              <li key={n.href}>
                <a href={n.href} aria-current={path === n.href || path.startsWith(`${n.href}/`) ? 'page' : undefined}>
                  {n.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span class="who">
          Signed in as <strong>{user.name}</strong>
          {user.tenant ? ` (${user.tenant})` : ''}
        </span>
        <button type="button" class="btn plain" onClick={() => void out.start()} disabled={out.busy}>
          {out.busy ? 'Signing out…' : 'Sign out'}
        </button>
      </header>
      <main id="main" ref={mainRef} tabIndex={-1}>
        <ErrorLine error={out.error} />
        <Page user={user} path={path} query={query} />
      </main>
    </>
  );
}

function Page({ user, path, query }: { user: SessionUser; path: string; query: URLSearchParams }) {
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (user.tenant) {
    if (parts[0] !== 'tenants' || parts[1] !== user.tenant || parts.length !== 2) {
      return <Redirect to={homeOf(user)} />;
    }
    return <TenantView tenant={user.tenant} query={query} />;
  }
  switch (parts[0]) {
    case undefined:
      return <Redirect to="/overview" />;
    case 'overview':
      return <OverviewPage user={user} />;
    case 'tenants':
      return parts[1] ? <TenantView tenant={parts[1]} query={query} /> : <TenantsPage user={user} />;
    case 'content':
      return parts[1] ? <ContentItemPage id={parts[1]} user={user} /> : <ContentPage user={user} />;
    case 'search':
      return <SearchPage />;
    case 'access':
      return <AccessPage user={user} />;
    case 'audit':
      return <AuditPage query={query} />;
    default:
      return (
        <>
          <h1 tabIndex={-1}>Not found</h1>
          <p>
            No console page at {path}. <a href="/overview">Go to the overview</a>.
          </p>
        </>
      );
  }
}

function Redirect({ to }: { to: string }) {
  useEffect(() => navigate(to, true), [to]);
  return null;
}
