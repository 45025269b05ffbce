// Generates proto/gen/palisade.{js,d.ts} from proto/palisade.proto with protobufjs-cli (no protoc needed).
// uint64 fields become JS numbers (--force-number): a bigint written to uint64 encodes as 0 silently.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'proto', 'gen');
mkdirSync(out, { recursive: true });
const bin = join(root, 'node_modules', '.bin');
execFileSync(
  join(bin, 'pbjs'),
  [
    '-t',
    'static-module',
    '-w',
    'es6',
    '--force-number',
    '--no-verify',
    '--no-delimited',
    '--no-beautify',
    '-o',
    join(out, 'palisade.js'),
    join(root, 'proto', 'palisade.proto'),
  ],
  { stdio: 'inherit' },
);
execFileSync(join(bin, 'pbts'), ['-o', join(out, 'palisade.d.ts'), join(out, 'palisade.js')], { stdio: 'inherit' });
