/**
 * The content rule of items of type `automation-rule`: a version is published only when its body is a whole rule
 * (common/automation-rule.ts), refused otherwise with a 400 naming the field. Drafts are free text, as for
 * playbooks (playbook-rules.ts). The playbook a rule runs is the tenant's and is looked up when the rule fires.
 */
import { parseAutomationRule } from '#common/automation-rule.js';
import type { ContentRules } from './library.js';

export const automationRuleRules: ContentRules = {
  async publishing(item, body) {
    if (item.type === 'automation-rule') parseAutomationRule(body);
  },
};
