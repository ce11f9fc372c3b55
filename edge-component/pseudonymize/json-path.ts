/**
 * A small, strict subset of JSONPath (RFC 9535) for naming record fields:
 *
 * - `$` (the record) followed by one or more segments;
 * - `.name`: a member whose name matches `[A-Za-z_][A-Za-z0-9_-]*`;
 * - `['name']` or `["name"]`: any member name; inside the quotes, `\\`, `\'` and `\"` are the only
 *   escapes;
 * - `[n]`: an array element, `n` a non-negative integer without leading zeros;
 * - `[*]`: every element of an array, or every member value of an object.
 *
 * Anything else (whitespace, `..`, `.*`, filters, slices, unions, negative indices) is rejected with a
 * {@link JsonPathError} naming the position. Only own properties of objects are ever matched.
 */
import { JsonPathError } from './errors.js';

export type PathSegment =
  | { kind: 'member'; name: string }
  | { kind: 'index'; index: number }
  | { kind: 'wildcard' };

export interface JsonPath {
  /** The text as configured. */
  readonly source: string;
  readonly segments: readonly PathSegment[];
}

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_-]/;
const DOT_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

function describe(ch: string | undefined): string {
  return ch === undefined ? 'the end' : JSON.stringify(ch);
}

/** Parses a path; throws {@link JsonPathError} with the position of the first problem. */
export function parseJsonPath(source: string): JsonPath {
  const fail = (position: number, what: string): never => {
    throw new JsonPathError(
      `invalid JSON path ${JSON.stringify(source)} at position ${position}: ${what}`,
      source,
      position,
    );
  };
  if (source[0] !== '$') fail(0, `expected "$" but found ${describe(source[0])}`);
  const segments: PathSegment[] = [];
  let i = 1;
  while (i < source.length) {
    const ch = source[i];
    if (ch === '.') {
      const start = i + 1;
      if (source[start] === '.') fail(start, 'recursive descent ("..") is not supported');
      if (source[start] === '*') fail(start, '".*" is not supported; use "[*]"');
      if (source[start] === undefined || !NAME_START.test(source[start])) {
        fail(
          start,
          `expected a member name (a letter or "_") after "." but found ${describe(source[start])}`,
        );
      }
      let end = start + 1;
      while (end < source.length && NAME_CHAR.test(source[end] as string)) end++;
      segments.push({ kind: 'member', name: source.slice(start, end) });
      i = end;
    } else if (ch === '[') {
      const start = i + 1;
      const c = source[start];
      if (c === "'" || c === '"') {
        let name = '';
        let j = start + 1;
        for (;;) {
          const d = source[j];
          if (d === undefined) fail(j, `unterminated quoted name (missing ${c})`);
          if (d === c) break;
          if (d === '\\') {
            const e = source[j + 1];
            if (e !== '\\' && e !== "'" && e !== '"') {
              fail(j, `invalid escape "\\${e ?? ''}" (only \\\\, \\' and \\" are allowed)`);
            }
            name += e;
            j += 2;
          } else {
            name += d;
            j++;
          }
        }
        if (source[j + 1] !== ']') fail(j + 1, `expected "]" but found ${describe(source[j + 1])}`);
        segments.push({ kind: 'member', name });
        i = j + 2;
      } else if (c === '*') {
        if (source[start + 1] !== ']')
          fail(start + 1, `expected "]" but found ${describe(source[start + 1])}`);
        segments.push({ kind: 'wildcard' });
        i = start + 2;
      } else if (c !== undefined && c >= '0' && c <= '9') {
        let end = start;
        while (end < source.length && (source[end] as string) >= '0' && (source[end] as string) <= '9') end++;
        const digits = source.slice(start, end);
        if (digits.length > 1 && digits[0] === '0') fail(start, 'an index must not have leading zeros');
        const index = Number(digits);
        if (!Number.isSafeInteger(index)) fail(start, 'the index is too large');
        if (source[end] !== ']') fail(end, `expected "]" after the index but found ${describe(source[end])}`);
        segments.push({ kind: 'index', index });
        i = end + 1;
      } else if (c === '-') {
        fail(start, 'negative indices are not supported');
      } else {
        fail(start, `expected a quoted name, an index or "*" after "[" but found ${describe(c)}`);
      }
    } else {
      fail(i, `expected "." or "[" but found ${describe(ch)}`);
    }
  }
  if (segments.length === 0) fail(1, 'the path must select something inside the record, not "$" itself');
  return { source, segments };
}

/** The normalized text of a path (`.name` where possible, `['...']` otherwise). */
export function formatJsonPath(segments: readonly (PathSegment | string | number)[]): string {
  let out = '$';
  for (const s of segments) {
    const seg: PathSegment =
      typeof s === 'string'
        ? { kind: 'member', name: s }
        : typeof s === 'number'
          ? { kind: 'index', index: s }
          : s;
    if (seg.kind === 'wildcard') out += '[*]';
    else if (seg.kind === 'index') out += `[${seg.index}]`;
    else if (DOT_NAME.test(seg.name)) out += `.${seg.name}`;
    else out += `['${seg.name.replace(/[\\']/g, (m) => `\\${m}`)}']`;
  }
  return out;
}
