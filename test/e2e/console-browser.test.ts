/**
 * The web console end to end: main serves it (strict CSP, hashed long-cached assets, an inline icon, client routes,
 * the API and /docs untouched), and in Debian's Chromium against a real deployment an admin signs in, creates a
 * tenant and watches it turn running without a reload, shares a content item and watches it turn Successful,
 * searches across tenants, opens a tenant's incident and sees its timeline, and signs out; a customer user sees
 * only its own tenant and no response the page gets holds another tenant's data. axe-core finds no serious or critical
 * violation on any page; screenshots of each page go to test-artifacts/console/.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:https';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { Deployment } from '../harness/deployment.js';
import { until } from '../harness/processes.js';
import {
  CHROMIUM,
  haveChromium,
  launchChromium,
  newConsoleContext,
  screenshot,
  seriousA11yViolations,
  watch,
  type WatchedPage,
} from '../harness/browser.js';

let d: Deployment;
let browser: Browser | undefined;
const PASSWORD = `console-${randomBytes(9).toString('hex')}`;
const CUSTOMER_PASSWORD = `customer-${randomBytes(9).toString('hex')}`;
/** In both tenants' incident names: the cross-tenant search finds both. */
const MARKER = `cmark${randomBytes(4).toString('hex')}`;
/** Only in globex's incident: the customer user of acme must never see it. */
const GLOBEX_SECRET = `gsecret${randomBytes(6).toString('hex')}`;
const PLAYBOOK = `name: console-triage
start: look
tasks:
  look: {type: manual, prompt: "Look at ${MARKER} in the console", output: seen}
`;

interface Got {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}
/** A plain GET to main without any credentials, as a browser's first request is. */
function get(path: string): Promise<Got> {
  return new Promise((res, rej) => {
    const req = request(new URL(path, d.url), { ca: readFileSync(d.caCertPath) }, (r) => {
      let body = '';
      r.on('data', (c: Buffer) => (body += c));
      r.on('end', () => res({ status: r.statusCode ?? 0, headers: r.headers, body }));
    });
    req.on('error', rej);
    req.end();
  });
}

/** `PUT /users/:name/password` with the admin's key (what `palisade users passwd` does). */
async function setPassword(name: string, password: string): Promise<void> {
  const r = await d.api('PUT', `/users/${name}/password`, { password });
  if (r.status !== 200) throw new Error(`set password of ${name}: ${r.status} ${r.raw}`);
}

beforeAll(async () => {
  d = await Deployment.create();
  await d.install('host', 'h1');
  await d.startAgent('h1');
  // A second host, for a move.
  await d.install('host', 'h2');
  await d.startAgent('h2');
  await d.createTenant('globex', 'h1', { labels: ['gold'] });
  const inc = await d.api('POST', '/tenants/globex/api/incidents', {
    name: `${MARKER} ${GLOBEX_SECRET}`,
    type: 'phishing',
    severity: 3,
    details: 'globex only',
  });
  if (inc.status !== 201) throw new Error(`globex incident: ${inc.status} ${inc.raw}`);
}, 240_000);
afterAll(async () => {
  await browser?.close();
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('main serves the console', () => {
  it('/ and client routes are index.html with a strict CSP; assets are typed and cached for a year', async () => {
    for (const path of ['/', '/overview', '/tenants/acme', '/content/abc']) {
      const r = await get(path);
      expect(r.status, path).toBe(200);
      expect(r.headers['content-type']).toMatch(/^text\/html/);
      expect(r.headers['content-security-policy']).toBe(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
          "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
      );
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.headers['referrer-policy']).toBe('no-referrer');
      expect(r.headers['cache-control']).toBe('no-cache');
      // No inline script or style: every script and stylesheet is a file of this origin.
      expect(r.body).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/);
      expect(r.body).not.toMatch(/<style|\sstyle=/);
    }
    const index = (await get('/')).body;
    const assets = [...index.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]);
    expect(assets.some((a) => a.endsWith('.js'))).toBe(true);
    expect(assets.some((a) => a.endsWith('.css'))).toBe(true);
    for (const a of assets) {
      const r = await get(a);
      expect(r.status, a).toBe(200);
      expect(r.headers['content-type']).toMatch(a.endsWith('.js') ? /^text\/javascript/ : /^text\/css/);
      expect(r.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    }
    expect((await get('/assets/missing-0000.js')).status).toBe(404);
    // An icon is declared (inline, as img-src allows data:), so no browser asks for a /favicon.ico that is not there.
    expect(index).toMatch(/<link\s+rel="icon"\s+href="data:image\/svg\+xml,[^"]+"/);
  });

  it('the API, its errors and /docs are unchanged, and the console routes are not in the OpenAPI document', async () => {
    const nope = await get('/api/v1/no-such-route');
    expect(nope.status).toBe(404);
    expect(JSON.parse(nope.body)).toMatchObject({ error: { code: 'ERR_NOT_FOUND' } });
    expect((await get('/api/v1/tenants')).status).toBe(401);
    expect((await get('/api/v1/health')).status).toBe(200);
    expect((await get('/no-console-page')).status).toBe(404);
    const doc = JSON.parse((await get('/docs/json')).body) as { paths: Record<string, unknown> };
    expect(
      Object.keys(doc.paths)
        .filter((p) => !p.startsWith('/api/v1/'))
        .sort(),
    ).toEqual(['/metrics', '/readyz']);
  });
});

