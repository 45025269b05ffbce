/**
 * Relayed requests on the main ⇄ host wire (protocol 1.3): a tenant.request carries a RelayRequest in
 * Command.relay and is answered with a RelayReply in Result.relay, bodies as raw bytes (no base64, no
 * JSON around them). Golden bytes derived by hand from proto/palisade.proto; main's RPC client sends
 * and takes exactly that shape; the host refuses a relayed request without its tenant or its RelayRequest.
 * Pure: no I/O.
 */
import { describe, expect, it } from 'vitest';
import { decodeEnvelope, encodeEnvelope, type EnvelopeInit } from '#common/codec.js';
import { silentLogger } from '#common/logging.js';
import { RpcClient, RPC_ID_BASE } from '../../main/agents/rpc.js';
import { HostRole } from '../../agent/host/host-role.js';

const hex = (s: string) => Buffer.from(s, 'latin1').toString('hex');
/** 2^50 + 1, the first RPC id, as a varint: 0x81 (1, more), six 0x80 (0, more), 0x02 (2 × 2^49). */
const RPC_ID_VARINT = '81808080808080' + '02';
const BODY = Buffer.from([0x00, 0xff, 0x7b]); // not UTF-8, not base64: bytes as they are

describe('relayed requests as bytes (1.3)', () => {
  it('encodes a relayed request to golden bytes, and decodes them back', () => {
    //   08 <2^50+1>            id (1, varint)
    //   1a 04 "acme"           tenant (3, len)
    //   72 40                  command (14, len 64):
    //     0a 0e "tenant.request"   name (1)
    //     3a 2e                    relay (7, len 46):
    //       0a 04 "POST"             method (1)
    //       12 09 "/api/v1/x"        path (2)
    //       1a 01 "a"                auth (3)
    //       22 01 "s"                signature (4)
    //       2a 03 00 ff 7b           body (5, bytes)
    //       32 10 "application/json" content_type (6)
    const golden =
      `08${RPC_ID_VARINT}1a04${hex('acme')}7240` +
      `0a0e${hex('tenant.request')}3a2e` +
      `0a04${hex('POST')}1209${hex('/api/v1/x')}1a01${hex('a')}2201${hex('s')}2a0300ff7b3210${hex('application/json')}`;
    const env: EnvelopeInit = {
      id: RPC_ID_BASE + 1,
      tenant: 'acme',
      command: {
        name: 'tenant.request',
        relay: {
          method: 'POST',
          path: '/api/v1/x',
          auth: 'a',
          signature: 's',
          body: BODY,
          contentType: 'application/json',
        },
      },
    };
    expect(Buffer.from(encodeEnvelope(env)).toString('hex')).toBe(golden);
    const back = decodeEnvelope(Buffer.from(golden, 'hex'));
    expect(back.tenant).toBe('acme');
    expect(back.command?.args?.length ?? 0).toBe(0);
    expect(back.command?.relay).toMatchObject({
      method: 'POST',
      path: '/api/v1/x',
      auth: 'a',
      signature: 's',
      contentType: 'application/json',
    });
    expect(Buffer.from(back.command!.relay!.body!).equals(BODY)).toBe(true);
  });

  it('encodes a relayed reply to golden bytes, and decodes them back', () => {
    //   10 <2^50+1>            reply_to (2, varint)
    //   7a 1d                  result (15, len 29):
    //     08 01                  ok = true
    //     32 19                  relay (6, len 25):
    //       08 c8 01               status (1) = 200
    //       12 10 "application/json" content_type (2)
    //       1a 02 7b 7d            body (3) = "{}"
    const golden = `10${RPC_ID_VARINT}7a1d08013219` + `08c801` + `1210${hex('application/json')}` + `1a027b7d`;
    const env: EnvelopeInit = {
      replyTo: RPC_ID_BASE + 1,
      result: { ok: true, relay: { status: 200, contentType: 'application/json', body: Buffer.from('{}') } },
    };
    expect(Buffer.from(encodeEnvelope(env)).toString('hex')).toBe(golden);
    const back = decodeEnvelope(Buffer.from(golden, 'hex'));
    expect(back.result?.relay).toMatchObject({ status: 200, contentType: 'application/json' });
    expect(Buffer.from(back.result!.relay!.body!).toString()).toBe('{}');
  });

  it("main's RPC client sends a RelayRequest with no JSON args, and resolves with the RelayReply's bytes", async () => {
    const sent: EnvelopeInit[] = [];
    const rpc = new RpcClient((_agent, env) => {
      sent.push(env);
      return true;
    });
    const reply = rpc.relay(
      'hst_1',
      'acme',
      { method: 'POST', path: '/api/v1/x', auth: 'a', signature: 's', body: BODY, contentType: 'application/json' },
      60_000,
    );
    const wire = decodeEnvelope(encodeEnvelope(sent[0]));
    expect(wire.tenant).toBe('acme');
    expect(RpcClient.owns(wire.id)).toBe(true);
    expect(wire.command).toMatchObject({ name: 'tenant.request', relay: { method: 'POST', path: '/api/v1/x' } });
    expect(wire.command?.args?.length ?? 0).toBe(0);
    expect(Buffer.from(wire.command!.relay!.body!).equals(BODY)).toBe(true);
    rpc.onResult(
      'hst_1',
      decodeEnvelope(
        encodeEnvelope({
          replyTo: wire.id,
          result: { ok: true, relay: { status: 201, contentType: 'text/plain', body: BODY } },
        }),
      ),
    );
    const r = await reply;
    expect(r.status).toBe(201);
    expect(r.contentType).toBe('text/plain');
    expect(Buffer.from(r.body).equals(BODY)).toBe(true);
  });

  it('main refuses an ok answer to a relayed request that carries no RelayReply (a host older than 1.3)', async () => {
    const sent: EnvelopeInit[] = [];
    const rpc = new RpcClient((_agent, env) => {
      sent.push(env);
      return true;
    });
    const reply = rpc.relay('hst_1', 'acme', { method: 'GET', path: '/api/v1/x', auth: 'a', signature: 's' }, 60_000);
    rpc.onResult(
      'hst_1',
      decodeEnvelope(
        encodeEnvelope({ replyTo: Number(sent[0].id), result: { ok: true, value: Buffer.from('{"status":200}') } }),
      ),
    );
    await expect(reply).rejects.toMatchObject({ code: 'ERR_WIRE_MALFORMED', category: 'protocol' });
  });

  it('the host refuses a relayed request without its tenant or its RelayRequest, and relays only /api/v1/ paths', async () => {
    const relay = new HostRole('/nonexistent/tenants', '/nonexistent', silentLogger(), {
      tenantUsers: false,
    }).handlers()['tenant.request'];
    const run = (env: EnvelopeInit) => relay(null, decodeEnvelope(encodeEnvelope(env)));
    const request = { method: 'GET', path: '/api/v1/incidents', auth: 'a', signature: 's' };
    await expect(run({ id: 1, command: { name: 'tenant.request', relay: request } })).rejects.toMatchObject({
      code: 'ERR_RELAY_TENANT',
    });
    // As a 1.2 main sends it: the request as JSON args.
    await expect(
      run({
        id: 2,
        tenant: 'acme',
        command: { name: 'tenant.request', args: Buffer.from(JSON.stringify({ tenant: 'acme', ...request })) },
      }),
    ).rejects.toMatchObject({ code: 'ERR_WIRE_MALFORMED' });
    await expect(
      run({ id: 3, tenant: 'acme', command: { name: 'tenant.request', relay: { ...request, path: '/internal' } } }),
    ).rejects.toMatchObject({ code: 'ERR_RELAY_PATH' });
    // Well-formed, for a tenant this host does not run.
    await expect(
      run({ id: 4, tenant: 'acme', command: { name: 'tenant.request', relay: request } }),
    ).rejects.toMatchObject({ code: 'ERR_TENANT_NOT_FOUND' });
  });
});
