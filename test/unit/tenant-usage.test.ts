/**
 * The host's reading of a tenant process's /proc figures (agent/host/tenant-usage.ts), from texts as the
 * kernel writes them: fields counted from the last ')' (a command name may hold spaces and parentheses),
 * VmRSS in kB, CPU as percent of one core over USER_HZ ticks.
 */
import { describe, expect, it } from 'vitest';
import { cpuPercent, parseProcStat, parseVmRss } from '../../agent/host/tenant-usage.js';

// pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
// priority nice threads itrealvalue starttime vsize rss …
const stat = (comm: string, utime: number, stime: number, start: number) =>
  `4242 (${comm}) S 1 4242 4242 0 -1 4194560 1200 0 3 0 ${utime} ${stime} 0 0 20 0 11 0 ${start} 1100000000 12000 18446744073709551615\n`;

describe('tenant usage from /proc', () => {
  it('takes utime + stime and the start time, counting fields after the last parenthesis', () => {
    expect(parseProcStat(stat('node', 150, 50, 98765))).toEqual({ ticks: 200, startTicks: 98765 });
    expect(parseProcStat(stat('we ird) (name', 7, 3, 5))).toEqual({ ticks: 10, startTicks: 5 });
  });

  it('refuses a truncated or empty stat line', () => {
    expect(parseProcStat('')).toBeUndefined();
    expect(parseProcStat('4242 (node) S 1 4242')).toBeUndefined();
  });

  it('reads VmRSS in bytes, and nothing from a status without it', () => {
    expect(parseVmRss('Name:\tnode\nVmPeak:\t  900000 kB\nVmRSS:\t   51200 kB\nThreads:\t11\n')).toBe(51200 * 1024);
    expect(parseVmRss('Name:\tnode\nState:\tZ (zombie)\n')).toBeUndefined();
  });

  it('gives percent of one core: 100 ticks in one second is one full core', () => {
    expect(cpuPercent(100, 1)).toBe(100);
    expect(cpuPercent(25, 10)).toBe(2.5);
    expect(cpuPercent(300, 1.5)).toBe(200); // two cores busy
    expect(cpuPercent(10, 0)).toBe(0);
  });
});
