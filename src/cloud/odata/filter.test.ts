// Tests for the OData $filter parser/formatter: one table per construct and error, plus fast-check fuzzing.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NimbusError } from '../../shared/errors.ts';
import {
  ELEMENT,
  FilterSyntaxError,
  MAX_FILTER_CONDITIONS,
  MAX_FILTER_DEPTH,
  MAX_FILTER_LENGTH,
  MAX_IN_VALUES,
  formatFilter,
  parseFilter,
} from './filter.ts';
import type { CompareOp, FilterNode, Literal } from './filter.ts';

// Small constructors keep the expected ASTs in the tables readable.
const str = (value: string): Literal => ({ kind: 'string', value });
const num = (value: number): Literal => ({ kind: 'number', value });
const cmp = (property: string, op: CompareOp, value: Literal): FilterNode => ({ kind: 'compare', op, property, value });
const eq = (property: string, value: Literal): FilterNode => cmp(property, 'eq', value);
const and = (left: FilterNode, right: FilterNode): FilterNode => ({ kind: 'and', left, right });
const or = (left: FilterNode, right: FilterNode): FilterNode => ({ kind: 'or', left, right });
const not = (operand: FilterNode): FilterNode => ({ kind: 'not', operand });

/** Runs parseFilter expecting failure; returns the error so tests can check message and position. */
function parseError(text: string): FilterSyntaxError {
  try {
    parseFilter(text);
  } catch (e) {
    expect(e).toBeInstanceOf(FilterSyntaxError);
    return e as FilterSyntaxError;
  }
  throw new Error(`expected ${JSON.stringify(text)} to be rejected`);
}

