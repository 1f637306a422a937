// OData v4 $filter parser and formatter for the subset Microsoft Graph supports; pure, no I/O.
//
// Grammar references are to OData Version 4.01 Part 2: URL Conventions §5.1.1 and the
// OData ABNF (odata-abnf-construction-rules.txt). Deliberate differences from full OData:
// - only comparisons `property op literal`, `property in (...)`, startswith/endswith,
//   and/or/not, parentheses and `collection/any(v:...)`; no arithmetic, no other functions;
// - `not` applies to the next condition, so `not a eq 1` means `not (a eq 1)`. In full
//   OData `not` binds tighter than `eq` (§5.1.1.16), but with no boolean-valued properties
//   here that reading could never type-check, and it is what Graph clients mean;
// - keywords and function names only in lower case, as the ABNF spells them; other casings
//   are rejected with a hint rather than guessed at.
// Error positions are 0-based offsets into the (already URL-decoded) $filter text.
import { NimbusError } from '../../shared/errors.ts';

export type Literal =
  | { kind: 'string'; value: string }
  | { kind: 'number'; value: number }
  | { kind: 'boolean'; value: boolean }
  | { kind: 'null' }
  | { kind: 'datetime'; value: string }
  | { kind: 'guid'; value: string };

export type CompareOp = 'eq' | 'ne' | 'gt' | 'ge' | 'lt' | 'le';

export type FilterNode =
  | { kind: 'and' | 'or'; left: FilterNode; right: FilterNode }
  | { kind: 'not'; operand: FilterNode }
  | { kind: 'compare'; op: CompareOp; property: string; value: Literal }
  | { kind: 'in'; property: string; values: Literal[] }
  | { kind: 'startswith' | 'endswith'; property: string; value: string }
  | { kind: 'any'; property: string; predicate: FilterNode };

/** Property name that stands for the lambda variable inside an `any` predicate (`x/sub` becomes `$element/sub`). */
export const ELEMENT = '$element';

/** The only error parseFilter throws; rendered by the Graph layer as a 400. */
export class FilterSyntaxError extends NimbusError {
  /** 0-based offset into the $filter text where the problem was found. */
  readonly position: number;
  constructor(message: string, position: number) {
    super('bad_request', 'BadRequest', message, { target: '$filter' });
    this.name = 'FilterSyntaxError';
    this.position = position;
  }
}

// Limits keep parse cost bounded (and recursion shallow) whatever the client sends.
export const MAX_FILTER_LENGTH = 4096;
export const MAX_FILTER_DEPTH = 32;
export const MAX_FILTER_CONDITIONS = 100;
export const MAX_IN_VALUES = 200;

const COMPARE_OPS: ReadonlySet<string> = new Set<CompareOp>(['eq', 'ne', 'gt', 'ge', 'lt', 'le']);
// Operators OData defines that this subset does not (§5.1.1.1 logical, §5.1.1.2 arithmetic).
const UNSUPPORTED_OPS: ReadonlySet<string> = new Set(['has', 'add', 'sub', 'mul', 'div', 'divby', 'mod', 'isof', 'cast']);
// Words that cannot start a property path, because the parser reads them as something else.
const RESERVED_FIRST_SEGMENT: ReadonlySet<string> = new Set(['true', 'false', 'null', 'not']);
const KEYWORDS: ReadonlySet<string> = new Set([...COMPARE_OPS, 'and', 'or', 'not', 'in', 'true', 'false', 'null', 'any', 'all']);

// ---------------------------------------------------------------------------------------
// Lexer

type TokenType = 'ident' | 'string' | 'number' | 'guid' | 'datetime' | '(' | ')' | ',' | ':' | '/' | 'eof' | 'toolong';

interface Token {
  type: TokenType;
  /** Raw text as written (for strings, including the quotes). */
  text: string;
  pos: number;
  end: number;
  /** Whitespace precedes the token. */
  spaced: boolean;
  /** Decoded string value, for string tokens. */
  value?: string;
}

