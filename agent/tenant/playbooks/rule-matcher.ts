/**
 * Whether an automation rule matches an incident, pure: its `type` (when given) equals the incident's, and every
 * `match` condition holds, each read as a playbook condition `{left: ${incident.FIELD}, op, right: value}` so that
 * rules and condition tasks compare values the same way (playbook-values.ts: `"4"` equals 4, `exists`, `in` …).
 * Not whether the rule is switched on (automation-rules.ts) nor its format (common/automation-rule.ts).
 */
import type { AutomationRule } from '#common/automation-rule.js';
import { holds } from './playbook-values.js';

/** The fields a rule reads, as a playbook's `${incident.…}` sees them. */
export type IncidentView = Record<string, unknown>;

export function ruleMatches(rule: AutomationRule, incident: IncidentView): boolean {
  if (rule.when.event !== 'incident.created') return false;
  if (rule.when.type !== undefined && incident.type !== rule.when.type) return false;
  const scope = { incident, context: {}, inputs: {} };
  // As in a condition task, `value` may itself name an incident field (`${incident.details}`).
  return (rule.when.match ?? []).every((m) =>
    holds({ left: `\${incident.${m.field}}`, op: m.op, right: m.value }, scope),
  );
}