describe('parseFilter: constructs', () => {
  const cases: [string, FilterNode][] = [
    ["displayName eq 'Bob'", eq('displayName', str('Bob'))],
    ["displayName ne 'Bob'", cmp('displayName', 'ne', str('Bob'))],
    ['age gt 5', cmp('age', 'gt', num(5))],
    ['age ge 5', cmp('age', 'ge', num(5))],
    ['age lt 5', cmp('age', 'lt', num(5))],
    ['age le 5', cmp('age', 'le', num(5))],
    ["onPremisesExtensionAttributes/extensionAttribute1 eq 'x'", eq('onPremisesExtensionAttributes/extensionAttribute1', str('x'))],
    ["_a1/b_2/C eq 'x'", eq('_a1/b_2/C', str('x'))],
    // Literals (ABNF primitiveLiteral subset).
    ["a eq 'it''s'", eq('a', str("it's"))],
    ["a eq ''", eq('a', str(''))],
    ["a eq ''''", eq('a', str("'"))],
    ["a eq 'héllo wörld ✓ (x) and y'", eq('a', str('héllo wörld ✓ (x) and y'))],
    ['a eq 42', eq('a', num(42))],
    ['a eq -42', eq('a', num(-42))],
    ['a eq 3.25', eq('a', num(3.25))],
    ['a eq -0.5', eq('a', num(-0.5))],
    ['a eq 1e3', eq('a', num(1000))],
    ['a eq 1.5E-3', eq('a', num(0.0015))],
    ['a eq 2e+2', eq('a', num(200))],
    ['accountEnabled eq true', eq('accountEnabled', { kind: 'boolean', value: true })],
    ['accountEnabled eq false', eq('accountEnabled', { kind: 'boolean', value: false })],
    ['manager eq null', eq('manager', { kind: 'null' })],
    ['createdDateTime ge 2024-01-01T00:00:00Z', cmp('createdDateTime', 'ge', { kind: 'datetime', value: '2024-01-01T00:00:00Z' })],
    ['t lt 2024-02-29T23:59:59.1234567Z', cmp('t', 'lt', { kind: 'datetime', value: '2024-02-29T23:59:59.1234567Z' })],
    ['t lt 2024-06-01T12:30:00+05:30', cmp('t', 'lt', { kind: 'datetime', value: '2024-06-01T12:30:00+05:30' })],
    ['t lt 2024-06-01T12:30-08:00', cmp('t', 'lt', { kind: 'datetime', value: '2024-06-01T12:30-08:00' })],
    ['id eq 184EFA21-98C3-4E5D-95AB-D07053A96E67', eq('id', { kind: 'guid', value: '184efa21-98c3-4e5d-95ab-d07053a96e67' })],
    ['id eq 00000000-0000-0000-0000-000000000000', eq('id', { kind: 'guid', value: '00000000-0000-0000-0000-000000000000' })],
    // in (ABNF inExpr with listExpr).
    ["mail in ('a@x.com','b@x.com')", { kind: 'in', property: 'mail', values: [str('a@x.com'), str('b@x.com')] }],
    ["mail in ( 'a' , 1 ,null, true )", { kind: 'in', property: 'mail', values: [str('a'), num(1), { kind: 'null' }, { kind: 'boolean', value: true }] }],
    ["mail in('a')", { kind: 'in', property: 'mail', values: [str('a')] }],
    // Functions.
    ["startswith(displayName,'Jo')", { kind: 'startswith', property: 'displayName', value: 'Jo' }],
    ["endswith(mail, '@contoso.com')", { kind: 'endswith', property: 'mail', value: '@contoso.com' }],
    ["startswith( a/b , 'x''y' )", { kind: 'startswith', property: 'a/b', value: "x'y" }],
    ["startswith(a,'x') eq true", { kind: 'startswith', property: 'a', value: 'x' }],
    ["startswith(a,'x') ne false", { kind: 'startswith', property: 'a', value: 'x' }],
    ["startswith(a,'x') eq false", not({ kind: 'startswith', property: 'a', value: 'x' })],
    // Logical operators and precedence: not > and > or, left-associative.
    ['a eq 1 and b eq 2', and(eq('a', num(1)), eq('b', num(2)))],
    ['a eq 1 or b eq 2', or(eq('a', num(1)), eq('b', num(2)))],
    ['a eq 1 or b eq 2 and c eq 3', or(eq('a', num(1)), and(eq('b', num(2)), eq('c', num(3))))],
    ['a eq 1 and b eq 2 or c eq 3', or(and(eq('a', num(1)), eq('b', num(2))), eq('c', num(3)))],
    ['a eq 1 and b eq 2 and c eq 3', and(and(eq('a', num(1)), eq('b', num(2))), eq('c', num(3)))],
    ['a eq 1 or b eq 2 or c eq 3', or(or(eq('a', num(1)), eq('b', num(2))), eq('c', num(3)))],
    ['a eq 1 and (b eq 2 or c eq 3)', and(eq('a', num(1)), or(eq('b', num(2)), eq('c', num(3))))],
    ['not a eq 1 and b eq 2', and(not(eq('a', num(1))), eq('b', num(2)))],
    ['not (a eq 1 and b eq 2)', not(and(eq('a', num(1)), eq('b', num(2))))],
    ['not(a eq 1)', not(eq('a', num(1)))],
    ['not not a eq 1', not(not(eq('a', num(1))))],
    ['((a eq 1))', eq('a', num(1))],
    ['(a eq 1)and(b eq 2)', and(eq('a', num(1)), eq('b', num(2)))],
    ["\t a eq 1 \t", eq('a', num(1))],
    // Lambda (ABNF anyExpr): the variable becomes ELEMENT.
    [
      "proxyAddresses/any(p:p eq 'SMTP:a@b.com')",
      { kind: 'any', property: 'proxyAddresses', predicate: eq(ELEMENT, str('SMTP:a@b.com')) },
    ],
    [
      "proxyAddresses/any(x:startswith(x,'smtp:'))",
      { kind: 'any', property: 'proxyAddresses', predicate: { kind: 'startswith', property: ELEMENT, value: 'smtp:' } },
    ],
    [
      "groupTypes/any( c : c eq 'Unified' or not endswith(c,'x') )",
      {
        kind: 'any',
        property: 'groupTypes',
        predicate: or(eq(ELEMENT, str('Unified')), not({ kind: 'endswith', property: ELEMENT, value: 'x' })),
      },
    ],
    [
      "tags/any(t:t in ('a','b') and t ne 'c')",
      { kind: 'any', property: 'tags', predicate: and({ kind: 'in', property: ELEMENT, values: [str('a'), str('b')] }, cmp(ELEMENT, 'ne', str('c'))) },
    ],
    [
      'assignedLicenses/any(x:x/skuId eq 184efa21-98c3-4e5d-95ab-d07053a96e67)',
      {
        kind: 'any',
        property: 'assignedLicenses',
        predicate: eq(`${ELEMENT}/skuId`, { kind: 'guid', value: '184efa21-98c3-4e5d-95ab-d07053a96e67' }),
      },
    ],
    [
      "not groupTypes/any(c:c eq 'Unified') and a/b/any(v:v eq 1)",
      and(
        not({ kind: 'any', property: 'groupTypes', predicate: eq(ELEMENT, str('Unified')) }),
        { kind: 'any', property: 'a/b', predicate: eq(ELEMENT, num(1)) },
      ),
    ],
    // Keywords are only keywords in keyword positions.
    ["and eq 'x'", eq('and', str('x'))],
    ["any/all eq 'x'", eq('any/all', str('x'))],
    ["startswith eq 'x'", eq('startswith', str('x'))],
    ["NOT eq 'x'", eq('NOT', str('x'))],
  ];
  it.each(cases)('%s', (text, expected) => {
    expect(parseFilter(text)).toEqual(expected);
  });

  it('treats + as an ordinary (invalid) character: URL decoding is the caller\u2019s job', () => {
    expect(parseError('a+eq+1').message).toContain("'+'");
    expect(parseFilter("a eq 'x+y'")).toEqual(eq('a', str('x+y')));
  });
});

