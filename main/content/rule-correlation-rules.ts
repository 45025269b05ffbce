/**
 * The content rule of items of type `rule` (correlation rules, docs/events.md#correlation-rules): a version is
 * published only when its body is a whole rule (common/correlation-rule.ts), refused otherwise with a 400 naming the
 * field. Drafts are free text, as for automation rules (rule-rules.ts).
 */
import { parseCorrelationRule } from '#common/correlation-rule.js';
import type { ContentRules } from './library.js';

export const correlationRuleRules: ContentRules = {
  async publishing(item, body) {
    if (item.type === 'rule') parseCorrelationRule(body);
  },
};
