/**
 * `npm run bench`: runs every benchmark in sequence (or those named on the command line, e.g.
 * `node dist/bench/run.js command-rtt`) and prints one table of figure, value, same-run baseline, ratio
 * and target (docs/benchmarks.md). Absolute numbers swing ±30% on loopback; the ratios are the figures to quote.
 * If the open-file limit is too low for agents-1000 (one socket per agent in this process, one in main,
 * which inherits the limit), it re-executes itself once under a raised `ulimit -n`.
 */
import { spawnSync } from 'node:child_process';
import type { BenchRow } from './bench-util.js';
import { fdLimits } from './child-proc.js';
import { runCommandRtt } from './command-rtt.js';
import { runAgents1000 } from './agents-1000.js';
import { runTenantRtt } from './tenant-rtt.js';
import { runTenantIngest } from './tenant-ingest.js';
import { runTunnel } from './tunnel.js';
import { runSearch } from './search.js';
import { runIntegrationRtt } from './integration-rtt.js';
import { runPlaybookRuns } from './playbook-runs.js';
import { runConsoleOverview } from './console-overview.js';
import { runSyslogIngest } from './syslog-ingest.js';
import { runSyslogEnginePath } from './syslog-engine-path.js';
import { runSyslogTenantPath } from './syslog-tenant-path.js';

const BENCHES: Record<string, () => Promise<BenchRow[]>> = {
  'command-rtt': runCommandRtt,
  'agents-1000': runAgents1000,
  'tenant-rtt': runTenantRtt,
  'tenant-ingest': runTenantIngest,
  tunnel: runTunnel,
  search: runSearch,
  'integration-rtt': runIntegrationRtt,
  'playbook-runs': runPlaybookRuns,
  'console-overview': runConsoleOverview,
  'syslog-ingest': runSyslogIngest,
  'syslog-engine-path': runSyslogEnginePath,
  'syslog-tenant-path': runSyslogTenantPath,
};
const WANT_FDS = 8192;

const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !(w in BENCHES));
if (unknown.length) {
  process.stderr.write(`unknown benchmark ${unknown.join(', ')}; choose from ${Object.keys(BENCHES).join(', ')}\n`);
  process.exit(2);
}

// Node raises its soft open-file limit to the hard one at start-up, so only a low hard limit is left to
// fix: `ulimit -n` may raise it (root, or CAP_SYS_RESOURCE); otherwise agents-1000 simulates fewer agents.
if (fdLimits().soft < WANT_FDS && !process.env.PALISADE_BENCH_REEXEC) {
  process.stderr.write(
    `open-file limit ${fdLimits().soft}: re-running under ulimit -n ${WANT_FDS} (or as high as allowed)\n`,
  );
  const r = spawnSync(
    'bash',
    [
      '-c',
      `ulimit -n ${WANT_FDS} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`,
      'bash',
      process.execPath,
      ...process.execArgv,
      ...process.argv.slice(1),
    ],
    { stdio: 'inherit', env: { ...process.env, PALISADE_BENCH_REEXEC: '1' } },
  );
  process.exit(r.status ?? 1);
}

const rows: (BenchRow & { bench: string })[] = [];
for (const name of wanted.length ? wanted : Object.keys(BENCHES)) {
  process.stderr.write(`running ${name}…\n`);
  const t0 = Date.now();
  for (const r of await BENCHES[name]()) rows.push({ bench: name, ...r });
  process.stderr.write(`  ${name} done in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
}
const fmt = rows.map((r) => [
  r.bench,
  r.figure,
  r.value,
  r.baseline,
  Number.isFinite(r.ratio) ? `${r.ratio.toFixed(2)}×` : '-',
  r.target,
]);
const head = ['bench', 'figure', 'value', 'same-run baseline', 'ratio', 'target'];
const widths = head.map((h, i) => Math.max(h.length, ...fmt.map((f) => f[i].length)));
const line = (cells: string[]) =>
  cells
    .map((c, i) => c.padEnd(widths[i]))
    .join(' | ')
    .trimEnd();
process.stdout.write([line(head), widths.map((w) => '-'.repeat(w)).join('-|-'), ...fmt.map(line)].join('\n') + '\n');
process.exit(0);
