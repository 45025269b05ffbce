/**
 * Volatile request/response to hosts (the commands common/host-commands.ts marks volatile: relayed tenant
 * requests, listing, the steps of a move): not written to the outbox, answered within a deadline or
 * failed. Their args and values are JSON, except a relayed request's: a RelayRequest in, a RelayReply
 * out. Ids live in their own range above 2^50 so they never collide with outbox command ids, and the
 * gateway can tell the two kinds of Result apart.
 */
import { jsonBytes, parseJsonBytes, wire, type Envelope, type EnvelopeInit } from '#common/codec.js';
import { PalisadeError, ProtocolError, TimeoutError, UnavailableError } from '#common/errors.js';
import { peerCode } from '#common/error-codes.js';
import type { VolatileHostCommand } from '#common/host-commands.js';
import type { MainMetrics } from '../metrics.js';

export const RPC_ID_BASE = 2 ** 50;

type CommandInit = NonNullable<EnvelopeInit['command']>;
type ResultMessage = NonNullable<Envelope['result']>;
/** A relayed request as main sends it (proto RelayRequest). */
export type RelayRequestInit = NonNullable<CommandInit['relay']>;
/** The tenant's answer as its host read it (proto RelayReply; decoded, so every field has its default). */
export type RelayReply = InstanceType<typeof wire.RelayReply>;

interface Pending {
  take(r: ResultMessage): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
  agentId: string;
}

export class RpcClient {
  private seq = 0;
  private readonly pending = new Map<number, Pending>();

  constructor(
    private readonly send: (agentId: string, env: EnvelopeInit) => boolean,
    /** Times relayed requests (palisade_relay_request_duration_seconds). */
    private readonly metrics?: MainMetrics,
  ) {}

  static owns(id: number): boolean {
    return id >= RPC_ID_BASE;
  }

  /** A volatile command with JSON args; resolves with its JSON value. */
  call<T>(agentId: string, tenant: string, name: VolatileHostCommand, args: unknown, timeoutMs: number): Promise<T> {
    return this.request(
      agentId,
      tenant,
      { name, args: jsonBytes(args) },
      timeoutMs,
      (r) => parseJsonBytes(r.value) as T,
    );
  }

  /** A request for a tenant's API (tenant.request, protocol 1.3): bodies as bytes both ways, no JSON around them. */
  relay(agentId: string, tenant: string, req: RelayRequestInit, timeoutMs: number): Promise<RelayReply> {
    const timed = this.metrics?.relayTimer();
    const reply = this.request(
      agentId,
      tenant,
      { name: 'tenant.request' satisfies VolatileHostCommand, relay: req },
      timeoutMs,
      (r) => {
        if (!r.relay)
          throw new ProtocolError('ERR_WIRE_MALFORMED', 'the host answered a relayed request without a RelayReply');
        return r.relay as RelayReply;
      },
    );
    reply.then(
      (r) => timed?.(r.status),
      () => timed?.(),
    );
    return reply;
  }

  private request<T>(
    agentId: string,
    tenant: string,
    command: Omit<CommandInit, 'deadlineMs'>,
    timeoutMs: number,
    take: (r: ResultMessage) => T,
  ): Promise<T> {
    const id = RPC_ID_BASE + ++this.seq;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new TimeoutError('ERR_RELAY_TIMEOUT', `no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { take: (r) => resolve(take(r)), reject, timer, agentId });
      const sent = this.send(agentId, { id, tenant, command: { ...command, deadlineMs: Date.now() + timeoutMs } });
      if (!sent) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new UnavailableError('ERR_HOST_OFFLINE', 'the host serving this tenant is offline'));
      }
    });
  }

  /** Takes a Result for an RPC id; a Result from another agent than the one asked is ignored. */
  onResult(agentId: string, env: Envelope): void {
    const p = this.pending.get(env.replyTo);
    if (!p || p.agentId !== agentId) return;
    this.pending.delete(env.replyTo);
    clearTimeout(p.timer);
    const r = env.result!;
    if (r.ok) {
      try {
        p.take(r);
      } catch (e) {
        p.reject(e as Error);
      }
    } else {
      // Main's registry knows the tenant, so a host that doesn't (yet: it is restarting them) is unavailable.
      p.reject(
        new PalisadeError(
          'unavailable',
          r.errorCode ? peerCode(r.errorCode) : 'ERR_RELAY_FAILED',
          r.errorMessage || 'relay failed',
        ),
      );
    }
  }

  /** Fails every call waiting on an agent that disconnected, instead of letting them time out. */
  failAgent(agentId: string): void {
    for (const [id, p] of this.pending) {
      if (p.agentId !== agentId) continue;
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new UnavailableError('ERR_HOST_OFFLINE', 'the host disconnected before answering'));
    }
  }
}
