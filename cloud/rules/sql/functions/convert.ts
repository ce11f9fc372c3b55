/**
 * The standard conversions of AWS IoT SQL, as the functions apply them to arguments of the "wrong" type.
 *
 * Sources (AWS IoT developer guide, "AWS IoT SQL reference"):
 * - "Data types" → "Conversions": the To Decimal / To Int / To Boolean / To String tables.
 * - "Functions": each function's argument table (e.g. abs converts a String argument to a Decimal;
 *   bitand converts strings to decimals and then rounds them down to an Int).
 *
 * Rules implemented here:
 * - String → number: only strings matching `^-?\d+(\.\d+)?((?i)E-?\d+)?$` convert (no leading `+`, no
 *   blanks, no `.5`, no `5.`, exponent sign only `-`); the result is a **Decimal** even for `"5"`
 *   (the page describes the string being parsed as a Decimal). A Decimal is a double here, so a
 *   string whose value overflows a double (e.g. `"1E999"`, valid for AWS's 34-digit decimals) does not
 *   convert (Undefined).
 * - Int → Decimal: the same value. Boolean, Array, Object, Binary, Null, Undefined → no number
 *   (`toNumber` gives Undefined; the Data types page's To Decimal table maps Null to Null, which
 *   `toDecimal` keeps).
 * - Decimal → Int for function arguments: rounded down (floor), as the function tables state it (bitand,
 *   bitor, bitxor, bitnot, chr, lpad, rpad, substring, trunc, get ...). The Data types page's To Int
 *   table instead rounds Decimals to the nearest Int and truncates converted strings; functions follow
 *   their own tables, so `toIntRoundedDown` floors.
 * - Anything → String (the evaluator's `toStringValue` in `../convert.ts`, reused so that functions and
 *   operators agree): Int in plain notation; Decimal as the double's shortest JavaScript text (`2.5`,
 *   `5e-12`; a whole Decimal prints as `2`, as values.ts serializes it); Boolean `"true"`/`"false"`;
 *   String unchanged; Array and Object serialized to compact JSON (strings quoted; numbers, booleans
 *   and null not); Null and Undefined → Undefined. Binary (a non-JSON payload) → its bytes read as
 *   UTF-8 (not documented; the payload is the only Binary value there is).
 * - Anything → Boolean: Boolean unchanged; String `"true"`/`"false"` case-insensitively; everything else
 *   Undefined (numbers only convert through `cast`, which the evaluator implements).
 */
import * as shared from '../convert.js';
import { dec, int, NULL, type SqlValue, UNDEFINED } from '../values.js';

/** The regular expression of the "Data types" page for strings that convert to a Decimal. */
export const DECIMAL_STRING = /^-?\d+(\.\d+)?([eE]-?\d+)?$/;

/** Parses a string per the Data types rule; undefined when it does not match or overflows a double. */
export function parseDecimalString(s: string): number | undefined {
  if (!DECIMAL_STRING.test(s)) return undefined;
  const n = Number(s);
  return Number.isFinite(n) ? n : undefined;
}

/** Int and Decimal stay as they are; a convertible String becomes a Decimal; everything else Undefined. */
export function toNumber(v: SqlValue): SqlValue {
  switch (v.type) {
    case 'Int':
    case 'Decimal':
      return v;
    case 'String': {
      const n = parseDecimalString(v.value);
      return n === undefined ? UNDEFINED : dec(n);
    }
    default:
      return UNDEFINED;
  }
}

/** The "To Decimal" table of the Data types page: Int/Decimal/String → Decimal, Null → Null. */
export function toDecimal(v: SqlValue): SqlValue {
  if (v.type === 'Null') return NULL;
  const n = toNumber(v);
  if (n.type === 'Int') return dec(Number(n.value));
  return n;
}

/** A numeric argument as a double (Int, Decimal, or a convertible String), else undefined. */
export function toDouble(v: SqlValue): number | undefined {
  const n = toNumber(v);
  if (n.type === 'Int') return Number(n.value);
  if (n.type === 'Decimal') return n.value;
  return undefined;
}

/**
 * A numeric argument converted to an Int the way function tables describe it: Int as is, Decimal (and a
 * convertible String, through Decimal) rounded down. Undefined when it does not convert or the result is
 * outside the Int range (34 digits, values.ts).
 */
export function toIntRoundedDown(v: SqlValue): bigint | undefined {
  const n = toNumber(v);
  if (n.type === 'Int') return n.value;
  if (n.type !== 'Decimal') return undefined;
  const i = int(Math.floor(n.value));
  return i.type === 'Int' ? i.value : undefined;
}

/**
 * Like `toIntRoundedDown` but as a double with no Int range limit, for index arguments that are
 * clamped anyway (substring(false, -2.411E247) = "false" on the Functions page).
 */
export function toFlooredDouble(v: SqlValue): number | undefined {
  const n = toNumber(v);
  if (n.type === 'Int') return Number(n.value);
  if (n.type !== 'Decimal') return undefined;
  return Math.floor(n.value);
}

/**
 * The text of a Decimal. Shared with the evaluator (`../convert.ts`) so that `concat(x, '')` and
 * `x + ''` agree: the double's shortest text as JavaScript writes it.
 */
export function decimalText(n: number): string {
  return shared.decimalText(n);
}

/** The "To String" conversion (shared with the evaluator): a String, or Undefined for Null and Undefined. */
export function toStringValue(v: SqlValue): SqlValue {
  return shared.toStringValue(v);
}

/** The "To String" conversion as a JS string, or undefined where the result is Undefined. */
export function toText(v: SqlValue): string | undefined {
  if (v.type === 'String') return v.value;
  const s = toStringValue(v);
  return s.type === 'String' ? s.value : undefined;
}

/** The "To Boolean" conversion: Boolean as is, "true"/"false" in any case, else undefined. */
export function toBooleanValue(v: SqlValue): boolean | undefined {
  if (v.type === 'Boolean') return v.value;
  if (v.type === 'String') {
    const l = v.value.toLowerCase();
    if (l === 'true') return true;
    if (l === 'false') return false;
  }
  return undefined;
}

/** UTF-8 bytes of a string. */
export function utf8(s: string): Uint8Array {
  return Buffer.from(s, 'utf8');
}
