/**
 * `npm run bench`: runs every benchmark (or those named on the command line) and prints one table of
 * figure, value, same-run baseline, ratio and target (DESIGN §8). Absolute numbers swing ±30% on
 * loopback; the ratios are the figures to quote.
 */
import type { BenchRow } from './bench-util.js';
import { runCommandRtt } from './command-rtt.js';
import { runAgents1000 } from './agents-1000.js';
import { runTenantRtt } from './tenant-rtt.js';
import { runTenantIngest } from './tenant-ingest.js';

const BENCHES: Record<string, () => Promise<BenchRow[]>> = {
  'command-rtt': runCommandRtt,
  'agents-1000': runAgents1000,
  'tenant-rtt': runTenantRtt,
  'tenant-ingest': runTenantIngest,
};

const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !(w in BENCHES));
if (unknown.length) {
  process.stderr.write(`unknown benchmark ${unknown.join(', ')}; choose from ${Object.keys(BENCHES).join(', ')}\n`);
  process.exit(2);
}
const rows: (BenchRow & { bench: string })[] = [];
for (const name of wanted.length ? wanted : Object.keys(BENCHES)) {
  process.stderr.write(`running ${name}…\n`);
  const t0 = Date.now();
  for (const r of await BENCHES[name]()) rows.push({ bench: name, ...r });
  process.stderr.write(`  ${name} done in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
}
const fmt = rows.map((r) => [r.bench, r.figure, r.value, r.baseline, `${r.ratio.toFixed(2)}×`, r.target]);
const head = ['bench', 'figure', 'value', 'same-run baseline', 'ratio', 'target'];
const widths = head.map((h, i) => Math.max(h.length, ...fmt.map((f) => f[i].length)));
const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join(' | ');
process.stdout.write([line(head), widths.map((w) => '-'.repeat(w)).join('-|-'), ...fmt.map(line)].join('\n') + '\n');
process.exit(0);
