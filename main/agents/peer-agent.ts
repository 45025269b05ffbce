/**
 * Which live agent a TLS peer is: its client certificate, issued by main's CA (the TLS layer checked that),
 * mapped by serial to an agent that is not revoked and still holds that serial. Identity comes from the
 * certificate alone. Used by the agent gateway's upgrade and by the agent-only HTTPS routes (releases).
 */
import type { TLSSocket } from 'node:tls';
import { normaliseSerial } from '#common/pki.js';
import type { AgentRecord, Registry } from '../registry.js';

export interface PeerAgent {
  /** The certificate's serial, if the peer showed a certificate main's CA issued. */
  serial?: string;
  /** The agent record the serial maps to, live or revoked. */
  record?: AgentRecord;
  /** That agent, if it is live (not revoked, still holding this serial). */
  agent?: AgentRecord;
}

export async function peerAgent(registry: Registry, tls: TLSSocket): Promise<PeerAgent> {
  const cert = tls.authorized ? tls.getPeerCertificate() : undefined;
  if (!cert || !cert.serialNumber) return {};
  const serial = normaliseSerial(cert.serialNumber);
  const agentId = await registry.certSerials.get(serial);
  const record = agentId ? await registry.agents.get(agentId) : undefined;
  const live = record && !record.revokedAt && record.certSerial === serial;
  return { serial, record, agent: live ? record : undefined };
}
