/**
 * One syslog message as an engine received it, before any parsing: what the engine forwards to its tenant in
 * batches over the sealed session (agent/engine/syslog/…) and what the tenant's event pipeline takes in
 * (agent/tenant/events/…). The engine only frames (UDP datagram, TCP newline or octet-counted, TLS per
 * RFC 5425); parsing (RFC 3164/5424 headers, key=value, CEF, LEEF), domain tagging and storage are the
 * tenant's, because custom properties, log sources and domains are defined there. Pure types, limits, and the one
 * rule both ends decode a message's bytes by (messageText).
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
  /** Objects (a JSON batch, tests) or a view of a binary batch read in place (agent/tunnel/events-batch-binary.ts). */
  records: SyslogRecord[] | SyslogRecords;
}

/**
 * A batch's records by index, whatever form they came in: the tenant's pipeline reads them only through this, so a
 * binary batch needs no object per record. text(i) is the message as messageText() decodes its framed bytes.
 */
export interface SyslogRecords {
  readonly length: number;
  /** Set when every message is ASCII without a newline (BinaryRecords): text(i) is then a slice of one string. */
  readonly plain?: boolean;
  time(i: number): number;
  sender(i: number): string;
  transport(i: number): SyslogTransport;
  text(i: number): string;
  /** Lets go of memory kept for reading the records fast (BinaryRecords' one string); text(i) still works. */
  release?(): void;
}

/** Records given as objects, seen through SyslogRecords. */
export class RecordArray implements SyslogRecords {
  constructor(private readonly records: readonly SyslogRecord[]) {}
  get length(): number {
    return this.records.length;
  }
  time(i: number): number {
    return this.records[i].receivedAt;
  }
  sender(i: number): string {
    return this.records[i].sender;
  }
  transport(i: number): SyslogTransport {
    return this.records[i].transport;
  }
  text(i: number): string {
    return this.records[i].raw;
  }
}

/** The records of a batch as SyslogRecords. */
export function recordsOf(b: SyslogBatch): SyslogRecords {
  return Array.isArray(b.records) ? new RecordArray(b.records) : (b.records as SyslogRecords);
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

/**
 * A message as the record keeps it: UTF-8 text, at most `max` bytes. One cut at the limit (by the framer, or a long
 * datagram) may split a character: its first bytes are dropped rather than kept as a replacement character. The
 * engine decodes by it when it writes JSON; the tenant when it reads a binary batch (the bytes as framed).
 */
export function messageText(raw: Buffer, max = MAX_SYSLOG_MESSAGE_BYTES): string {
  if (raw.length < max) return raw.toString('utf8');
  let end = max;
  let lead = end - 1;
  while (lead > 0 && end - lead < 4 && (raw[lead] & 0xc0) === 0x80) lead--;
  const b = raw[lead];
  const size = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
  if (lead + size > end) end = lead;
  return raw.toString('utf8', 0, end);
}
