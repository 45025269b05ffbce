/**
 * How every SDK client of one AWS call is configured: the region, the endpoints (regional STS by default,
 * the global one when turned off, custom URLs for PrivateLink), retries, and the one HTTP handler all of
 * the call's requests go through.
 *
 * The HTTP handler is the seam for where traffic leaves from. By default it dials directly. A caller that
 * must send AWS traffic another way (an engine dialing through its allow-list, a tenant through an engine
 * tunnel) passes `httpAgent`/`httpsAgent`: Node agents whose `createConnection` returns any Duplex — a
 * tunnel stream will do — and TLS, SigV4 and retries stay the SDK's. Instance metadata is the exception:
 * the SDK's IMDS provider dials with node:http itself (see credentials.ts). Not credentials, not errors.
 */
import type { Agent as HttpAgent } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import { GuardedHttpAgent, GuardedHttpsAgent } from '../target-guard.js';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { AwsCredentialIdentity } from '@smithy/types';
import type { AwsConnection } from './connection.js';

/** Where the SDK's HTTP goes; both absent means direct. */
export interface AwsTransport {
  readonly httpAgent?: HttpAgent;
  readonly httpsAgent?: HttpsAgent;
}

/** The global STS endpoint signs as us-east-1 (AWS's legacy endpoint, for when regional ones are turned off). */
const GLOBAL_STS = { endpoint: 'https://sts.amazonaws.com', region: 'us-east-1' } as const;

/** The handler of one call; `close()` frees sockets of agents it made, never the caller's. */
export interface CallHandler {
  readonly requestHandler: NodeHttpHandler;
  close(): void;
}

export function callHandler(connection: AwsConnection, transport: AwsTransport = {}): CallHandler {
  const owned = transport.httpAgent === undefined && transport.httpsAgent === undefined;
  // Direct (on a tenant), every socket passes the target guard; through a caller's agent, the far side rules.
  const requestHandler = new NodeHttpHandler({
    httpAgent: transport.httpAgent ?? (owned ? new GuardedHttpAgent({}, 'endpointUrl') : undefined),
    httpsAgent: transport.httpsAgent ?? (owned ? new GuardedHttpsAgent({}, 'endpointUrl') : undefined),
    // Per attempt; the whole call is bounded by an abort signal at timeoutMs (run.ts).
    connectionTimeout: connection.timeoutMs,
    requestTimeout: connection.timeoutMs,
  });
  return {
    requestHandler,
    // NodeHttpHandler.destroy() destroys its agents: a caller's tunnel agent outlives this call.
    close: () => (owned ? requestHandler.destroy() : undefined),
  };
}

/** Settings every client of a call shares. */
export interface ClientSettings {
  region: string;
  endpoint?: string;
  credentials?: AwsCredentialIdentity;
  requestHandler: NodeHttpHandler;
  maxAttempts: number;
}

/** A service client's settings (S3, EC2, IAM): the connection's region, or its custom service endpoint. */
export function serviceSettings(
  connection: AwsConnection,
  handler: CallHandler,
  credentials: AwsCredentialIdentity,
): ClientSettings {
  return {
    region: connection.region,
    endpoint: connection.endpointUrl,
    credentials,
    requestHandler: handler.requestHandler,
    maxAttempts: connection.maxAttempts,
  };
}

/**
 * STS: the custom (PrivateLink) endpoint if set; else the regional one, sts.<region>.amazonaws.com, which
 * the SDK picks from the region; else the global one. Credentials are given per call by the caller.
 */
export function stsSettings(connection: AwsConnection, handler: CallHandler): ClientSettings {
  const base = { requestHandler: handler.requestHandler, maxAttempts: connection.maxAttempts };
  if (connection.stsEndpointUrl) return { ...base, region: connection.region, endpoint: connection.stsEndpointUrl };
  if (connection.stsRegionalEndpoints) return { ...base, region: connection.region };
  return { ...base, ...GLOBAL_STS };
}

/** The host a request of these settings goes to, for messages ("could not reach sts.eu-west-1.amazonaws.com"). */
export function hostOf(settings: ClientSettings, service: string): string {
  if (settings.endpoint) return new URL(settings.endpoint).host;
  if (service === 'iam') return 'iam.amazonaws.com'; // IAM is global in the aws partition
  return `${service}.${settings.region}.amazonaws.com`;
}
