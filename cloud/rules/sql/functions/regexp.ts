/**
 * regexp_matches, regexp_replace and regexp_substr ("Functions" page of the AWS IoT SQL reference).
 *
 * AWS evaluates Java (java.util.regex) patterns. This module translates a Java pattern into an
 * equivalent JavaScript one (always compiled with the `u` flag, so `.` and classes work on code points
 * as Java's do) and interprets Java replacement strings (`$1`, `${name}`, `\$`). Supported Java syntax
 * beyond what JavaScript shares:
 * - `\Q...\E` quoting; escaping any non-alphanumeric character (`\"`, `\-`, `\ `);
 * - `\A`, `\z`, `\Z`; `\h`/`\H`, `\v` (vertical whitespace), `\R`, `\e`, `\a`, octal `\0nnn`, `\x{h..h}`;
 * - `\s`/`\S` with Java's ASCII meaning (`[ \t\n\x0B\f\r]`), `.` excluding Java's line terminators
 *   (including U+0085), `$` also matching before a final line terminator when not in MULTILINE mode;
 * - POSIX classes `\p{Lower}`, `\p{Upper}`, `\p{ASCII}`, `\p{Alpha}`, `\p{Digit}`, `\p{Alnum}`,
 *   `\p{Punct}`, `\p{Graph}`, `\p{Print}`, `\p{Blank}`, `\p{Cntrl}`, `\p{XDigit}`, `\p{Space}` (ASCII),
 *   Unicode categories (`\p{Lu}`, `\pL`, `\p{IsLu}`, `\p{gc=Lu}`), scripts (`\p{IsLatin}`,
 *   `\p{script=Greek}`) and some binary properties (`\p{IsAlphabetic}`);
 * - inline flags `(?i)`, `(?s)`, `(?m)`, `(?x)` (comments mode) and `(?i:...)` groups;
 * - nested (union) character classes `[a-d[m-p]]`; a lone `]` or `}` as a literal.
 *
 * Approximations (JavaScript has no equivalent): inline flags apply to the whole pattern wherever they
 * appear, and turning a flag off (`(?-i)`) is ignored; possessive quantifiers (`a*+`) and atomic groups
 * (`(?>...)`) behave as greedy quantifiers and plain groups; `(?i)` folds case by Unicode rules, not
 * Java's ASCII-only default. Unsupported constructs (class intersection `&&`, negated nested classes,
 * Unicode blocks `\p{InGreek}`, `\G`, `\X`, `\N{...}`) make the pattern invalid, and an invalid pattern
 * makes the function return Undefined, which is what the page specifies for an invalid regex.
 * There is no protection against catastrophic backtracking.
 */
import type { FunctionSpec } from '../context.js';
import { bool, type SqlValue, str, UNDEFINED } from '../values.js';
import { toText } from './convert.js';
import { arg, define } from './define.js';

/** A Java pattern or replacement that cannot be translated (the SQL function returns Undefined). */
export class RegexTranslationError extends Error {}

const fail = (message: string): never => {
  throw new RegexTranslationError(message);
};

const SYNTAX_CHARS = new Set(['^', '$', '\\', '.', '*', '+', '?', '(', ')', '[', ']', '{', '}', '|', '/']);

const JAVA_SPACE = ' \\t\\n\\x0B\\f\\r';
const HORIZONTAL_SPACE = ' \\t\\xA0\\u1680\\u180E\\u2000-\\u200A\\u202F\\u205F\\u3000';
const VERTICAL_SPACE = '\\n\\x0B\\f\\r\\x85\\u2028\\u2029';
const LINE_TERMINATORS = '\\n\\r\\u0085\\u2028\\u2029';

/** Java's POSIX character classes (US-ASCII only, the default without UNICODE_CHARACTER_CLASS). */
const POSIX: Readonly<Record<string, string>> = {
  Lower: 'a-z',
  Upper: 'A-Z',
  ASCII: '\\x00-\\x7F',
  Alpha: 'a-zA-Z',
  Digit: '0-9',
  Alnum: 'a-zA-Z0-9',
  Punct: '!-\\/:-@\\[-`{-~',
  Graph: '\\x21-\\x7E',
  Print: '\\x20-\\x7E',
  Blank: ' \\t',
  Cntrl: '\\x00-\\x1F\\x7F',
  XDigit: '0-9a-fA-F',
  Space: JAVA_SPACE,
};

const CATEGORIES = new Set(
  'L Lu Ll Lt Lm Lo M Mn Mc Me N Nd Nl No P Pc Pd Ps Pe Pi Pf Po S Sm Sc Sk So Z Zs Zl Zp C Cc Cf Cs Co Cn LC'.split(
    ' ',
  ),
);

