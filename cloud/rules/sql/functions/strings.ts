/**
 * String functions of the AWS IoT SQL "Functions" page: chr, concat, endswith, startswith, indexof,
 * length, lower, upper, lpad, rpad, ltrim, rtrim, trim, numbytes, replace, substring.
 *
 * Non-String arguments go through the standard "To String" conversion (`convert.ts`); a Null or
 * Undefined argument gives Undefined. Strings are measured and indexed in UTF-16 code units, as Java
 * strings are (length("😀") = 2); numbytes counts UTF-8 bytes.
 */
import type { FunctionSpec } from '../context.js';
import { arr, bool, int, type SqlValue, str, UNDEFINED } from '../values.js';
import { toFlooredDouble, toIntRoundedDown, toText, utf8 } from './convert.js';
import { arg, define } from './define.js';

/** A function of one converted string. */
function unaryText(name: string, f: (s: string) => SqlValue): FunctionSpec {
  return define(name, 1, 1, (args) => {
    const s = toText(arg(args, 0));
    return s === undefined ? UNDEFINED : f(s);
  });
}

/** A function of two converted strings. */
function binaryText(name: string, f: (a: string, b: string) => SqlValue): FunctionSpec {
  return define(name, 2, 2, (args) => {
    const a = toText(arg(args, 0));
    const b = toText(arg(args, 1));
    return a === undefined || b === undefined ? UNDEFINED : f(a, b);
  });
}

/** chr: the ASCII character of an Int (Decimals and Strings rounded down); outside 0..127 Undefined. */
function chr(args: readonly SqlValue[]): SqlValue {
  const v = arg(args, 0);
  if (v.type !== 'Int' && v.type !== 'Decimal' && v.type !== 'String') return UNDEFINED;
  const n = toIntRoundedDown(v);
  if (n === undefined || n < 0n || n > 127n) return UNDEFINED;
  return str(String.fromCharCode(Number(n)));
}

/**
 * concat: no arguments → Undefined; if any argument is an Array, one array of all arguments with array
 * arguments spliced in; otherwise the concatenation of the arguments' string forms. The page's table
 * says a single argument comes back unchanged but its example gives `concat(1)` = "1"; a single
 * non-Array argument is therefore converted to a String (which leaves a String unmodified).
 */
function concat(args: readonly SqlValue[]): SqlValue {
  if (args.length === 0) return UNDEFINED;
  if (args.some((a) => a.type === 'Array')) {
    const out: SqlValue[] = [];
    for (const a of args) {
      if (a.type === 'Array') out.push(...a.value);
      else if (a.type !== 'Undefined') out.push(a);
    }
    return arr(out);
  }
  let s = '';
  for (const a of args) {
    const t = toText(a);
    if (t === undefined) return UNDEFINED;
    s += t;
  }
  return str(s);
}

/** lpad/rpad: pad count is Int, Decimal or String (rounded down), clamped to 0..1000. */
function pad(name: string, left: boolean): FunctionSpec {
  return define(name, 2, 2, (args) => {
    const s = toText(arg(args, 0));
    const countArg = arg(args, 1);
    if (s === undefined) return UNDEFINED;
    if (countArg.type !== 'Int' && countArg.type !== 'Decimal' && countArg.type !== 'String')
      return UNDEFINED;
    const c = toFlooredDouble(countArg);
    if (c === undefined) return UNDEFINED;
    const n = Math.max(0, Math.min(1000, c));
    const spaces = ' '.repeat(n);
    return str(left ? spaces + s : s + spaces);
  });
}

/**
 * "White space" for ltrim/rtrim/trim: the page names tabs and spaces; Java's String.trim(), which such an
 * engine most likely uses, removes every character up to U+0020 (tabs, spaces, line breaks, controls).
 */
const isTrimmed = (s: string, i: number): boolean => s.charCodeAt(i) <= 0x20;

function trimStart(s: string): string {
  let i = 0;
  while (i < s.length && isTrimmed(s, i)) i++;
  return s.slice(i);
}

function trimEnd(s: string): string {
  let i = s.length;
  while (i > 0 && isTrimmed(s, i - 1)) i--;
  return s.slice(0, i);
}

/** substring(String, Int[, Int]): 0-based, end exclusive; indices clamped to 0..length. */
function substring(args: readonly SqlValue[]): SqlValue {
  const s = toText(arg(args, 0));
  if (s === undefined) return UNDEFINED;
  const startArg = arg(args, 1);
  const start = toFlooredDouble(startArg);
  if (start === undefined) return UNDEFINED;
  const clamp = (i: number) => Math.max(0, Math.min(s.length, i));
  const from = clamp(start);
  if (args.length < 3) return str(s.slice(from));
  const end = toFlooredDouble(arg(args, 2));
  if (end === undefined) return UNDEFINED;
  const to = clamp(end);
  return str(from >= to ? '' : s.slice(from, to));
}

/** replace: every occurrence of the second string, literally (no `$` patterns), like Java String.replace. */
function replace(args: readonly SqlValue[]): SqlValue {
  const s = toText(arg(args, 0));
  const search = toText(arg(args, 1));
  const replacement = toText(arg(args, 2));
  if (s === undefined || search === undefined || replacement === undefined) return UNDEFINED;
  return str(s.replaceAll(search, () => replacement));
}

export const STRING_FUNCTIONS: readonly FunctionSpec[] = [
  define('chr', 1, 1, chr),
  define('concat', 0, Number.POSITIVE_INFINITY, concat),
  binaryText('endswith', (a, b) => bool(a.endsWith(b))),
  binaryText('startswith', (a, b) => bool(a.startsWith(b))),
  binaryText('indexof', (a, b) => int(a.indexOf(b))),
  unaryText('length', (s) => int(s.length)),
  unaryText('numbytes', (s) => int(utf8(s).length)),
  unaryText('lower', (s) => str(s.toLowerCase())),
  unaryText('upper', (s) => str(s.toUpperCase())),
  pad('lpad', true),
  pad('rpad', false),
  unaryText('ltrim', (s) => str(trimStart(s))),
  unaryText('rtrim', (s) => str(trimEnd(s))),
  unaryText('trim', (s) => str(trimEnd(trimStart(s)))),
  define('replace', 3, 3, replace),
  define('substring', 2, 3, substring),
];
