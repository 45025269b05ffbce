/**
 * The content rule of items of type `playbook`: a version is published only when its body is a whole playbook
 * (common/playbook.ts), refused otherwise with a 400 naming the task and the problem. Drafts are free text, as for
 * integrations (integration-rules.ts); tenants check a body again before they run it. What a playbook refers to
 * outside itself (instances, connections, sub-playbooks) is the tenant's and is checked when a run reaches it.
 */
import { parsePlaybook } from '#common/playbook.js';
import type { ContentRules } from './library.js';

export const playbookRules: ContentRules = {
  async publishing(item, body) {
    if (item.type === 'playbook') parsePlaybook(body);
  },
};