const BINARY_PROPERTIES: Readonly<Record<string, string>> = {
  Alphabetic: 'Alphabetic',
  Ideographic: 'Ideographic',
  Letter: 'L',
  Lowercase: 'Lowercase',
  Uppercase: 'Uppercase',
  Titlecase: 'Lt',
  Punctuation: 'P',
  Control: 'Cc',
  White_Space: 'White_Space',
  WhiteSpace: 'White_Space',
  Digit: 'Nd',
  Hex_Digit: 'Hex_Digit',
  HexDigit: 'Hex_Digit',
  Join_Control: 'Join_Control',
  JoinControl: 'Join_Control',
  Noncharacter_Code_Point: 'Noncharacter_Code_Point',
  Assigned: 'Assigned',
  Emoji: 'Emoji',
};

function propertyValid(expr: string): boolean {
  try {
    new RegExp(expr, 'u');
    return true;
  } catch {
    return false;
  }
}

/** Translates the name inside Java's `\p{...}` to a JS `\p{...}` body, or a POSIX range list. */
function translateProperty(name: string): { posix: string } | { unicode: string } {
  const posix = POSIX[name];
  if (posix !== undefined) return { posix };
  let body: string | undefined;
  const kv = /^(\w+)=(\w+)$/.exec(name);
  if (kv) {
    const key = kv[1]!.toLowerCase();
    if (key === 'script' || key === 'sc') body = `Script=${kv[2]}`;
    else if (key === 'general_category' || key === 'gc') body = `General_Category=${kv[2]}`;
    else fail(`unsupported property ${name}`);
  } else if (CATEGORIES.has(name)) body = name;
  else if (name.startsWith('Is')) {
    const rest = name.slice(2);
    if (CATEGORIES.has(rest)) body = rest;
    else if (BINARY_PROPERTIES[rest] !== undefined) body = BINARY_PROPERTIES[rest];
    else body = `Script=${rest}`;
  } else if (name.startsWith('In')) fail(`Unicode blocks are not supported: ${name}`);
  else body = `Script=${name}`;
  if (body === undefined || !propertyValid(`\\p{${body}}`)) fail(`unknown property ${name}`);
  return { unicode: body! };
}

function hex(cp: number): string {
  return `\\u{${cp.toString(16)}}`;
}

/** A literal character, escaped so that it is valid (in or out of a class) under the `u` flag. */
function literal(ch: string, inClass: boolean): string {
  if (/^[A-Za-z0-9_]$/.test(ch)) return ch;
  if (SYNTAX_CHARS.has(ch) || (inClass && ch === '-')) return `\\${ch}`;
  return hex(ch.codePointAt(0)!);
}

interface TranslateState {
  flags: Set<string>;
}

/** Translation of a Java pattern: JS source and flags (without `u`/`g`). */
export interface TranslatedRegex {
  source: string;
  flags: string;
}

