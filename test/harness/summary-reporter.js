// Prints the plain closing line CI reads: "N passed, N failed" (unhandled errors count as failures).
export default class SummaryReporter {
  onTestRunEnd(testModules, unhandledErrors) {
    let passed = 0,
      failed = 0,
      skipped = 0;
    for (const m of testModules) {
      let testsFailed = 0;
      for (const t of m.children.allTests()) {
        const s = t.result().state;
        if (s === 'passed') passed++;
        else if (s === 'failed') testsFailed++;
        else skipped++;
      }
      failed += testsFailed;
      // A file that failed outside its tests (it did not load, or a hook threw: e.g. the deployment's
      // clean-exit check in afterAll) counts once.
      if (m.state() === 'failed' && testsFailed === 0) failed++;
    }
    failed += unhandledErrors.length;
    process.stdout.write(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
  }
}
