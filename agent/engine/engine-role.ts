/**
 * What makes an agent an engine: on every connection to main it opens an end-to-end session with its
 * tenant, then does what the tenant asks over that session (engine-services.ts). The session runs on the
 * shortest path that works: main answers the engine's hello with the tenant's host's direct endpoint (and
 * main's signed word on the engine's key) when the host offers one, and the engine dials it; if that fails
 * (customer networks often cannot reach the MSSP's hosts), a fresh hello goes the relayed way, engine →
 * main → host → tenant. On the direct path the session lives as long as main's statement about the
 * engine: halfway through its life the engine asks main for a fresh one and hands it to the tenant over
 * the session (the tenant ends a session whose statement expired, so an engine main no longer vouches for
 * loses it). A session that fails or ends starts again after a backoff.
 *
 * States (engine-state.ts, checked): idle → hello → (dialling → direct | relayed) → idle → backoff → hello …
 * How records travel on either path is agent/tunnel/session-carrier.ts.
 */
import { connect } from 'node:net';
import { readFile } from 'node:fs/promises';
import { Backoff } from '#common/backoff.js';
import { readHostPort } from '#common/address.js';
import type { Envelope, EnvelopeInit } from '#common/codec.js';
import { ProtocolError, errorMessage } from '#common/errors.js';
import type { AgentConfig } from '#common/agent-dir.js';
import type { Logger } from '#common/logging.js';
import { engineHandshake, type EngineHandshake, type SessionKeys } from '../tunnel/tunnel-crypto.js';
import { aeadBackend } from '../tunnel/native-aead.js';
import { encodeOpening, renewalRecord } from '../tunnel/tunnel-direct.js';
import { engineHelloRecord, parseTenantHello, RECORD_HANDSHAKE, RECORD_SEALED } from '../tunnel/tunnel-records.js';
import { DirectCarrier, RelayCarrier, type Carrier } from '../tunnel/session-carrier.js';
import type { TunnelSession } from '../tunnel/tunnel-session.js';
import { AllowList } from './allow-list.js';
import { EngineServices } from './engine-services.js';
import { checkEngineTransition, type EngineState } from './engine-state.js';

const HANDSHAKE_WAIT_MS = 15_000;
/** Connect plus handshake on the direct path; past it the engine relays through main instead. */
const DIRECT_SETUP_MS = 5_000;
/**
 * Session restarts (direct connection lost, handshake unanswered) wait a random time up to a ceiling that starts at
 * 1 s and doubles to 60 s (common/backoff.ts, full jitter, as the connection to main does), reset once a session is up.
 */
const RESTART_BASE_MS = 1_000;
const RESTART_CAP_MS = 60_000;
/**
 * A direct session asks main for a fresh statement this far into the current one's life: with main's
 * default of a minute, every 30 s, leaving 30 s for the answer to arrive before the tenant ends the session.
 */
const RENEW_AT = 0.5;
/**
 * Until main answers a renewal request (a reconnect, a lost frame), it is asked again this often: a fixed
 * period, not the backoff, because the answer has a deadline (the statement's expiry) that a growing
 * delay would miss, and main's rate (relay-limits RENEWALS_PER_TTL) is sized for this period.
 */
const RENEW_RETRY_MS = 5_000;

type DirectOffer = NonNullable<NonNullable<Envelope['tunnel']>['direct']>;

/** What the relayed session needs of the connection to main besides send: its backlog and when it drains. */
export interface RelayLink {
  readonly backlogged: boolean;
  onDrain(listener: () => void): void;
}

export class EngineRole {
  private stateValue: EngineState = 'idle';
  /** Our hello, while states hello and dialling wait for the tenant's answer. */
  private hs?: EngineHandshake;
  private hsTimer?: NodeJS.Timeout;
  /** What carries the session (relayed, direct), or, while dialling, the direct connection being set up. */
  private carrier?: Carrier;
  private restartTimer?: NodeJS.Timeout;
  private renewTimer?: NodeJS.Timeout;
  private readonly backoff = new Backoff({ baseMs: RESTART_BASE_MS, capMs: RESTART_CAP_MS });
  private send?: (env: EnvelopeInit) => boolean;
  private link?: RelayLink;
  private readonly services: EngineServices;

  private constructor(
    private readonly config: AgentConfig,
    private readonly box: { publicKey: Uint8Array; secretKey: Uint8Array },
    private readonly log: Logger,
    /** Hears each session established, and undefined when it ends (the syslog forwarder sends on it). */
    private readonly onSession?: (s: TunnelSession | undefined) => void,
  ) {
    this.services = new EngineServices(
      new AllowList(config.allow ?? []),
      log,
      (env) => this.send?.(env),
      () => this.carrier?.session,
    );
  }

