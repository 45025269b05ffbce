/**
 * Coalesces the frames one WebSocket sends in one turn of the event loop into one socket write. A
 * fan-out sends one frame per tenant to the same host at once; uncoalesced, each frame is its own TLS record
 * and its own write system call, and on loopback the kernel also runs the receiving side of TCP inside
 * that call (the largest cost on main in a 20-tenant search profile). Corked until the loop's check
 * phase (setImmediate), the TLS socket encrypts what was queued and writes it once: replies that tenants
 * send to their host in the same poll phase leave in one write too, which a nextTick would not gather
 * (it runs after each I/O callback). Nothing waits past the current turn of the loop.
 */
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

const corked = new WeakSet<Duplex>();

/** Holds `ws`'s socket writes until this turn of the event loop ends (no-op if already held or no socket). */
export function coalesceWrites(ws: WebSocket): void {
  // ws keeps its socket as `_socket` (stable across ws 7–8); without one there is nothing to hold.
  const socket = (ws as unknown as { _socket?: Duplex })._socket;
  if (!socket || corked.has(socket) || socket.destroyed) return;
  corked.add(socket);
  socket.cork();
  setImmediate(() => {
    corked.delete(socket);
    socket.uncork();
  });
}
