/**
 * The passphrase of `main backup` and `main restore`, read from a file so that it is in no command line, shell
 * history or process list. The file's content is the passphrase; one line end at its end is not part of it (what
 * `echo` and editors add). Not the key derivation (archive-format.ts).
 */
import { readFile } from 'node:fs/promises';
import { BadParameterError } from '#common/errors.js';

/** A new backup's passphrase is at least this long: the file it guards holds the CA's private key. */
export const MIN_PASSPHRASE_CHARS = 12;

export async function readPassphrase(path: string, minChars = 1): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new BadParameterError(
      'ERR_BACKUP_PASSPHRASE_FILE',
      `cannot read the passphrase file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      { field: 'passphrase-file' },
    );
  }
  const passphrase = text.replace(/\r?\n$/, '');
  if ([...passphrase].length < minChars)
    throw new BadParameterError(
      'ERR_BACKUP_PASSPHRASE_FILE',
      `the passphrase in ${path} is ${passphrase ? 'shorter than' : 'empty; give'} ${minChars} characters`,
      { field: 'passphrase-file' },
    );
  return passphrase;
}