  static async load(
    config: AgentConfig,
    boxKeyPath: string,
    log: Logger,
    onSession?: (s: TunnelSession | undefined) => void,
  ): Promise<EngineRole> {
    const raw = JSON.parse(await readFile(boxKeyPath, 'utf8')) as { publicKey: string; secretKey: string };
    return new EngineRole(
      config,
      { publicKey: Buffer.from(raw.publicKey, 'base64'), secretKey: Buffer.from(raw.secretKey, 'base64') },
      log,
      onSession,
    );
  }

  get state(): EngineState {
    return this.stateValue;
  }

  private to(next: EngineState): void {
    if (this.stateValue === 'closed') return; // close() may race any event; it wins
    checkEngineTransition(this.stateValue, next);
    if (this.stateValue !== next) this.log.debug({ from: this.stateValue, to: next }, 'engine session state');
    this.stateValue = next;
  }

  /**
   * Each (re)connection to main starts a fresh session; streams of the old one end with an error. `link` is
   * the connection to main: its send backlog paces the relayed session (data waits while it is backlogged,
   * and goes on at its drain).
   */
  onWelcome(send: (env: EnvelopeInit) => boolean, link?: RelayLink): void {
    this.send = send;
    if (link && this.link !== link) {
      this.link = link;
      link.onDrain(() => {
        if (this.carrier instanceof RelayCarrier) this.carrier.unblocked();
      });
    }
    this.endSession('engine reconnected');
    this.backoff.reset();
    this.startSession(this.config.direct !== false);
  }

  /**
   * Sends a fresh hello through main; with `direct`, main may answer with the host's endpoint instead of relaying it.
   */
  private startSession(direct: boolean): void {
    clearTimeout(this.restartTimer);
    this.hs = undefined;
    if (!this.send || !this.config.tenant || !this.config.tenantPublicKey) return this.toIdle();
    const hs = engineHandshake(this.box, Buffer.from(this.config.tenantPublicKey, 'base64'));
    // Not connected to main: the next Welcome starts a session.
    if (!this.send({ tenant: this.config.tenant, tunnel: { record: engineHelloRecord(hs.hello), directOk: direct } }))
      return this.toIdle();
    this.hs = hs;
    this.to('hello');
    // The tenant stays silent towards a hello it cannot open (it must not help a prober): say so here.
    clearTimeout(this.hsTimer);
    this.hsTimer = setTimeout(() => {
      if (this.hs !== hs) return;
      this.log.error(
        { tenant: this.config.tenant, code: 'ERR_TUNNEL_HANDSHAKE_TIMEOUT' },
        `no tunnel session after ${HANDSHAKE_WAIT_MS / 1000} s: the tenant is down, or refused this engine (a wrong tenantPublicKey in the config, or an engine key main does not know)`,
      );
      this.restartAfter('handshake unanswered');
    }, HANDSHAKE_WAIT_MS);
    this.hsTimer.unref();
  }

  private toIdle(): void {
    if (this.stateValue !== 'idle') this.to('idle');
  }

  /** Ends the session (if any) and tries again later, while main's connection lasts. */
  private restartAfter(why: string): void {
    this.endSession(why);
    clearTimeout(this.restartTimer);
    this.to('backoff');
    this.restartTimer = setTimeout(() => {
      if (this.stateValue === 'backoff') this.startSession(this.config.direct !== false);
    }, this.backoff.next());
    this.restartTimer.unref();
  }

  onTunnel(env: Envelope): void {
    const t = env.tunnel;
    if (t?.direct) {
      if (this.stateValue === 'hello' && this.hs) this.dialDirect(this.hs, t.direct);
      else if (this.stateValue === 'direct') this.renewDirect(t.direct);
      return;
    }
    const record = t?.record ?? new Uint8Array(0);
    // Empty: the tenant's side ended our relayed session (main stops relaying it); start another.
    if (record.length === 0) {
      if (this.stateValue !== 'relayed') return;
      this.log.info(
        { tenant: this.config.tenant },
        'the tenant side ended the relayed tunnel session; starting another',
      );
      this.restartAfter('ended by the tenant side');
      return;
    }
    try {
      if (record[0] === RECORD_HANDSHAKE && this.stateValue === 'hello' && this.hs) {
        const reply = parseTenantHello(record);
        const keys = this.hs.finish(reply);
        const tenant = this.config.tenant;
        const carrier = new RelayCarrier(
          (r) => this.send?.({ tenant, tunnel: { record: r } }),
          this.link ? () => this.link?.backlogged ?? false : undefined,
        );
        this.established(carrier, keys, reply.protocolMinor);
      } else if (record[0] === RECORD_SEALED && this.stateValue === 'relayed') {
        this.carrier?.session?.onSealed(record.subarray(1));
      }
    } catch (e) {
      this.log.warn(
        { err: errorMessage(e), code: (e as { code?: string }).code },
        'tunnel session failed; starting another',
      );
      this.restartAfter('tunnel session failed');
    }
  }

