/**
 * Reading the file a CLI option names (`--body-file`, `--incident-file`): a file that cannot be read is a bad
 * parameter (ERR_CLI_BAD_FILE, exit 2, one line naming the option), not a crash with a stack trace.
 */
import { readFile } from 'node:fs/promises';
import { BadParameterError } from '#common/errors.js';

/** The text of `file`, given as `--flag`; `field` is the option as the error names it. */
export async function readOptionFile(file: string, flag: string, field: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new BadParameterError('ERR_CLI_BAD_FILE', `--${flag} ${file}: ${(e as Error).message}`, { field });
  }
}
