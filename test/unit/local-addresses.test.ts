// Which destinations of an inbound tunnel land on this machine: the tenant refuses those that lead into
// another tenant's listener or API port, so an IPv6 spelling of a loopback address must count as local.
import { describe, expect, it } from 'vitest';
import { isLocalAddress } from '../../agent/local-addresses.js';

describe('isLocalAddress', () => {
  it('counts loopback, the unspecified addresses and their IPv6 forms as local', () => {
    for (const a of [
      '127.0.0.1',
      '127.3.4.5',
      '0.0.0.0',
      '::1',
      '::',
      '::ffff:127.0.0.1',
      '::127.0.0.1',
      '64:ff9b::7f00:1',
      '::ffff:0.0.0.0',
    ]) {
      expect(isLocalAddress(a), a).toBe(true);
    }
  });

  it('counts neither a documentation address nor its IPv6 forms, nor a name', () => {
    for (const a of ['192.0.2.7', '::ffff:192.0.2.7', '64:ff9b::c000:207', '2001:db8::1', 'localhost', '']) {
      expect(isLocalAddress(a), a).toBe(false);
    }
  });
});