describe('parseFilter: errors', () => {
  // [input, substring the message must contain, position]
  const cases: [string, string, number][] = [
    ['', 'the expression is empty', 0],
    ['   ', 'the expression is empty', 0],
    ["displayName 'Bob'", "expected a comparison operator (eq, ne, gt, ge, lt, le) after 'displayName' at position 12.", 12],
    ['displayName', "expected a comparison operator (eq, ne, gt, ge, lt, le) after 'displayName' at position 11.", 11],
    ["displayName eqq 'x'", 'expected a comparison operator', 12],
    ["a/b foo 'x'", "after 'a/b'", 4],
    ["a EQ 'x'", "use 'eq'", 2],
    ["a eq 1 AND b eq 2", "use 'and'", 7],
    ["a eq 1 Or b eq 2", "use 'or'", 7],
    ["NOT (a eq 1)", "use 'not'", 0],
    ['a eq TRUE', "use 'true'", 5],
    ['a eq Null', "use 'null'", 5],
    ["startsWith(a,'x')", "use 'startswith'", 0],
    ["ENDSWITH(a,'x')", "use 'endswith'", 0],
    ["a eq 'abc", 'unterminated string literal starting at position 5', 5],
    ["a eq 'it''s", 'unterminated string literal', 5],
    ["'x' eq displayName", 'a literal on the left side of a comparison', 0],
    ['1 eq a', 'is not supported', 0],
    ['null eq a', 'literal on the left side', 0],
    ['a eq b', "comparing to another property or expression ('b') is not supported", 5],
    ["a eq tolower('x')", 'is not supported', 5],
    ["contains(displayName,'x')", "the 'contains' function is not supported at position 0; use startswith", 0],
    ["displayName contains 'x'", "use startswith(displayName,'value')", 12],
    ["substringof('x',a)", 'use startswith', 0],
    ["tolower(a) eq 'x'", "the function 'tolower' is not supported", 0],
    ['a has 1', "the 'has' operator is not supported", 2],
    ['a eq 1 add 2', "found 'add'", 7],
    ["a eq 1 'x'", "expected 'and', 'or' or the end of the expression, found the string 'x'", 7],
    ['a eq 1 b', "found 'b' at position 7", 7],
    ['a eq 1 )', "unmatched ')'", 7],
    ['(a eq 1', "missing ')' to close the '(' at position 0", 7],
    ['(a eq 1 x)', "or ')' to close the '(' at position 0, found 'x'", 8],
    ['()', 'expected a condition', 1],
    ['a eq 1 and', "expected a condition such as displayName eq 'value' after 'and', found the end of the expression", 10],
    ['a eq 1 and and b eq 1', "before the keyword 'and'", 11],
    ['not', "after 'not'", 3],
    [',', 'expected a condition', 0],
    ['a eq', "expected a literal value (e.g. 'text', 42, true, null) after 'eq', found the end of the expression", 4],
    ['a eq (1)', "after 'eq', found '('", 5],
    ["a eq'x'", 'expected whitespace between', 4],
    ["a eq 'x'and b eq 1", 'expected whitespace between', 8],
    ['a eq 1and b eq 1', "'1and' is not a valid number", 5],
    ['a eq 1.', "'1.' is not a valid number", 5],
    ['a eq .5', "unexpected character '.'", 5],
    ['a eq 1e999', 'out of range', 5],
    ['a eq -x', "unexpected character '-'", 5],
    ['a eq 1-1', "'1-1' is not a valid number", 5],
    ['a eq "x"', 'OData strings use single quotes', 5],
    ['a eq 1\nand b eq 2', 'unexpected character U+000A', 6],
    ['a eq 2024-01-01', "'2024-01-01' is not a valid DateTimeOffset", 5],
    ['a eq 2024-13-01T00:00:00Z', 'not a valid DateTimeOffset', 5],
    ['a eq 2024-01-01T24:00:00Z', 'not a valid DateTimeOffset', 5],
    ['a eq 2024-01-01T00:00:00', 'not a valid DateTimeOffset', 5],
    ['a eq 2024-01-01T00:00:00Zx', 'not a valid DateTimeOffset', 5],
    ['a eq 2024-01-01T00:00:00.1234567890123Z', 'not a valid DateTimeOffset', 5],
    ['a eq 184efa21-98c3-4e5d-95ab-d07053a96e6', "'184efa21-98c3-4e5d-95ab-d07053a96e6' is not a valid number", 5],
    ['a eq 184efa21-98c3-4e5d-95ab-d07053a96e67a', 'is not a valid GUID', 5],
    ['a in', "expected '(' after 'in'", 4],
    ["a in 'x'", "expected '(' after 'in'", 5],
    ['a in ()', "the 'in' list is empty", 6],
    ["a in ('x' 'y')", "expected ',' or ')' in the 'in' list, found the string 'y'", 10],
    ["a in ('x',)", "expected a literal value (e.g. 'text', 42, true, null) after ','", 10],
    ["a in ('x',b)", "('b') is not supported", 10],
    ["a in ('x'", "expected ',' or ')' in the 'in' list, found the end of the expression", 9],
    ["startswith(a)", "expected ',' after the first argument of startswith", 12],
    ["startswith('x',a)", 'the first argument of startswith must be a property', 11],
    ["startswith(tolower(a),'x')", 'not a function call', 11],
    ["startswith(a,b)", 'the second argument of startswith must be a string literal', 13],
    ['endswith(a,1)', 'the second argument of endswith must be a string literal', 11],
    ["startswith(a,'x'", "expected ')' to close startswith(", 16],
    ["startswith(a,'x','y')", "expected ')' to close startswith(", 16],
    ["startswith(x/any(y:y eq 1),'x')", 'not a lambda', 13],
    ['assignedLicenses/any()', 'any() without a lambda predicate is not supported', 20],
    ['assignedLicenses/all(x:x eq 1)', "the 'all' lambda operator is not supported", 17],
    ["any(x:x eq 'a')", 'without a collection property', 0],
    ["p/any(x:y eq 'a')", "only the lambda variable 'x' can be referenced, found 'y'", 8],
    ["p/any(x:startswith(y,'a'))", "only the lambda variable 'x'", 19],
    ["p/any(x:x/any(y:y eq 1))", 'nested any() lambdas are not supported', 10],
    ["p/any(x x eq 'a')", "expected ':' after the lambda variable 'x'", 8],
    ["p/any((x:x eq 'a'))", "expected a lambda variable name after 'any(', found '('", 6],
    ["p/any(eq:eq eq 'a')", "'eq' cannot be used as a lambda variable name", 6],
    ["p/any(x:x eq 'a'", "missing ')' to close 'p/any('", 16],
    ["p/any(x:x eq 'a' x)", "or ')' to close any(", 17],
    ['a/ b eq 1', 'no spaces in property paths', 2],
    ['a /b eq 1', 'no spaces in property paths', 2],
    ['a/ eq 1', 'no spaces in property paths', 2],
    ['a/1 eq 1', 'expected a property name', 2],
    ['$top eq 1', "unexpected character '$'", 0],
  ];
  it.each(cases)('%j', (text, message, position) => {
    const err = parseError(text);
    expect(err.message).toMatch(/^Invalid \$filter: .*\.$/s);
    expect(err.message).toContain(message);
    expect(err.position).toBe(position);
  });

  it('is a NimbusError rendered as 400 BadRequest', () => {
    const err = parseError('a eq');
    expect(err).toBeInstanceOf(NimbusError);
    expect(err.kind).toBe('bad_request');
    expect(err.code).toBe('BadRequest');
    expect(err.status).toBe(400);
    expect(err.name).toBe('FilterSyntaxError');
  });

  it('rejects non-string input with FilterSyntaxError (JS callers)', () => {
    expect(() => parseFilter(undefined as unknown as string)).toThrow(FilterSyntaxError);
  });
});

