/**
 * The console's one way to main: `fetch` on the same origin, with the session cookie main set at sign-in
 * and, on every request that changes something, the CSRF token it answered then (`X-CSRF-Token`). The
 * console holds no permission logic of its own: main (and through its relay each tenant) decides, and an
 * error is shown with the API's own message. Not a cache: each page asks for what it shows.
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface SessionUser {
  name: string;
  /** Set for a customer user: the one tenant it belongs to. */
  tenant: string | null;
  roles: string[];
  permissions: string[];
}

export interface Session {
  user: SessionUser;
  csrfToken: string;
  expiresAt?: string;
}

/** Kept for a reload of the page: the cookie survives it, the token must too (same tab only). */
const CSRF_KEY = 'palisade.csrf';
let csrfToken: string | null = sessionStorage.getItem(CSRF_KEY);
const signedOutListeners = new Set<() => void>();

export function onSignedOut(f: () => void): () => void {
  signedOutListeners.add(f);
  return () => signedOutListeners.delete(f);
}

function setToken(t: string | null): void {
  csrfToken = t;
  if (t) sessionStorage.setItem(CSRF_KEY, t);
  else sessionStorage.removeItem(CSRF_KEY);
}

export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  let res: Response;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, 'ERR_NETWORK', `main did not answer: ${(e as Error).message}`);
  }
  const text = await res.text();
  let json: unknown = undefined;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    // Not JSON: reported below with the status.
  }
  if (!res.ok) {
    const err = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
    if (res.status === 401 && !path.startsWith('/session')) {
      setToken(null);
      for (const f of signedOutListeners) f();
    }
    throw new ApiError(
      res.status,
      err?.code ?? `HTTP_${res.status}`,
      err?.message ?? `${res.status} ${res.statusText}`,
    );
  }
  return json as T;
}

export const api = {
  get: <T>(path: string) => request<T>('GET', path),
  post: <T>(path: string, body: unknown = {}) => request<T>('POST', path, body),
  put: <T>(path: string, body: unknown) => request<T>('PUT', path, body),
  patch: <T>(path: string, body: unknown) => request<T>('PATCH', path, body),
  del: <T>(path: string) => request<T>('DELETE', path),
};

/** A path inside a tenant's own API, through main's relay (`/tenants/T/api/…`). */
export const tenantPath = (tenant: string, path: string) => `/tenants/${encodeURIComponent(tenant)}/api${path}`;

export async function signIn(name: string, password: string, totp?: string): Promise<Session> {
  const s = await request<Session>('POST', '/session', { name, password, ...(totp ? { totp } : {}) });
  setToken(s.csrfToken);
  return s;
}

/** Who the session cookie belongs to, or null when there is none (or it expired). */
export async function whoAmI(): Promise<Session | null> {
  try {
    const s = await request<Session>('GET', '/session');
    if (s.csrfToken) setToken(s.csrfToken);
    return s;
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 404)) return null;
    throw e;
  }
}

export async function signOut(): Promise<void> {
  try {
    await request('DELETE', '/session');
  } finally {
    setToken(null);
  }
}

export const can = (u: SessionUser | undefined, permission: string) => !!u?.permissions.includes(permission);
