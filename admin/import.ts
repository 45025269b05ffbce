/**
 * `palisade incidents import --tenant T --file F.ndjson`: bulk ingest from a file of one incident per
 * line, sent through main in NDJSON batches (≤ 1 000 lines and ≤ 512 KiB each, under main's body and
 * frame limits). Each batch is stored atomically by the tenant; on a refused batch the import stops and
 * says how many lines were stored and how to resume (`--skip N`), so nothing is stored twice or lost.
 */
import type { Command } from 'commander';
import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { adminClient, withClientOptions, type Common } from './rest-client.js';
import { printResult, runAction } from '#common/cli-output.js';
import { BadParameterError, PalisadeError } from '#common/errors.js';
import { NDJSON } from '#common/media-types.js';

const MAX_LINES = 1000;
const MAX_BATCH_BYTES = 512 * 1024;

interface ImportOptions extends Common {
  tenant: string;
  file: string;
  skip: string;
  batch: string;
}

export function registerImportCommand(incidents: Command): void {
  withClientOptions(
    incidents
      .command('import')
      .description('bulk-create incidents from a file with one JSON incident per line (NDJSON)'),
  )
    .requiredOption('--tenant <tenant>', 'tenant')
    .requiredOption('--file <ndjson>', 'file: one {"name","type","severity","details"?,"labels"?} per line')
    .option('--skip <n>', 'skip the first n incident lines (to resume an import that stopped)', '0')
    .option('--batch <n>', `incidents per request (1-${MAX_LINES})`, String(MAX_LINES))
    .action((o: ImportOptions) =>
      runAction(o, async () => {
        const skip = Number(o.skip),
          batch = Number(o.batch);
        if (!Number.isInteger(skip) || skip < 0)
          throw new BadParameterError('ERR_CLI_BAD_NUMBER', '--skip must be a whole number ≥ 0', { field: 'skip' });
        if (!Number.isInteger(batch) || batch < 1 || batch > MAX_LINES)
          throw new BadParameterError('ERR_CLI_BAD_NUMBER', `--batch must be 1-${MAX_LINES}`, { field: 'batch' });
        await access(o.file).catch(() => {
          throw new BadParameterError('ERR_CLI_BAD_FILE', `--file ${o.file}: cannot read it`, { field: 'file' });
        });
        const client = adminClient(o);
        const path = `/tenants/${encodeURIComponent(o.tenant)}/api/incidents`;
        const started = Date.now();
        let seen = 0,
          stored = 0,
          lines: string[] = [],
          bytes = 0;
        const flush = async () => {
          if (!lines.length) return;
          try {
            const r = await client.requestBytes<{ count: number }>('POST', path, Buffer.from(lines.join('\n')), NDJSON);
            stored += r.count;
          } catch (e) {
            // The batch was refused whole: say which lines, what stored so far, and how to resume.
            const first = skip + stored + 1;
            const why = e instanceof PalisadeError ? e.message : String(e);
            throw new ImportStopped(
              e,
              `import stopped at incident lines ${first}-${first + lines.length - 1}: ${why}; ${stored} stored before it; fix the file and re-run with --skip ${skip + stored}`,
            );
          }
          lines = [];
          bytes = 0;
          if (!o.json && process.stderr.isTTY) process.stderr.write(`\r${stored} incidents imported…`);
        };
        const rl = createInterface({ input: createReadStream(o.file), crlfDelay: Infinity });
        for await (const line of rl) {
          if (line.trim() === '') continue;
          if (seen++ < skip) continue;
          const size = Buffer.byteLength(line) + 1;
          if (size > MAX_BATCH_BYTES)
            throw new BadParameterError(
              'ERR_CLI_LINE_TOO_LONG',
              `incident line ${seen} is ${size} bytes; at most ${MAX_BATCH_BYTES}`,
              { field: 'file' },
            );
          if (lines.length === batch || bytes + size > MAX_BATCH_BYTES) await flush();
          lines.push(line);
          bytes += size;
        }
        await flush();
        if (!o.json && process.stderr.isTTY) process.stderr.write('\n');
        const seconds = (Date.now() - started) / 1000;
        const result = {
          tenant: o.tenant,
          imported: stored,
          skipped: Math.min(skip, seen),
          seconds: Number(seconds.toFixed(2)),
        };
        printResult(
          result,
          o,
          () =>
            `imported ${stored} incidents into ${o.tenant} in ${seconds.toFixed(1)} s${skip ? ` (skipped ${result.skipped})` : ''}`,
        );
      }),
    );
}

/** A refused batch, keeping the server's category (exit code) with a message that says how to resume. */
class ImportStopped extends PalisadeError {
  constructor(cause: unknown, message: string) {
    super(
      cause instanceof PalisadeError ? cause.category : 'internal',
      cause instanceof PalisadeError ? cause.code : 'ERR_IMPORT_STOPPED',
      message,
      { cause },
    );
  }
}
