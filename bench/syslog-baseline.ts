/**
 * The same-run baseline of the syslog benchmark (bench/syslog-ingest.ts): Debian's rsyslogd receiving the same
 * stream on loopback (imtcp / imudp) and writing each raw message to a file, and the sender both runs share, so
 * the two differ only in the receiver. rsyslogd runs in the foreground under its own config in a temp directory
 * (no system config, no daemon); "received" is counted as lines in its output file, as "stored" is in the tenant.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const RSYSLOGD = '/usr/sbin/rsyslogd';

/** `n` RFC 5424 messages with key=value fields, numbered so a loss is visible; the same bytes for every run. */
export function syntheticLines(n: number, tag = 'bench'): string[] {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const src = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    lines.push(
      `<134>1 2026-12-06T23:00:00.000Z web-01 ${tag} 4242 - - login failed user=u${i % 97} ` +
        `src=${src} dst=192.168.2.1 spt=${1024 + (i % 50000)} dpt=443 seq=${i}`,
    );
  }
  return lines;
}

/** Writes the lines newline-framed down one TCP connection as fast as the receiver takes them. */
export function sendTcp(port: number, lines: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    s.setNoDelay(false);
    s.on('error', reject);
    s.on('connect', () => {
      let i = 0;
      const pump = () => {
        while (i < lines.length) {
          // Chunks of 256 messages: one write per chunk keeps the sender from being the bottleneck.
          const chunk = lines.slice(i, i + 256).join('\n') + '\n';
          i += 256;
          if (!s.write(chunk)) return void s.once('drain', pump);
        }
        s.end(resolve);
      };
      pump();
    });
  });
}

/** Sends the lines one datagram each, `perMs` datagrams per millisecond at most (UDP has no back-pressure). */
export async function sendUdp(port: number, lines: readonly string[], perMs = 50): Promise<void> {
  const s = createSocket('udp4');
  try {
    for (let i = 0; i < lines.length; i += perMs) {
      const t0 = Date.now();
      await Promise.all(
        lines.slice(i, i + perMs).map((l) => new Promise<void>((r) => s.send(l, port, '127.0.0.1', () => r()))),
      );
      const spent = Date.now() - t0;
      if (spent < 1) await new Promise((r) => setTimeout(r, 1 - spent));
    }
  } finally {
    s.close();
  }
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

export interface Rsyslog {
  pid: number;
  tcpPort: number;
  udpPort: number;
  /** Messages written to the output file so far. */
  received(): Promise<number>;
  /** Empties the output file between rounds (rsyslog reopens it: HUP). */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts rsyslogd in the foreground on loopback ports of its own; null when it is not installed. */
export async function startRsyslog(): Promise<Rsyslog | null> {
  if (!existsSync(RSYSLOGD)) return null;
  const dir = await mkdtemp(join(tmpdir(), 'palisade-rsyslog-'));
  const [tcpPort, udpPort] = [await freePort(), await freePort()];
  const out = join(dir, 'out.log');
  await writeFile(
    join(dir, 'rsyslog.conf'),
    [
      `global(workDirectory="${dir}")`,
      'module(load="imtcp")',
      'module(load="imudp")',
      `input(type="imtcp" port="${tcpPort}" address="127.0.0.1")`,
      `input(type="imudp" port="${udpPort}" address="127.0.0.1")`,
      'template(name="raw" type="string" string="%rawmsg%\\n")',
      `action(type="omfile" file="${out}" template="raw")`,
      '',
    ].join('\n'),
  );
  const proc: ChildProcess = spawn(RSYSLOGD, ['-n', '-f', join(dir, 'rsyslog.conf'), '-i', join(dir, 'pid')], {
    stdio: 'ignore',
  });
  await waitForTcp(tcpPort);
  // Lines counted so far and the bytes they were counted in: each poll reads only what rsyslogd wrote since the last
  // one. Reading the whole file every poll cost the benchmark's process (which shares the cores with rsyslogd) more
  // with each round's size, and so slowed the baseline the more messages a round sent.
  let counted = { bytes: 0, lines: 0 };
  const chunk = Buffer.allocUnsafe(4 << 20);
  const countLines = async () => {
    if (!existsSync(out)) return 0;
    const fh = await open(out, 'r');
    try {
      for (;;) {
        const { bytesRead } = await fh.read(chunk, 0, chunk.length, counted.bytes);
        if (bytesRead === 0) break;
        for (let i = chunk.indexOf(10); i !== -1 && i < bytesRead; i = chunk.indexOf(10, i + 1)) counted.lines++;
        counted.bytes += bytesRead;
      }
    } finally {
      await fh.close();
    }
    return counted.lines;
  };
  return {
    pid: proc.pid!,
    tcpPort,
    udpPort,
    received: countLines,
    async reset() {
      await rm(out, { force: true });
      counted = { bytes: 0, lines: 0 };
      proc.kill('SIGHUP');
      await new Promise((r) => setTimeout(r, 200));
    },
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => (proc.exitCode === null ? proc.once('exit', r) : r(null)));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function waitForTcp(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), r(true)));
      s.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`rsyslogd did not listen on 127.0.0.1:${port}`);
}

/**
 * Polls `count` until it reaches `n` (or stops rising for `idleMs`); returns the time it took and what it reached. The
 * polls themselves cost CPU on the cores being measured (the engine's side, a request through main, host and tenant),
 * so they come at half the time the rate so far says is left, between 20 and 100 ms apart: every 20 ms near the end,
 * as before, but a fifth as many in all over a round of a second. Both kinds of round poll alike.
 */
export async function until(
  count: () => Promise<number>,
  n: number,
  t0: number,
  idleMs = 3000,
): Promise<{ ms: number; reached: number }> {
  let last = -1;
  let lastChange = Date.now();
  for (;;) {
    const c = await count();
    if (c >= n) return { ms: Date.now() - t0, reached: c };
    if (c !== last) [last, lastChange] = [c, Date.now()];
    else if (Date.now() - lastChange > idleMs) return { ms: lastChange - t0, reached: c };
    const left = c > 0 ? ((n - c) * (Date.now() - t0)) / c : 0;
    await new Promise((r) => setTimeout(r, Math.min(100, Math.max(20, left / 2))));
  }
}
