/**
 * Config schemas and the input checks the CLI, REST routes and installer rely on: main and agent config,
 * durations, names, engine allow-list entries, bearer secrets. Tables of accepted and refused input;
 * every refusal is a BadParameterError with a stable code. Pure: no I/O.
 */
import { describe, expect, it } from 'vitest';
import { BadParameterError } from '#common/errors.js';
import { checkAgentConfig } from '#common/agent-dir.js';
import { parseDuration } from '#common/duration.js';
import { checkName } from '#common/names.js';
import { hashSecret, newSecret, parseSecret, secretMatches } from '#common/secrets.js';
import {
  checkMainConfig,
  DEFAULT_COMMAND_DEADLINE_MS,
  DIRECT_STATEMENT_TTL_MS,
  HEARTBEAT_INTERVAL_MS,
  DEAD_PEER_TIMEOUT_MS,
  MAX_PENDING_COMMANDS,
  HEADERS_TIMEOUT_MS,
  MAX_UNAUTHENTICATED,
  MAX_UNAUTHENTICATED_PER_ADDRESS,
  TLS_HANDSHAKE_TIMEOUT_MS,
} from '../../main/config.js';
import { MAX_DIRECT_STATEMENT_MS } from '#common/tunnel-statements.js';
import { checkAllowEntry, checkEngineAdvertise, checkEngineListen } from '../../installer/install.js';
import { agentShellCommand, systemdUnit } from '../../installer/systemd-unit.js';
import { shellArg, systemdArg } from '../../common/systemd-text.js';

/** Runs `fn`, expecting a BadParameterError with `code`; returns it for further checks. */
function refusal(fn: () => unknown, code: string, what = ''): BadParameterError {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(thrown, what).toBeInstanceOf(BadParameterError);
  expect(thrown, what).toMatchObject({ code, category: 'bad-parameter' });
  return thrown as BadParameterError;
}

describe('main config', () => {
  it('applies the named defaults and freezes the result', () => {
    const c = checkMainConfig({ format: 1, hostname: 'main.example', port: 8443 }, 'main.json');
    expect(c).toMatchObject({
      format: 1,
      hostname: 'main.example',
      port: 8443,
      bind: '::',
      maxFrameBytes: 1024 * 1024,
      heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
      deadPeerTimeoutMs: DEAD_PEER_TIMEOUT_MS,
      maxPendingCommands: MAX_PENDING_COMMANDS,
    });
    expect(Object.isFrozen(c)).toBe(true);
    expect(DEFAULT_COMMAND_DEADLINE_MS).toBe(3_600_000);
    // Given values win over defaults.
    expect(
      checkMainConfig({ format: 1, hostname: 'h', port: 1, heartbeatIntervalMs: 500 }, 'x').heartbeatIntervalMs,
    ).toBe(500);
  });

  it('refuses an unknown key and names it', () => {
    const e = refusal(
      () => checkMainConfig({ format: 1, hostname: 'h', port: 8443, colour: 'red' }, 'main.json'),
      'ERR_CONFIG_INVALID',
    );
    expect(e.message).toMatch(/^main\.json: /);
    expect(e.message).toContain('colour');
  });

  it('reports every problem at once, in one message naming each field', () => {
    const e = refusal(
      () =>
        checkMainConfig(
          { format: 2, hostname: '', port: 70_000, heartbeatIntervalMs: 5, colour: 'red', shade: 1 },
          'main.json',
        ),
      'ERR_CONFIG_INVALID',
    );
    for (const field of ['/format', '/hostname', '/port', '/heartbeatIntervalMs', 'colour', 'shade'])
      expect(e.message).toContain(field);
    expect(e.message.split('\n')).toHaveLength(1);
  });

  it('direct-path statements last a minute by default (the engine renews every 30 s), and never longer than hosts accept', () => {
    expect(DIRECT_STATEMENT_TTL_MS).toBe(60_000);
    expect(checkMainConfig({ format: 1, hostname: 'h', port: 1 }, 'x').directStatementTtlMs).toBe(
      DIRECT_STATEMENT_TTL_MS,
    );
    expect(
      checkMainConfig({ format: 1, hostname: 'h', port: 1, directStatementTtlMs: MAX_DIRECT_STATEMENT_MS }, 'x')
        .directStatementTtlMs,
    ).toBe(MAX_DIRECT_STATEMENT_MS);
    for (const bad of [MAX_DIRECT_STATEMENT_MS + 1, 1_999, 60_000.5]) {
      expect(
        refusal(
          () => checkMainConfig({ format: 1, hostname: 'h', port: 1, directStatementTtlMs: bad }, 'main.json'),
          'ERR_CONFIG_INVALID',
          String(bad),
        ).message,
      ).toContain('directStatementTtlMs');
    }
  });

  it('waits on strangers no longer than the hardening allows, by default and whatever main.json says', () => {
    const c = checkMainConfig({ format: 1, hostname: 'h', port: 1 }, 'main.json');
    expect(c).toMatchObject({
      tlsHandshakeTimeoutMs: TLS_HANDSHAKE_TIMEOUT_MS,
      headersTimeoutMs: HEADERS_TIMEOUT_MS,
      maxUnauthenticatedPerAddress: MAX_UNAUTHENTICATED_PER_ADDRESS,
      maxUnauthenticated: MAX_UNAUTHENTICATED,
    });
    // Handshake and headers ≤ 10 s (the headers timeout also closes a socket that never sends a request).
    expect(c.tlsHandshakeTimeoutMs).toBeLessThanOrEqual(10_000);
    expect(c.headersTimeoutMs).toBeLessThanOrEqual(10_000);
    // A per-address cap above the benchmark's 50 handshakes in flight from one address, under the total.
    expect(c.maxUnauthenticatedPerAddress).toBeGreaterThan(50);
    expect(c.maxUnauthenticatedPerAddress).toBeLessThan(c.maxUnauthenticated);
    const e = refusal(
      () =>
        checkMainConfig(
          { format: 1, hostname: 'h', port: 1, tlsHandshakeTimeoutMs: 10_001, headersTimeoutMs: 60_000 },
          'main.json',
        ),
      'ERR_CONFIG_INVALID',
    );
    for (const field of ['tlsHandshakeTimeoutMs', 'headersTimeoutMs']) expect(e.message).toContain(field);
  });

  it('refuses missing required keys and non-objects', () => {
    const e = refusal(() => checkMainConfig({ format: 1 }, 'main.json'), 'ERR_CONFIG_INVALID');
    expect(e.message).toContain('hostname');
    expect(e.message).toContain('port');
    for (const raw of [null, [], 'x', 42])
      refusal(() => checkMainConfig(raw, 'main.json'), 'ERR_CONFIG_INVALID', JSON.stringify(raw));
  });
});