function translateOnce(
  pattern: string,
  assumed: ReadonlySet<string>,
): { source: string; flags: Set<string> } {
  const state: TranslateState = { flags: new Set(assumed) };
  const out: string[] = [];
  /** Capturing groups opened so far (Java reads `\\10` as group 10 only if it exists at that point). */
  let groups = 0;
  let i = 0;
  const n = pattern.length;
  const comments = () => state.flags.has('x');

  const codePointAt = (k: number): string => String.fromCodePoint(pattern.codePointAt(k)!);

  /** Reads an escape at pattern[i] === '\\'; returns its JS text. */
  const readEscape = (inClass: boolean): string => {
    i++;
    if (i >= n) fail('trailing backslash');
    const c = codePointAt(i);
    i += c.length;
    switch (c) {
      case 't':
      case 'n':
      case 'r':
      case 'f':
      case 'd':
      case 'D':
      case 'w':
      case 'W':
        return `\\${c}`;
      case 'b':
      case 'B':
        if (inClass) fail('\\b in a class');
        return `\\${c}`;
      case 'a':
        return '\\x07';
      case 'e':
        return '\\x1B';
      case 's':
        return inClass ? JAVA_SPACE : `[${JAVA_SPACE}]`;
      case 'S':
        return inClass ? '\\S' : `[^${JAVA_SPACE}]`;
      case 'h':
        return inClass ? HORIZONTAL_SPACE : `[${HORIZONTAL_SPACE}]`;
      case 'H':
        if (inClass) fail('\\H in a class');
        return `[^${HORIZONTAL_SPACE}]`;
      case 'v':
        return inClass ? VERTICAL_SPACE : `[${VERTICAL_SPACE}]`;
      case 'V':
        if (inClass) fail('\\V in a class');
        return `[^${VERTICAL_SPACE}]`;
      case 'R':
        if (inClass) fail('\\R in a class');
        return `(?:\\r\\n|[${VERTICAL_SPACE}])`;
      case 'A':
        if (inClass) fail('\\A in a class');
        return '(?<![\\s\\S])';
      case 'z':
        if (inClass) fail('\\z in a class');
        return '(?![\\s\\S])';
      case 'Z':
        if (inClass) fail('\\Z in a class');
        return `(?=(?:\\r\\n|[${LINE_TERMINATORS}])?(?![\\s\\S]))`;
      case 'c': {
        if (i >= n) fail('\\c at end');
        const x = pattern.charCodeAt(i) ^ 64;
        i++;
        return hex(x);
      }
      case 'x': {
        if (pattern[i] === '{') {
          const end = pattern.indexOf('}', i);
          if (end < 0) fail('unclosed \\x{');
          const h = pattern.slice(i + 1, end);
          if (!/^[0-9a-fA-F]{1,6}$/.test(h) || Number.parseInt(h, 16) > 0x10ffff) fail('bad \\x{}');
          i = end + 1;
          return hex(Number.parseInt(h, 16));
        }
        const h = pattern.slice(i, i + 2);
        if (!/^[0-9a-fA-F]{2}$/.test(h)) fail('bad \\x');
        i += 2;
        return hex(Number.parseInt(h, 16));
      }
      case 'u': {
        const h = pattern.slice(i, i + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(h)) fail('bad \\u');
        i += 4;
        return hex(Number.parseInt(h, 16));
      }
      case '0': {
        // \0n, \0nn, \0mnn (m <= 3)
        const m = /^[0-3]?[0-7]{1,2}|^[0-7]/.exec(pattern.slice(i, i + 3));
        if (!m) fail('bad octal escape');
        let digits = m![0];
        if (digits.length === 3 && Number.parseInt(digits, 8) > 0o377) digits = digits.slice(0, 2);
        i += digits.length;
        return hex(Number.parseInt(digits, 8));
      }
      case 'p':
      case 'P': {
        let name: string;
        if (pattern[i] === '{') {
          const end = pattern.indexOf('}', i);
          if (end < 0) fail('unclosed \\p{');
          name = pattern.slice(i + 1, end);
          i = end + 1;
        } else {
          if (i >= n) fail('\\p at end');
          name = pattern[i]!;
          i++;
        }
        const negated = c === 'P';
        const t = translateProperty(name);
        if ('posix' in t) {
          if (inClass) {
            if (negated) fail('negated POSIX class inside a class');
            return t.posix;
          }
          return negated ? `[^${t.posix}]` : `[${t.posix}]`;
        }
        return `\\${negated ? 'P' : 'p'}{${t.unicode}}`;
      }
      case 'Q': {
        const end = pattern.indexOf('\\E', i);
        const quoted = end < 0 ? pattern.slice(i) : pattern.slice(i, end);
        i = end < 0 ? n : end + 2;
        return Array.from(quoted, (ch) => literal(ch, inClass)).join('');
      }
      case 'k': {
        const m = /^<([A-Za-z][A-Za-z0-9]*)>/.exec(pattern.slice(i));
        if (!m || inClass) fail('bad \\k');
        i += m![0].length;
        return `\\k<${m![1]}>`;
      }
      default:
        if (/[1-9]/.test(c)) {
          if (inClass) fail('back reference in a class');
          let digits = c;
          while (i < n && /[0-9]/.test(pattern[i]!) && Number(digits + pattern[i]) <= groups) {
            digits += pattern[i];
            i++;
          }
          // Wrapped in a group so that following literal digits are not read as part of the number.
          return `(?:\\${digits})`;
        }
        if (/[A-Za-z]/.test(c)) fail(`unsupported escape \\${c}`);
        return literal(c, inClass);
    }
  };

  /** Reads a character class at pattern[i] === '['; returns its JS text (possibly inlined). */
  const charClass = (nested: boolean): string => {
    i++; // '['
    let body = '';
    let negated = false;
    if (pattern[i] === '^') {
      negated = true;
      i++;
      if (nested) fail('negated nested class');
    }
    let first = true;
    for (;;) {
      if (i >= n) fail('unclosed character class');
      const ch = pattern[i]!;
      if (ch === ']' && !first) {
        i++;
        break;
      }
      first = false;
      if (ch === '\\') body += readEscape(true);
      else if (ch === '[') body += charClass(true);
      else if (ch === '&' && pattern[i + 1] === '&') fail('class intersection is not supported');
      else if (comments() && /\s/.test(ch)) i++;
      else {
        const cp = codePointAt(i);
        i += cp.length;
        body += cp === '-' ? '-' : literal(cp, true);
      }
    }
    if (nested) return body;
    return `[${negated ? '^' : ''}${body}]`;
  };

  const quantifierFollows = () => {
    // Possessive `+` after a quantifier: treated as greedy (dropped).
    if (pattern[i] === '+') i++;
    else if (pattern[i] === '?') {
      out.push('?');
      i++;
    }
  };

  while (i < n) {
    const ch = pattern[i]!;
    if (comments() && /\s/.test(ch)) {
      i++;
      continue;
    }
    if (comments() && ch === '#') {
      while (i < n && pattern[i] !== '\n') i++;
      continue;
    }
    switch (ch) {
      case '\\':
        out.push(readEscape(false));
        break;
      case '[':
        out.push(charClass(false));
        break;
      case '(': {
        if (pattern[i + 1] !== '?') {
          out.push('(');
          groups++;
          i++;
          break;
        }
        const rest = pattern.slice(i + 2);
        if (rest.startsWith(':') || rest.startsWith('=') || rest.startsWith('!')) {
          out.push(`(?${rest[0]}`);
          i += 3;
        } else if (rest.startsWith('<=') || rest.startsWith('<!')) {
          out.push(`(?${rest.slice(0, 2)}`);
          i += 4;
        } else if (rest.startsWith('<')) {
          const m = /^<([A-Za-z][A-Za-z0-9]*)>/.exec(rest);
          if (!m) fail('bad group name');
          out.push(`(?${m![0]}`);
          groups++;
          i += 2 + m![0].length;
        } else if (rest.startsWith('>')) {
          out.push('(?:');
          i += 3;
        } else {
          const m = /^([idmsuxU]*)(?:-([idmsuxU]*))?([:)])/.exec(rest);
          if (!m) fail('bad group');
          for (const f of m![1] ?? '') if ('imsx'.includes(f)) state.flags.add(f);
          i += 2 + m![0].length;
          if (m![3] === ':') out.push('(?:');
        }
        break;
      }
      case '*':
      case '+':
      case '?':
        out.push(ch);
        i++;
        quantifierFollows();
        break;
      case '{': {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(pattern.slice(i));
        if (!m) fail('illegal repetition');
        out.push(m![0]);
        i += m![0].length;
        quantifierFollows();
        break;
      }
      case '}':
      case ']':
        out.push(`\\${ch}`);
        i++;
        break;
      case '.':
        out.push(state.flags.has('s') ? '[\\s\\S]' : `[^${LINE_TERMINATORS}]`);
        i++;
        break;
      case '$':
        out.push(state.flags.has('m') ? '$' : `(?=(?:\\r\\n|[${LINE_TERMINATORS}])?(?![\\s\\S]))`);
        i++;
        break;
      default: {
        const cp = codePointAt(i);
        out.push(cp);
        i += cp.length;
      }
    }
  }
  return { source: out.join(''), flags: state.flags };
}

