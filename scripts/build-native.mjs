// Builds agent/tunnel/native (in-place AES-256-GCM for the tunnel data path) with node-gyp against this Node's
// own headers, which carry the OpenSSL headers too. Optional: without a C toolchain, or with
// PALISADE_NATIVE_AEAD=0, the tunnel uses Node's crypto (same wire format, ~10% more CPU per byte), so a
// failed build warns and exits 0. node-gyp is npm's own copy (npm exports its path to scripts); the
// headers come from the Node installation (--nodedir), never from the network.
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'agent', 'tunnel', 'native');
const warn = (why) => process.stderr.write(`native AEAD not built (${why}): tunnels will use Node's crypto\n`);

if (process.env.PALISADE_NATIVE_AEAD === '0') {
  rmSync(join(dir, 'build'), { recursive: true, force: true });
  warn('PALISADE_NATIVE_AEAD=0');
} else {
  const nodeDir = join(dirname(process.execPath), '..');
  const gyp =
    process.env.npm_config_node_gyp ??
    join(nodeDir, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (!existsSync(gyp)) warn(`node-gyp not found at ${gyp}`);
  else if (!existsSync(join(nodeDir, 'include', 'node', 'node_api.h')))
    warn(`no Node headers under ${join(nodeDir, 'include', 'node')}`);
  else {
    try {
      execFileSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodeDir}`, '--loglevel=error'], {
        cwd: dir,
        stdio: ['ignore', 'ignore', 'inherit'],
      });
    } catch (e) {
      warn(e.message.split('\n')[0]);
    }
  }
}
