/**
 * An HTTP/1.1 GET written by hand on a TCP socket, for ports that are tunnel listeners rather than HTTP
 * servers: the request goes through the tunnel byte for byte and the answer is read until the far end
 * closes (`Connection: close`), so what the test sees is exactly what the service behind the tunnel sent.
 * Not an HTTP client: no chunked decoding, no redirects, no keep-alive.
 */
import { connect } from 'node:net';

/** GET `path` through the listener on 127.0.0.1:`port`; the status line's code and the raw body. */
export function rawHttpGet(port: number, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = connect(port, '127.0.0.1', () =>
      req.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`),
    );
    let raw = '';
    req.on('data', (c: Buffer) => {
      raw += c.toString();
    });
    req.on('end', () =>
      resolve({
        status: Number(/^HTTP\/1\.1 (\d+)/.exec(raw)?.[1] ?? 0),
        body: raw.split('\r\n\r\n').slice(1).join('\r\n\r\n'),
      }),
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
  });
}
