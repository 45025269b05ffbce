/**
 * The pure checks at main's unauthenticated edge: how big an audit entry can get whatever a caller puts in
 * it (main/access/audit.ts), what an Enroll frame may contain (main/enrolment/enrol-frame.ts) and when main renews its
 * own
 * server certificate (main/tls/server-certificate.ts); the address a cap counts a socket under is in
 * ip-address.test.ts. No I/O but certificate generation in memory.
 */
import { describe, expect, it } from 'vitest';
import { X509Certificate } from 'node:crypto';
import { AgentKind } from '#common/codec.js';
import { PalisadeError } from '#common/errors.js';
import { createCa, createCsr, generateRsaKeyPem, issueServerCert } from '#common/pki.js';
import { AUDIT_MAX_STRING, boundAuditValue } from '../../main/access/audit.js';
import { checkEnrollFrame } from '../../main/enrolment/enrol-frame.js';
import { issuedBy, renewalDue } from '../../main/tls/server-certificate.js';

/** A describe body cannot await: the agent key for the CSRs is made before. */
const agentKeyPem = await generateRsaKeyPem();

describe('audit entries are bounded', () => {
  it('cuts every string at any depth, and deep or wide values, to a fixed size', () => {
    const huge = 'x'.repeat(1_000_000);
    const deep = { a: { b: { c: { d: { e: huge } } } } };
    const wide = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`k${i}`, huge]));
    const bounded = boundAuditValue({
      actor: huge,
      target: huge,
      detail: { name: huge, list: Array(1000).fill(huge), deep, wide, [huge]: 1 },
    });
    const text = JSON.stringify(bounded);
    expect(text.length).toBeLessThan(100_000);
    const strings: string[] = [];
    JSON.stringify(bounded, (k, v: unknown) => {
      strings.push(k);
      if (typeof v === 'string') strings.push(v);
      return v;
    });
    for (const s of strings) expect(s.length).toBeLessThanOrEqual(AUDIT_MAX_STRING);
    expect((bounded as { actor: string }).actor.endsWith('…')).toBe(true);
  });

  it('keeps ordinary entries as they are', () => {
    const entry = {
      actor: 'usr_1',
      action: 'agent.enrol',
      outcome: 'ok',
      remote: '127.0.0.1:5000',
      detail: { agentId: 'hst_1', n: 3, ok: true, list: ['a', 'b'] },
    };
    expect(boundAuditValue(entry)).toEqual(entry);
  });
});

describe('an Enroll frame', () => {
  const csrPem = createCsr(agentKeyPem, 'host:h1');
  const good = {
    enrolKey: `pek_${'A'.repeat(12)}.${'B'.repeat(43)}`,
    csrPem,
    kind: AgentKind.AGENT_KIND_HOST,
    name: 'h1',
    protocolMajor: 1,
    protocolMinor: 1,
  };
  const refusal = (over: Record<string, unknown>) => {
    try {
      checkEnrollFrame({ ...good, ...over });
    } catch (e) {
      return e as PalisadeError;
    }
    throw new Error('accepted');
  };

  it('with every field in shape is accepted as is', () => {
    expect(checkEnrollFrame(good)).toEqual({ token: good.enrolKey, csrPem, kind: 'host', name: 'h1' });
    const box = new Uint8Array(32).fill(7);
    expect(checkEnrollFrame({ ...good, kind: AgentKind.AGENT_KIND_ENGINE, boxPublicKey: box }).boxPublicKey).toEqual(
      box,
    );
  });

  it('is refused field by field, naming the field and never echoing its value', () => {
    const cases: [Record<string, unknown>, string, string?][] = [
      [{ protocolMajor: 2 }, 'ERR_WIRE_VERSION'],
      [{ kind: AgentKind.AGENT_KIND_UNSPECIFIED }, 'ERR_WIRE_BAD_KIND'],
      [{ name: `EVIL\u001b[2J${'a'.repeat(100_000)}` }, 'ERR_BAD_NAME', 'name'],
      [{ name: '' }, 'ERR_BAD_NAME', 'name'],
      [{ enrolKey: 'EVIL' }, 'ERR_ENROL_KEY_MALFORMED', 'enrolKey'],
      [{ csrPem: `${csrPem}EVIL` }, 'ERR_ENROL_BAD_CSR', 'csr'],
      [{ csrPem: csrPem.replace('\n', `\n${'QUFB\n'.repeat(2000)}`) }, 'ERR_ENROL_BAD_CSR', 'csr'],
      [{ boxPublicKey: new Uint8Array(32) }, 'ERR_ENROL_BOX_KEY', 'boxPublicKey'],
      [{ kind: AgentKind.AGENT_KIND_ENGINE }, 'ERR_ENROL_BOX_KEY', 'boxPublicKey'],
      [{ kind: AgentKind.AGENT_KIND_ENGINE, boxPublicKey: new Uint8Array(33) }, 'ERR_ENROL_BOX_KEY', 'boxPublicKey'],
    ];
    for (const [over, code, field] of cases) {
      const e = refusal(over);
      expect(e.code, JSON.stringify(over).slice(0, 80)).toBe(code);
      if (field) expect(e.field).toBe(field);
      expect(e.message).not.toContain('EVIL');
    }
  });
});

describe("main's server certificate", () => {
  it("is due for renewal once less than a third of its life is left, and only if main's CA issued it", async () => {
    const ca = await createCa('test CA');
    const other = await createCa('other CA');
    const t0 = Date.UTC(2026, 0, 1);
    const day = 86_400_000;
    const cert = new X509Certificate(
      (await issueServerCert(ca, ['localhost'], { notBefore: new Date(t0), notAfter: new Date(t0 + 300 * day) }))
        .certPem,
    );
    expect(renewalDue(cert, t0 + 199 * day)).toBe(false);
    expect(renewalDue(cert, t0 + 201 * day)).toBe(true);
    expect(renewalDue(cert, t0 + 400 * day)).toBe(true);
    expect(issuedBy(cert, new X509Certificate(ca.certPem))).toBe(true);
    expect(issuedBy(cert, new X509Certificate(other.certPem))).toBe(false);
    const fresh = new X509Certificate((await issueServerCert(ca, ['localhost'])).certPem);
    expect((Date.parse(fresh.validTo) - Date.parse(fresh.validFrom)) / day).toBeLessThanOrEqual(398);
  });
});
