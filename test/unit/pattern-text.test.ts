/**
 * A schema pattern in words (common/pattern-text.ts) in the 400 that names the field (common/http-errors.ts
 * validationText): the derived shape of the simple patterns, the registered words of the others, and the answer of
 * a bare fastify app through inject (no socket) for a content id that is not one.
 */
import { describe, expect, it } from 'vitest';
import Fastify, { type FastifyError } from 'fastify';
import { classifyHttpError, installErrorHandlers, validationText } from '#common/http-errors.js';
import { describedPattern, describePattern, shapeOf, UNDESCRIBED } from '#common/pattern-text.js';
import { CONTENT_ID_PATTERN } from '#common/content.js';
import { NAME_PATTERN } from '#common/names.js';

describe('describePattern', () => {
  it('says the simple shape: literals and classes with their counts', () => {
    expect(describePattern('^[0-9]{1,5}$')).toBe('1 to 5 digits');
    expect(describePattern('^[0-9]+$')).toBe('one or more digits');
    expect(describePattern('^[0-4]$')).toBe('a digit 0-4');
    expect(describePattern('^tun_[0-9a-f]{12}$')).toBe('"tun_" followed by 12 hex digits 0-9 a-f');
    expect(describePattern('^[A-Za-z][A-Za-z0-9_-]{0,63}$')).toBe('a letter, then up to 63 letters, digits, _ or -');
    expect(describePattern('^[a-z][a-z0-9-]{0,31}$')).toBe(
      'a lowercase letter, then up to 31 lowercase letters, digits or -',
    );
    expect(describePattern('^[^\\u0000-\\u001f\\u007f]+$')).toBe(
      'one or more characters other than control characters',
    );
    expect(describePattern('^/[^\\s#?]*$')).toBe(
      '"/" followed by any number of characters other than whitespace, # or ?',
    );
    expect(describePattern('^a\\.b?$')).toBe('"a." followed by optionally "b"');
  });

  it('uses the words given where the pattern is defined, with the shape when there is one', () => {
    expect(describePattern(CONTENT_ID_PATTERN)).toBe('a content id ("cnt_" followed by 12 hex digits 0-9 a-f)');
    expect(describePattern(NAME_PATTERN)).toBe(
      'a name of 1 to 63 lowercase letters, digits or -, starting and ending with a letter or digit',
    );
  });

  it('says "in the expected form" for a shape it cannot read, never the regex', () => {
    for (const p of ['^(a|b)$', '^a.b$', '[a-z]+', '^[a-z]+', '^\\w+$', '^x{2,$']) {
      expect(shapeOf(p), p).toBeUndefined();
      expect(describePattern(p), p).toBe(UNDESCRIBED);
    }
  });

  it('refuses a second, different description of one regex (its words must fit every field that uses it)', () => {
    describedPattern('^zz_[0-9]{3}$', 'a test id');
    expect(describedPattern('^zz_[0-9]{3}$', 'a test id')).toBe('^zz_[0-9]{3}$');
    expect(() => describedPattern('^zz_[0-9]{3}$', 'another id')).toThrow(/described twice/);
  });
});

describe('validationText', () => {
  const patternError = (pattern: string, instancePath = '/id') => ({
    keyword: 'pattern',
    instancePath,
    schemaPath: '#/properties/id/pattern',
    params: { pattern },
    message: `must match pattern "${pattern}"`,
  });

  it('says a pattern in words instead of quoting it; the code stays ERR_BAD_REQUEST and the field is named', () => {
    expect(validationText(patternError(CONTENT_ID_PATTERN))).toBe(
      'must be a content id ("cnt_" followed by 12 hex digits 0-9 a-f)',
    );
    const err = Object.assign(new Error('x'), { validation: [patternError('^[0-9]{1,4}$', '/limit')] });
    expect(
      classifyHttpError(Object.assign(err, { validationContext: 'querystring' }) as unknown as FastifyError),
    ).toEqual({
      status: 400,
      code: 'ERR_BAD_REQUEST',
      message: 'querystring.limit must be 1 to 4 digits',
    });
  });

  it("keeps AJV's text for other keywords", () => {
    expect(validationText({ keyword: 'minLength', instancePath: '/q', schemaPath: '', params: {}, message: 'x' })).toBe(
      'x',
    );
  });
});

describe('a route with a pattern', () => {
  it('answers 400 naming the field and saying what an id looks like', async () => {
    const a = Fastify();
    a.get(
      '/content/:id',
      {
        schema: {
          params: { type: 'object', properties: { id: { type: 'string', pattern: CONTENT_ID_PATTERN } } },
        },
      },
      async () => ({ ok: true }),
    );
    installErrorHandlers(a);
    const r = await a.inject({ method: 'GET', url: '/content/cnt_nothex' });
    expect(r.statusCode).toBe(400);
    expect(r.json()).toEqual({
      error: {
        code: 'ERR_BAD_REQUEST',
        message: 'params.id must be a content id ("cnt_" followed by 12 hex digits 0-9 a-f)',
      },
    });
    expect((await a.inject({ method: 'GET', url: '/content/cnt_0123456789ab' })).statusCode).toBe(200);
    await a.close();
  });
});
