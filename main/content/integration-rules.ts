/**
 * The content rule of items of type `integration`: a version is published only when its body is a whole
 * integration definition (common/integration-definition.ts), refused otherwise with a 400 naming the field.
 * Drafts are free text, so a definition can be written over several versions; what tenants may receive is
 * checked at the one gate every share passes. Tenants check a shared body again before running it.
 */
import { parseIntegrationDefinition } from '#common/integration-definition.js';
import type { ContentRules } from './library.js';

export const integrationRules: ContentRules = {
  async publishing(item, body) {
    if (item.type === 'integration') parseIntegrationDefinition(body);
  },
};