describe('agent config', () => {
  const good = {
    format: 1,
    kind: 'engine',
    name: 'e1',
    mainUrl: 'https://main:8443',
    tenant: 'acme',
    allow: ['10.0.0.0/24:389'],
  };

  it('accepts a valid config and freezes it (a single mainUrl read as mainUrls of one: main-urls.test.ts)', () => {
    const { mainUrl, ...rest } = good;
    const c = checkAgentConfig(good, 'agent.json');
    expect(c).toEqual({ ...rest, mainUrls: [mainUrl] });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('refuses an unknown key and names it', () => {
    const e = refusal(() => checkAgentConfig({ ...good, proxy: 'x' }, 'agent.json'), 'ERR_CONFIG_INVALID');
    expect(e.message).toMatch(/^agent\.json: /);
    expect(e.message).toContain('proxy');
  });

  it('reports every problem at once', () => {
    const e = refusal(
      () =>
        checkAgentConfig(
          { format: 1, kind: 'robot', name: 'Bad Name', mainUrl: 'http://x', logLevel: 'loud', extra: 1 },
          'agent.json',
        ),
      'ERR_CONFIG_INVALID',
    );
    for (const field of ['/kind', '/name', '/mainUrl', '/logLevel', 'extra']) expect(e.message).toContain(field);
  });
});

describe('durations', () => {
  it('accepts units and plain milliseconds', () => {
    const table: [string, number][] = [
      ['30m', 1_800_000],
      ['24h', 86_400_000],
      ['7d', 604_800_000],
      ['90s', 90_000],
      ['250ms', 250],
      ['1500', 1500],
      ['1.5h', 5_400_000],
      [' 2m ', 120_000],
    ];
    for (const [text, ms] of table) expect(parseDuration(text), text).toBe(ms);
  });

  it('refuses what is not a positive duration', () => {
    for (const bad of ['abc', '0', '-5m', '0m', '5 years', '', 'm', '1e3', '3w', '1h30m', '0.4', '0.4ms']) {
      const e = refusal(() => parseDuration(bad, 'deadline'), 'ERR_BAD_DURATION', bad);
      expect(e.field, bad).toBe('deadline');
    }
  });

  it('refuses a duration too long to be an offset from now (it would make an invalid date)', () => {
    for (const huge of ['9999999999999999999d', '999999999999h']) {
      refusal(() => parseDuration(huge), 'ERR_BAD_DURATION', huge);
    }
    // Long but sane values still pass.
    expect(parseDuration('3650d')).toBe(3650 * 86_400_000);
  });
});

describe('names', () => {
  it('accepts DNS-label-like names', () => {
    for (const ok of ['a', 'acme', 'acme-01', '0day', 'a'.repeat(63)]) expect(checkName(ok)).toBe(ok);
  });

  it('refuses anything else', () => {
    for (const bad of [
      '',
      'Acme',
      '-x',
      'x-',
      'a b',
      'a_b',
      'a.b',
      '../x',
      'a/b',
      'a'.repeat(64),
      'é',
      7,
      null,
      undefined,
    ]) {
      refusal(() => checkName(bad, 'tenant'), 'ERR_BAD_NAME', String(bad));
    }
  });
});

describe('engine allow-list entries', () => {
  it('accepts CIDR or host, with an optional port or port range', () => {
    for (const ok of [
      '10.0.0.0/24:389',
      'mail.corp:25',
      '192.168.1.5:1000-2000',
      '[fd00::1]:22',
      '10.1.2.3',
      'ad.corp',
      '[fd00::]/64:443',
      '10.0.0.1:65535',
    ]) {
      expect(checkAllowEntry(ok), ok).toBe(ok);
    }
  });

  it('refuses bad prefixes, ports, ranges and whitespace inside', () => {
    for (const bad of [
      '10.0.0.0/33',
      'x:70000',
      '1.2.3.4:20-10',
      'a b',
      'host:0',
      'ad.corp/24',
      '[fd00::1]/129',
      '10.0.0.0/',
      'x:',
      '',
      'a:1:2',
      '1.2.3.4:1-65536',
    ]) {
      refusal(() => checkAllowEntry(bad), 'ERR_BAD_ALLOW', bad);
    }
  });
});

describe("a host's engine port (agent install --engine-listen / --engine-advertise)", () => {
  it('--engine-listen takes an IP address (or localhost) and a port, 0 = any; or off', () => {
    for (const ok of [
      'off',
      '0.0.0.0:7443',
      '127.0.0.1:0',
      '[::]:7443',
      '[fd00::1]:65535',
      'localhost:7443',
      '10.1.2.3:1',
    ]) {
      expect(checkEngineListen(ok), ok).toBe(ok);
    }
  });

  it('--engine-listen refuses names, bad addresses and ports, and a bare port', () => {
    for (const bad of [
      '',
      'on',
      'OFF',
      '7443',
      'gw.example:7443',
      '0.0.0.0',
      '0.0.0.0:',
      '0.0.0.0:65536',
      '300.1.1.1:7443',
      '[::1:7443',
      '[1.2.3.4]:7443',
      '::1:7443',
      '0.0.0.0:7443 x',
    ]) {
      refusal(() => checkEngineListen(bad), 'ERR_BAD_ENGINE_LISTEN', bad);
    }
  });

  it('--engine-advertise takes an IP address or DNS name and a port engines can dial', () => {
    for (const ok of ['gw.example.net:7443', '203.0.113.7:443', '[2001:db8::7]:7443', 'localhost:1', 'a-b.c:65535']) {
      expect(checkEngineAdvertise(ok), ok).toBe(ok);
    }
  });

  it('--engine-advertise refuses port 0, bad names and bad addresses; the error names the flag', () => {
    for (const bad of [
      'gw.example.net',
      'gw.example.net:0',
      'gw.example.net:70000',
      '-gw.example:7443',
      'gw..example:7443',
      '1.2.3.999:7443',
      'off',
      '[gw]:7443',
    ]) {
      const e = refusal(() => checkEngineAdvertise(bad), 'ERR_BAD_ENGINE_ADVERTISE', bad);
      expect(e.message).toContain('--engine-advertise');
      expect(e.field).toBe('engineAdvertise');
    }
  });
});

describe('bearer secrets', () => {
  it('round-trip: a new token parses to its id and secret, and the secret matches the stored hash', () => {
    const s = newSecret('pal');
    expect(s.token.startsWith(`pal_${s.id}.`)).toBe(true);
    expect(s.hash).toMatch(/^[0-9a-f]{64}$/);
    const p = parseSecret('pal', s.token);
    expect(p).not.toBeNull();
    expect(p!.id).toBe(s.id);
    expect(hashSecret(p!.secret)).toBe(s.hash);
    expect(secretMatches(p!.secret, s.hash)).toBe(true);
  });

  it('never makes an id the CLI would read as an option (one starting with "-")', () => {
    // 1 in 64 ids would start with "-" if nothing prevented it: 2 000 make one near certain (p ≈ 2e-14 of none).
    const ids = Array.from({ length: 2000 }, () => newSecret('pal').id);
    expect(ids.filter((id) => id.startsWith('-'))).toEqual([]);
    expect(ids.some((id) => id.includes('-'))).toBe(true);
  });

  it('a wrong secret, another key’s hash or a malformed hash does not match', () => {
    const a = newSecret('pal');
    const b = newSecret('pal');
    expect(a.token).not.toBe(b.token);
    const pa = parseSecret('pal', a.token)!;
    expect(secretMatches(pa.secret + 'x', a.hash)).toBe(false);
    expect(secretMatches(pa.secret, b.hash)).toBe(false);
    expect(secretMatches(pa.secret, '')).toBe(false);
    expect(secretMatches(pa.secret, 'not hex')).toBe(false);
    expect(secretMatches(pa.secret, a.hash.slice(0, 62))).toBe(false);
  });

  it('a token of another prefix or shape does not parse', () => {
    const s = newSecret('pal');
    for (const bad of [
      `pek_${s.token.slice(4)}`,
      'garbage',
      '',
      `${s.token}\n`,
      `${s.token}.x`,
      s.token.replace('.', '_'),
      `x${s.token}`,
    ]) {
      expect(parseSecret('pal', bad), JSON.stringify(bad)).toBeNull();
    }
  });
});

describe('agent command lines', () => {
  it('quote paths with spaces, quotes and systemd specifiers so the unit and the printed command run the same argv', () => {
    expect(systemdArg('/opt/palisade/h1')).toBe('/opt/palisade/h1');
    expect(systemdArg('/opt/my agents/h1')).toBe('"/opt/my agents/h1"');
    expect(systemdArg('/opt/100%/a"b\\c')).toBe('"/opt/100%%/a\\"b\\\\c"');
    expect(systemdArg('/opt/$HOME')).toBe('/opt/$$HOME');
    expect(shellArg('/opt/palisade/h1')).toBe('/opt/palisade/h1');
    expect(shellArg("/opt/it's here")).toBe("'/opt/it'\\''s here'");
    const unit = systemdUnit({
      kind: 'engine',
      name: 'e1',
      dir: '/opt/my agents/e1',
      node: '/usr/bin/node',
      cli: '/usr/lib/palisade/bin/palisade.js',
    });
    expect(unit).toContain(
      'ExecStart=/usr/bin/node --single-threaded-gc --scavenger-max-new-space-capacity-mb=8 --heap-growing-percent=200 ' +
        '/usr/lib/palisade/bin/palisade.js agent start --dir "/opt/my agents/e1"\n',
    );
    expect(unit).toContain('ReadWritePaths="/opt/my agents/e1"\n');
    // A host also writes /etc: useradd and userdel of its tenants' users (ProtectSystem=strict makes it read-only
    // otherwise).
    expect(
      systemdUnit({
        kind: 'host',
        name: 'h1',
        dir: '/opt/h1',
        node: '/usr/bin/node',
        cli: '/usr/lib/palisade/bin/palisade.js',
      }),
    ).toContain('ReadWritePaths=/opt/h1 /etc\n');
  });

  it("start agents with glibc keeping freed heap (the unit's Environment=, and the printed command's prefix)", () => {
    const o = { node: '/usr/bin/node', cli: '/usr/lib/palisade/bin/palisade.js', dir: '/opt/my agents/e1' };
    const env = 'MALLOC_TRIM_THRESHOLD_=33554432 MALLOC_TOP_PAD_=8388608 MALLOC_MMAP_THRESHOLD_=2097152';
    const AGENT_FLAGS = '--single-threaded-gc --scavenger-max-new-space-capacity-mb=8 --heap-growing-percent=200';
    expect(systemdUnit({ kind: 'engine', name: 'e1', ...o })).toContain(`\nEnvironment=${env}\n`);
    expect(agentShellCommand(o)).toBe(
      `${env} /usr/bin/node ${AGENT_FLAGS} /usr/lib/palisade/bin/palisade.js agent start --dir '/opt/my agents/e1'`,
    );
  });
});
