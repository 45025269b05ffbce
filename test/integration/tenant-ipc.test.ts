/**
 * The host ⇄ tenant IPC (agent/tenant-ipc.ts): every message of each direction passes the receiving
 * side's check as sent, every malformed one is refused (a missing or mistyped field, an unknown type,
 * no object at all, a direct connection without its socket), and the host's receiver drops and logs a
 * malformed message from a child instead of throwing, handing each good one to its own handler.
 * Pure: a fake child process (an EventEmitter) stands in for the fork; the one socket is never connected.
 */
import { EventEmitter } from 'node:events';
import type { ChildProcess } from 'node:child_process';
import { Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import {
  MAX_TENANT_RECORD_BYTES,
  checkHostMessage,
  checkTenantMessage,
  onTenantMessages,
  toTenant,
  type HostToTenant,
  type TenantMessageHandlers,
  type TenantToHost,
} from '../../agent/tenant-ipc.js';
import type { DirectPreamble } from '../../agent/tunnel/tunnel-direct.js';

const socket = new Socket();
afterAll(() => {
  socket.destroy();
});

const bytes = (n: number) => new Uint8Array(n).fill(7);
const preamble = { tenant: 'acme', engineId: 'eng_1' } as unknown as DirectPreamble; // its fields are the tenant's to check

/** One sample per message, typed by the unions: a new message type does not compile until it has one. */
const FROM_TENANT: { [T in TenantToHost['type']]: Extract<TenantToHost, { type: T }> } = {
  ready: { type: 'ready', port: 18501, pid: 4242 },
  failed: { type: 'failed', message: 'listen EADDRINUSE', code: 'EADDRINUSE' },
  tunnel: { type: 'tunnel', engineId: 'eng_1', record: bytes(3) },
  'tunnel-listeners': { type: 'tunnel-listeners', listen: ['127.0.0.1:6000', '[::1]:6001'], seq: 3 },
  'tunnel-foreign-ports-ok': { type: 'tunnel-foreign-ports-ok', version: 9 },
  usage: {
    type: 'usage',
    cpuMicros: 1_250_000,
    uptimeMs: 60_000,
    rssBytes: 80 << 20,
    events: { stored: 12_345, perSecond: 40.5 },
  },
};
const FROM_HOST: { [T in HostToTenant['type']]: Extract<HostToTenant, { type: T }> } = {
  tunnel: {
    type: 'tunnel',
    engineId: 'eng_1',
    engineName: 'e1',
    record: bytes(3),
    engineKey: bytes(32),
    engineKeySig: bytes(64),
  },
  'tunnel-direct': { type: 'tunnel-direct', preamble, head: bytes(40) },
  'tunnel-foreign-ports': { type: 'tunnel-foreign-ports', ports: [18502, 7443], version: 9 },
  'tunnel-listeners-ok': { type: 'tunnel-listeners-ok', seq: 3 },
  'engines-revoked': { type: 'engines-revoked', engineIds: ['eng_1', 'eng_2'] },
  stop: { type: 'stop' },
};

/** Each sample with one field broken: missing, or of a type the union does not allow. */
const BROKEN_FROM_TENANT: [string, unknown][] = [
  ['ready without a port', { type: 'ready', pid: 1 }],
  ['ready with a port in text', { type: 'ready', port: '18501', pid: 1 }],
  ['failed without a message', { type: 'failed', code: 'EADDRINUSE' }],
  ['usage with a negative RSS', { type: 'usage', cpuMicros: 1, uptimeMs: 1, rssBytes: -1 }],
  ['usage with CPU time in text', { type: 'usage', cpuMicros: '1', uptimeMs: 1, rssBytes: 1 }],
  [
    'usage with a negative event rate',
    { type: 'usage', cpuMicros: 1, uptimeMs: 1, rssBytes: 1, events: { stored: 1, perSecond: -1 } },
  ],
  ['failed with a numeric code', { type: 'failed', message: 'm', code: 98 }],
  ['tunnel with the record as text', { type: 'tunnel', engineId: 'eng_1', record: 'AQID' }],
  ['tunnel without an engine', { type: 'tunnel', record: bytes(3) }],
  // Past what the host can forward to main in one frame: it would throw in the host's handler.
  [
    'tunnel with a record over the bound',
    { type: 'tunnel', engineId: 'e', record: bytes(MAX_TENANT_RECORD_BYTES + 1) },
  ],
  ['tunnel with an engine id of a kilobyte', { type: 'tunnel', engineId: 'e'.repeat(1024), record: bytes(3) }],
  ['failed with a message of megabytes', { type: 'failed', message: 'x'.repeat(2 * 1024 * 1024) }],
  ['listeners with a listener of a kilobyte', { type: 'tunnel-listeners', listen: ['1'.repeat(1024)], seq: 1 }],
  ['listeners not a list', { type: 'tunnel-listeners', listen: '127.0.0.1:6000', seq: 1 }],
  ['listeners with a number in the list', { type: 'tunnel-listeners', listen: ['127.0.0.1:6000', 6001], seq: 1 }],
  ['listeners without seq', { type: 'tunnel-listeners', listen: [] }],
  ['foreign ports held with a fractional version', { type: 'tunnel-foreign-ports-ok', version: 1.5 }],
  ['a type the host does not know', { type: 'shell', command: 'id' }],
  ['a type of the other direction', { type: 'engines-revoked', engineIds: [] }],
  ['a type named like an object property', { type: 'constructor' }],
  ['no type', { port: 1 }],
  ['null', null],
  ['a string', 'ready'],
  ['an array', ['ready']],
];
const BROKEN_FROM_HOST: [string, unknown, unknown?][] = [
  ['tunnel with a key as text', { type: 'tunnel', engineId: 'e', record: bytes(1), engineKey: 'a2V5' }],
  ['tunnel with a numeric name', { type: 'tunnel', engineId: 'e', record: bytes(1), engineName: 5 }],
  ['a direct connection without its socket', { type: 'tunnel-direct', preamble, head: bytes(4) }],
  ['a direct connection with something else as handle', { type: 'tunnel-direct', preamble, head: bytes(4) }, {}],
  ['a direct connection without a preamble', { type: 'tunnel-direct', head: bytes(4) }, socket],
  ['a direct connection with its head as text', { type: 'tunnel-direct', preamble, head: 'x' }, socket],
  ['foreign ports as text', { type: 'tunnel-foreign-ports', ports: ['80'], version: 1 }],
  ['revoked engines as one string', { type: 'engines-revoked', engineIds: 'eng_1' }],
  ['listeners ok without seq', { type: 'tunnel-listeners-ok' }],
  ['a type of the other direction', { type: 'ready', port: 1, pid: 1 }],
];

describe('host ⇄ tenant IPC', () => {
  it('passes every message of each direction as it is sent', () => {
    for (const m of Object.values(FROM_TENANT)) expect(checkTenantMessage(m), m.type).toBe(m);
    for (const m of Object.values(FROM_HOST))
      expect(checkHostMessage(m, m.type === 'tunnel-direct' ? socket : undefined), m.type).toBe(m);
    // Optional fields may be absent (a relayed record before the engine's hello carries no key; failed may have no
    // code).
    expect(checkHostMessage({ type: 'tunnel', engineId: 'e', record: bytes(0) })).toBeDefined();
    expect(checkTenantMessage({ type: 'failed', message: 'm' })).toBeDefined();
  });

  it('refuses every malformed message, whichever field is wrong', () => {
    for (const [what, raw] of BROKEN_FROM_TENANT) expect(checkTenantMessage(raw), what).toBeUndefined();
    for (const [what, raw, handle] of BROKEN_FROM_HOST) expect(checkHostMessage(raw, handle), what).toBeUndefined();
  });

  it("the host drops and logs a child's malformed message without throwing, and hands each good one to its handler", () => {
    const child = new EventEmitter() as unknown as ChildProcess;
    const lines: { msg: string; type?: string }[] = [];
    const log = pino(
      {},
      {
        write: (l: string) => {
          lines.push(JSON.parse(l) as { msg: string; type?: string });
        },
      },
    );
    const got: [string, unknown][] = [];
    const handlers: TenantMessageHandlers = {
      ready: (m) => got.push(['ready', m]),
      failed: (m) => got.push(['failed', m]),
      tunnel: (m) => got.push(['tunnel', m]),
      listeners: (m) => got.push(['listeners', m]),
      foreignPortsHeld: (m) => got.push(['foreignPortsHeld', m]),
      usage: (m) => got.push(['usage', m]),
    };
    onTenantMessages(child, handlers, log);
    for (const [, raw] of BROKEN_FROM_TENANT) expect(() => child.emit('message', raw)).not.toThrow();
    expect(got).toEqual([]);
    expect(lines).toHaveLength(BROKEN_FROM_TENANT.length);
    expect(lines[0]).toMatchObject({ msg: 'malformed message from a tenant process dropped', type: 'ready' });
    expect(lines.find((l) => l.type === 'shell')).toBeDefined();
    for (const m of Object.values(FROM_TENANT)) child.emit('message', m);
    expect(got).toEqual([
      ['ready', FROM_TENANT.ready],
      ['failed', FROM_TENANT.failed],
      ['tunnel', FROM_TENANT.tunnel],
      ['listeners', FROM_TENANT['tunnel-listeners']],
      ['foreignPortsHeld', FROM_TENANT['tunnel-foreign-ports-ok']],
      ['usage', FROM_TENANT.usage],
    ]);
  });

  it("the host survives a handler that throws, and closes any handle a child's message carries", () => {
    const child = new EventEmitter() as unknown as ChildProcess;
    const lines: { msg: string; type?: string }[] = [];
    const log = pino({}, { write: (l: string) => void lines.push(JSON.parse(l) as { msg: string; type?: string }) });
    const handlers: TenantMessageHandlers = {
      ready: () => undefined,
      failed: () => undefined,
      tunnel: () => {
        throw new Error('frame too big');
      },
      listeners: () => undefined,
      foreignPortsHeld: () => undefined,
      usage: () => undefined,
    };
    onTenantMessages(child, handlers, log);
    expect(() => child.emit('message', FROM_TENANT.tunnel)).not.toThrow();
    expect(lines).toEqual([expect.objectContaining({ msg: 'message from a tenant failed', type: 'tunnel' })]);
    // A socket a tenant passes along with any message (none of its messages has one) is closed at once.
    const smuggled = new Socket();
    child.emit('message', FROM_TENANT.ready, smuggled);
    expect(smuggled.destroyed).toBe(true);
  });

  it("what the host sends passes the tenant's check, the socket beside its message", () => {
    const sent: [unknown, unknown][] = [];
    const child = {
      send: (m: unknown, handle?: unknown) => {
        sent.push([m, typeof handle === 'function' ? undefined : handle]);
        return true;
      },
    } as unknown as ChildProcess;
    toTenant.tunnel(child, { engineId: 'eng_1', record: bytes(2) });
    toTenant.tunnelDirect(child, preamble, bytes(40), socket, () => undefined);
    toTenant.foreignPorts(child, [18502], 4);
    toTenant.listenersOk(child, 3);
    toTenant.enginesRevoked(child, ['eng_1']);
    const checked = sent.map(([m, handle]) => checkHostMessage(m, handle)?.type);
    expect(checked).toEqual([
      'tunnel',
      'tunnel-direct',
      'tunnel-foreign-ports',
      'tunnel-listeners-ok',
      'engines-revoked',
    ]);
    expect(sent[1][1]).toBe(socket);
  });
});
