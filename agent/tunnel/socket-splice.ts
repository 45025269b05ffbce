/**
 * Joins a TCP socket and a tunnel stream both ways with half-close: a FIN on one side ends the other's
 * writing only after everything before it was delivered, and only an error (or an abrupt close) tears
 * both down. Both ends must be created with `allowHalfOpen: true`, or a FIN would close too early and
 * drop the bytes still waiting for flow-control credit.
 */
import type { Socket } from 'node:net';
import type { MuxStream } from './mux-stream.js';

export function spliceSocket(sock: Socket, stream: MuxStream, onStreamError?: (e: Error) => void): void {
  sock.setNoDelay(true);
  stream.on('error', (e) => {
    onStreamError?.(e);
    sock.destroy();
  });
  sock.on('error', (e) => stream.destroy(e));
  // The socket's FIN reaches the stream through pipe (stream.end(), after what is still waiting for credit);
  // a reset arrives as 'error' above. The peer's FIN ends the socket after the data before it (attachSink).
  // A stream that closes without a clean end (reset by the peer, session gone) takes the socket down.
  stream.on('close', () => {
    if (stream.errored || !stream.readableEnded) sock.destroy();
  });
  stream.writesDisposable = true; // each socket read is a fresh buffer that only the pipe holds
  sock.pipe(stream);
  stream.attachSink(sock);
}
