/**
 * The tenant's automation rule API (docs/playbooks.md#automation-rules): list the rules this tenant holds (shared and
 * local) with what applies to each, and switch one on or off locally. Switching is audited (`rule.activate`,
 * `rule.deactivate`) and needs `playbooks:run`, as starting a run does: an active rule starts runs. Not the rules
 * themselves (automation-rules.ts); their bodies are content (`/api/v1/content`).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AutomationRules } from './automation-rules.js';

const by = (req: FastifyRequest) => req.caller?.name || req.caller?.id || '';
const params = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 200 } },
} as const;

export function registerRuleRoutes(app: FastifyInstance, rules: AutomationRules): void {
  app.get('/api/v1/rules', { config: { tenantPermission: 'playbooks:read' } }, async () => rules.list());

  for (const [verb, active] of [
    ['activate', true],
    ['deactivate', false],
  ] as const)
    app.post(
      `/api/v1/rules/:id/${verb}`,
      { config: { tenantPermission: 'playbooks:run' }, schema: { params } },
      async (req) => {
        const ref = (req.params as { id: string }).id;
        req.auditAs = { action: `rule.${verb}`, target: ref };
        const rule = await rules.setActive(ref, active, by(req));
        req.auditAs.detail = { rule: rule.id };
        return rule;
      },
    );
}
