/**
 * Debian's Chromium (/usr/bin/chromium) driven by playwright-core, for the console's browser tests and its
 * benchmark: never a browser download. A page here records every response it gets (for the customer-user
 * checks), every Content-Security-Policy violation, can run axe-core on itself (injected through the DevTools
 * protocol, which the CSP does not govern, so the page's own policy stays strict) and saves screenshots.
 */
import { mkdirSync, readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page, type Response } from 'playwright-core';

export const CHROMIUM = process.env.PALISADE_CHROMIUM ?? '/usr/bin/chromium';
export const haveChromium = existsSync(CHROMIUM);

/** DESIGN §9: no sandbox (root in CI), no GPU, nothing that phones home. */
export const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

export const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'console');

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS, headless: true });
}

/** A context at 1280×800 (the size the console must be readable at) that trusts main's private CA. */
export function newConsoleContext(browser: Browser): Promise<BrowserContext> {
  // Chromium cannot be handed one extra CA without a profile NSS database; the test's main is on loopback.
  return browser.newContext({ viewport: { width: 1280, height: 800 }, ignoreHTTPSErrors: true });
}

export interface RecordedResponse {
  url: string;
  status: number;
  body: string;
}

export interface WatchedPage {
  page: Page;
  responses: RecordedResponse[];
  cspViolations: string[];
  /** Waits for the bodies of every response seen so far. */
  settle(): Promise<void>;
}

export function watch(page: Page): WatchedPage {
  const responses: RecordedResponse[] = [];
  const cspViolations: string[] = [];
  const pending: Promise<void>[] = [];
  page.on('response', (r: Response) => {
    pending.push(
      r.text().then(
        (body) => void responses.push({ url: r.url(), status: r.status(), body }),
        // A stream (SSE) or a redirect has no body to read here: recorded without it, and the SSE frames
        // are checked through what the page shows.
        () => void responses.push({ url: r.url(), status: r.status(), body: '' }),
      ),
    );
  });
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  return {
    page,
    responses,
    cspViolations,
    settle: async () => {
      await Promise.all(pending.splice(0));
    },
  };
}

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

/** Runs axe-core on the page as it is now and returns its serious and critical violations. */
export async function seriousA11yViolations(page: Page): Promise<AxeViolation[]> {
  await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const axe = (
      globalThis as unknown as { axe: { run: (c: unknown, o: unknown) => Promise<{ violations: unknown[] }> } }
    ).axe;
    const r = await axe.run((globalThis as unknown as { document: unknown }).document, { resultTypes: ['violations'] });
    return r.violations;
  });
  return (violations as AxeViolation[]).filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
