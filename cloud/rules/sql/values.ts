/**
 * The data types of AWS IoT SQL ("Data types" in the AWS IoT SQL reference): Int, Decimal, Boolean,
 * String, Array, Object, Null, Undefined, and Binary for payloads that are not JSON.
 *
 * Int is an integer of up to 34 digits (bigint) and Decimal a double (AWS documents 34-digit decimals;
 * a double is what most of its functions return); JSON numbers keep the distinction (`1` is an Int, `1.0`
 * a Decimal), which is why payloads are parsed with `parseJsonValue` here, not `JSON.parse`.
 */
export type SqlValue =
  | { readonly type: 'Undefined' }
  | { readonly type: 'Null' }
  | { readonly type: 'Boolean'; readonly value: boolean }
  | { readonly type: 'Int'; readonly value: bigint }
  | { readonly type: 'Decimal'; readonly value: number }
  | { readonly type: 'String'; readonly value: string }
  | { readonly type: 'Array'; readonly value: readonly SqlValue[] }
  | { readonly type: 'Object'; readonly value: ReadonlyMap<string, SqlValue> }
  | { readonly type: 'Binary'; readonly value: Uint8Array };

export type SqlType = SqlValue['type'];

export const UNDEFINED: SqlValue = Object.freeze({ type: 'Undefined' });
export const NULL: SqlValue = Object.freeze({ type: 'Null' });
export const TRUE: SqlValue = Object.freeze({ type: 'Boolean', value: true });
export const FALSE: SqlValue = Object.freeze({ type: 'Boolean', value: false });

/** Ints have at most 34 digits ("Data types" in the AWS IoT SQL reference). */
const INT_MAX = 10n ** 34n - 1n;
const INT_MIN = -INT_MAX;

export const bool = (b: boolean): SqlValue => (b ? TRUE : FALSE);
export const str = (s: string): SqlValue => ({ type: 'String', value: s });
export const dec = (n: number): SqlValue => (Number.isFinite(n) ? { type: 'Decimal', value: n } : UNDEFINED);
/** An Int; values of more than 34 digits become Undefined. */
export const int = (n: bigint | number): SqlValue => {
  const b = typeof n === 'bigint' ? n : BigInt(Math.trunc(n));
  return b < INT_MIN || b > INT_MAX ? UNDEFINED : { type: 'Int', value: b };
};
export const arr = (items: readonly SqlValue[]): SqlValue => ({ type: 'Array', value: items });
export const obj = (entries: ReadonlyMap<string, SqlValue> | Iterable<[string, SqlValue]>): SqlValue => ({
  type: 'Object',
  value: entries instanceof Map ? entries : new Map(entries),
});
export const bin = (bytes: Uint8Array): SqlValue => ({ type: 'Binary', value: bytes });

export const isUndefined = (v: SqlValue): boolean => v.type === 'Undefined';
export const isNumber = (v: SqlValue): v is Extract<SqlValue, { type: 'Int' | 'Decimal' }> =>
  v.type === 'Int' || v.type === 'Decimal';

/** The numeric value of an Int or Decimal as a double. */
export function toDouble(v: Extract<SqlValue, { type: 'Int' | 'Decimal' }>): number {
  return v.type === 'Int' ? Number(v.value) : v.value;
}

// ---------------------------------------------------------------------------------------------------
// JSON <-> SqlValue

/** Converts a plain JS value (from JSON.parse or built in code) to a SqlValue; integers become Int. */
export function fromJs(v: unknown): SqlValue {
  if (v === undefined) return UNDEFINED;
  if (v === null) return NULL;
  if (typeof v === 'boolean') return bool(v);
  if (typeof v === 'bigint') return int(v);
  if (typeof v === 'number') return Number.isInteger(v) && Number.isSafeInteger(v) ? int(v) : dec(v);
  if (typeof v === 'string') return str(v);
  if (v instanceof Uint8Array) return bin(v);
  if (Array.isArray(v)) return arr(v.map(fromJs));
  if (typeof v === 'object') {
    return obj(
      Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, fromJs(x)] as [string, SqlValue]),
    );
  }
  return UNDEFINED;
}

/**
 * Converts to a plain JS value for output: Undefined members of objects are omitted, Int becomes a
 * number (or a bigint outside the safe range, which `toJsonText` writes exactly).
 */
export function toJs(v: SqlValue): unknown {
  switch (v.type) {
    case 'Undefined':
      return undefined;
    case 'Null':
      return null;
    case 'Boolean':
    case 'String':
    case 'Decimal':
      return v.value;
    case 'Int':
      return v.value >= BigInt(Number.MIN_SAFE_INTEGER) && v.value <= BigInt(Number.MAX_SAFE_INTEGER)
        ? Number(v.value)
        : v.value;
    case 'Binary':
      return Buffer.from(v.value).toString('base64');
    case 'Array':
      // Undefined elements of an array are written as null so positions are kept.
      return v.value.map((x) => (x.type === 'Undefined' ? null : toJs(x)));
    case 'Object': {
      const out: Record<string, unknown> = {};
      for (const [k, x] of v.value) if (x.type !== 'Undefined') out[k] = toJs(x);
      return out;
    }
  }
}