/** Translates a Java regular expression; throws RegexTranslationError or SyntaxError if invalid. */
export function translateJavaRegex(pattern: string): TranslatedRegex {
  let assumed = new Set<string>();
  let result = translateOnce(pattern, assumed);
  // Inline flags found anywhere apply to the whole pattern: translate again knowing them.
  for (let k = 0; k < 3 && [...result.flags].some((f) => !assumed.has(f)); k++) {
    assumed = result.flags;
    result = translateOnce(pattern, assumed);
  }
  const flags = [...result.flags]
    .filter((f) => f === 'i' || f === 'm' || f === 's')
    .sort()
    .join('');
  // Validate now so that callers get one error type.
  new RegExp(result.source, `${flags}u`);
  return { source: result.source, flags };
}

interface Compiled {
  /** Global, for replace. */
  global: RegExp;
  /** Non-global, for test and exec. */
  first: RegExp;
  groupCount: number;
  groupNames: ReadonlySet<string>;
}

const cache = new Map<string, Compiled>();
const CACHE_LIMIT = 256;

/** The compiled form of a Java pattern, or undefined if it is not valid (or not translatable). */
export function compileJavaRegex(pattern: string): Compiled | undefined {
  const hit = cache.get(pattern);
  if (hit) return hit;
  let compiled: Compiled;
  try {
    const t = translateJavaRegex(pattern);
    const first = new RegExp(t.source, `${t.flags}u`);
    const global = new RegExp(t.source, `${t.flags}gu`);
    const probe = new RegExp(`${t.source}|`, `${t.flags}u`).exec('');
    const groupCount = probe ? probe.length - 1 : 0;
    const groupNames = new Set(Object.keys(probe?.groups ?? {}));
    compiled = { first, global, groupCount, groupNames };
  } catch {
    return undefined;
  }
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(pattern, compiled);
  return compiled;
}

