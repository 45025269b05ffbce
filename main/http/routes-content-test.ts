/**
 * Testing a playbook on a tenant (docs/playbooks.md#testing-a-playbook): `POST /api/v1/content/:id/test` sends the
 * latest version of a playbook item (published or not: drafts are what one tests) to the tenant, which runs it with
 * its own connections on an incident it never stores, and answers each task's result. Relayed as the caller, so
 * the tenant checks the caller's `playbooks:run` and `content:write` there. Audited here as `content.test`; the
 * tenant audits `playbook.test`. Not the test itself: agent/tenant/playbooks/playbook-test.ts.
 */
import type { FastifyInstance } from 'fastify';
import { CONTENT_ID_PATTERN } from '#common/content.js';
import { BadParameterError, NotFoundError } from '#common/errors.js';
import { NAME_PATTERN } from '#common/names.js';
import { callerIdentity, mayReach } from '../access/api-keys.js';
import type { ContentLibrary } from '../content/library.js';
import type { TenantService } from '../tenants/tenants.js';
import { errorResponses } from './schemas.js';

export function registerContentTestRoute(app: FastifyInstance, lib: ContentLibrary, tenants: TenantService): void {
  app.post(
    '/api/v1/content/:id/test',
    {
      config: { permission: 'content:write' },
      schema: {
        summary: 'Test the latest version of a playbook in a tenant',
        description:
          "Runs the playbook item's latest version (published or not) inside the tenant with its connections, on the given incident fields (or a default incident) that are never stored; the tenant stores nothing of the test and answers each task's result. A manual task stops the test (status `waiting`). Needs `playbooks:run` and `content:write` in the tenant as well.",
        operationId: 'testContent',
        tags: ['content'],
        params: {
          type: 'object',
          additionalProperties: false,
          required: ['id'],
          properties: { id: { type: 'string', pattern: CONTENT_ID_PATTERN } },
        },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['tenant'],
          properties: {
            tenant: { type: 'string', pattern: NAME_PATTERN },
            incident: { type: 'object' },
            inputs: { type: 'object' },
            site: { type: 'string', pattern: NAME_PATTERN, description: 'the site inside the tenant to test at' },
          },
        },
        response: {
          200: { type: 'object', additionalProperties: true, description: "The tenant's result of the test" },
          ...errorResponses(400, 404, 503),
        },
      },
    },
    async (req, reply) => {
      const id = (req.params as { id: string }).id;
      const b = req.body as { tenant: string; incident?: object; inputs?: object; site?: string };
      const p = req.principal!;
      const item = await lib.find(id);
      if (item.type !== 'playbook')
        throw new BadParameterError('ERR_PLAYBOOK_INVALID', `id: ${id} is a ${item.type}, not a playbook`, {
          field: 'id',
        });
      if (!mayReach(p, b.tenant)) throw new NotFoundError('ERR_TENANT_NOT_FOUND', `no tenant "${b.tenant}"`);
      const v = await lib.version(id, item.latest);
      const playbook = { id, name: v.name, version: v.version, body: v.body };
      const body = JSON.stringify({
        playbook,
        ...(b.incident ? { incident: b.incident } : {}),
        ...(b.inputs ? { inputs: b.inputs } : {}),
        ...(b.site ? { site: b.site } : {}),
      });
      const audit = (outcome: 'ok' | 'failed', status?: unknown) =>
        lib.audit.record({
          actor: p.user.id,
          action: 'content.test',
          target: id,
          outcome,
          remote: req.ip,
          detail: { tenant: b.tenant, version: v.version, ...(status ? { status } : {}) },
        });
      let r: Awaited<ReturnType<TenantService['relay']>>;
      try {
        r = await tenants.relay(b.tenant, {
          method: 'POST',
          path: '/api/v1/playbooks/test',
          body,
          user: callerIdentity(p),
        });
      } catch (e) {
        await audit('failed');
        throw e;
      }
      const status = r.status === 200 ? (JSON.parse(r.body.toString()) as { status?: string }).status : undefined;
      await audit(r.status === 200 ? 'ok' : 'failed', status ?? r.status);
      // The tenant's status passes through (403 for want of playbooks:run there), beside the 200 the schema shows.
      return (reply as unknown as { code(n: number): typeof reply })
        .code(r.status)
        .header('content-type', r.contentType)
        .send(r.body);
    },
  );
}