/** Serializes to JSON text; Ints are written exactly, Decimals as JS writes doubles. */
export function toJsonText(v: SqlValue): string | undefined {
  switch (v.type) {
    case 'Undefined':
      return undefined;
    case 'Null':
      return 'null';
    case 'Boolean':
      return v.value ? 'true' : 'false';
    case 'Int':
      return v.value.toString();
    case 'Decimal':
      // A whole-number Decimal is written without a fraction, as 2016-03-23 treats it as an Int.
      return Number.isFinite(v.value) ? String(v.value) : 'null';
    case 'String':
      return JSON.stringify(v.value);
    case 'Binary':
      return JSON.stringify(Buffer.from(v.value).toString('base64'));
    case 'Array':
      return `[${v.value.map((x) => toJsonText(x) ?? 'null').join(',')}]`;
    case 'Object': {
      const parts: string[] = [];
      for (const [k, x] of v.value) {
        const t = toJsonText(x);
        if (t !== undefined) parts.push(`${JSON.stringify(k)}:${t}`);
      }
      return `{${parts.join(',')}}`;
    }
  }
}

/**
 * Parses JSON text into a SqlValue keeping Int vs Decimal (`1` vs `1.0`) and exact integers. With
 * `wholeDecimalsAsInt` (SQL version 2016-03-23: "numeric values that are whole numbers, such as 10.0,
 * are processed as an Int value"), `10.0` becomes the Int 10. Returns undefined if the text is not JSON.
 */
export function parseJsonValue(text: string, wholeDecimalsAsInt = false): SqlValue | undefined {
  let i = 0;
  const ws = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t'))
      i++;
  };
  const fail = (): never => {
    throw new Error('json');
  };
  const value = (depth: number): SqlValue => {
    if (depth > 512) fail();
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const m = new Map<string, SqlValue>();
      ws();
      if (text[i] === '}') {
        i++;
        return obj(m);
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        const k = string();
        ws();
        if (text[i] !== ':') fail();
        i++;
        m.set(k, value(depth + 1));
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return obj(m);
        }
        fail();
      }
    }
    if (c === '[') {
      i++;
      const a: SqlValue[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return arr(a);
      }
      for (;;) {
        a.push(value(depth + 1));
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return arr(a);
        }
        fail();
      }
    }
    if (c === '"') return str(string());
    if (text.startsWith('true', i)) {
      i += 4;
      return TRUE;
    }
    if (text.startsWith('false', i)) {
      i += 5;
      return FALSE;
    }
    if (text.startsWith('null', i)) {
      i += 4;
      return NULL;
    }
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m) fail();
    const lit = m![0];
    i += lit.length;
    if (m![2] === undefined && m![3] === undefined) {
      const b = BigInt(lit);
      const v = int(b);
      return v.type === 'Undefined' ? dec(Number(lit)) : v;
    }
    const n = Number(lit);
    if (wholeDecimalsAsInt && Number.isSafeInteger(n)) return int(n);
    return dec(n);
  };
  const string = (): string => {
    // text[i] === '"'
    let j = i + 1;
    let hasEscape = false;
    while (j < text.length && text[j] !== '"') {
      const code = text.charCodeAt(j);
      if (code < 0x20) fail();
      if (text[j] === '\\') {
        hasEscape = true;
        j += 2;
      } else j++;
    }
    if (j >= text.length) fail();
    const raw = text.slice(i, j + 1);
    i = j + 1;
    return hasEscape ? (JSON.parse(raw) as string) : raw.slice(1, -1);
  };
  try {
    const v = value(0);
    ws();
    return i === text.length ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Deep equality as the `=` operator sees it for same-typed values (objects by keys, arrays by order). */
export function sqlEquals(a: SqlValue, b: SqlValue): boolean {
  if (isNumber(a) && isNumber(b)) {
    if (a.type === 'Int' && b.type === 'Int') return a.value === b.value;
    return toDouble(a) === toDouble(b);
  }
  if (a.type !== b.type) return false;
  switch (a.type) {
    case 'Null':
    case 'Undefined':
      return true;
    case 'Boolean':
    case 'String':
      return a.value === (b as typeof a).value;
    case 'Binary':
      return Buffer.from(a.value).equals(Buffer.from((b as typeof a).value));
    case 'Array': {
      const bv = (b as typeof a).value;
      return a.value.length === bv.length && a.value.every((x, k) => sqlEquals(x, bv[k]!));
    }
    case 'Object': {
      const bv = (b as typeof a).value;
      if (a.value.size !== bv.size) return false;
      for (const [k, x] of a.value) {
        const y = bv.get(k);
        if (y === undefined || !sqlEquals(x, y)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

/** Decimal text that keeps a fractional part (`10.0`), for contexts that must read back as Decimal. */
export function formatDecimal(n: number): string {
  const s = String(n);
  return /[.eE]/.test(s) || !Number.isFinite(n) ? s : `${s}.0`;
}
