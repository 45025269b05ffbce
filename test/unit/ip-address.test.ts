/**
 * The source a per-address limit counts an address under (common/ip-address.ts: main's failure
 * throttle and connection caps), and the IPv6 group parser it shares with the engine's allow-list.
 */
import { describe, expect, it } from 'vitest';
import { addressKey, ipv6Groups, isUnspecified } from '#common/ip-address.js';

describe('ipv6Groups', () => {
  it('reads every way of writing an IPv6 address as its eight groups', () => {
    const g = [0x2001, 0xdb8, 1, 2, 0, 0, 0x102, 0x304];
    for (const ip of [
      '2001:db8:1:2::102:304',
      '2001:0DB8:0001:0002:0000:0000:0102:0304',
      '2001:db8:1:2::1.2.3.4',
      '2001:db8:1:2:0:0:1.2.3.4',
    ]) {
      expect(ipv6Groups(ip), ip).toEqual(g);
    }
    expect(ipv6Groups('::')).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(ipv6Groups('fe80::1%eth0')).toEqual([0xfe80, 0, 0, 0, 0, 0, 0, 1]);
    expect(ipv6Groups('::ffff:127.0.0.2')).toEqual([0, 0, 0, 0, 0, 0xffff, 0x7f00, 2]);
  });
});

describe('addressKey', () => {
  it('counts IPv4 as itself, and an IPv4-mapped IPv6 address as that IPv4', () => {
    expect(addressKey('127.0.0.2')).toBe('127.0.0.2');
    expect(addressKey('203.0.113.7')).toBe('203.0.113.7');
    for (const ip of ['::ffff:127.0.0.2', '::FFFF:127.0.0.2', '::ffff:7f00:2', '0:0:0:0:0:ffff:7f00:0002'])
      expect(addressKey(ip), ip).toBe('127.0.0.2');
  });

  it('counts IPv6 by its /64, however the address is written', () => {
    const oneHost = [
      '2001:db8:1:2::1',
      '2001:0db8:0001:0002:0000:0000:0000:0001',
      '2001:DB8:1:2:AAAA:BBBB:CCCC:DDDD',
      '2001:db8:1:2:ffff:ffff:ffff:ffff',
      '2001:db8:1:2::ffff:1.2.3.4',
      '2001:db8:1:2:0::5',
    ];
    for (const ip of oneHost) expect(addressKey(ip), ip).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('2001:0db8:0000:0000:ffff::')).toBe('2001:db8:0:0::/64');
    // A dotted tail is two groups: the prefix of an address written this way is not shifted by it.
    expect(addressKey('::1:2:3:4:5:1.2.3.4')).toBe('0:1:2:3::/64');
    expect(addressKey('0:1:2:3:4:5:102:304')).toBe('0:1:2:3::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
  });

  it('keeps other /64s apart, the neighbouring one too', () => {
    const keys = new Set(
      [
        '2001:db8:1:2::1',
        '2001:db8:1:3::1',
        '2001:db8:1:1:ffff:ffff:ffff:ffff',
        '2001:db9:1:2::1',
        '::ffff:127.0.0.3',
        '127.0.0.2',
      ].map(addressKey),
    );
    expect(keys.size).toBe(6);
  });

  it('returns what is not an IP literal as it is', () => {
    expect(addressKey('?')).toBe('?');
    expect(addressKey('')).toBe('');
  });
});

describe('isUnspecified', () => {
  it('knows 0.0.0.0 and :: however :: is written, and nothing else', () => {
    for (const ip of ['0.0.0.0', '::', '0:0::0', '0:0:0:0:0:0:0:0']) expect(isUnspecified(ip), ip).toBe(true);
    for (const ip of ['0.0.0.1', '::1', '::ffff:0.0.0.0', '127.0.0.1', 'localhost', ''])
      expect(isUnspecified(ip), ip).toBe(false);
  });
});