describe('parseFilter: limits', () => {
  const nested = (n: number): string => `${'('.repeat(n)}a eq 1${')'.repeat(n)}`;
  const conditions = (n: number): string => Array.from({ length: n }, (_, i) => `a${i} eq ${i}`).join(' and ');

  it(`accepts ${MAX_FILTER_DEPTH} levels of nesting and rejects ${MAX_FILTER_DEPTH + 1}`, () => {
    expect(parseFilter(nested(MAX_FILTER_DEPTH))).toEqual(eq('a', num(1)));
    const err = parseError(nested(MAX_FILTER_DEPTH + 1));
    expect(err.message).toContain(`nested more than ${MAX_FILTER_DEPTH} levels deep`);
    expect(err.position).toBe(MAX_FILTER_DEPTH);
  });

  it('counts not and any() towards the depth', () => {
    expect(parseError(`${'not '.repeat(MAX_FILTER_DEPTH + 1)}a eq 1`).message).toContain('nested more than');
    const inner = `${'('.repeat(MAX_FILTER_DEPTH)}x eq 1${')'.repeat(MAX_FILTER_DEPTH)}`;
    expect(parseError(`p/any(x:${inner})`).message).toContain('nested more than');
  });

  it('reports the depth limit, not a stack overflow, for 100k open parentheses', () => {
    const err = parseError('('.repeat(100_000));
    expect(err.message).toContain('nested more than');
    expect(parseError('not '.repeat(100_000)).message).toContain('nested more than');
    expect(parseError(`${'('.repeat(100_000)}a eq 1${')'.repeat(100_000)}`).message).toContain('nested more than');
  });

  it(`accepts ${MAX_FILTER_CONDITIONS} conditions and rejects ${MAX_FILTER_CONDITIONS + 1}`, () => {
    expect(() => parseFilter(conditions(MAX_FILTER_CONDITIONS))).not.toThrow();
    const err = parseError(conditions(MAX_FILTER_CONDITIONS + 1));
    expect(err.message).toContain(`more than ${MAX_FILTER_CONDITIONS} conditions`);
  });

  it('counts conditions inside any() and the any() itself', () => {
    const inner = Array.from({ length: MAX_FILTER_CONDITIONS }, () => "x eq 'a'").join(' or ');
    expect(parseError(`p/any(x:${inner})`).message).toContain('conditions');
  });

  it(`accepts ${MAX_IN_VALUES} values in an in list and rejects ${MAX_IN_VALUES + 1}`, () => {
    const list = (n: number): string => `a in (${Array.from({ length: n }, (_, i) => String(i)).join(',')})`;
    const ok = parseFilter(list(MAX_IN_VALUES));
    expect(ok.kind === 'in' && ok.values.length).toBe(MAX_IN_VALUES);
    expect(parseError(list(MAX_IN_VALUES + 1)).message).toContain(`more than ${MAX_IN_VALUES} values`);
  });

  it(`accepts ${MAX_FILTER_LENGTH} characters and rejects ${MAX_FILTER_LENGTH + 1}`, () => {
    const withLength = (n: number): string => `a eq '${'x'.repeat(n - 7)}'`;
    expect(withLength(MAX_FILTER_LENGTH)).toHaveLength(MAX_FILTER_LENGTH);
    expect(() => parseFilter(withLength(MAX_FILTER_LENGTH))).not.toThrow();
    const err = parseError(withLength(MAX_FILTER_LENGTH + 1));
    expect(err.message).toBe(
      `Invalid $filter: the expression is ${MAX_FILTER_LENGTH + 1} characters long; the limit is ${MAX_FILTER_LENGTH}.`,
    );
  });

  it('blames the length, not a cut-off token, when a long input is otherwise fine', () => {
    const padded = (tail: string): string => `a eq 1${' '.repeat(MAX_FILTER_LENGTH - 8)}${tail}`;
    for (const tail of [' and b eq 1', "or b eq 'x'", 'and b eq 2024-01-01T00:00:00Z', '   ']) {
      expect(parseError(padded(tail)).message).toContain('characters long');
    }
    expect(parseError(' '.repeat(1_000_000)).message).toContain('characters long');
    // A syntax error before the limit is still reported as itself.
    expect(parseError(`a eq b ${'x'.repeat(10_000)}`).message).toContain("('b') is not supported");
  });
});

