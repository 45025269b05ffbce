/**
 * What makes an agent an engine: on every connection to main it opens an end-to-end session with its
 * tenant (handshake via main and the tenant's host), then serves the tenant's streams by dialling
 * destinations in its allow-list. Refusals close that stream with a reason and are logged for audit.
 */
import { connect } from 'node:net';
import { readFile } from 'node:fs/promises';
import { decodeEnvelope, encodeEnvelope, type Envelope, type EnvelopeInit } from '#common/codec.js';
import { engineHandshake, type EngineHandshake, type SessionKeys, type EngineHello, type TenantHello } from '#common/tunnel-crypto.js';
import { handshakeRecord, parseHandshake, sealedRecord, RECORD_HANDSHAKE, RECORD_SEALED } from '#common/tunnel-records.js';
import { StreamMux, type MuxStream } from '#common/stream-mux.js';
import { errorMessage } from '#common/errors.js';
import type { AgentConfig } from '#common/agent-dir.js';
import type { Logger } from '#common/logging.js';
import { AllowList } from './allow-list.js';

export class EngineRole {
  private hs?: EngineHandshake;
  private keys?: SessionKeys;
  private mux?: StreamMux;
  private send?: (env: EnvelopeInit) => boolean;
  private readonly allow: AllowList;

  private constructor(private readonly config: AgentConfig, private readonly box: { publicKey: Uint8Array; secretKey: Uint8Array }, private readonly log: Logger) {
    this.allow = new AllowList(config.allow ?? []);
  }

  static async load(config: AgentConfig, boxKeyPath: string, log: Logger): Promise<EngineRole> {
    const raw = JSON.parse(await readFile(boxKeyPath, 'utf8')) as { publicKey: string; secretKey: string };
    return new EngineRole(config, { publicKey: Buffer.from(raw.publicKey, 'base64'), secretKey: Buffer.from(raw.secretKey, 'base64') }, log);
  }

  /** Each (re)connection to main starts a fresh session; streams of the old one end with an error. */
  onWelcome(send: (env: EnvelopeInit) => boolean): void {
    this.send = send;
    this.mux?.close('engine reconnected');
    this.mux = undefined;
    this.keys = undefined;
    if (!this.config.tenant || !this.config.tenantPublicKey) return;
    this.hs = engineHandshake(this.box, Buffer.from(this.config.tenantPublicKey, 'base64'));
    send({ tenant: this.config.tenant, tunnel: { record: handshakeRecord(this.hs.hello as EngineHello) } });
  }

  onTunnel(env: Envelope): void {
    const record = Buffer.from(env.tunnel?.record ?? []);
    try {
      if (record[0] === RECORD_HANDSHAKE && this.hs) {
        this.keys = this.hs.finish(parseHandshake<TenantHello>(record));
        this.hs = undefined;
        this.mux = new StreamMux({ initiator: false, send: (f) => this.sendFrame(f), onOpen: (s, target) => this.dial(s, target) });
        this.log.info({ tenant: this.config.tenant }, 'tunnel session established');
      } else if (record[0] === RECORD_SEALED && this.keys && this.mux) {
        this.mux.onFrame(decodeEnvelope(this.keys.receive.open(record.subarray(1))));
      }
    } catch (e) {
      this.log.warn({ err: errorMessage(e), code: (e as { code?: string }).code }, 'tunnel session failed; it restarts on the next connection');
      this.mux?.close('tunnel session failed');
      this.mux = undefined;
      this.keys = undefined;
    }
  }

  private sendFrame(frame: EnvelopeInit): void {
    if (!this.keys) return;
    this.send?.({ tenant: this.config.tenant, tunnel: { record: sealedRecord(this.keys.send.seal(encodeEnvelope(frame))) } });
  }

  private dial(stream: MuxStream, target: string): true {
    stream.on('error', () => undefined);
    this.allow.resolve(target).then(({ address, port }) => {
      const sock = connect({ host: address, port });
      sock.setNoDelay(true);
      sock.on('error', (e) => stream.destroy(Object.assign(new Error(`dial ${target}: ${e.message}`), { code: 'ERR_TUNNEL_DIAL' })));
      stream.on('close', () => sock.destroy());
      sock.pipe(stream);
      stream.pipe(sock);
      this.log.info({ target, address }, 'tunnel stream opened');
    }, (e: unknown) => {
      this.log.warn({ audit: { action: 'tunnel.dial', target, outcome: 'denied', code: (e as { code?: string }).code } }, 'tunnel destination refused');
      stream.destroy(e as Error);
    });
    return true;
  }

  close(): void {
    this.mux?.close('engine stopping');
  }
}
