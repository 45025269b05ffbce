/**
 * Quoting for the two places a generated unit's values land: systemd's own parser (ExecStart=, ReadWritePaths=)
 * and a POSIX shell (the command printed when there is no systemd). Text only: writing and enabling units is
 * installer/ (agents) and main/service-install.ts (main).
 */

/**
 * One argument (or path) as systemd reads it in ExecStart= and ReadWritePaths=: double quotes when it holds
 * a space, quote or backslash (a path with a space must not split in two), and `%` / `$` doubled, or
 * systemd would expand them as specifiers and variables.
 */
export function systemdArg(arg: string): string {
  const q = /[\s"\\]/.test(arg) ? `"${arg.replace(/["\\]/g, (c) => `\\${c}`)}"` : arg;
  return q.replace(/%/g, '%%').replace(/\$/g, '$$$$');
}

/** One argument for a POSIX shell: as is when plainly safe, else in single quotes. */
export function shellArg(arg: string): string {
  return /^[\w@+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