describe('formatFilter', () => {
  const cases: [FilterNode, string][] = [
    [eq('a', str("it's")), "a eq 'it''s'"],
    [or(eq('a', num(1)), and(eq('b', num(2)), eq('c', num(3)))), 'a eq 1 or b eq 2 and c eq 3'],
    [and(or(eq('a', num(1)), eq('b', num(2))), eq('c', num(3))), '(a eq 1 or b eq 2) and c eq 3'],
    [and(eq('a', num(1)), and(eq('b', num(2)), eq('c', num(3)))), 'a eq 1 and (b eq 2 and c eq 3)'],
    [not(or(eq('a', num(1)), eq('b', num(2)))), 'not (a eq 1 or b eq 2)'],
    [not(eq('a', num(-0))), 'not a eq -0'],
    [eq('a', num(1e21)), 'a eq 1e+21'],
    [{ kind: 'in', property: 'a', values: [str('x'), { kind: 'null' }] }, "a in ('x',null)"],
    [{ kind: 'any', property: 'p', predicate: eq(`${ELEMENT}/skuId`, str('x')) }, "p/any(x:x/skuId eq 'x')"],
    [{ kind: 'any', property: 'p', predicate: { kind: 'endswith', property: ELEMENT, value: 'y' } }, "p/any(x:endswith(x,'y'))"],
  ];
  it.each(cases)('%j', (node, text) => {
    expect(formatFilter(node)).toBe(text);
    expect(parseFilter(text)).toEqual(node);
  });

  it('refuses ASTs that have no $filter text', () => {
    expect(() => formatFilter(eq('a', num(Number.NaN)))).toThrow(RangeError);
    expect(() => formatFilter(eq('a b', num(1)))).toThrow(RangeError);
    expect(() => formatFilter(eq('true', num(1)))).toThrow(RangeError);
    expect(() => formatFilter(eq(ELEMENT, num(1)))).toThrow(RangeError);
    expect(() => formatFilter({ kind: 'any', property: 'p', predicate: eq('q', num(1)) })).toThrow(RangeError);
    expect(() => formatFilter({ kind: 'in', property: 'p', values: [] })).toThrow(RangeError);
    expect(() => formatFilter(eq('a', { kind: 'guid', value: 'nope' }))).toThrow(RangeError);
    expect(() => formatFilter(eq('a', { kind: 'datetime', value: '2024-01-01' }))).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------------------
// Property-based tests

/** Parses, asserting that any failure is a well-formed FilterSyntaxError. */
function parseOrSyntaxError(text: string): FilterNode | FilterSyntaxError {
  try {
    return parseFilter(text);
  } catch (e) {
    if (!(e instanceof FilterSyntaxError)) throw e;
    expect(e.message).toMatch(/^Invalid \$filter: .*\.$/s);
    expect(e.position).toBeGreaterThanOrEqual(0);
    expect(e.position).toBeLessThanOrEqual(Math.min(text.length, MAX_FILTER_LENGTH));
    return e;
  }
}

const GRAMMAR_CHARS = [..."()' ,:/eqandortsiwhy0123456789-.TZx\t"];
const TOKENS = [
  '(', ')', ',', ':', '/', "'", "''", "'a'", "'it''s'", ' ', '  ', 'a', 'b/c', 'p', 'x', 'eq', 'ne', 'gt', 'le', 'in', 'and',
  'or', 'not', 'any', 'all', 'true', 'null', 'EQ', 'startswith', 'endswith', 'contains', '1', '-2.5', '1e3',
  '2024-01-01T00:00:00Z', '184efa21-98c3-4e5d-95ab-d07053a96e67', 'p/any(x:', 'x eq ', ' and ', ' or ',
];

describe('parseFilter: fuzz', () => {
  it('arbitrary strings either parse or throw FilterSyntaxError', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200, unit: 'binary' }), (s) => {
        parseOrSyntaxError(s);
      }),
      { numRuns: 2000 },
    );
  });

  it('grammar-ish character soup either parses or throws FilterSyntaxError', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 120, unit: fc.constantFrom(...GRAMMAR_CHARS) }), (s) => {
        parseOrSyntaxError(s);
      }),
      { numRuns: 3000 },
    );
  });

  it('token soup either parses or throws FilterSyntaxError, and what parses re-formats to the same AST', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...TOKENS), { maxLength: 40 }), fc.boolean(), (tokens, spaced) => {
        const result = parseOrSyntaxError(tokens.join(spaced ? ' ' : ''));
        if (!(result instanceof FilterSyntaxError)) expect(parseFilter(formatFilter(result))).toEqual(result);
      }),
      { numRuns: 3000 },
    );
  });

  it('deep nesting and huge inputs throw FilterSyntaxError', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: MAX_FILTER_DEPTH + 1, max: 50_000 }),
        fc.constantFrom('(', 'not ', 'not(', 'p/any(x:'),
        (n, opener) => {
          const err = parseOrSyntaxError(`${opener.repeat(n)}a eq 1${')'.repeat(n)}`);
          expect(err).toBeInstanceOf(FilterSyntaxError);
        },
      ),
      { numRuns: 200 },
    );
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...TOKENS), { minLength: 2000, maxLength: 4000 }), (tokens) => {
        expect(parseOrSyntaxError(tokens.join(' '))).toBeInstanceOf(FilterSyntaxError);
      }),
      { numRuns: 50 },
    );
  });
});

