/**
 * One syslog message as an engine received it, before any parsing: what the engine forwards to its tenant in
 * batches over the sealed session (agent/engine/syslog/…) and what the tenant's event pipeline takes in
 * (agent/tenant/events/…). The engine only frames (UDP datagram, TCP newline or octet-counted, TLS per
 * RFC 5425); parsing (RFC 3164/5424 headers, key=value, CEF, LEEF), domain tagging and storage are the
 * tenant's, because custom properties, log sources and domains are defined there. Pure types and limits.
 */

/** How the message reached the engine. */
export type SyslogTransport = 'udp' | 'tcp' | 'tls';

export interface SyslogRecord {
  /** When the engine received it, ms since the epoch (the event's time when its header has none). */
  receivedAt: number;
  /** The sender's IP address as the engine's socket saw it (v4 dotted or v6), the log source's key. */
  sender: string;
  transport: SyslogTransport;
  /** The message exactly as framed, without the trailing newline or the octet count; UTF-8. */
  raw: string;
}

/** A batch from the engine; the tenant acknowledges it whole once stored (then the engine drops it from its spool). */
export interface SyslogBatch {
  /** The engine's name: the event collector that domain mapping `--event-collector ENGINE` matches. */
  engine: string;
  /** Monotonic per engine, so a batch re-sent after a lost acknowledgement is stored once. */
  seq: number;
  records: SyslogRecord[];
}

/** Where a tenant's pipeline takes batches in; resolves once every record is stored (durably) and searchable. */
export interface EventSink {
  ingest(batch: SyslogBatch): Promise<{ accepted: number; duplicate: boolean }>;
}

/** RFC 5425 allows larger messages; longer ones are cut here and flagged by the tenant as truncated. */
export const MAX_SYSLOG_MESSAGE_BYTES = 64 * 1024;
/** At most this many records, and this many bytes of `raw`, in one batch. */
export const MAX_SYSLOG_BATCH_RECORDS = 2000;
export const MAX_SYSLOG_BATCH_BYTES = 4 * 1024 * 1024;
