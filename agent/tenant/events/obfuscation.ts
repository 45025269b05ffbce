/**
 * Obfuscation rules (docs/events.md#obfuscation): `{name, domain?, field? | regex?}`. The pipeline's beforeStore
 * stage (pipeline-stages.ts) finds each rule's values in an event (a vendor field, with the usual aliases of user
 * names, or every match of a regex in the message: its first group if it has one) and replaces every occurrence of
 * such a value in the message, the custom properties and every other text field (host, app, addresses, log source,
 * the domain rule) with a token sealed to the rule's public key
 * (obfuscation-crypto.ts). So the clear value never reaches the store; vendor fields, parsed again from the message
 * when a search answers, show the token too. A rule applies to events stored after it is made, not before.
 * `reveal` opens the tokens of one rule in search answers, given that rule's key (the tenant never holds it).
 */
import type { RE2JS } from 're2js';
import { randomBytes } from 'node:crypto';
import type { Level } from 'level';
import { BadParameterError, ConflictError, NotFoundError } from '#common/errors.js';
import type { EventView } from '#common/events.js';
import type { Sub } from '../store.js';
import { NORMALISED_FROM, parseEventBody } from './event-body.js';
import { compileProperty } from './event-config.js';
import type { StoredEvent } from './event-store.js';
import { Opener, Sealer, newRuleKey, publicKeyOf } from './obfuscation-crypto.js';

export interface ObfuscationRule {
  id: string;
  /** 8 hex digits naming the rule in its tokens. */
  tag: string;
  name: string;
  domain?: string;
  field?: string;
  regex?: string;
  /** The public half of the rule's key (X25519, base64); the private half was printed once and is kept nowhere. */
  publicKey: string;
  createdAt: string;
  createdBy: string;
}

/** Vendor field names that mean a user name, by the name a rule gives (`--field username` covers them all). */
export const FIELD_ALIASES: Readonly<Record<string, readonly string[]>> = {
  username: ['username', 'user', 'usrName', 'suser', 'duser', 'userName', 'account', 'login'],
  user: ['user', 'username', 'usrName', 'suser', 'duser', 'userName', 'account', 'login'],
};
const USER_FIELDS: readonly string[] = [...new Set(Object.values(FIELD_ALIASES).flat())];

/**
 * A rule's `field`, or a 400 naming `field` and what it may be: a rule acts on a vendor field of the message or a
 * custom property by that name, so a name that is neither finds nothing, and a typo would leave values in clear with
 * no word said. Vendor fields are free-form, so the ones taken are those Palisade reads: the user-name fields of
 * FIELD_ALIASES and the address and port fields of the body parser; other values: a custom property, or a regex.
 */
export function checkField(field: string, properties: readonly string[]): void {
  if (Object.hasOwn(FIELD_ALIASES, field) || USER_FIELDS.includes(field) || NORMALISED_FROM.includes(field)) return;
  if (properties.includes(field)) return;
  const props = properties.length > 0 ? [...properties].sort().join(', ') : 'none defined';
  throw new BadParameterError(
    'ERR_BAD_REQUEST',
    `field: "${field}" is no field an obfuscation rule can act on; give a user-name field (${USER_FIELDS.join(', ')}), ` +
      `an address or port field (${NORMALISED_FROM.join(', ')}), or a custom property of this tenant (${props}); ` +
      'or a regex instead',
    { field: 'field' },
  );
}
export const OBFUSCATION_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$';
export const FIELD_NAME_PATTERN = '^[A-Za-z][A-Za-z0-9_.-]{0,63}$';
/** Values shorter than this are not sealed: replacing every "a" in a message would say more than it hides. */
const MIN_VALUE = 2;
const MAX_MATCHES = 32;
/** Event fields a value is never replaced in: what the store and the tagging are keyed by, not what a message said. */
const KEPT: ReadonlySet<string> = new Set(['time', 'logSourceTime', 'domain', 'engine', 'transport', 'format']);

interface Compiled {
  rule: ObfuscationRule;
  sealer: Sealer;
  re?: RE2JS;
  fields?: readonly string[];
}

export class Obfuscation {
  private readonly sub: Sub<ObfuscationRule>;
  private compiled: Compiled[] = [];

  constructor(db: Level<string, unknown>) {
    this.sub = db.sublevel<string, ObfuscationRule>('obfuscation', {
      valueEncoding: 'json',
    }) as unknown as Sub<ObfuscationRule>;
  }

  async load(): Promise<void> {
    const out: Compiled[] = [];
    for await (const rule of this.sub.values()) out.push(this.compile(rule));
    this.compiled = out;
  }

  private compile(rule: ObfuscationRule): Compiled {
    const c: Compiled = { rule, sealer: new Sealer(rule.tag, rule.publicKey) };
    if (rule.regex !== undefined) c.re = compileProperty(rule.regex); // RE2: linear time on hostile messages
    if (rule.field !== undefined) c.fields = FIELD_ALIASES[rule.field] ?? [rule.field];
    return c;
  }

