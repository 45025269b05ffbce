/**
 * Keeps the AWS SDK in a test process from reading anything of the machine's: no shared config or
 * credentials files, no AWS_* variables (a developer's AWS_ENDPOINT_URL or AWS_PROFILE would change where
 * calls go), instance metadata pointed at a closed loopback port unless a test names its fake. Also
 * routes HTTPS for AWS host names to a local fake: what a tunnel transport does, with a Node agent.
 */
import { Agent as HttpsAgent } from 'node:https';
import type { ClientRequestArgs } from 'node:http';
import { connect, type ConnectionOptions } from 'node:tls';
import type { Duplex } from 'node:stream';

const saved = new Map<string, string | undefined>();

/** Clears AWS_* for the test file; `restoreAwsEnv` puts the process's own back. */
export function isolateAwsEnv(): void {
  for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) saved.set(k, process.env[k]);
  for (const k of saved.keys()) delete process.env[k];
  for (const k of ['AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE', 'AWS_EC2_METADATA_SERVICE_ENDPOINT'])
    saved.set(k, process.env[k]);
  process.env.AWS_CONFIG_FILE = '/nonexistent/palisade-test/aws-config';
  process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/palisade-test/aws-credentials';
  // Port 9 (discard) on loopback: nothing listens, so a test that forgets its fake fails fast, off the network.
  process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = 'http://127.0.0.1:9';
}

export function restoreAwsEnv(): void {
  for (const [k, v] of saved)
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  saved.clear();
}

/**
 * An HTTPS agent that sends every connection to 127.0.0.1:port whatever the host (TLS still checks the
 * certificate against the host name, with `ca`), and records the hosts it was asked for and whether it
 * was destroyed.
 */
export class LoopbackRouteAgent extends HttpsAgent {
  readonly asked: string[] = [];
  destroyed = false;
  constructor(
    private readonly port: number,
    ca: string,
  ) {
    super({ ca, keepAlive: false });
  }

  override createConnection(options: ClientRequestArgs): Duplex {
    const host = String(options.host ?? options.hostname);
    this.asked.push(`${host}:${options.port}`);
    return connect({ ...(options as ConnectionOptions), host: '127.0.0.1', port: this.port, servername: host });
  }

  override destroy(): void {
    this.destroyed = true;
    super.destroy();
  }
}