type ReplacementPart = string | number | { name: string };

/**
 * Parses a Java replacement string (java.util.regex.Matcher#appendReplacement): `\x` is a literal x,
 * `$n` a group (more digits are taken while the number stays a valid group), `${name}` a named group.
 * A lone `$`, a trailing `\` or a missing group makes it invalid (undefined).
 */
export function parseJavaReplacement(
  replacement: string,
  groupCount: number,
  groupNames: ReadonlySet<string>,
): ReplacementPart[] | undefined {
  const parts: ReplacementPart[] = [];
  let lit = '';
  let i = 0;
  while (i < replacement.length) {
    const c = replacement[i]!;
    if (c === '\\') {
      if (i + 1 >= replacement.length) return undefined;
      lit += replacement[i + 1];
      i += 2;
    } else if (c === '$') {
      i++;
      if (replacement[i] === '{') {
        const end = replacement.indexOf('}', i);
        if (end < 0) return undefined;
        const name = replacement.slice(i + 1, end);
        if (!/^[A-Za-z][A-Za-z0-9]*$/.test(name) || !groupNames.has(name)) return undefined;
        if (lit) parts.push(lit);
        lit = '';
        parts.push({ name });
        i = end + 1;
      } else {
        const d = replacement[i];
        if (d === undefined || !/[0-9]/.test(d)) return undefined;
        let num = Number(d);
        if (num > groupCount) return undefined;
        i++;
        while (i < replacement.length && /[0-9]/.test(replacement[i]!)) {
          const next = num * 10 + Number(replacement[i]);
          if (next > groupCount) break;
          num = next;
          i++;
        }
        if (lit) parts.push(lit);
        lit = '';
        parts.push(num);
      }
    } else {
      lit += c;
      i++;
    }
  }
  if (lit) parts.push(lit);
  return parts;
}

/** The (converted) subject and pattern, or undefined if either is Null/Undefined or the regex invalid. */
function subjectAndRegex(args: readonly SqlValue[]): { s: string; re: Compiled } | undefined {
  const s = toText(arg(args, 0));
  const p = toText(arg(args, 1));
  if (s === undefined || p === undefined) return undefined;
  const re = compileJavaRegex(p);
  return re === undefined ? undefined : { s, re };
}

/** regexp_matches: true if the string contains a match (Java `find`, not a whole-string match). */
function regexpMatches(args: readonly SqlValue[]): SqlValue {
  const x = subjectAndRegex(args);
  return x === undefined ? UNDEFINED : bool(x.re.first.test(x.s));
}

/** regexp_replace: every match replaced by the third argument, which may reference groups with `$`. */
function regexpReplace(args: readonly SqlValue[]): SqlValue {
  const x = subjectAndRegex(args);
  const r = toText(arg(args, 2));
  if (x === undefined || r === undefined) return UNDEFINED;
  const parts = parseJavaReplacement(r, x.re.groupCount, x.re.groupNames);
  if (parts === undefined) return UNDEFINED;
  x.re.global.lastIndex = 0;
  return str(
    x.s.replace(x.re.global, (...m: unknown[]) => {
      const last = m[m.length - 1];
      const groups = (typeof last === 'object' && last !== null ? last : {}) as Record<
        string,
        string | undefined
      >;
      return parts
        .map((p) => {
          if (typeof p === 'string') return p;
          if (typeof p === 'number') return (m[p] as string | undefined) ?? '';
          return groups[p.name] ?? '';
        })
        .join('');
    }),
  );
}

/**
 * regexp_substr: the first match. With no match the result is Undefined (the page does not say; this
 * is an assumption, see the report).
 */
function regexpSubstr(args: readonly SqlValue[]): SqlValue {
  const x = subjectAndRegex(args);
  if (x === undefined) return UNDEFINED;
  const m = x.re.first.exec(x.s);
  return m === null ? UNDEFINED : str(m[0]);
}

export const REGEXP_FUNCTIONS: readonly FunctionSpec[] = [
  define('regexp_matches', 2, 2, regexpMatches),
  define('regexp_replace', 3, 3, regexpReplace),
  define('regexp_substr', 2, 2, regexpSubstr),
];