// AST generators: only ASTs parseFilter can produce (valid names, finite numbers, ELEMENT only inside any()).
const RESERVED = new Set(['true', 'false', 'null', 'not']);
const identifier = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,8}$/).filter((s) => !RESERVED.has(s));
const path = fc.array(identifier, { minLength: 1, maxLength: 3 }).map((segs) => segs.join('/'));
const elementPath = fc
  .array(identifier, { maxLength: 2 })
  .map((segs) => [ELEMENT, ...segs].join('/'));
const two = (lo: number, hi: number) => fc.integer({ min: lo, max: hi }).map((n) => String(n).padStart(2, '0'));
const datetime = fc
  .tuple(
    fc.integer({ min: 0, max: 9999 }).map((n) => String(n).padStart(4, '0')),
    two(1, 12),
    two(1, 31),
    two(0, 23),
    two(0, 59),
    fc.option(fc.tuple(two(0, 59), fc.option(fc.stringMatching(/^[0-9]{1,12}$/)))),
    fc.oneof(fc.constant('Z'), fc.tuple(fc.constantFrom('+', '-'), two(0, 23), two(0, 59)).map(([s, h, m]) => `${s}${h}:${m}`)),
  )
  .map(([y, mo, d, h, mi, sec, zone]) => {
    const seconds = sec === null ? '' : `:${sec[0]}${sec[1] === null ? '' : `.${sec[1]}`}`;
    return `${y}-${mo}-${d}T${h}:${mi}${seconds}${zone}`;
  });
