/** Backoff with injected randomness, and the input checks the CLI and configs rely on. */
import { describe, expect, it } from 'vitest';
import { Backoff } from '#common/backoff.js';
import { parseDuration } from '#common/duration.js';
import { checkName } from '#common/names.js';
import { newSecret, parseSecret, secretMatches } from '#common/secrets.js';
import { checkAgentConfig } from '#common/agent-dir.js';
import { checkMainConfig } from '../../main/config.js';
import { checkAllowEntry } from '../../installer/install.js';

describe('backoff', () => {
  it('full jitter: each delay lies in [0, min(cap, base·2^n)), the cap holds, reset starts over', () => {
    const top = new Backoff({ baseMs: 100, capMs: 1000, random: () => 0.999999 });
    expect([0, 1, 2, 3, 4, 5].map(() => top.next())).toEqual([99, 199, 399, 799, 999, 999]);
    top.reset();
    expect(top.next()).toBe(99);
    const bottom = new Backoff({ baseMs: 100, capMs: 1000, random: () => 0 });
    expect(bottom.next()).toBe(0);
  });

  it("a server's retry-after hint wins when it is longer than the jittered delay", () => {
    const b = new Backoff({ baseMs: 100, capMs: 1000, random: () => 0.5 });
    expect(b.next(5000)).toBe(5000);
    expect(b.next(10)).toBe(100);
  });
});

describe('input checks', () => {
  it('durations', () => {
    expect(parseDuration('30m')).toBe(1_800_000);
    expect(parseDuration('24h')).toBe(86_400_000);
    expect(parseDuration('7d')).toBe(604_800_000);
    for (const bad of ['abc', '0', '-5m', '5 years', '']) expect(() => parseDuration(bad)).toThrow(expect.objectContaining({ code: 'ERR_BAD_DURATION' }));
  });

  it('names', () => {
    expect(checkName('acme-01')).toBe('acme-01');
    for (const bad of ['Acme', '-x', 'x-', 'a b', '../x', 'a'.repeat(64), '', 7]) expect(() => checkName(bad)).toThrow(expect.objectContaining({ code: 'ERR_BAD_NAME' }));
  });

  it('engine allow-list entries', () => {
    for (const ok of ['10.0.0.0/24:389', 'mail.corp:25', '192.168.1.5:1000-2000', '[fd00::1]:22', '10.1.2.3', 'ad.corp']) expect(checkAllowEntry(ok)).toBe(ok);
    for (const bad of ['10.0.0.0/33', 'x:70000', '1.2.3.4:20-10', 'a b', 'host:0', 'ad.corp/24']) expect(() => checkAllowEntry(bad)).toThrow(expect.objectContaining({ code: 'ERR_BAD_ALLOW' }));
  });

  it('bearer secrets: parse, match, and refuse a wrong secret', () => {
    const s = newSecret('pal');
    const p = parseSecret('pal', s.token)!;
    expect(p.id).toBe(s.id);
    expect(secretMatches(p.secret, s.hash)).toBe(true);
    expect(secretMatches(p.secret + 'x', s.hash)).toBe(false);
    expect(parseSecret('pal', 'pek_' + s.token.slice(4))).toBeNull();
    expect(parseSecret('pal', 'garbage')).toBeNull();
  });

  it('configs report every problem at once and refuse unknown keys', () => {
    expect(() => checkMainConfig({ format: 1, hostname: '', port: 70000, colour: 'red' }, 'main.json'))
      .toThrow(/main.json: .*hostname.*port|main.json: .*port.*hostname/);
    expect(() => checkMainConfig({ format: 1, hostname: 'h', port: 1, colour: 'red' }, 'main.json')).toThrow(/additional properties/);
    expect(checkMainConfig({ format: 1, hostname: 'h', port: 8443 }, 'x').heartbeatIntervalMs).toBe(10_000);
    expect(() => checkAgentConfig({ format: 1, kind: 'robot', name: 'x', mainUrl: 'http://x' }, 'agent.json')).toThrow(/kind.*mainUrl|mainUrl.*kind/);
  });
});
