/**
 * Several main URLs (`mainUrls`): the order an agent dials them in (agent/main-url-rotation.ts) with the
 * shared backoff between passes, agent.json's two spellings, and `agent install --main-url`. Pure: the
 * dials are outcomes fed in, randomness is injected, no I/O.
 */
import { describe, expect, it } from 'vitest';
import { MainUrlRotation } from '../../agent/main-url-rotation.js';
import { Backoff } from '#common/backoff.js';
import { checkAgentConfig } from '#common/agent-dir.js';
import { BadParameterError } from '#common/errors.js';
import { checkMainUrls } from '../../installer/install.js';

const A = 'https://a.example:8443';
const B = 'https://b.example:8443';
const C = 'https://10.0.0.5:8443';

/**
 * What an agent does for a run of dial outcomes, as main-connection's loop does it: 'fail' = no session,
 * 'lost' = a session that worked then ended. Returns the trace: each URL dialled, and each wait between.
 */
function dials(urls: string[], outcomes: ('fail' | 'lost')[], backoff = new Backoff({ random: () => 0.5 })) {
  const r = new MainUrlRotation(urls);
  const trace: string[] = [r.current];
  for (const outcome of outcomes) {
    if (outcome === 'lost') backoff.reset(); // the session's Welcome reset it
    const next = outcome === 'fail' ? r.failed() : r.lost();
    if (next.backOff) trace.push(`wait ${backoff.next()}`);
    trace.push(next.url);
  }
  return trace;
}

describe('which main URL next', () => {
  it('one URL: every failure backs off and dials it again, as before mainUrls', () => {
    expect(dials([A], ['fail', 'fail', 'fail', 'lost', 'fail'])).toEqual([
      A,
      'wait 125',
      A,
      'wait 250',
      A,
      'wait 500',
      A,
      'wait 125',
      A,
      'wait 250',
      A,
    ]);
  });

  it('a failed dial moves on at once; the backoff comes only when the whole list has failed, then it starts over', () => {
    expect(dials([A, B, C], ['fail', 'fail', 'fail', 'fail', 'fail', 'fail', 'fail'])).toEqual([
      A,
      B,
      C,
      'wait 125',
      A,
      B,
      C,
      'wait 250',
      A,
      B,
    ]);
  });

  it('it stays on the URL that works; when that connection is lost it waits briefly and tries the next URL first', () => {
    // B works (no outcome while its session lives), then is lost: C, A, B make the new pass.
    expect(dials([A, B, C], ['fail', 'lost', 'fail', 'fail', 'fail', 'fail'])).toEqual([
      A,
      B,
      'wait 125',
      C,
      A,
      B,
      'wait 250',
      A,
      B,
    ]);
  });

  it('a connection lost on the last URL wraps to the first', () => {
    expect(dials([A, B], ['fail', 'lost', 'fail', 'fail'])).toEqual([A, B, 'wait 125', A, B, 'wait 250', A]);
  });

  it('the current URL is the one to dial until an outcome is reported', () => {
    const r = new MainUrlRotation([A, B]);
    expect([r.current, r.current]).toEqual([A, A]);
    expect(r.failed()).toEqual({ url: B, backOff: false });
    expect(r.current).toBe(B);
  });

  it('an empty list is a bug, refused at once', () => {
    expect(() => new MainUrlRotation([])).toThrow(/one main URL at least/);
  });
});

/** Runs `fn`, expecting a BadParameterError with `code`; returns its message. */
function refused(fn: () => unknown, code: string): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BadParameterError);
    expect((e as BadParameterError).code).toBe(code);
    return (e as BadParameterError).message;
  }
  throw new Error(`expected ${code}, nothing was thrown`);
}

describe('agent.json: mainUrls', () => {
  const base = { format: 1, kind: 'host', name: 'h1' };

  it('takes a list, in order, and freezes it', () => {
    const c = checkAgentConfig({ ...base, mainUrls: [B, A] }, 'agent.json');
    expect(c.mainUrls).toEqual([B, A]);
    expect(Object.isFrozen(c.mainUrls)).toBe(true);
  });

  it("reads an earlier version's single mainUrl as a list of one", () => {
    const c = checkAgentConfig({ ...base, mainUrl: A }, 'agent.json');
    expect(c).toEqual({ ...base, mainUrls: [A] });
    expect('mainUrl' in c).toBe(false);
  });

  it('refuses both keys, neither key, an empty list, a repeated URL and URLs that are not https', () => {
    expect(
      refused(() => checkAgentConfig({ ...base, mainUrl: A, mainUrls: [B] }, 'agent.json'), 'ERR_CONFIG_INVALID'),
    ).toBe('agent.json: /mainUrl and /mainUrls are both given: keep /mainUrls');
    expect(refused(() => checkAgentConfig(base, 'agent.json'), 'ERR_CONFIG_INVALID')).toContain('/mainUrls is missing');
    expect(refused(() => checkAgentConfig({ ...base, mainUrls: [] }, 'agent.json'), 'ERR_CONFIG_INVALID')).toContain(
      '/mainUrls must NOT have fewer than 1 items',
    );
    expect(
      refused(() => checkAgentConfig({ ...base, mainUrls: [A, A] }, 'agent.json'), 'ERR_CONFIG_INVALID'),
    ).toContain('duplicate items');
    const m = refused(
      () => checkAgentConfig({ ...base, mainUrls: [A, 'http://b:8443', 'https://'], logLevel: 'loud' }, 'agent.json'),
      'ERR_CONFIG_INVALID',
    );
    // Every problem at once, each naming its place in the list.
    for (const part of ['/mainUrls/1 must be an https URL of main', '/mainUrls/2 must be', '/logLevel'])
      expect(m).toContain(part);
    expect(m).not.toContain('/mainUrls/0');
  });
});

describe('agent install --main-url', () => {
  it('keeps the order given, trimmed', () => {
    expect(checkMainUrls([` ${C} `, A])).toEqual([C, A]);
  });

  it('refuses a URL that is not https://HOST[:PORT], naming the flag', () => {
    for (const bad of ['http://main:8443', 'main:8443', 'https://', 'https://:8443', ''])
      expect(
        refused(() => checkMainUrls([A, bad]), 'ERR_BAD_MAIN_URL'),
        bad,
      ).toMatch(/^--main-url ".*": expected an https URL of main, https:\/\/HOST\[:PORT\], e\.g\. /);
  });

  it('refuses a URL given twice', () => {
    expect(refused(() => checkMainUrls([A, B, ` ${A}`]), 'ERR_BAD_MAIN_URL')).toBe(`--main-url "${A}" is given twice`);
  });
});