async function checkPage(w: WatchedPage, name: string): Promise<void> {
  await screenshot(w.page, name);
  const v = await seriousA11yViolations(w.page);
  expect(
    v.map((x) => `${name}: ${x.id} (${x.impact}) ${x.help} at ${x.nodes.map((n) => n.target.join(' ')).join(', ')}`),
  ).toEqual([]);
  expect(w.cspViolations, name).toEqual([]);
}

async function signIn(page: Page, name: string, password: string): Promise<void> {
  await page.goto(`${d.url}/`);
  await page.getByLabel('User name').fill(name);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** expect.poll's own default (1 s) is shorter than a scrypt sign-in on a loaded machine. */
const POLL_OPTS = { timeout: 30_000 };

/** The focused element's tag and text. */
const focused = (page: Page) =>
  page.evaluate(() => {
    type El = { tagName: string; textContent: string | null } | null;
    const el = (globalThis as unknown as { document: { activeElement: El } }).document.activeElement;
    return { tag: el?.tagName, text: el?.textContent };
  });

const nav = (page: Page, label: string) =>
  page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label }).click();

if (!haveChromium)
  console.warn(`console-browser: no ${CHROMIUM} (apt-get install chromium): the browser tests are skipped`);

describe.skipIf(!haveChromium)('the console in Chromium', () => {
  let w: WatchedPage;
  let itemId = '';
  beforeAll(async () => {
    await setPassword('admin', PASSWORD);
    browser = await launchChromium();
  });

  it('an admin signs in and sees the overview, live', async () => {
    const ctx = await newConsoleContext(browser!);
    w = watch(await ctx.newPage());
    await w.page.goto(`${d.url}/overview`);
    await w.page.getByRole('button', { name: 'Sign in' }).waitFor();
    await checkPage(w, 'sign-in');
    // The page declares its icon: the browser has none to look for, and nothing of the console's is missing.
    expect(await w.page.locator('link[rel=icon]').getAttribute('href')).toMatch(/^data:image\/svg\+xml,/);
    await w.settle();
    expect(w.responses.filter((r) => r.status === 404 && !r.url.includes('/api/')).map((r) => r.url)).toEqual([]);
    await signIn(w.page, 'admin', 'wrong-password-0000');
    await expect.poll(() => w.page.getByRole('alert').textContent(), POLL_OPTS).toMatch(/ERR_SIGNIN_FAILED/);
    await checkPage(w, 'sign-in-error');
    await signIn(w.page, 'admin', PASSWORD);
    await w.page.getByRole('heading', { name: 'Overview' }).waitFor();
    await w.page.locator('[data-ready=overview]').waitFor();
    // Set once: a reload or a navigation away would lose it.
    await w.page.evaluate(() => ((globalThis as unknown as { sameDocument: boolean }).sameDocument = true));
    await expect.poll(() => w.page.locator('table').first().textContent(), POLL_OPTS).toContain('globex');
    // Events per second per tenant: a chart image named by its title and its numbers as text.
    await w.page.getByRole('img', { name: /^Events per second per tenant globex: \d/ }).waitFor();
    await checkPage(w, 'overview');
    // The overview stream is open: what follows arrives without polling.
    await w.page.getByText('Live: updates as they happen.').waitFor();
  });

  it('creates a tenant and watches it turn running without a reload', async () => {
    const { page } = w;
    await nav(page, 'Tenants');
    await page.getByLabel('Tenant name').fill('acme');
    await page.getByLabel('Labels').first().fill('gold, emea');
    await page.getByRole('button', { name: 'Create tenant' }).click();
    await page
      .getByRole('button', { name: 'Creating and starting…' })
      .waitFor({ timeout: 5_000 })
      .catch(() => undefined);
    const row = page.locator('tr', { has: page.getByRole('link', { name: 'acme', exact: true }) });
    await row.locator('.badge', { hasText: /^running$/ }).waitFor({ timeout: 90_000 });
    expect(await page.evaluate(() => (globalThis as unknown as { sameDocument?: boolean }).sameDocument)).toBe(true);
    await checkPage(w, 'tenants');
  });

  it('shares a content item and watches its status turn Successful', async () => {
    const { page } = w;
    await nav(page, 'Content');
    await page.getByLabel('Type').selectOption('playbook');
    await page.getByLabel('Name').fill('console-triage');
    await page.getByLabel('Labels').fill('gold');
    await page.getByLabel('Body').fill(PLAYBOOK);
    await checkPage(w, 'content');
    await page.getByRole('button', { name: 'Create item' }).click();
    await page.getByRole('heading', { name: /console-triage/ }).waitFor();
    itemId = page.url().split('/').pop()!;
    await page.getByRole('button', { name: 'Publish version 1' }).click();
    await page.getByText('Version 1, published 1').waitFor();
    await page.getByRole('button', { name: 'Share', exact: true }).click();
    await page.locator('#item-status .badge', { hasText: /^Successful$/ }).waitFor({ timeout: 90_000 });
    const states = await page.locator('table').first().locator('tbody tr').allTextContents();
    expect(states.join('\n')).toMatch(/acme\s*shared/);
    expect(states.join('\n')).toMatch(/globex\s*shared/);
    expect(await page.evaluate(() => (globalThis as unknown as { sameDocument?: boolean }).sameDocument)).toBe(true);
    const status = await d.api<{ rollup: string }>('GET', `/content/${itemId}/status`);
    expect(status.body.rollup).toBe('Successful');
    await checkPage(w, 'content-item');
  });

  it("searches across tenants and opens a tenant's incident with its timeline", async () => {
    const { page } = w;
    const inc = await d.api<{ id: string }>('POST', '/tenants/acme/api/incidents', {
      name: `${MARKER} acme phishing`,
      type: 'phishing',
      severity: 2,
      details: 'seen in the console test',
    });
    expect(inc.status, inc.raw).toBe(201);
    const run = await d.api<{ id: string }>('POST', '/tenants/acme/api/playbooks/console-triage/runs', {
      incident: inc.body.id,
    });
    expect(run.status, run.raw).toBeLessThan(300);
    await until('the run waits on its manual task', async () => {
      const r = await d.api<{ status: string }>('GET', `/tenants/acme/api/playbooks/runs/${run.body.id}`);
      return r.body.status === 'waiting';
    });

    await nav(page, 'Search');
    await page.getByLabel('Text').fill(MARKER);
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.getByRole('heading', { name: '2 incidents found' }).waitFor();
    const tenants = await page.locator('main table tbody tr td:first-child').allTextContents();
    expect(tenants.sort()).toEqual(['acme', 'globex']);
    await checkPage(w, 'search');
    // Events come from main's fan-out (GET /api/v1/search/events): no tenant holds one, none failed.
    await page.getByLabel('Search in').selectOption('events');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.getByRole('heading', { name: '0 events found' }).waitFor();
    expect(await page.getByRole('alert').count()).toBe(0);
    await checkPage(w, 'search-events');
    await page.getByLabel('Search in').selectOption('incidents');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.getByRole('heading', { name: '2 incidents found' }).waitFor();

    await page.getByRole('link', { name: `${MARKER} acme phishing` }).click();
    await page.getByRole('heading', { name: 'Tenant acme' }).waitFor();
    const timeline = page.getByRole('list', { name: 'Timeline' });
    await expect.poll(() => timeline.textContent(), POLL_OPTS).toContain(`Look at ${MARKER} in the console`);
    expect(await timeline.textContent()).toContain('run.started');
    await checkPage(w, 'tenant-incident');
    for (const tab of ['Playbook runs', 'Events', 'Integrations', 'Connections', 'Incidents']) {
      await page.getByRole('navigation', { name: 'Tenant sections' }).getByRole('link', { name: tab }).click();
      await page.getByRole('heading', { name: tab, level: 2 }).waitFor();
      await page.locator('.busy').waitFor({ state: 'detached' });
      await checkPage(w, `tenant-${tab.toLowerCase().replace(/ /g, '-')}`);
      if (tab === 'Playbook runs') {
        // A run shows its playbook's name and its state (the list gives the playbook as {id, name, version}).
        const runRow = page.locator('main table tbody tr', { hasText: run.body.id });
        expect(await runRow.textContent()).toMatch(/console-triage.*waiting/);
      }
      if (tab === 'Events') {
        // The domain filter lists the tenant's domains (GET /tenants/T/api/domains): at least its default one.
        const options = page.getByLabel('Domain').locator('option');
        await expect.poll(() => options.count(), POLL_OPTS).toBeGreaterThan(1);
        expect(await options.first().textContent()).toBe('All domains');
      }
    }

    // Sites: deactivating shows the dry run's counts and needs confirmation; activating brings it back.
    expect((await d.api('POST', '/tenants/acme/api/sites', { name: 'paris' })).status).toBe(201);
    const tabs = page.getByRole('navigation', { name: 'Tenant sections' });
    await tabs.getByRole('link', { name: 'Sites' }).click();
    await page.getByRole('heading', { name: 'Sites', level: 2 }).waitFor();
    const row = page.getByRole('row', { name: /paris/ });
    await expect.poll(() => row.textContent(), POLL_OPTS).toContain('pending');
    await checkPage(w, 'tenant-sites');
    await page.getByRole('button', { name: 'Deactivate site paris' }).click();
    const dialog = page.getByRole('dialog', { name: 'Deactivate site paris?' });
    await dialog.waitFor();
    expect(await dialog.textContent()).toContain('0 incidents');
    const before = await d.api<{ name: string; active: boolean }[]>('GET', '/tenants/acme/api/sites');
    expect(before.body.find((s) => s.name === 'paris')?.active).toBe(true); // the dry run changed nothing
    await checkPage(w, 'tenant-sites-confirm');
    await dialog.getByRole('button', { name: 'Deactivate and remove its data' }).click();
    await page.getByRole('status').filter({ hasText: 'Site paris is inactive' }).waitFor();
    await expect.poll(() => row.textContent(), POLL_OPTS).toContain('inactive');
    await page.getByRole('button', { name: 'Activate site paris' }).click();
    await expect.poll(() => row.textContent(), POLL_OPTS).toContain('pending');
  });

  it('the remaining pages pass axe: users and keys, audit log, overview charts', async () => {
    const { page } = w;
    await nav(page, 'Users & keys');
    await page.getByRole('heading', { name: 'Users', exact: true }).waitFor();
    await page.locator('.busy').waitFor({ state: 'detached' });
    await checkPage(w, 'access');
    await nav(page, 'Audit log');
    await page.getByRole('cell', { name: 'tenant.create' }).first().waitFor();
    await checkPage(w, 'audit');
    await nav(page, 'Overview');
    await page.getByRole('img', { name: /Incidents per tenant by severity/ }).waitFor();
    await page.getByRole('img', { name: /Content items by sharing rollup/ }).waitFor();
    expect(await page.getByRole('img', { name: /Content items by sharing rollup/ }).textContent()).toContain(
      'Successful: 1',
    );
    await checkPage(w, 'overview-charts');
  });

  it('works from the keyboard: a skip link first, links open pages, focus lands on the new heading', async () => {
    const { page } = w;
    await page.goto(`${d.url}/overview`);
    await page.locator('[data-ready=overview]').waitFor();
    await page.keyboard.press('Tab');
    expect(await focused(page)).toEqual({ tag: 'A', text: 'Skip to content' });
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Tenants' }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Tenants', level: 1 }).waitFor();
    await expect.poll(() => focused(page), POLL_OPTS).toEqual({ tag: 'H1', text: 'Tenants' });
    await page.getByLabel('Tenant name').focus();
    await page.keyboard.type('bad name!');
    await page.keyboard.press('Enter');
    // The API's refusal, as it worded it, next to the form.
    await expect.poll(() => page.getByRole('alert').first().textContent(), POLL_OPTS).toMatch(/^ERR_\w+ .*name/);
  });

  it('moves a tenant to another host with progress, then removes it after typing its name', async () => {
    const { page } = w;
    await d.createTenant('initech', 'h1');
    await nav(page, 'Tenants');
    await page.evaluate(() => ((globalThis as unknown as { sameDocument: boolean }).sameDocument = true));
    const row = page.locator('tr', { has: page.getByRole('link', { name: 'initech', exact: true }) });
    await row.locator('.badge', { hasText: /^running$/ }).waitFor({ timeout: 30_000 });
    await page.getByLabel('Move initech to').selectOption('h2');
    await page.getByRole('button', { name: 'Move initech', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'Moved to h2' }).waitFor({ timeout: 120_000 });
    await expect.poll(() => row.locator('td').nth(1).textContent(), POLL_OPTS).toBe('h2');
    await row.locator('.badge', { hasText: /^running$/ }).waitFor({ timeout: 30_000 });

    await page.getByRole('button', { name: 'Remove initech', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'Remove tenant initech?' });
    await dialog.waitFor();
    await checkPage(w, 'tenant-remove-confirm');
    const confirm = dialog.getByRole('button', { name: 'Remove for good' });
    expect(await confirm.isDisabled()).toBe(true);
    await dialog.getByLabel('Type "initech" to confirm').fill('initech');
    await confirm.click();
    await row.waitFor({ state: 'detached', timeout: 60_000 });
    expect((await d.tenants()).map((t) => t.name)).not.toContain('initech');
    expect(await page.evaluate(() => (globalThis as unknown as { sameDocument?: boolean }).sameDocument)).toBe(true);
  });

  it('signs out: the sign-in form is back and the session is gone', async () => {
    const { page } = w;
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    const status = await page.evaluate(async () => (await fetch('/api/v1/session')).status);
    expect(status).toBe(401);
    await page.context().close();
  });

  it("a customer user sees only its tenant; no response the page gets holds another tenant's data", async () => {
    const u = await d.createUser({ name: 'acme-analyst', tenant: 'acme', roles: ['read-only'] });
    expect(u.name).toBe('acme-analyst');
    await setPassword('acme-analyst', CUSTOMER_PASSWORD);
    const ctx = await newConsoleContext(browser!);
    const c = watch(await ctx.newPage());
    await signIn(c.page, 'acme-analyst', CUSTOMER_PASSWORD);
    await c.page.getByRole('heading', { name: 'Tenant acme' }).waitFor();
    const links = await c.page.getByRole('navigation', { name: 'Main' }).getByRole('link').allTextContents();
    expect(links).toEqual(['Tenant acme']);
    await c.page.getByRole('link', { name: `${MARKER} acme phishing` }).waitFor();
    await checkPage(c, 'customer-tenant');
    // Every other page, typed into the address bar, leads back to its own tenant.
    for (const path of ['/overview', '/tenants', '/tenants/globex', '/content', '/search', '/access', '/audit']) {
      await c.page.goto(`${d.url}${path}`);
      await c.page.waitForURL(/\/tenants\/acme$/);
      await c.page.getByRole('heading', { name: 'Tenant acme' }).waitFor();
    }
    for (const tab of ['Playbook runs', 'Events', 'Integrations', 'Connections', 'Incidents']) {
      await c.page.getByRole('navigation', { name: 'Tenant sections' }).getByRole('link', { name: tab }).click();
      await c.page.locator('.busy').waitFor({ state: 'detached' });
    }
    await c.settle();
    const apiResponses = c.responses.filter((r) => r.url.includes('/api/v1/'));
    expect(apiResponses.length).toBeGreaterThan(5);
    for (const r of c.responses) {
      expect(r.body, r.url).not.toContain('globex');
      expect(r.body, r.url).not.toContain(GLOBEX_SECRET);
    }
    // What the page could ask on its own: every other tenant's data is refused or absent.
    const probes = await c.page.evaluate(async () => {
      const paths = [
        '/api/v1/tenants/globex/api/incidents',
        '/api/v1/tenants',
        '/api/v1/search/incidents?q=',
        '/api/v1/overview',
        '/api/v1/content',
      ];
      return Promise.all(
        paths.map(async (p) => {
          const r = await fetch(p);
          return { p, status: r.status, body: await r.text() };
        }),
      );
    });
    for (const p of probes) expect(p.body, p.p).not.toContain(GLOBEX_SECRET);
    expect(probes[0].status).toBeGreaterThanOrEqual(400);
    await ctx.close();
  });
});
