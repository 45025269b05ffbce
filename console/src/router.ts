/**
 * Client-side routes on the History API: main answers every console path with index.html
 * (console-static.ts), so a reload or a shared link lands on the same page. Links are ordinary anchors
 * (keyboard and middle-click work); a plain click is turned into a pushState here.
 */
import { useEffect, useState } from 'preact/hooks';

const listeners = new Set<(p: string) => void>();

export function navigate(to: string, replace = false): void {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  for (const f of listeners) f(to);
}

window.addEventListener('popstate', () => {
  for (const f of listeners) f(location.pathname + location.search);
});

document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = (e.target as Element | null)?.closest?.('a');
  if (!a || a.target || a.origin !== location.origin || a.hasAttribute('download')) return;
  if (a.pathname.startsWith('/api/') || a.pathname.startsWith('/docs')) return;
  e.preventDefault();
  navigate(a.pathname + a.search);
});

/** The current path and query, re-rendering on every navigation. */
export function useLocation(): { path: string; query: URLSearchParams } {
  const [loc, setLoc] = useState(location.pathname + location.search);
  useEffect(() => {
    listeners.add(setLoc);
    // A child's effect (a redirect) runs before this one and may have moved already: catch up with it.
    setLoc(location.pathname + location.search);
    return () => listeners.delete(setLoc);
  }, []);
  const [path, q = ''] = loc.split('?');
  return { path, query: new URLSearchParams(q) };
}