  list(): ObfuscationRule[] {
    return this.compiled.map((c) => c.rule);
  }

  private find(name: string): Compiled {
    const c = this.compiled.find((x) => x.rule.name === name);
    if (!c) throw new NotFoundError('ERR_OBFUSCATION_NOT_FOUND', `no obfuscation rule "${name}"`, { field: 'name' });
    return c;
  }

  /** Makes a rule; the answer's `key` is the only copy of its private key. */
  async create(
    b: { name: string; domain?: string; field?: string; regex?: string },
    createdBy: string,
  ): Promise<ObfuscationRule & { key: string }> {
    if ((b.field === undefined) === (b.regex === undefined))
      throw new BadParameterError('ERR_BAD_REQUEST', 'field: give either field or regex', { field: 'field' });
    if (b.regex !== undefined) compileProperty(b.regex); // 400 naming `regex` for a bad or unsafe one
    if (this.compiled.some((c) => c.rule.name === b.name))
      throw new ConflictError('ERR_OBFUSCATION_EXISTS', `an obfuscation rule named "${b.name}" exists`, {
        field: 'name',
      });
    const { key, publicKey } = newRuleKey();
    const rule: ObfuscationRule = {
      id: `obf_${randomBytes(6).toString('hex')}`,
      tag: randomBytes(4).toString('hex'),
      name: b.name,
      ...(b.domain !== undefined ? { domain: b.domain } : {}),
      ...(b.field !== undefined ? { field: b.field } : {}),
      ...(b.regex !== undefined ? { regex: b.regex } : {}),
      publicKey,
      createdAt: new Date().toISOString(),
      createdBy,
    };
    await this.sub.put(rule.id, rule);
    this.compiled = [...this.compiled, this.compile(rule)];
    return { ...rule, key };
  }

  async remove(name: string): Promise<ObfuscationRule> {
    const c = this.find(name);
    await this.sub.del(c.rule.id);
    this.compiled = this.compiled.filter((x) => x !== c);
    return c.rule;
  }

  /** Whether any rule is in force (the pipeline then keeps events whole, as this stage rewrote them). */
  get active(): boolean {
    return this.compiled.length > 0;
  }

  /** The pipeline's beforeStore stage: seals every value a rule finds, wherever it occurs in the event. */
  apply(e: StoredEvent): void {
    if (this.compiled.length === 0) return;
    let vendor: Record<string, string> | undefined;
    for (const c of this.compiled) {
      if (c.rule.domain !== undefined && c.rule.domain !== e.domain) continue;
      const values = new Set<string>();
      if (c.fields) {
        vendor ??= parseEventBody(e.message).fields;
        for (const f of c.fields) {
          const v = vendor[f] ?? e.properties?.[f];
          if (v !== undefined) values.add(v);
        }
      }
      if (c.re) {
        const m = c.re.matcher(e.message);
        const group = m.groupCount() > 0 ? 1 : 0;
        for (let n = 0; n < MAX_MATCHES && m.find(); n++) {
          const v = m.group(group);
          if (v) values.add(v);
        }
      }
      const sealed = [...values].filter((v) => v.length >= MIN_VALUE).sort((a, b) => b.length - a.length);
      if (sealed.length === 0) continue;
      for (const v of sealed) {
        const token = c.sealer.seal(v);
        const rec = e as unknown as Record<string, unknown>;
        for (const [k, x] of Object.entries(rec))
          if (typeof x === 'string' && !KEPT.has(k) && x.includes(v)) rec[k] = x.split(v).join(token);
        if (e.properties)
          for (const [k, pv] of Object.entries(e.properties))
            if (pv.includes(v)) e.properties[k] = pv.split(v).join(token);
      }
      vendor = undefined; // the message changed
    }
  }

  /** An opener for the rule whose key this is, or a 400 naming `key`. */
  opener(key: string): { opener: Opener; rule: ObfuscationRule } {
    const pub = publicKeyOf(key);
    const c = pub === undefined ? undefined : this.compiled.find((x) => x.rule.publicKey === pub);
    if (!c)
      throw new BadParameterError('ERR_OBFUSCATION_KEY', 'key: not the key of any obfuscation rule of this tenant', {
        field: 'key',
      });
    return { opener: new Opener(c.rule.tag, key), rule: c.rule };
  }
}

/** `v` with the tokens `o` opens replaced by their clear values (every text field, properties, vendor fields). */
export function revealEvent(v: EventView, o: Opener): EventView {
  const out = { ...v } as unknown as Record<string, unknown>;
  for (const [k, x] of Object.entries(out)) if (typeof x === 'string' && x.includes('obf1.')) out[k] = o.reveal(x);
  const map = (r?: Record<string, string>) =>
    r && Object.fromEntries(Object.entries(r).map(([k, x]) => [k, o.reveal(x)]));
  if (v.properties) out.properties = map(v.properties);
  if (v.fields) out.fields = map(v.fields);
  return out as unknown as EventView;
}
