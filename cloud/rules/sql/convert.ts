/**
 * Conversions between AWS IoT SQL types, as the "Data types" page of the AWS IoT SQL reference
 * tabulates them (To Decimal, To Int, To Boolean, To String), and `cast()`, which additionally maps
 * Booleans to numbers and numbers to Booleans.
 */
import { dec, FALSE, int, NULL, type SqlValue, str, TRUE, toJsonText, UNDEFINED } from './values.js';

/** Strings that convert to numbers: `^-?\d+(\.\d+)?((?i)E-?\d+)?$`. */
const NUMERIC_STRING = /^-?\d+(\.\d+)?([eE]-?\d+)?$/;

/** Exact integer part of a numeric string, when it has no fraction or exponent. */
function integerString(s: string): bigint | undefined {
  return /^-?\d+$/.test(s) ? BigInt(s) : undefined;
}

/** To Decimal: Int and numeric strings convert; Null stays Null; anything else is Undefined. */
export function toDecimal(v: SqlValue): SqlValue {
  switch (v.type) {
    case 'Decimal':
      return v;
    case 'Int':
      return dec(Number(v.value));
    case 'String':
      return NUMERIC_STRING.test(v.value) ? dec(Number(v.value)) : UNDEFINED;
    case 'Null':
      return NULL;
    default:
      return UNDEFINED;
  }
}

/** To Int: Decimals round to the nearest Int; numeric strings are truncated; Null stays Null. */
export function toInt(v: SqlValue): SqlValue {
  switch (v.type) {
    case 'Int':
      return v;
    case 'Decimal':
      return Number.isFinite(v.value) ? int(BigInt(Math.round(v.value))) : UNDEFINED;
    case 'String': {
      if (!NUMERIC_STRING.test(v.value)) return UNDEFINED;
      const exact = integerString(v.value);
      if (exact !== undefined) return int(exact);
      const n = Number(v.value);
      return Number.isFinite(n) ? int(BigInt(Math.trunc(n))) : UNDEFINED;
    }
    case 'Null':
      return NULL;
    default:
      return UNDEFINED;
  }
}

/** A number for arithmetic: Int and Decimal as they are, numeric strings as Int or Decimal. */
export function toNumeric(v: SqlValue): SqlValue {
  if (v.type === 'Int' || v.type === 'Decimal') return v;
  if (v.type === 'String' && NUMERIC_STRING.test(v.value)) {
    const exact = integerString(v.value);
    return exact !== undefined ? int(exact) : dec(Number(v.value));
  }
  return UNDEFINED;
}

/** To Boolean: Booleans, and the strings "true"/"false" in any case. */
export function toBoolean(v: SqlValue): SqlValue {
  if (v.type === 'Boolean') return v;
  if (v.type === 'String') {
    const l = v.value.toLowerCase();
    if (l === 'true') return TRUE;
    if (l === 'false') return FALSE;
  }
  return UNDEFINED;
}

/** Text of a Decimal: as JavaScript writes doubles (scientific notation for very large or small). */
export function decimalText(n: number): string {
  return String(n);
}

/** To String: numbers and Booleans as text, Arrays and Objects as JSON; Null and Undefined are Undefined. */
export function toStringValue(v: SqlValue): SqlValue {
  switch (v.type) {
    case 'String':
      return v;
    case 'Int':
      return str(v.value.toString());
    case 'Decimal':
      return str(decimalText(v.value));
    case 'Boolean':
      return str(v.value ? 'true' : 'false');
    case 'Array':
    case 'Object':
      return str(toJsonText(v) ?? '');
    case 'Binary':
      return str(Buffer.from(v.value).toString('utf8'));
    default:
      return UNDEFINED;
  }
}

export type CastType = 'Int' | 'Decimal' | 'Boolean' | 'String';

/** `cast(value AS type)`. */
export function castTo(v: SqlValue, type: CastType): SqlValue {
  switch (type) {
    case 'Int':
      if (v.type === 'Boolean') return int(v.value ? 1 : 0);
      return toInt(v);
    case 'Decimal':
      if (v.type === 'Boolean') return dec(v.value ? 1 : 0);
      return toDecimal(v);
    case 'Boolean':
      if (v.type === 'Int') return v.value !== 0n ? TRUE : FALSE;
      if (v.type === 'Decimal') return v.value !== 0 ? TRUE : FALSE;
      return toBoolean(v);
    case 'String':
      return toStringValue(v);
  }
}
