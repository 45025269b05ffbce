// Tests run from the compiled tree (dist/test) so they exercise exactly what `palisade` runs.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['dist/test/**/*.test.js'],
    pool: 'forks',
    // As the host forks tenants (agent/host/tenant-process.ts): isolated-vm's isolates need Node's snapshot off.
    execArgv: ['--no-node-snapshot'],
    // e2e files own their ports and temp dirs, so files run in parallel; tests inside a file share one deployment.
    fileParallelism: true,
    maxWorkers: 3,
    testTimeout: 120_000,
    hookTimeout: 180_000,
    reporters: ['default', './test/harness/summary-reporter.js'],
  },
});
