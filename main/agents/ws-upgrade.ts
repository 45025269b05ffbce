/**
 * How main answers a WebSocket client and lets it go: before the upgrade, with an HTTP status and the REST
 * error body (refuseUpgrade); after it, with one last frame (an Error, or EnrollOk) and a close code
 * (sendAndClose). Either way the socket is gone CLOSE_GRACE_MS later, whether or not the peer finishes
 * closing: these sockets are out of the HTTP server's timeouts, and a stranger must not keep one by never
 * answering a close. Shared by the agent gateway and the enrolment endpoint; no policy here.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { encodeEnvelope, type EnvelopeInit } from '#common/codec.js';
import { ERROR_CODES, isErrorCode, type ErrorCode, type PeerCode } from '#common/error-codes.js';

/** Time for a peer to read the last words and close; ws alone would wait 30 s for its close frame. */
const CLOSE_GRACE_MS = 5_000;

const REASONS: Readonly<Record<number, string>> = {
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Answers with the status of `code` in the error table (a code it does not list is no answer of ours: 500). */
export function refuseUpgrade(
  socket: Duplex,
  code: ErrorCode | PeerCode,
  message: string,
  retryAfterMs?: number,
): void {
  const status = isErrorCode(code) ? ERROR_CODES[code].status : 500;
  const body = JSON.stringify({ error: { code, message } });
  const retry = retryAfterMs ? `Retry-After: ${Math.max(1, Math.ceil(retryAfterMs / 1000))}\r\n` : '';
  socket.end(
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\nConnection: close\r\n${retry}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
}

/** Sends one last frame, then closes with `closeCode` once it is written. */
export function sendAndClose(ws: WebSocket, env: EnvelopeInit, closeCode: number): void {
  ws.send(encodeEnvelope(env), () => ws.close(closeCode, (env.error?.code ?? '').slice(0, 120)));
  setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
}

/** ADDRESS:PORT of the peer, for audit entries and logs. */
export function remoteOf(req: IncomingMessage): string {
  return `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
}
