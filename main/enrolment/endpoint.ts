/**
 * `/enrol/v1`: the one place a client without a certificate may speak, and only to trade a one-time key
 * for one: a single Enroll frame in, EnrollOk or an Error out, then close. Every field is checked
 * (enrol-frame.ts) before anything of it is stored or logged. Each refusal counts against its source
 * address in the shared failure throttle (auth-throttle.ts); a blocked address is answered 429 at the
 * upgrade, before a frame is read or a line written, so a flood costs main a TLS handshake per attempt
 * and one `auth.throttle` audit line per address and minute, not a store write each.
 * Not the key logic (enrolment.ts) and not the agent channel (agents/gateway.ts).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocketServer, WebSocket, RawData } from 'ws';
import { decodeEnvelope, type Envelope } from '#common/codec.js';
import { errorMessage, isPalisadeError, ProtocolError, WS_CLOSE } from '#common/errors.js';
import type { Logger } from '#common/logging.js';
import type { Enrolment } from './enrolment.js';
import type { AuditLog } from '../access/audit.js';
import { auditThrottled, tooManyFailures, type AuthFailureThrottle } from '../access/auth-throttle.js';
import { checkEnrollFrame } from './enrol-frame.js';
import { refuseUpgrade, remoteOf, sendAndClose } from '../agents/ws-upgrade.js';
import type { MainMetrics } from '../metrics.js';

export const ENROL_PATH = '/enrol/v1';

export interface EnrolEndpointLimits {
  maxFrameBytes: number;
  helloTimeoutMs: number;
}

export class EnrolEndpoint {
  constructor(
    private readonly wss: WebSocketServer,
    private readonly enrolment: Enrolment,
    private readonly audit: AuditLog,
    private readonly throttle: AuthFailureThrottle,
    private readonly limits: EnrolEndpointLimits,
    private readonly log: Logger,
    private readonly metrics?: MainMetrics,
  ) {}

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const address = req.socket.remoteAddress ?? '?';
    const blockedMs = this.throttle.blockedFor(address);
    if (blockedMs) {
      this.metrics?.enrolments.inc({ outcome: 'refused' });
      const e = tooManyFailures(blockedMs);
      return refuseUpgrade(socket, e.code, e.message, blockedMs);
    }
    const remote = remoteOf(req);
    this.wss.handleUpgrade(req, socket, head, (ws) => this.serve(ws, address, remote));
  }

  private serve(ws: WebSocket, address: string, remote: string): void {
    const timer = setTimeout(() => ws.terminate(), this.limits.helloTimeoutMs);
    let heard = false;
    // A frame over ws's size limit is reported here (ws is already closing with 1009): a failure too.
    ws.on('error', () => {
      clearTimeout(timer);
      if (!heard)
        this.refused(address).catch((e: unknown) =>
          this.log.error({ err: errorMessage(e) }, 'enrolment refusal not recorded'),
        );
      heard = true;
    });
    ws.once('message', (data: RawData, isBinary: boolean) => {
      clearTimeout(timer);
      heard = true;
      this.answer(ws, data, isBinary, address, remote).catch((e: unknown) => {
        this.log.error({ err: errorMessage(e) }, 'enrolment answer failed');
        ws.terminate();
      });
    });
  }

  private async answer(
    ws: WebSocket,
    data: RawData,
    isBinary: boolean,
    address: string,
    remote: string,
  ): Promise<void> {
    let req: Envelope | undefined;
    let checked = false;
    try {
      // Blocked while this connection was open (a flood in parallel): refuse without looking at the frame.
      const blockedMs = this.throttle.blockedFor(address);
      if (blockedMs) throw tooManyFailures(blockedMs);
      if (!isBinary) throw new ProtocolError('ERR_WIRE_TEXT_FRAME', 'frames must be binary protobuf Envelopes');
      req = decodeEnvelope(Buffer.from(data as Buffer), this.limits.maxFrameBytes);
      if (!req.enroll)
        throw new ProtocolError('ERR_WIRE_EXPECTED_ENROLL', 'the enrolment endpoint takes one Enroll frame');
      const fields = checkEnrollFrame(req.enroll);
      checked = true;
      const { agent, certPem } = await this.enrolment.enrol({ ...fields, remote });
      sendAndClose(ws, { replyTo: req.id, enrollOk: { agentId: agent.id, certPem, caPem: '' } }, WS_CLOSE.normal);
      this.metrics?.enrolments.inc({ outcome: 'ok' });
    } catch (e) {
      this.metrics?.enrolments.inc({ outcome: 'refused' });
      const code = isPalisadeError(e) ? e.code : 'ERR_INTERNAL';
      const message = isPalisadeError(e) ? e.message : 'internal error during enrolment';
      if (!isPalisadeError(e)) this.log.error({ err: errorMessage(e) }, 'enrolment failed');
      if (code !== 'ERR_AUTH_THROTTLED') {
        // enrolment.ts audits what it refuses (it knows the key id); a frame refused before it is audited
        // here, by its code and field only: its values are a stranger's.
        if (!checked)
          await this.audit.record({
            actor: 'anonymous',
            action: 'agent.enrol',
            outcome: 'denied',
            remote,
            detail: { code, ...(isPalisadeError(e) && e.field ? { field: e.field } : {}) },
          });
        await this.refused(address);
      }
      const retryAfterMs = isPalisadeError(e) ? e.retryAfterMs : undefined;
      const error = { code, message, retryable: retryAfterMs !== undefined, retryAfterMs: retryAfterMs ?? 0 };
      sendAndClose(
        ws,
        { replyTo: req?.id, error },
        isPalisadeError(e) && e.category === 'protocol' ? WS_CLOSE.protocol : WS_CLOSE.policy,
      );
    }
  }

  private async refused(address: string): Promise<void> {
    if (this.throttle.fail(address, 'enrol')) await auditThrottled(this.audit, address, ENROL_PATH);
  }
}
