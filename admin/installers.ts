/**
 * `installer create` (asks main for a bundle with a one-time enrolment key and writes it here, with the agent
 * release and install.sh: agent-tarball.ts) and
 * `installer list|revoke` (the keys main issued). Unpacking a bundle is `agent install` (installer/).
 */
import type { Command } from 'commander';
import { basename, resolve } from 'node:path';
import { writeAgentTarball } from './agent-tarball.js';
import { adminClient, withClientOptions, type Common } from './rest-client.js';
import { printResult, runAction, table } from '#common/cli-output.js';

type CreateOptions = Common & {
  kind: string;
  name: string;
  out: string;
  tenant?: string;
  group?: string;
  ttl: string;
  configOnly?: boolean;
  ring?: string;
};

export function registerInstallerAdmin(program: Command): void {
  const installer = program.command('installer').description('installer bundles for hosts and engines');
  withClientOptions(installer.command('create').description('create a bundle with a one-time enrolment key'))
    .requiredOption('--kind <kind>', 'host or engine')
    .requiredOption('--name <name>', 'agent name')
    .requiredOption('--out <file>', 'where to write the .tar.gz')
    .option('--tenant <tenant>', 'engines: the tenant it serves')
    .option('--group <group>', 'engines: engine group')
    .option('--ttl <duration>', 'enrolment key lifetime', '24h')
    .option(
      '--config-only',
      'only the config and key, for `palisade agent install` from a checkout (no Node, no install.sh)',
    )
    .option('--ring <ring>', 'upgrade ring the agent starts in: canary or default')
    .action((o: CreateOptions) =>
      runAction(o, async () => {
        const r = await adminClient(o).request<{
          bundle: string;
          kind: string;
          name: string;
          expiresAt: string;
          enrolKeyId: string;
          mainUrl: string;
        }>('POST', '/installers', {
          kind: o.kind,
          name: o.name,
          ttl: o.ttl,
          ...(o.tenant ? { tenant: o.tenant } : {}),
          ...(o.group ? { group: o.group } : {}),
          ...(o.ring ? { ring: o.ring } : {}),
        });
        const out = resolve(o.out);
        const bytes = await writeAgentTarball(out, Buffer.from(r.bundle, 'base64'), o.configOnly === true);
        const view = {
          bundle: out,
          bytes,
          contents: o.configOnly ? 'config' : 'release',
          kind: r.kind,
          name: r.name,
          expiresAt: r.expiresAt,
          enrolKeyId: r.enrolKeyId,
          mainUrl: r.mainUrl,
        };
        printResult(view, o, () => [
          `wrote ${out}, ${(bytes / 1e6).toFixed(1)} MB (${r.kind} "${r.name}", one-time key ${r.enrolKeyId} expires ${r.expiresAt})`,
          o.configOnly
            ? `install it with: palisade agent install --bundle ${out} --dir DIR`
            : `install it on the agent's machine (Linux x86-64, no Node.js needed): tar xzf ${basename(out)} && sudo ./install.sh`,
        ]);
      }),
    );

  withClientOptions(
    installer
      .command('list')
      .description(
        'enrolment keys main issued, newest first, with status (unused, used, expired, revoked); never the keys themselves',
      ),
  )
    .option('--status <status>', 'only keys with this status: unused, used, expired or revoked')
    .action((o: Common & { status?: string }) =>
      runAction(o, async () => {
        const rows = await adminClient(o).request<Record<string, unknown>[]>(
          'GET',
          `/installers${o.status ? `?${new URLSearchParams({ status: o.status })}` : ''}`,
        );
        printResult(rows, o, () =>
          table(rows, ['id', 'kind', 'name', 'tenant', 'status', 'createdAt', 'expiresAt', 'createdBy']),
        );
      }),
    );

  withClientOptions(
    installer.command('revoke <id>').description('revoke an unused enrolment key: its bundle enrols nothing any more'),
  ).action((id: string, o: Common) =>
    runAction(o, async () => {
      const r = await adminClient(o).request<{
        id: string;
        kind: string;
        name: string;
        alreadyRevoked?: boolean;
        revokedAt?: string | null;
        revokedBy?: string | null;
      }>('DELETE', `/installers/${encodeURIComponent(id)}`);
      // Revoking twice is no error (exit 0) but is not reported as a revoke: main changed nothing and audited nothing.
      printResult(r, o, () =>
        r.alreadyRevoked
          ? `enrolment key ${r.id} (${r.kind} "${r.name}") was already revoked at ${r.revokedAt ?? '?'}` +
            `${r.revokedBy ? ` by ${r.revokedBy}` : ''}; nothing changed`
          : `enrolment key ${r.id} (${r.kind} "${r.name}") revoked: its bundle enrols nothing any more`,
      );
    }),
  );
}