// Sticky regexes, all linear-time (no nested quantifiers), so lexing cannot be made to hang.
const IDENT_RE = /[A-Za-z_][A-Za-z0-9_]*/y;
// ABNF guidValue = 8HEXDIG "-" 4HEXDIG "-" 4HEXDIG "-" 4HEXDIG "-" 12HEXDIG
const GUID_RE = /[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}/y;
const DATE_PREFIX_RE = /[0-9]{4}-[0-9]{2}-[0-9]{2}/y;
// ABNF dateTimeOffsetValue = year "-" month "-" day "T" hour ":" minute
//   [ ":" second [ "." fractionalSeconds ] ] ( "Z" / SIGN hour ":" minute ); fractionalSeconds = 1*12DIGIT.
// Four-digit years only: Graph never emits others.
const DATETIME_RE = /([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.[0-9]{1,12})?)?(?:Z|[+-]([0-9]{2}):([0-9]{2}))/y;
const DATETIME_FULL_RE = new RegExp(`^${DATETIME_RE.source}$`);
const GUID_FULL_RE = new RegExp(`^${GUID_RE.source}$`);
// ABNF decimalValue / doubleValue without NaN/INF: [SIGN] 1*DIGIT ["." 1*DIGIT] ["e" [SIGN] 1*DIGIT].
// A leading "+" is not accepted: it is almost always an undecoded space.
const NUMBER_RE = /-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
// Characters that may not directly follow a literal; used to show the whole malformed run.
const RUN_RE = /[A-Za-z0-9_.:+-]*/y;
const IDENT_PATH_RE = /^[A-Za-z_][A-Za-z0-9_]*(?:\/[A-Za-z_][A-Za-z0-9_]*)*$/;

const isWordish = (t: TokenType): boolean =>
  t === 'ident' || t === 'string' || t === 'number' || t === 'guid' || t === 'datetime';

function matchAt(re: RegExp, src: string, pos: number): RegExpExecArray | null {
  re.lastIndex = pos;
  return re.exec(src);
}

/** Shortens user text quoted in messages so one error cannot echo 4 KB back. */
function clip(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}...` : s;
}

/** Messages read "Invalid $filter: <what was wrong> at position <where>[; <what to do>]." */
function fail(what: string, pos: number, hint?: string): FilterSyntaxError {
  return new FilterSyntaxError(`Invalid $filter: ${what} at position ${pos}${hint === undefined ? '' : `; ${hint}`}.`, pos);
}

function tooLong(length: number): FilterSyntaxError {
  return new FilterSyntaxError(
    `Invalid $filter: the expression is ${length} characters long; the limit is ${MAX_FILTER_LENGTH}.`,
    MAX_FILTER_LENGTH,
  );
}

function describeChar(src: string, pos: number): string {
  const cp = src.codePointAt(pos) ?? 0;
  return cp > 0x20 && cp < 0x7f ? `'${String.fromCodePoint(cp)}'` : `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
}

function validDateTime(m: RegExpExecArray): boolean {
  const n = (i: number): number => Number(m[i] ?? '0');
  // ABNF month/day/hour/minute/second ranges; day-of-month is not checked against the month, as in the ABNF.
  return n(2) >= 1 && n(2) <= 12 && n(3) >= 1 && n(3) <= 31 && n(4) <= 23 && n(5) <= 59 && n(6) <= 59 && n(7) <= 23 && n(8) <= 59;
}

/**
 * Tokenizes at most MAX_FILTER_LENGTH characters. Longer input is not rejected up front:
 * the parser stops at the first problem in reading order (so 100k '(' reports the depth
 * limit), and reports the length limit only when it needs a token past the limit.
 */
