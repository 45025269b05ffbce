/**
 * Syslog over a byte stream (TCP, TLS) cut into messages, per RFC 6587 with both framings told apart at each
 * frame's first byte, as RFC 6587 §3.4 suggests and rsyslog does: a digit starts octet counting (`LEN SP MSG`,
 * LEN without leading zeros), anything else a newline-terminated frame (LF, with a CR before it dropped, as
 * senders on Windows write). A sender may change framing between frames; empty lines are skipped.
 * A message longer than the limit (MAX_SYSLOG_MESSAGE_BYTES) is cut there and the rest of its frame skipped:
 * its sender's stream stays in step. A malformed octet count (no space, a leading zero, more than 9 digits)
 * leaves no way to find the next frame: push() throws ERR_SYSLOG_FRAME and the caller closes that connection.
 * Pure: bytes in, messages out; not the sockets (syslog-listeners.ts).
 */
import { ProtocolError } from '#common/errors.js';
import { MAX_SYSLOG_MESSAGE_BYTES } from '#common/syslog-record.js';

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const ZERO = 0x30;
const NINE = 0x39;
/** 999 999 999 bytes: a count longer than this is a sender out of step, not a message. */
const MAX_COUNT_DIGITS = 9;

type State = 'start' | 'count' | 'octets' | 'line';
/** A message as src[start, end): a view of the chunk it arrived in, or of the bytes joined when it spanned chunks. */
export type OnSpan = (src: Buffer, start: number, end: number) => void;

export class SyslogFramer {
  private state: State = 'start';
  private count = 0;
  private digits = 0;
  /** Octets of the current counted frame still to come. */
  private remaining = 0;
  /** The current message's bytes so far (at most `max` of them). */
  private parts: Buffer[] = [];
  private kept = 0;
  private span: OnSpan;

  /** `onMessage` gets each message as a Buffer of its own (a view). */
  constructor(
    onMessage: (raw: Buffer) => void,
    private readonly max = MAX_SYSLOG_MESSAGE_BYTES,
  ) {
    this.span = (src, start, end) => onMessage(src.subarray(start, end));
  }

  /** A framer handing each message over as a span of the bytes read (the listeners': no object per message). */
  static ofSpans(onSpan: OnSpan, max = MAX_SYSLOG_MESSAGE_BYTES): SyslogFramer {
    const f = new SyslogFramer(() => undefined, max);
    f.span = onSpan;
    return f;
  }

  push(chunk: Buffer): void {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      switch (this.state) {
        case 'start': {
          const c = chunk[i];
          if (c === LF || c === CR) i++;
          else if (c >= ZERO && c <= NINE) {
            if (c === ZERO) throw malformed('an octet count starts with 0');
            this.state = 'count';
            this.count = 0;
            this.digits = 0;
          } else this.state = 'line';
          break;
        }
        case 'count': {
          const c = chunk[i++];
          if (c >= ZERO && c <= NINE) {
            if (++this.digits > MAX_COUNT_DIGITS)
              throw malformed(`an octet count of more than ${MAX_COUNT_DIGITS} digits`);
            this.count = this.count * 10 + (c - ZERO);
          } else if (c === SP) {
            this.remaining = this.count;
            this.state = 'octets';
          } else throw malformed('an octet count not followed by a space');
          break;
        }
        case 'octets': {
          if (this.parts.length === 0 && this.remaining <= n - i) {
            // The whole frame is in this chunk: handed over where it lies.
            const from = i;
            i += this.remaining;
            this.remaining = 0;
            this.state = 'start';
            if (i > from) this.span(chunk, from, Math.min(i, from + this.max));
            break;
          }
          const take = Math.min(this.remaining, n - i);
          this.keep(chunk, i, i + take);
          this.remaining -= take;
          i += take;
          if (this.remaining === 0) this.emit(false);
          break;
        }
        case 'line': {
          const lf = chunk.indexOf(LF, i);
          if (lf < 0) {
            this.keep(chunk, i, n);
            i = n;
          } else if (this.parts.length === 0) {
            // The whole line is in this chunk: handed over where it lies, cut and without a CR before the LF.
            const from = i;
            let end = lf - from > this.max ? from + this.max : lf;
            if (end > from && chunk[end - 1] === CR) end--;
            i = lf + 1;
            this.state = 'start';
            if (end > from) this.span(chunk, from, end);
          } else {
            this.keep(chunk, i, lf);
            i = lf + 1;
            this.emit(true);
          }
          break;
        }
      }
    }
  }

  /**
   * The connection ended: a newline frame without its newline is still a message (many senders end with one); a
   * counted frame cut short is not sent whole, and is dropped.
   */
  end(): void {
    if (this.state === 'line') this.emit(true);
    this.state = 'start';
    this.parts = [];
    this.kept = 0;
  }

  private keep(chunk: Buffer, from: number, to: number): void {
    const room = this.max - this.kept;
    if (room <= 0 || to <= from) return;
    const end = Math.min(to, from + room);
    this.parts.push(chunk.subarray(from, end));
    this.kept += end - from;
  }

  private emit(line: boolean): void {
    let raw = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.kept);
    if (line && raw.length > 0 && raw[raw.length - 1] === CR) raw = raw.subarray(0, raw.length - 1);
    this.parts = [];
    this.kept = 0;
    this.state = 'start';
    if (raw.length > 0) this.span(raw, 0, raw.length);
  }
}

function malformed(why: string): ProtocolError {
  return new ProtocolError('ERR_SYSLOG_FRAME', `malformed syslog frame: ${why} (RFC 6587); closing the connection`);
}
