/**
 * Automation rules, pure: the format check main runs at publish (common/automation-rule.ts: a whole rule passes, a
 * malformed one is refused with ERR_RULE_INVALID naming the field) and the matcher a tenant runs on each new
 * incident (agent/tenant/playbooks/rule-matcher.ts: type, then every condition, compared as playbook conditions
 * compare). No I/O.
 */
import { describe, expect, it } from 'vitest';
import { parseAutomationRule, type AutomationRule } from '#common/automation-rule.js';
import { isPalisadeError } from '#common/errors.js';
import { ruleMatches } from '../../agent/tenant/playbooks/rule-matcher.js';
import { automationRuleRules } from '../../main/content/rule-rules.js';

const GOOD = `
name: phish triage
active: true
when:
  event: incident.created
  type: phish
  match:
    - {field: severity, op: gte, value: 3}
    - {field: labels.source, op: exists}
run: {playbook: triage, inputs: {user: "\${incident.name}"}}
`;

function refusal(body: string): string {
  try {
    parseAutomationRule(body);
  } catch (e) {
    if (isPalisadeError(e) && e.code === 'ERR_RULE_INVALID') return e.message;
    throw e;
  }
  throw new Error('accepted');
}

describe('the rule check', () => {
  it('accepts a whole rule, in YAML or JSON', () => {
    const r = parseAutomationRule(GOOD);
    expect(r).toMatchObject({ name: 'phish triage', active: true, run: { playbook: 'triage' } });
    expect(parseAutomationRule(JSON.stringify(r))).toEqual(r);
  });

  it('refuses a malformed rule naming the field', () => {
    const rule = parseAutomationRule(GOOD);
    const without = (f: (r: Record<string, unknown>) => void) => {
      const copy = structuredClone(rule) as unknown as Record<string, unknown>;
      f(copy);
      return JSON.stringify(copy);
    };
    expect(refusal(without((r) => delete r.active))).toBe('active: is required');
    expect(refusal(without((r) => (r.active = 'yes')))).toBe('active: must be boolean');
    expect(refusal(without((r) => ((r.when as { event: string }).event = 'incident.closed')))).toBe(
      'when.event: must be one of incident.created',
    );
    expect(refusal(without((r) => delete (r.run as { playbook?: string }).playbook))).toBe('run.playbook: is required');
    expect(refusal(without((r) => ((r.when as AutomationRule['when']).match![0].op = 'like' as never)))).toMatch(
      /^when\.match\[0\]\.op: must be one of eq, ne, /,
    );
    expect(refusal(without((r) => ((r.when as AutomationRule['when']).match![0].field = 'owner')))).toMatch(
      /^when\.match\[0\]\.field: must be one of id, name, .* or labels\.NAME$/,
    );
    expect(refusal(without((r) => delete (r.when as AutomationRule['when']).match![0].value))).toBe(
      'when.match[0].value: is required with op gte',
    );
    expect(refusal(without((r) => (r.then = {})))).toBe('then: is not a field');
    expect(refusal('name: [unclosed')).toMatch(/^body: is not YAML or JSON/);
  });

  it("is main's publish check for automation rules only", async () => {
    const item = (type: string) => ({ type }) as never;
    await expect(automationRuleRules.publishing!(item('automation-rule'), '{}')).rejects.toThrow('name: is required');
    await expect(automationRuleRules.publishing!(item('playbook'), '{}')).resolves.toBeUndefined();
  });
});

describe('the matcher', () => {
  const rule = parseAutomationRule(GOOD);
  const incident = { id: '9', name: 'alice', type: 'phish', severity: 3, labels: { source: 'mail' } };

  it('matches an incident of its type on which every condition holds', () => {
    expect(ruleMatches(rule, incident)).toBe(true);
    expect(ruleMatches(rule, { ...incident, severity: '4' })).toBe(true); // a numeric string compares as its number
  });

  it('does not match another type, or when one condition fails', () => {
    expect(ruleMatches(rule, { ...incident, type: 'malware' })).toBe(false);
    expect(ruleMatches(rule, { ...incident, severity: 2 })).toBe(false);
    expect(ruleMatches(rule, { ...incident, labels: {} })).toBe(false);
  });

  it('without a type or conditions, matches every new incident', () => {
    const any = parseAutomationRule('{name: any, active: true, when: {event: incident.created}, run: {playbook: p}}');
    expect(ruleMatches(any, { id: '1', type: 'x' })).toBe(true);
  });

  it('compares with the ops of a playbook condition', () => {
    const r = (op: string, value: unknown) =>
      parseAutomationRule(
        JSON.stringify({
          name: 'r',
          active: true,
          when: { event: 'incident.created', match: [{ field: 'name', op, value }] },
          run: { playbook: 'p' },
        }),
      );
    expect(ruleMatches(r('contains', 'lic'), incident)).toBe(true);
    expect(ruleMatches(r('in', ['bob', 'alice']), incident)).toBe(true);
    expect(ruleMatches(r('ne', 'alice'), incident)).toBe(false);
  });
});
