/**
 * CLI verbs for console credentials on main: `users passwd NAME` (the password, typed twice on a terminal or
 * read from stdin, never from argv where `ps` shows it) and `users totp NAME --enable|--disable`. The server
 * checks the password's length and who may change whose (docs/access.md#console-sign-in).
 */
import type { Command } from 'commander';
import { readSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { adminClient, withClientOptions, type Common } from './rest-client.js';
import { printResult, runAction } from '#common/cli-output.js';
import { BadParameterError, PalisadeError } from '#common/errors.js';

/** Longer than any password main takes (1 024 characters, up to 4 bytes each); more is not a password. */
const MAX_PASSWORD_BYTES = 4 * 1024 + 2;

/** stdin, up to the bound, with one trailing newline dropped. */
function readStdin(): string {
  const buf = Buffer.alloc(MAX_PASSWORD_BYTES + 1);
  let n = 0;
  for (;;) {
    let got: number;
    try {
      got = readSync(0, buf, n, buf.length - n, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') continue; // a non-blocking pipe not yet written
      if ((e as NodeJS.ErrnoException).code === 'EOF') break;
      throw e;
    }
    if (got === 0 || (n += got) === buf.length) break;
  }
  return buf
    .subarray(0, n)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** Asks on the terminal without echoing what is typed. */
function ask(prompt: string): Promise<string> {
  const muted = new Writable({ write: (_chunk, _enc, done) => done() });
  const rl = createInterface({ input: process.stdin, output: muted, terminal: true });
  process.stderr.write(prompt);
  return new Promise((resolve) =>
    rl.question('', (answer) => {
      rl.close();
      process.stderr.write('\n');
      resolve(answer);
    }),
  );
}

/** The new password and, with --password-stdin, the current one if stdin has a second line. */
async function newPassword(o: { passwordStdin?: boolean }): Promise<{ password: string; current?: string }> {
  if (o.passwordStdin) {
    const [pw, current] = splitFirstLine(readStdin());
    if (!pw)
      throw new BadParameterError('ERR_PASSWORD_MISMATCH', '--password-stdin: stdin was empty', {
        field: 'password',
      });
    return { password: pw, current };
  }
  if (!process.stdin.isTTY)
    throw new BadParameterError('ERR_CLI_MISSING', 'stdin is not a terminal: give the password with --password-stdin', {
      field: 'password',
    });
  const first = await ask('New password: ');
  const second = await ask('Again: ');
  if (first !== second)
    throw new BadParameterError('ERR_PASSWORD_MISMATCH', 'the two passwords differ; nothing changed', {
      field: 'password',
    });
  return { password: first };
}

function splitFirstLine(text: string): [string, string | undefined] {
  const m = /^(.*?)\r?\n([^]*)$/.exec(text);
  return m ? [m[1], m[2].replace(/\r?\n$/, '')] : [text, undefined];
}

export function registerCredentialCommands(users: Command): void {
  withClientOptions(
    users
      .command('passwd <name>')
      .description("set a user's console password (at least 12 characters); ends the user's sessions"),
  )
    .option(
      '--password-stdin',
      'read the password from stdin instead of asking twice on the terminal (your own: the current one on line 2)',
    )
    .action((name: string, o: Common & { passwordStdin?: boolean }) =>
      runAction(o, async () => {
        const { password, current } = await newPassword(o);
        const put = (body: { password: string; current?: string }) =>
          adminClient(o).request<{ name: string; sessionsEnded: number }>(
            'PUT',
            `/users/${encodeURIComponent(name)}/password`,
            body,
          );
        let r: { name: string; sessionsEnded: number };
        try {
          r = await put(current === undefined ? { password } : { password, current });
        } catch (e) {
          // Your own password: main asks for the current one (docs/access.md#console-sign-in).
          if (!(e instanceof PalisadeError) || e.code !== 'ERR_PASSWORD_CURRENT_MISSING') throw e;
          if (o.passwordStdin || !process.stdin.isTTY)
            throw new BadParameterError(
              'ERR_PASSWORD_CURRENT_MISSING',
              'this is your own password: give the current one as a second line of stdin',
              { field: 'current' },
            );
          r = await put({ password, current: await ask('Current password: ') });
        }
        printResult(r, o, () => `password of ${r.name} set; ${r.sessionsEnded} session(s) ended`);
      }),
    );

  withClientOptions(
    users.command('totp <name>').description('turn the TOTP second factor of console sign-in on or off'),
  )
    .option('--enable', 'make a new secret (replacing any older one) and print it once')
    .option('--disable', 'sign-in needs the password only again')
    .action((name: string, o: Common & { enable?: boolean; disable?: boolean }) =>
      runAction(o, async () => {
        if (!o.enable === !o.disable)
          throw new BadParameterError('ERR_CLI_MISSING', 'give one of --enable or --disable', { field: 'enable' });
        const path = `/users/${encodeURIComponent(name)}/totp`;
        if (o.enable) {
          const r = await adminClient(o).request<{ secret: string; uri: string }>('POST', path);
          printResult(r, o, () => [
            r.uri,
            `secret: ${r.secret}`,
            '(shown once: add it to an authenticator app now; sign-in now needs its code)',
          ]);
        } else {
          const r = await adminClient(o).request<{ name: string; changed: boolean }>('DELETE', path);
          printResult(r, o, () => `TOTP of ${r.name} ${r.changed ? 'turned off' : 'was already off'}`);
        }
      }),
    );
}