const literal: fc.Arbitrary<Literal> = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 20 }).map((value): Literal => ({ kind: 'string', value })),
  fc.string({ unit: fc.constantFrom("'", ' ', 'a', '(', ')', ',', 'é'), maxLength: 10 }).map((value): Literal => ({ kind: 'string', value })),
  fc.integer().map((value): Literal => ({ kind: 'number', value })),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((value): Literal => ({ kind: 'number', value })),
  fc.boolean().map((value): Literal => ({ kind: 'boolean', value })),
  fc.constant<Literal>({ kind: 'null' }),
  datetime.map((value): Literal => ({ kind: 'datetime', value })),
  fc.uuid().map((value): Literal => ({ kind: 'guid', value: value.toLowerCase() })),
);
const compareOp = fc.constantFrom<CompareOp>('eq', 'ne', 'gt', 'ge', 'lt', 'le');
const leaf = (prop: fc.Arbitrary<string>): fc.Arbitrary<FilterNode> =>
  fc.oneof(
    fc.tuple(prop, compareOp, literal).map(([property, op, value]): FilterNode => ({ kind: 'compare', op, property, value })),
    fc.tuple(prop, fc.array(literal, { minLength: 1, maxLength: 5 })).map(([property, values]): FilterNode => ({ kind: 'in', property, values })),
    fc
      .tuple(fc.constantFrom('startswith' as const, 'endswith' as const), prop, fc.string({ maxLength: 10 }))
      .map(([kind, property, value]): FilterNode => ({ kind, property, value })),
  );