function lex(text: string): Token[] {
  const truncated = text.length > MAX_FILTER_LENGTH;
  const src = truncated ? text.slice(0, MAX_FILTER_LENGTH) : text;
  const tokens: Token[] = [];
  // A malformed token that runs into the cut-off may just be cut short: blame the length.
  const lexFail = (what: string, pos: number, extentEnd: number, hint?: string): FilterSyntaxError =>
    truncated && extentEnd >= src.length ? tooLong(text.length) : fail(what, pos, hint);
  const runEnd = (pos: number): number => {
    RUN_RE.lastIndex = pos;
    RUN_RE.exec(src);
    return RUN_RE.lastIndex;
  };
  // Literals must end at a delimiter; `1abc`, `1.`, `2024-1-1` are reported whole.
  const checkLiteralEnd = (start: number, end: number, what: string): void => {
    const c = src[end];
    if (c !== undefined && /[A-Za-z0-9_.:+-]/.test(c)) {
      const e = runEnd(end);
      throw lexFail(`'${clip(src.slice(start, e))}' is not a valid ${what}`, start, e);
    }
  };

  let i = 0;
  let spaced = false;
  while (i < src.length) {
    const c = src.charAt(i);
    if (c === ' ' || c === '\t') {
      // ABNF RWS/BWS: SP / HTAB (the caller has already decoded %20, %09 and '+').
      spaced = true;
      i++;
      continue;
    }
    const start = i;
    let type: TokenType;
    let value: string | undefined;
    if (c === '(' || c === ')' || c === ',' || c === ':' || c === '/') {
      type = c;
      i++;
    } else if (c === "'") {
      // ABNF string = SQUOTE *( SQUOTE-in-string / pchar-no-SQUOTE ) SQUOTE; SQUOTE-in-string = SQUOTE SQUOTE.
      let out = '';
      let j = i + 1;
      for (;;) {
        const q = src.indexOf("'", j);
        if (q < 0) throw lexFail(`unterminated string literal starting`, start, src.length);
        out += src.slice(j, q);
        if (src[q + 1] === "'") {
          out += "'";
          j = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      type = 'string';
      value = out;
    } else if (/[0-9A-Fa-f]/.test(c) && matchAt(GUID_RE, src, i)) {
      i = GUID_RE.lastIndex;
      checkLiteralEnd(start, i, 'GUID');
      type = 'guid';
    } else if (/[0-9]/.test(c) && matchAt(DATE_PREFIX_RE, src, i)) {
      const m = matchAt(DATETIME_RE, src, i);
      const shown = (e: number): string => `'${clip(src.slice(start, e))}' is not a valid DateTimeOffset (expected e.g. 2024-01-01T00:00:00Z)`;
      if (!m || !validDateTime(m)) {
        const e = runEnd(i);
        throw lexFail(shown(e), start, e);
      }
      i = DATETIME_RE.lastIndex;
      checkLiteralEnd(start, i, 'DateTimeOffset (expected e.g. 2024-01-01T00:00:00Z)');
      type = 'datetime';
    } else if (/[0-9]/.test(c) || (c === '-' && /[0-9]/.test(src.charAt(i + 1)))) {
      matchAt(NUMBER_RE, src, i);
      i = NUMBER_RE.lastIndex;
      checkLiteralEnd(start, i, 'number');
      if (!Number.isFinite(Number(src.slice(start, i)))) {
        throw fail(`the number '${clip(src.slice(start, i))}' is out of range`, start);
      }
      type = 'number';
    } else if (/[A-Za-z_]/.test(c)) {
      matchAt(IDENT_RE, src, i);
      i = IDENT_RE.lastIndex;
      type = 'ident';
    } else if (c === '-') {
      throw lexFail(`unexpected character '-'`, start, i + 1, 'negation and subtraction are not supported');
    } else if (c === '"') {
      throw fail(`unexpected character '"'`, start, `OData strings use single quotes, e.g. 'text'`);
    } else {
      throw fail(`unexpected character ${describeChar(src, i)}`, start);
    }
    const tok: Token = { type, text: src.slice(start, i), pos: start, end: i, spaced };
    if (value !== undefined) tok.value = value;
    const prev = tokens[tokens.length - 1];
    // Adjacent words/literals need whitespace between them (ABNF RWS around keyword operators).
    if (prev && !spaced && isWordish(prev.type) && isWordish(type)) {
      throw lexFail(`expected whitespace between ${describe(prev)} and ${describe(tok)}`, start, i);
    }
    tokens.push(tok);
    spaced = false;
  }
  if (truncated) {
    // The last word may have been cut by the limit; whatever comes next is past the limit.
    const last = tokens[tokens.length - 1];
    let at = src.length;
    if (last && last.end === src.length && isWordish(last.type)) {
      tokens.pop();
      at = last.pos;
    }
    tokens.push({ type: 'toolong', text: '', pos: at, end: at, spaced: true });
  } else {
    tokens.push({ type: 'eof', text: '', pos: src.length, end: src.length, spaced: true });
  }
  return tokens;
}

// ---------------------------------------------------------------------------------------
// Parser: recursive descent (ABNF boolCommonExpr, restricted), with explicit depth and size
// limits so recursion stays within a few hundred frames.

function describe(t: Token): string {
  switch (t.type) {
    case 'eof':
    case 'toolong':
      return 'the end of the expression';
    case 'string':
      return `the string ${clip(t.text)}`;
    default:
      return `'${clip(t.text)}'`;
  }
}

const isWord = (t: Token, word: string): boolean => t.type === 'ident' && t.text === word;

class Parser {
  private i = 0;
  private depth = 0;
  private conditions = 0;
  /** Name of the innermost lambda variable while parsing an any() predicate. */
  private lambdaVar: string | null = null;
  private readonly tokens: Token[];
  private readonly length: number;

  constructor(tokens: Token[], length: number) {
    this.tokens = tokens;
    this.length = length;
  }

  parse(): FilterNode {
    if (this.peek().type === 'eof') throw fail('the expression is empty', 0);
    const node = this.parseOr();
    const t = this.peek();
    if (t.type !== 'eof') {
      if (t.type === ')') throw fail(`unmatched ')'`, t.pos);
      throw this.expectedConnective(t, 'the end of the expression');
    }
    return node;
  }

  private peek(ahead = 0): Token {
    const t = this.tokens[Math.min(this.i + ahead, this.tokens.length - 1)] as Token;
    // Looking past the length limit means the text is too long, whatever else it says.
    if (t.type === 'toolong') throw tooLong(this.length);
    return t;
  }

  private next(): Token {
    const t = this.peek();
    this.i++;
    return t;
  }

  private prev(): Token | undefined {
    return this.tokens[this.i - 1];
  }

  private enter(at: Token): void {
    if (++this.depth > MAX_FILTER_DEPTH) {
      throw fail(`the expression is nested more than ${MAX_FILTER_DEPTH} levels deep (parentheses, not, any)`, at.pos);
    }
  }

  private count(at: Token): void {
    if (++this.conditions > MAX_FILTER_CONDITIONS) {
      throw fail(
        `the expression has more than ${MAX_FILTER_CONDITIONS} conditions (comparisons, in, startswith, endswith, any)`,
        at.pos,
      );
    }
  }

  private expectedConnective(t: Token, or: string): FilterSyntaxError {
    if (t.type === 'ident' && (t.text.toLowerCase() === 'and' || t.text.toLowerCase() === 'or')) {
      return this.caseError(t);
    }
    return fail(`expected 'and', 'or' or ${or}, found ${describe(t)}`, t.pos);
  }

  private caseError(t: Token): FilterSyntaxError {
    return fail(`'${clip(t.text)}' is not recognized`, t.pos, `OData keywords and functions are lower-case: use '${t.text.toLowerCase()}'`);
  }

  // ABNF orExpr = RWS "or" RWS boolCommonExpr; left-associative, so loop instead of recursing.
  private parseOr(): FilterNode {
    let left = this.parseAnd();
    while (isWord(this.peek(), 'or')) {
      this.next();
      left = { kind: 'or', left, right: this.parseAnd() };
    }
    return left;
  }

  // ABNF andExpr = RWS "and" RWS boolCommonExpr; binds tighter than or (§5.1.1.16).
  private parseAnd(): FilterNode {
    let left = this.parseUnary();
    while (isWord(this.peek(), 'and')) {
      this.next();
      left = { kind: 'and', left, right: this.parseUnary() };
    }
    return left;
  }

  // ABNF notExpr = "not" RWS boolCommonExpr, and boolParenExpr = OPEN BWS boolCommonExpr BWS CLOSE.
  private parseUnary(): FilterNode {
    const t = this.peek();
    if (isWord(t, 'not')) {
      this.next();
      this.enter(t);
      const operand = this.parseUnary();
      this.depth--;
      return { kind: 'not', operand };
    }
    if (t.type === '(') {
      this.next();
      this.enter(t);
      const inner = this.parseOr();
      const close = this.peek();
      if (close.type !== ')') {
        throw close.type === 'eof'
          ? fail(`missing ')' to close the '(' at position ${t.pos}: the expression ended`, close.pos)
          : this.expectedConnective(close, `')' to close the '(' at position ${t.pos}`);
      }
      this.next();
      this.depth--;
      return inner;
    }
    return this.parseCondition();
  }

  /** One comparison, in, function call or lambda. */
  private parseCondition(): FilterNode {
    const t = this.peek();
    if (t.type === 'string' || t.type === 'number' || t.type === 'guid' || t.type === 'datetime' ||
        isWord(t, 'true') || isWord(t, 'false') || isWord(t, 'null')) {
      throw fail(
        `a literal on the left side of a comparison (${describe(t)}) is not supported`,
        t.pos,
        `put the property first, e.g. displayName eq 'value'`,
      );
    }
    if (t.type !== 'ident') {
      const after = this.prev();
      const where = after ? ` after '${clip(after.text)}'` : '';
      throw fail(`expected a condition such as displayName eq 'value'${where}, found ${describe(t)}`, t.pos);
    }
    const following = this.peek(1);
    if (t.text.toLowerCase() === 'not' && !this.isOperatorWord(following) && following.type !== '/') throw this.caseError(t);
    if ((t.text === 'and' || t.text === 'or') && !this.isOperatorWord(following) && following.type !== '/') {
      throw fail(`expected a condition before the keyword '${t.text}'`, t.pos);
    }
    if (following.type === '(') return this.parseFunction();

    const path = this.parsePath();
    if (path.lambda !== undefined) return this.parseLambda(path.segments, path.start, path.lambda);
    const property = this.resolveProperty(path.segments, path.start);
    const written = path.text;

    const op = this.peek();
    if (op.type === 'ident' && COMPARE_OPS.has(op.text)) {
      this.next();
      const value = this.parseLiteral(op);
      this.count(t);
      return { kind: 'compare', op: op.text as CompareOp, property, value };
    }
    if (isWord(op, 'in')) return this.parseIn(property, t);
    if (op.type === 'ident') {
      const lower = op.text.toLowerCase();
      if (COMPARE_OPS.has(lower) || lower === 'in') throw this.caseError(op);
      if (UNSUPPORTED_OPS.has(lower)) throw fail(`the '${op.text}' operator is not supported`, op.pos);
      if (lower === 'contains') {
        throw fail(`the 'contains' operator is not supported`, op.pos, `use startswith(${clip(written)},'value') instead`);
      }
    }
    throw fail(`expected a comparison operator (eq, ne, gt, ge, lt, le) after '${clip(written)}'`, op.pos);
  }

  private isOperatorWord(t: Token): boolean {
    return t.type === 'ident' && (COMPARE_OPS.has(t.text) || t.text === 'in');
  }

  /** ABNF memberExpr restricted to property paths: identifier *( "/" identifier ), possibly ending in /any or /all. */
  private parsePath(): { segments: string[]; start: Token; text: string; lambda?: Token } {
    const start = this.next();
    const segments = [start.text];
    while (this.peek().type === '/') {
      const slash = this.next();
      const seg = this.peek();
      if (slash.spaced || seg.spaced || seg.type !== 'ident') {
        throw fail(`expected a property name right after '/' (no spaces in property paths)`, slash.spaced ? slash.pos : slash.end);
      }
      this.next();
      if ((seg.text === 'any' || seg.text === 'all') && this.peek().type === '(') {
        return { segments, start, text: segments.join('/'), lambda: seg };
      }
      segments.push(seg.text);
    }
    return { segments, start, text: segments.join('/') };
  }

  /** Inside a lambda only the lambda variable may be referenced; it becomes ELEMENT. */
  private resolveProperty(segments: string[], start: Token): string {
    if (this.lambdaVar === null) return segments.join('/');
    if (segments[0] !== this.lambdaVar) {
      throw fail(
        `inside any(), only the lambda variable '${this.lambdaVar}' can be referenced, found '${clip(segments.join('/'))}'`,
        start.pos,
      );
    }
    return [ELEMENT, ...segments.slice(1)].join('/');
  }

  // ABNF anyExpr = "any" OPEN BWS [ lambdaVariableExpr BWS COLON BWS lambdaPredicateExpr ] BWS CLOSE
  private parseLambda(segments: string[], start: Token, op: Token): FilterNode {
    const open = this.next(); // '('
    if (op.text === 'all') throw fail(`the 'all' lambda operator is not supported`, op.pos, `use not ${clip(segments.join('/'))}/any(...) instead`);
    if (this.lambdaVar !== null) throw fail(`nested any() lambdas are not supported`, op.pos);
    const property = segments.join('/');
    const v = this.peek();
    if (v.type === ')') {
      throw fail(`any() without a lambda predicate is not supported`, open.pos, `write e.g. ${clip(property)}/any(x:x eq 'value')`);
    }
    if (v.type !== 'ident') throw fail(`expected a lambda variable name after 'any(', found ${describe(v)}`, v.pos);
    if (KEYWORDS.has(v.text)) throw fail(`'${v.text}' cannot be used as a lambda variable name`, v.pos);
    this.next();
    const colon = this.peek();
    if (colon.type !== ':') throw fail(`expected ':' after the lambda variable '${clip(v.text)}'`, colon.pos);
    this.next();
    this.count(start);
    this.enter(op);
    this.lambdaVar = v.text;
    const predicate = this.parseOr();
    this.lambdaVar = null;
    const close = this.peek();
    if (close.type !== ')') {
      throw close.type === 'eof'
        ? fail(`missing ')' to close '${clip(property)}/any(' at position ${op.pos}; the expression ended`, close.pos)
        : this.expectedConnective(close, `')' to close any(`);
    }
    this.next();
    this.depth--;
    return { kind: 'any', property, predicate };
  }

  // ABNF startsWithMethodCallExpr = "startswith" OPEN BWS commonExpr BWS COMMA BWS commonExpr BWS CLOSE (same for endswith).
  private parseFunction(): FilterNode {
    const name = this.peek();
    const lower = name.text.toLowerCase();
    if (name.text !== 'startswith' && name.text !== 'endswith') {
      if (lower === 'startswith' || lower === 'endswith') throw this.caseError(name);
      if (lower === 'contains' || lower === 'substringof') {
        throw fail(`the '${name.text}' function is not supported`, name.pos, `use startswith(property,'value') instead`);
      }
      if (lower === 'any' || lower === 'all') {
        throw fail(`${name.text}() without a collection property`, name.pos, `write e.g. proxyAddresses/any(x:x eq 'value')`);
      }
      throw fail(`the function '${clip(name.text)}' is not supported`, name.pos, 'supported functions are startswith and endswith');
    }
    this.next();
    this.next(); // '('
    const kind = name.text;
    const arg = this.peek();
    if (arg.type !== 'ident' || RESERVED_FIRST_SEGMENT.has(arg.text)) {
      throw fail(`the first argument of ${kind} must be a property, found ${describe(arg)}`, arg.pos);
    }
    if (this.peek(1).type === '(') throw fail(`the first argument of ${kind} must be a property, not a function call`, arg.pos);
    const path = this.parsePath();
    if (path.lambda !== undefined) throw fail(`the first argument of ${kind} must be a property, not a lambda`, path.lambda.pos);
    const property = this.resolveProperty(path.segments, path.start);
    const comma = this.peek();
    if (comma.type !== ',') throw fail(`expected ',' after the first argument of ${kind}`, comma.pos);
    this.next();
    const str = this.peek();
    if (str.type !== 'string') {
      throw fail(`the second argument of ${kind} must be a string literal in single quotes, found ${describe(str)}`, str.pos);
    }
    this.next();
    const close = this.peek();
    if (close.type !== ')') throw fail(`expected ')' to close ${kind}(, found ${describe(close)}`, close.pos);
    this.next();
    this.count(name);
    const node: FilterNode = { kind, property, value: str.value ?? '' };
    // Some clients write `startswith(a,'x') eq true`; ABNF allows comparing a boolean call to a literal.
    const op = this.peek();
    const b = this.peek(1);
    if ((isWord(op, 'eq') || isWord(op, 'ne')) && (isWord(b, 'true') || isWord(b, 'false'))) {
      this.next();
      this.next();
      return (op.text === 'eq') === (b.text === 'true') ? node : { kind: 'not', operand: node };
    }
    return node;
  }

  // ABNF inExpr = RWS "in" RWS ( listExpr / commonExpr ); listExpr = OPEN BWS primitiveLiteral *( BWS COMMA BWS primitiveLiteral ) BWS CLOSE
  private parseIn(property: string, start: Token): FilterNode {
    this.next(); // 'in'
    const open = this.peek();
    if (open.type !== '(') throw fail(`expected '(' after 'in'`, open.pos, `write e.g. ${clip(property)} in ('a','b')`);
    this.next();
    if (this.peek().type === ')') throw fail(`the 'in' list is empty`, this.peek().pos, 'give at least one value');
    const values: Literal[] = [];
    let after: Token = open;
    for (;;) {
      const at = this.peek();
      if (values.length === MAX_IN_VALUES) throw fail(`the 'in' list has more than ${MAX_IN_VALUES} values`, at.pos);
      values.push(this.parseLiteral(after));
      const sep = this.peek();
      if (sep.type === ')') break;
      if (sep.type !== ',') throw fail(`expected ',' or ')' in the 'in' list, found ${describe(sep)}`, sep.pos);
      after = this.next();
    }
    this.next();
    this.count(start);
    return { kind: 'in', property, values };
  }

  /** ABNF primitiveLiteral, restricted to the kinds in Literal. */
  private parseLiteral(after: Token): Literal {
    const t = this.peek();
    switch (t.type) {
      case 'string':
        this.next();
        return { kind: 'string', value: t.value ?? '' };
      case 'number':
        this.next();
        return { kind: 'number', value: Number(t.text) };
      case 'guid':
        this.next();
        return { kind: 'guid', value: t.text.toLowerCase() };
      case 'datetime':
        this.next();
        return { kind: 'datetime', value: t.text };
      case 'ident': {
        if (t.text === 'true' || t.text === 'false') {
          this.next();
          return { kind: 'boolean', value: t.text === 'true' };
        }
        if (t.text === 'null') {
          this.next();
          return { kind: 'null' };
        }
        const lower = t.text.toLowerCase();
        if (lower === 'true' || lower === 'false' || lower === 'null') throw this.caseError(t);
        throw fail(
          `comparing to another property or expression ('${clip(t.text)}') is not supported`,
          t.pos,
          `the value must be a literal such as 'text', 42, true or null`,
        );
      }
      default:
        throw fail(`expected a literal value (e.g. 'text', 42, true, null) after '${clip(after.text)}', found ${describe(t)}`, t.pos);
    }
  }
}

/**
 * Parses an OData $filter expression (already URL-decoded). Throws FilterSyntaxError,
 * and nothing else, for anything outside the supported subset or over a limit.
 */
export function parseFilter(text: string): FilterNode {
  if (typeof text !== 'string') throw fail('the expression is not a string', 0);
  return new Parser(lex(text), text.length).parse();
}

// ---------------------------------------------------------------------------------------
// Formatter

const LAMBDA_VAR = 'x';

function formatLiteral(v: Literal): string {
  switch (v.kind) {
    case 'string':
      return `'${v.value.replaceAll("'", "''")}'`;
    case 'number':
      if (!Number.isFinite(v.value)) throw new RangeError(`formatFilter: ${v.value} has no OData literal form`);
      // String() gives the shortest round-tripping form, exponent included ("1e+21"), which NUMBER_RE accepts.
      return Object.is(v.value, -0) ? '-0' : String(v.value);
    case 'boolean':
      return v.value ? 'true' : 'false';
    case 'null':
      return 'null';
    case 'datetime':
      if (!DATETIME_FULL_RE.test(v.value)) throw new RangeError(`formatFilter: '${v.value}' is not a DateTimeOffset literal`);
      return v.value;
    case 'guid':
      if (!GUID_FULL_RE.test(v.value)) throw new RangeError(`formatFilter: '${v.value}' is not a GUID`);
      return v.value.toLowerCase();
  }
}

function formatProperty(property: string, inLambda: boolean): string {
  if (inLambda) {
    if (property === ELEMENT) return LAMBDA_VAR;
    const rest = property.startsWith(`${ELEMENT}/`) ? property.slice(ELEMENT.length + 1) : null;
    if (rest === null || !IDENT_PATH_RE.test(rest)) {
      throw new RangeError(`formatFilter: inside any() the property must be ${ELEMENT} or ${ELEMENT}/path, got '${property}'`);
    }
    return `${LAMBDA_VAR}/${rest}`;
  }
  if (!IDENT_PATH_RE.test(property) || RESERVED_FIRST_SEGMENT.has(property.split('/')[0] ?? '')) {
    throw new RangeError(`formatFilter: '${property}' is not a property path`);
  }
  return property;
}

const PREC = { or: 1, and: 2 } as const;

function format(node: FilterNode, inLambda: boolean): string {
  switch (node.kind) {
    case 'and':
    case 'or': {
      const p = PREC[node.kind];
      // Left-associative: the left child needs parentheses only if it binds looser; the
      // right child also if it binds equally, or it would re-parse as ((a op b) op c).
      const side = (child: FilterNode, right: boolean): string => {
        const s = format(child, inLambda);
        const cp = child.kind === 'and' || child.kind === 'or' ? PREC[child.kind] : 3;
        return cp < p || (right && cp === p) ? `(${s})` : s;
      };
      return `${side(node.left, false)} ${node.kind} ${side(node.right, true)}`;
    }
    case 'not': {
      const s = format(node.operand, inLambda);
      return node.operand.kind === 'and' || node.operand.kind === 'or' ? `not (${s})` : `not ${s}`;
    }
    case 'compare':
      return `${formatProperty(node.property, inLambda)} ${node.op} ${formatLiteral(node.value)}`;
    case 'in':
      if (node.values.length === 0 || node.values.length > MAX_IN_VALUES) {
        throw new RangeError(`formatFilter: an 'in' list needs 1 to ${MAX_IN_VALUES} values`);
      }
      return `${formatProperty(node.property, inLambda)} in (${node.values.map(formatLiteral).join(',')})`;
    case 'startswith':
    case 'endswith':
      return `${node.kind}(${formatProperty(node.property, inLambda)},${formatLiteral({ kind: 'string', value: node.value })})`;
    case 'any':
      if (inLambda) throw new RangeError('formatFilter: nested any() is not supported');
      return `${formatProperty(node.property, false)}/any(${LAMBDA_VAR}:${format(node.predicate, true)})`;
  }
}

/**
 * Canonical $filter text for an AST such that parseFilter(formatFilter(n)) deep-equals n.
 * Throws RangeError for ASTs parseFilter could never produce (bad property names, non-finite
 * numbers, ELEMENT outside any(), nested any()). Limits are not checked here.
 */
export function formatFilter(node: FilterNode): string {
  return format(node, false);
}
