/** The engine's allow-list: what a broad entry still refuses, and what only an exact entry allows. */
import { describe, expect, it } from 'vitest';
import { AllowList } from '../../agent/engine/allow-list.js';

const refused = (list: AllowList, target: string) => list.resolve(target).then(() => 'allowed', (e: { code?: string }) => e.code);

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
    for (const t of ['127.0.0.1:22', '169.254.169.254:80', '0.0.0.0:443', '[::1]:22', '[fd00:ec2::254]:80', '[::]:443', '[::ffff:127.0.0.1]:22', '[::ffff:169.254.169.254]:80']) {
      expect(await refused(l, t), t).toBe('ERR_TUNNEL_NOT_ALLOWED');
    }
    await expect(l.resolve('8.8.8.8:53')).resolves.toMatchObject({ address: '8.8.8.8' });
  });

  it('only an entry naming it exactly allows a sensitive address', async () => {
    expect(await refused(new AllowList(['127.0.0.1:5432']), '127.0.0.1:5432')).toBe('allowed');
    expect(await refused(new AllowList(['localhost:5432']), 'localhost:5432')).toBe('allowed');
    expect(await refused(new AllowList(['127.0.0.0/8:5432']), '127.0.0.1:5432')).toBe('ERR_TUNNEL_NOT_ALLOWED');
  });
});