const logical = (child: fc.Arbitrary<FilterNode>): fc.Arbitrary<FilterNode>[] => [
  fc.tuple(fc.constantFrom('and' as const, 'or' as const), child, child).map(([kind, left, right]): FilterNode => ({ kind, left, right })),
  child.map((operand): FilterNode => ({ kind: 'not', operand })),
];
const { node: filterAst } = fc.letrec<{ node: FilterNode; predicate: FilterNode }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', maxDepth: 8 },
    leaf(path),
    ...logical(tie('node')),
    fc.tuple(path, tie('predicate')).map(([property, predicate]): FilterNode => ({ kind: 'any', property, predicate })),
  ),
  predicate: fc.oneof({ depthSize: 'small', maxDepth: 8 }, leaf(elementPath), ...logical(tie('predicate'))),
}));

function conditionCount(n: FilterNode): number {
  switch (n.kind) {
    case 'and':
    case 'or':
      return conditionCount(n.left) + conditionCount(n.right);
    case 'not':
      return conditionCount(n.operand);
    case 'any':
      return 1 + conditionCount(n.predicate);
    default:
      return 1;
  }
}

describe('formatFilter: round-trip', () => {
  it('parseFilter(formatFilter(ast)) deep-equals ast', () => {
    fc.assert(
      fc.property(filterAst, (ast) => {
        const text = formatFilter(ast);
        // Generated trees can exceed the parser's limits; those are tested separately.
        fc.pre(text.length <= MAX_FILTER_LENGTH && conditionCount(ast) <= MAX_FILTER_CONDITIONS);
        expect(parseFilter(text)).toEqual(ast);
        // Canonical: formatting is a fixed point.
        expect(formatFilter(parseFilter(text))).toBe(text);
      }),
      { numRuns: 2000 },
    );
  });
});