  /** `peerMinor`: the tenant's protocol minor, as its hello said (the syslog forwarder's choice of batch form). */
  private established(carrier: Carrier, keys: SessionKeys, peerMinor = 0, endpoint?: string): void {
    this.hs = undefined;
    clearTimeout(this.hsTimer);
    this.backoff.reset();
    this.carrier = carrier;
    carrier.startSession(keys, {
      initiator: false,
      onOpen: (s, target) => this.services.dial(s, target),
      onCommand: (name, args) => this.services.command(name, args),
      peerMinor,
    });
    this.to(carrier.transport === 'direct' ? 'direct' : 'relayed');
    this.onSession?.(carrier.session);
    this.log.info(
      {
        tenant: this.config.tenant,
        transport: carrier.transport,
        endpoint,
        aead: aeadBackend(),
        tenantMinor: peerMinor,
      },
      'tunnel session established',
    );
  }

  /**
   * The direct path: TCP to the tenant's host, preamble (main's statement) and hello, then framed records.
   * Any failure before the tenant answers falls back to the relayed path with a fresh hello (a hello is
   * accepted once); losing the connection later ends the session and starts another.
   */
  private dialDirect(hs: EngineHandshake, offer: DirectOffer): void {
    const endpoint = offer.endpoint ?? '';
    const at = readHostPort(endpoint, 'dial');
    if ('problem' in at || !offer.engineKeySig?.length || !offer.engineId) {
      this.log.warn({ endpoint }, 'main offered an unusable direct endpoint; relaying through main');
      this.startSession(false);
      return;
    }
    const sock = connect({ host: at.host, port: at.port });
    const carrier: DirectCarrier = new DirectCarrier(sock, {
      onHello: (record) => {
        if (this.hs !== hs || this.carrier !== carrier)
          throw new ProtocolError('ERR_TUNNEL_HELLO', 'an answer to a hello no longer in flight');
        const reply = parseTenantHello(record);
        const keys = hs.finish(reply);
        clearTimeout(setup);
        this.established(carrier, keys, reply.protocolMinor, endpoint);
        this.scheduleRenewal(offer);
      },
      onBroken: (e) =>
        this.log.warn({ err: errorMessage(e), code: (e as { code?: string }).code }, 'direct tunnel session failed'),
      onClose: (err) => {
        clearTimeout(setup);
        if (!carrier.session)
          return this.fallBack(carrier, endpoint, err?.message ?? 'connection closed before the tenant answered');
        if (this.carrier !== carrier) return;
        this.log.info({ endpoint }, 'direct tunnel connection closed; starting another session');
        this.restartAfter('direct connection closed');
      },
    });
    this.carrier = carrier;
    this.to('dialling');
    const setup = setTimeout(
      () => this.fallBack(carrier, endpoint, `no session within ${DIRECT_SETUP_MS} ms`),
      DIRECT_SETUP_MS,
    );
    carrier.start();
    carrier.sendOpening(encodeOpening(this.config.tenant!, offer, engineHelloRecord(hs.hello)));
  }

  /** The direct connection failed before the tenant answered: a fresh hello goes the relayed way. */
  private fallBack(carrier: DirectCarrier, endpoint: string, reason: string): void {
    if (this.carrier !== carrier || this.stateValue !== 'dialling') return;
    this.carrier = undefined;
    carrier.end(reason);
    this.log.info({ endpoint, reason }, 'direct tunnel path failed; relaying through main');
    this.startSession(false);
  }

  /**
   * Asks main for the next statement halfway through this one's life, and again every RENEW_RETRY_MS until
   * one arrives. A main that does not say how long its statements last (before protocol 1.2) renews nothing.
   */
  private scheduleRenewal(offer: DirectOffer): void {
    clearTimeout(this.renewTimer);
    if (!offer.ttlMs) return;
    const ask = (delay: number) => {
      this.renewTimer = setTimeout(() => {
        if (this.stateValue !== 'direct') return;
        this.send?.({ tenant: this.config.tenant, tunnel: { directRenew: true } });
        ask(RENEW_RETRY_MS);
      }, delay);
      this.renewTimer.unref();
    };
    ask(offer.ttlMs * RENEW_AT);
  }

  /**
   * Main's fresh statement for the live direct session, to the tenant as main sent it: the tenant would otherwise end
   * the session at expiry.
   */
  private renewDirect(offer: DirectOffer): void {
    if (!offer.engineKeySig?.length || !offer.engineId) return;
    this.carrier?.sendRecord(renewalRecord(this.config.tenant!, offer));
    this.scheduleRenewal(offer);
  }

  private endSession(why: string): void {
    clearTimeout(this.renewTimer);
    clearTimeout(this.hsTimer);
    this.hs = undefined;
    const carrier = this.carrier;
    this.carrier = undefined;
    carrier?.end(why);
    if (carrier?.session) this.onSession?.(undefined);
    this.services.closeListeners();
    this.toIdle();
  }

  close(): void {
    clearTimeout(this.restartTimer);
    this.send = undefined;
    this.endSession('engine stopping');
    this.to('closed');
  }
}
