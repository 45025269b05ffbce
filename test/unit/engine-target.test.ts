/** Which engine takes work bound to an engine or a group, and the failover rule inside a group. */
import { describe, expect, it } from 'vitest';
import {
  checkTarget,
  choose,
  parseRunOn,
  runWithFailover,
  type Candidate,
} from '../../agent/tenant/tunnels/engine-target.js';
import { UnavailableError } from '#common/errors.js';
import { isRetrySafe } from '../../agent/tenant/tunnel-routes.js';

const a1 = { name: 'a1', group: 'a' };
const a2 = { name: 'a2', group: 'a' };
const b1 = { name: 'b1', group: 'b' };
const solo = { name: 'solo', group: '' };
const live = [a1, b1, a2, solo];
const known = new Map(live.map((s) => [s.name, s.group]));
const codeOf = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return {
      code: (e as { code: string }).code,
      message: (e as Error).message,
      field: (e as { field?: string }).field,
    };
  }
  throw new Error('no error');
};

describe('choosing an engine', () => {
  it("spreads a group's work over its live engines only", () => {
    const picked = [0, 1, 2, 3].map((turn) => choose(live, { group: 'a' }, turn, 'cust').name);
    expect(picked).toEqual(['a1', 'a2', 'a1', 'a2']);
    expect(choose(live, { group: 'b' }, 7, 'cust')).toBe(b1);
    expect(choose(live, { engine: 'a2', group: 'a' }, 0, 'cust')).toBe(a2);
    // Unbound work may go to any engine of the tenant.
    expect(new Set([0, 1, 2, 3].map((t) => choose(live, {}, t, 'cust').name))).toEqual(
      new Set(['a1', 'a2', 'b1', 'solo']),
    );
  });

  it("never falls back to another group's engine: none left is an error naming the group", () => {
    expect(choose(live, { group: 'a' }, 0, 'cust', new Set(['a1']))).toBe(a2);
    const e = codeOf(() => choose([b1, solo], { group: 'a' }, 0, 'cust'));
    expect(e.code).toBe('ERR_ENGINE_GROUP_OFFLINE');
    expect(e.message).toContain('group "a"');
    expect(codeOf(() => choose(live, { group: 'a' }, 0, 'cust', new Set(['a1', 'a2']))).message).toContain(
      'a1, a2 ended before answering',
    );
    expect(codeOf(() => choose([a1], { engine: 'a2' }, 0, 'cust')).code).toBe('ERR_ENGINE_OFFLINE');
    expect(codeOf(() => choose([], {}, 0, 'cust')).code).toBe('ERR_NO_ENGINE');
  });

  it('refuses a group no engine had (404) and an engine outside the group named with it (400)', () => {
    expect(() => checkTarget({ group: 'a' }, known, 'cust')).not.toThrow();
    expect(() => checkTarget({ engine: 'a1', group: 'a' }, known, 'cust')).not.toThrow();
    expect(codeOf(() => checkTarget({ group: 'c' }, known, 'cust'))).toEqual({
      code: 'ERR_ENGINE_GROUP_UNKNOWN',
      message: 'group: no engine of group "c" has connected to tenant cust since it started (groups seen: a, b)',
      field: 'group',
    });
    expect(codeOf(() => checkTarget({ engine: 'b1', group: 'a' }, known, 'cust'))).toMatchObject({
      code: 'ERR_ENGINE_NOT_IN_GROUP',
      field: 'engine',
    });
  });

  it('reads run-on targets engine:NAME and group:NAME, and nothing else', () => {
    expect(parseRunOn('engine:e-1')).toEqual({ engine: 'e-1' });
    expect(parseRunOn('group:a')).toEqual({ group: 'a' });
    for (const bad of ['tenant', 'group:', 'group:A', 'engines:a', 'group:a:b'])
      expect(codeOf(() => parseRunOn(bad, 'runOn'))).toMatchObject({ code: 'ERR_BAD_RUN_ON', field: 'runOn' });
  });
});

describe('failover inside a group', () => {
  const sessionEnded = () => new UnavailableError('ERR_SESSION_CLOSED', 'engine session ended: engine disconnected');
  /** Work that fails on the engines in `dying` as their session ends, and answers on the others. */
  const workOn = (dying: string[], ran: string[]) => async (s: Candidate) => {
    ran.push(s.name);
    if (dying.includes(s.name)) throw sessionEnded();
    return `answer from ${s.name}`;
  };
  const pickA = (exclude: ReadonlySet<string>) => choose(live, { group: 'a' }, 0, 'cust', exclude);

  it('read-only work moves to the other engine of the group when its engine ends before answering', async () => {
    const ran: string[] = [];
    const r = await runWithFailover(pickA, workOn(['a1'], ran), true);
    expect(r).toMatchObject({ value: 'answer from a2', failedOver: ['a1'] });
    expect(r.session).toBe(a2);
    expect(ran).toEqual(['a1', 'a2']);
  });

  it("ends with the group's error once every engine of the group ended, never trying another group", async () => {
    const ran: string[] = [];
    await expect(runWithFailover(pickA, workOn(['a1', 'a2'], ran), true)).rejects.toMatchObject({
      code: 'ERR_ENGINE_GROUP_OFFLINE',
    });
    expect(ran).toEqual(['a1', 'a2']);
  });

  it('work that is not retry-safe, or that failed another way, is not run again', async () => {
    const ran: string[] = [];
    await expect(runWithFailover(pickA, workOn(['a1'], ran), false)).rejects.toMatchObject({
      code: 'ERR_SESSION_CLOSED',
    });
    const timedOut = async (s: Candidate) => {
      ran.push(s.name);
      throw new UnavailableError('ERR_ENGINE_OFFLINE', 'not a session end');
    };
    await expect(runWithFailover(pickA, timedOut, true)).rejects.toMatchObject({ code: 'ERR_ENGINE_OFFLINE' });
    expect(ran).toEqual(['a1', 'a1']);
  });
});

describe('which engine commands are retry-safe', () => {
  it('tcp.check and http.request with a read-only method; never another method', () => {
    expect(isRetrySafe('tcp.check', { host: 'h', port: 1 })).toBe(true);
    expect(isRetrySafe('http.request', { url: 'http://h/' })).toBe(true);
    for (const method of ['GET', 'head', 'OPTIONS']) expect(isRetrySafe('http.request', { method })).toBe(true);
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE', 7])
      expect(isRetrySafe('http.request', { method })).toBe(false);
    expect(isRetrySafe('tunnel.listen', {})).toBe(false);
  });
});
