/** The engine's allow-list: what a broad entry still refuses, and what only an exact entry allows. */
import { describe, expect, it } from 'vitest';
import { AllowList } from '../../agent/engine/allow-list.js';
import { addressForms } from '#common/ip-address.js';

const refused = (list: AllowList, target: string) =>
  list.resolve(target).then(
    () => 'allowed',
    (e: { code?: string }) => e.code,
  );

describe('engine allow-list', () => {
  it('allows what an entry covers, by CIDR and port range', async () => {
    const l = new AllowList(['10.0.0.0/8:389', '192.168.1.5:8000-8100']);
    await expect(l.resolve('10.1.2.3:389')).resolves.toEqual({ address: '10.1.2.3', port: 389 });
    await expect(l.resolve('192.168.1.5:8050')).resolves.toMatchObject({ port: 8050 });
    expect(await refused(l, '10.1.2.3:390')).toBe('ERR_TUNNEL_NOT_ALLOWED');
    expect(await refused(l, '192.168.1.6:8050')).toBe('ERR_TUNNEL_NOT_ALLOWED');
  });

  it('a broad entry never covers loopback, link-local, metadata or "this host" addresses', async () => {
    const l = new AllowList(['0.0.0.0/0', '[::]/0']);
    for (const t of [
      '127.0.0.1:22',
      '169.254.169.254:80',
      '0.0.0.0:443',
      '[::1]:22',
      '[fd00:ec2::254]:80',
      '[::]:443',
      '[::ffff:127.0.0.1]:22',
      '[::ffff:169.254.169.254]:80',
      '100.100.100.200:80',
    ]) {
      expect(await refused(l, t), t).toBe('ERR_TUNNEL_NOT_ALLOWED');
    }
    await expect(l.resolve('8.8.8.8:53')).resolves.toMatchObject({ address: '8.8.8.8' });
  });

  it('only an entry naming it exactly allows a sensitive address', async () => {
    expect(await refused(new AllowList(['127.0.0.1:5432']), '127.0.0.1:5432')).toBe('allowed');
    expect(await refused(new AllowList(['localhost:5432']), 'localhost:5432')).toBe('allowed');
    // A name matches whatever its case and whether written absolute (trailing dot) or not, on either side.
    expect(await refused(new AllowList(['LocalHost.:5432']), 'localhost:5432')).toBe('allowed');
    expect(await refused(new AllowList(['localhost:5432']), 'localhost.:5432')).toBe('allowed');
    expect(await refused(new AllowList(['127.0.0.0/8:5432']), '127.0.0.1:5432')).toBe('ERR_TUNNEL_NOT_ALLOWED');
    // A customer's CGNAT range does not open Alibaba Cloud's metadata address inside it; its neighbours it does.
    expect(await refused(new AllowList(['100.64.0.0/10:80']), '100.100.100.200:80')).toBe('ERR_TUNNEL_NOT_ALLOWED');
    expect(await refused(new AllowList(['100.64.0.0/10:80']), '100.100.100.201:80')).toBe('allowed');
    expect(await refused(new AllowList(['100.100.100.200:80']), '100.100.100.200:80')).toBe('allowed');
  });

  it('instance metadata (169.254.169.254:80) opens only to an entry naming it exactly, never to a link-local CIDR', async () => {
    for (const broad of ['169.254.0.0/16', '169.254.0.0/16:80', '169.254.169.0/24:80', '169.254.169.254/31:80'])
      expect(await refused(new AllowList([broad]), '169.254.169.254:80'), broad).toBe('ERR_TUNNEL_NOT_ALLOWED');
    for (const exact of ['169.254.169.254:80', '169.254.169.254/32:80', '169.254.169.254'])
      expect(await refused(new AllowList([exact]), '169.254.169.254:80'), exact).toBe('allowed');
    expect(await refused(new AllowList(['169.254.169.254:80']), '169.254.169.254:443')).toBe('ERR_TUNNEL_NOT_ALLOWED');
  });

  it('judges an IPv6 form of an IPv4 address (mapped, compatible, NAT64) as that IPv4 address', async () => {
    const broad = new AllowList(['0.0.0.0/0', '[::]/0']);
    // Metadata, link-local, loopback and "this host" hidden in each form are refused like their IPv4 form.
    for (const t of [
      '[::169.254.169.254]:80',
      '[::a9fe:a9fe]:80',
      '[64:ff9b::169.254.169.254]:80',
      '[64:ff9b::a9fe:a9fe]:80',
      '[::127.0.0.1]:22',
      '[64:ff9b::7f00:1]:22',
      '[::ffff:a9fe:a9fe]:80',
      '[64:ff9b::0.0.0.0]:443',
      '[0:0:0:0:0:ffff:7f00:1]:22',
    ]) {
      expect(await refused(broad, t), t).toBe('ERR_TUNNEL_NOT_ALLOWED');
    }
    // An allowed IPv4 address is allowed in every form, and only on its ports; its neighbour is not.
    const one = new AllowList(['10.0.0.5:443']);
    for (const t of [
      '10.0.0.5:443',
      '[::ffff:10.0.0.5]:443',
      '[::ffff:a00:5]:443',
      '[64:ff9b::a00:5]:443',
      '[64:ff9b::10.0.0.5]:443',
      '[::10.0.0.5]:443',
    ]) {
      await expect(one.resolve(t), t).resolves.toMatchObject({ port: 443 });
    }
    for (const t of ['[::ffff:10.0.0.6]:443', '[64:ff9b::a00:6]:443', '[64:ff9b::a00:5]:444', '[64:ff9b:1::a00:5]:443'])
      expect(await refused(one, t), t).toBe('ERR_TUNNEL_NOT_ALLOWED');
    // The exact IPv4 entry for a sensitive address allows it in any form; a broad IPv6 entry over the NAT64 prefix does
    // not.
    expect(await refused(new AllowList(['169.254.169.254:80']), '[64:ff9b::a9fe:a9fe]:80')).toBe('allowed');
    expect(await refused(new AllowList(['[64:ff9b::]/96']), '[64:ff9b::a9fe:a9fe]:80')).toBe('ERR_TUNNEL_NOT_ALLOWED');
    await expect(new AllowList(['[64:ff9b::]/96']).resolve('[64:ff9b::a00:5]:80')).resolves.toMatchObject({
      address: '64:ff9b::a00:5',
    });
  });

  it('treats the local-use NAT64 prefix 64:ff9b:1::/48 as able to reach anything: only an exact entry allows it', async () => {
    expect(await refused(new AllowList(['0.0.0.0/0', '[::]/0']), '[64:ff9b:1::a00:5]:443')).toBe(
      'ERR_TUNNEL_NOT_ALLOWED',
    );
    expect(await refused(new AllowList(['[64:ff9b:1::]/48']), '[64:ff9b:1::a00:5]:443')).toBe('ERR_TUNNEL_NOT_ALLOWED');
    expect(await refused(new AllowList(['[64:ff9b:1::a00:5]:443']), '[64:ff9b:1::a00:5]:443')).toBe('allowed');
  });

  it('keeps IPv6 loopback and unspecified as IPv6 (not IPv4-compatible 0.0.0.1 / 0.0.0.0), and plain IPv6 as itself', () => {
    expect(addressForms('::1')).toEqual({ opaque: false });
    expect(addressForms('::')).toEqual({ opaque: false });
    expect(addressForms('::2')).toEqual({ ipv4: '0.0.0.2', opaque: false });
    expect(addressForms('2001:db8::a00:5')).toEqual({ opaque: false });
    expect(addressForms('fe80::1%eth0')).toEqual({ opaque: false });
    expect(addressForms('10.0.0.5')).toEqual({ opaque: false });
    expect(addressForms('64:ff9b::c0a8:105')).toEqual({ ipv4: '192.168.1.5', opaque: false });
  });
});
