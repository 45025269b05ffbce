/**
 * What a run computes (agent/tenant/playbooks/playbook-values.ts and checkInputs): placeholders keep a value's
 * type when they are the whole string and become text inside longer text; missing paths are undefined; each
 * condition operator's verdict, numbers compared as numbers; a run's inputs are checked and defaulted; which tasks
 * need the incident read. No I/O.
 */
import { describe, expect, it } from 'vitest';
import type { Condition, Playbook } from '#common/playbook.js';
import { holds, interpolate, mentionsIncident, type Scope } from '../../agent/tenant/playbooks/playbook-values.js';
import { checkInputs, currentTask } from '../../agent/tenant/playbooks/run-checks.js';
import type { PlaybookRun } from '../../agent/tenant/playbooks/run-store.js';

const scope: Scope = {
  incident: { id: '7', severity: 3, labels: { team: 'blue' } },
  context: { who: { body: { vip: true, groups: ['admins', 'staff'], n: '12' } } },
  inputs: { user: 'alice' },
};

describe('interpolate', () => {
  it('keeps the type of a whole placeholder, writes text inside longer text, at any depth', () => {
    expect(interpolate('${context.who.body}', scope)).toEqual({ vip: true, groups: ['admins', 'staff'], n: '12' });
    expect(interpolate('${incident.severity}', scope)).toBe(3);
    expect(interpolate({ a: ['/u/${inputs.user}?sev=${incident.severity}'] }, scope)).toEqual({
      a: ['/u/alice?sev=3'],
    });
    expect(interpolate('groups: ${context.who.body.groups}', scope)).toBe('groups: ["admins","staff"]');
  });

  it('a path that leads nowhere is undefined, and empty inside text', () => {
    expect(interpolate('${context.who.body.nothing.deeper}', scope)).toBeUndefined();
    expect(interpolate('x${incident.labels.absent}y', scope)).toBe('xy');
  });

  it("finds only the scope's own names, never what every object inherits", () => {
    expect(interpolate('${constructor}', scope)).toBeUndefined();
    expect(interpolate('${toString}', scope)).toBeUndefined();
    expect(interpolate('${context.constructor}', scope)).toBeUndefined();
    expect(interpolate('x${__proto__}y', scope)).toBe('xy');
  });

  it('reads into arrays by index, and their length', () => {
    expect(interpolate('${context.who.body.groups.0}', scope)).toBe('admins');
    expect(interpolate('${context.who.body.groups.length}', scope)).toBe(2);
  });
});

describe('conditions', () => {
  const c = (left: unknown, op: Condition['op'], right?: unknown) => holds({ left, op, right }, scope);
  it.each([
    [c('${context.who.body.vip}', 'eq', true), true],
    [c('${incident.severity}', 'eq', '3'), true],
    [c('${incident.labels.team}', 'ne', 'red'), true],
    [c('${context.who.body.n}', 'gt', 9), true],
    [c('${context.who.body.n}', 'lte', 11), false],
    [c('abc', 'gt', 1), false],
    [c('${context.who.body.groups}', 'contains', 'admins'), true],
    [c('phishing mail', 'contains', 'mail'), true],
    [c('${inputs.user}', 'in', ['bob', 'alice']), true],
    [c('${inputs.user}', 'in', ['bob']), false],
    [c('${context.who.body.vip}', 'exists'), true],
    [c('${context.who.body.missing}', 'exists'), false],
    [c({ a: '${inputs.user}' }, 'eq', { a: 'alice' }), true],
  ])('case %#', (got, want) => expect(got).toBe(want));
});

describe("a run's inputs", () => {
  const p: Playbook = {
    name: 'p',
    inputs: { user: { required: true }, depth: { default: 2 }, note: {} },
    start: 'a',
    tasks: { a: { type: 'manual', prompt: 'x' } },
  };
  it('fills defaults, requires the required, refuses the undeclared', () => {
    expect(checkInputs(p, { user: 'u' })).toEqual({ user: 'u', depth: 2 });
    expect(() => checkInputs(p, {})).toThrow('inputs.user: p requires it');
    expect(() => checkInputs(p, { user: 'u', extra: 1 })).toThrow('inputs.extra: p declares no such input');
  });
});

describe('complete-task and retry-task checks', () => {
  const run = {
    id: 'run_000000000001',
    definition: { name: 'p', start: 'm1', tasks: { m1: { type: 'manual', prompt: 'x' } } },
    status: 'succeeded',
    current: null,
    tasks: { m1: { status: 'done', startedAt: '2026-01-01T00:00:00.000Z' } },
  } as unknown as PlaybookRun;
  it('a task the playbook does not have is not found (404) ERR_PLAYBOOK_TASK_NOT_FOUND naming the field task', () => {
    expect(() => currentTask(run, 'zz')).toThrow(
      expect.objectContaining({ code: 'ERR_PLAYBOOK_TASK_NOT_FOUND', category: 'not-found', field: 'task' }),
    );
  });
  it("a task not in a state for it is a conflict (409), naming the run's status as the API shows it", () => {
    expect(() => currentTask(run, 'm1')).toThrow(
      expect.objectContaining({ code: 'ERR_PLAYBOOK_TASK_STATE', category: 'conflict', field: 'task' }),
    );
    expect(() => currentTask(run, 'm1')).toThrow('task m1 of run run_000000000001 is done (run completed); only');
  });
});

describe('mentionsIncident', () => {
  it('is true for a task naming an incident field but its id, which the run knows without reading the incident', () => {
    const get = (path: string) => ({ type: 'integration', command: 'get', args: { path, query: { incident: 'x' } } });
    expect(mentionsIncident(get('/a/${incident.id}'))).toBe(false);
    expect(mentionsIncident(get('/a/${inputs.incident}'))).toBe(false);
    expect(mentionsIncident(get('/a/${incident.id}/${incident.name}'))).toBe(true);
    expect(mentionsIncident(get('/a/${incident.labels.team}'))).toBe(true);
    const when = { left: '${incident.severity}', op: 'gt', right: 2 };
    expect(mentionsIncident({ type: 'condition', branches: [{ when, next: 'x' }] })).toBe(true);
  });
});
