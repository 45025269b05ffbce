/**
 * An engine in an attacker's hands, for revocation tests: it holds a real engine's tunnel key (copied from
 * its directory) and a statement main once made for it (captured off the wire in front of the host's
 * engine port), and dials the host directly with a fresh hello, as a stolen engine machine would once its
 * certificate is revoked and main no longer speaks to it. It never renews its statement.
 */
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { engineHandshake } from '../../agent/tunnel/tunnel-crypto.js';
import { engineHelloRecord, RECORD_RENEWAL } from '../../agent/tunnel/tunnel-records.js';
import { encodeOpening, parsePreamble, parseRenewal, type DirectPreamble } from '../../agent/tunnel/tunnel-direct.js';
import { directRecords, type TcpTap } from './tcp-tap.js';

export interface RogueSession {
  sock: Socket;
  /** true once the tenant answered the hello (a session), false if the connection closed unanswered. */
  answered: Promise<boolean>;
  /** When the connection ended (ms epoch). */
  closed: Promise<number>;
  readonly open: boolean;
}

/**
 * The newest statement main made for engine `name` (the one that expires last), from what a tap in front
 * of the host's engine port saw: connection openings and renewal records.
 */
export function capturedStatement(tap: TcpTap, name: string): DirectPreamble {
  let newest: DirectPreamble | undefined;
  for (const c of tap.connections) {
    let opening: ReturnType<typeof parsePreamble>;
    try {
      opening = parsePreamble(Buffer.concat(c.toHost));
    } catch {
      continue;
    } // not an engine's opening
    if (opening?.preamble.engineName !== name) continue;
    const renewals = directRecords(opening.rest, false)
      .filter((r) => r[0] === RECORD_RENEWAL)
      .map((r) => parseRenewal(r));
    for (const p of [opening.preamble, ...renewals]) if (!newest || p.expiresAtMs > newest.expiresAtMs) newest = p;
  }
  if (!newest) throw new Error(`no opening of engine ${name} captured`);
  return newest;
}

/** Dials the host's engine port as engine `engineDir` with `statement` and a fresh hello. */
export async function dialAsEngine(engineDir: string, port: number, statement: DirectPreamble): Promise<RogueSession> {
  const box = JSON.parse(await readFile(join(engineDir, 'pki', 'tunnel-key.json'), 'utf8')) as {
    publicKey: string;
    secretKey: string;
  };
  const cfg = JSON.parse(await readFile(join(engineDir, 'agent.json'), 'utf8')) as { tenantPublicKey: string };
  const hs = engineHandshake(
    { publicKey: Buffer.from(box.publicKey, 'base64'), secretKey: Buffer.from(box.secretKey, 'base64') },
    Buffer.from(cfg.tenantPublicKey, 'base64'),
  );
  const sock = connect(port, '127.0.0.1', () =>
    sock.write(encodeOpening(statement.tenant, statement, engineHelloRecord(hs.hello))),
  );
  sock.on('error', () => undefined);
  let open = true;
  const closed = new Promise<number>((resolve) =>
    sock.once('close', () => {
      open = false;
      resolve(Date.now());
    }),
  );
  const answered = new Promise<boolean>((resolve) => {
    sock.once('data', () => resolve(true));
    void closed.then(() => resolve(false));
  });
  return {
    sock,
    answered,
    closed,
    get open() {
      return open;
    },
  };
}
