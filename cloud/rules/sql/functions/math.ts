/**
 * Numeric functions of the AWS IoT SQL "Functions" page: abs, the trigonometric and hyperbolic functions,
 * exp/ln/log/sqrt/power, ceil/floor/round/sign/trunc, mod/remainder and the bitwise functions.
 *
 * Argument handling follows each function's table: Int and Decimal are accepted, a String is converted
 * to a Decimal (`convert.ts`), every other type gives Undefined. Functions documented as returning a
 * Decimal of double precision compute in doubles; a result that is not a finite double (imaginary
 * results, which the page maps to Undefined, ln(0), overflow) is Undefined.
 */
import type { FunctionSpec } from '../context.js';
import { dec, int, type SqlValue, UNDEFINED } from '../values.js';
import { DECIMAL_STRING, toDouble, toIntRoundedDown, toNumber } from './convert.js';
import { arg, define } from './define.js';

/** A function of one double-precision argument returning a Decimal. */
function unaryDouble(name: string, f: (x: number) => number): FunctionSpec {
  return define(name, 1, 1, (args) => {
    const x = toDouble(arg(args, 0));
    return x === undefined ? UNDEFINED : dec(f(x));
  });
}

/** A function of two double-precision arguments returning a Decimal. */
function binaryDouble(name: string, f: (x: number, y: number) => number): FunctionSpec {
  return define(name, 2, 2, (args) => {
    const x = toDouble(arg(args, 0));
    const y = toDouble(arg(args, 1));
    return x === undefined || y === undefined ? UNDEFINED : dec(f(x, y));
  });
}

/** Int stays Int; Decimal and converted Strings give Decimal. */
function abs(args: readonly SqlValue[]): SqlValue {
  const n = toNumber(arg(args, 0));
  if (n.type === 'Int') return int(n.value < 0n ? -n.value : n.value);
  if (n.type === 'Decimal') return dec(Math.abs(n.value));
  return UNDEFINED;
}

/** ceil/floor/round: Int unchanged, Decimal (or converted String) rounded to an Int. */
function toInteger(name: string, round: (x: number) => number): FunctionSpec {
  return define(name, 1, 1, (args) => {
    const n = toNumber(arg(args, 0));
    if (n.type === 'Int') return n;
    if (n.type === 'Decimal') return int(round(n.value));
    return UNDEFINED;
  });
}

/** round(): the page's examples round halves away from zero (Round(1.5) = 2, Round(-1.5) = -2). */
function roundHalfAwayFromZero(x: number): number {
  return Math.sign(x) * Math.round(Math.abs(x));
}

function sign(args: readonly SqlValue[]): SqlValue {
  const n = toNumber(arg(args, 0));
  if (n.type === 'Int') return int(n.value > 0n ? 1n : n.value < 0n ? -1n : 0n);
  if (n.type === 'Decimal') return int(n.value > 0 ? 1n : n.value < 0 ? -1n : 0n);
  return UNDEFINED;
}

/**
 * mod/remainder (and the `%` operator): Int % Int is an Int with the sign of the dividend (Java
 * semantics); any Decimal or converted String makes it a Decimal. A zero divisor gives Undefined.
 */
export function remainder(a: SqlValue, b: SqlValue): SqlValue {
  const x = toNumber(a);
  const y = toNumber(b);
  if (x.type === 'Int' && y.type === 'Int') return y.value === 0n ? UNDEFINED : int(x.value % y.value);
  const dx = toDouble(x);
  const dy = toDouble(y);
  if (dx === undefined || dy === undefined) return UNDEFINED;
  return dec(dx % dy);
}

/**
 * Bitwise functions on the `Int`(-converted) arguments, two's complement of unbounded width (Java
 * BigInteger semantics, as Ints have up to 34 digits); Decimals and Strings are rounded down first.
 */
function bitwise(name: string, op: (a: bigint, b: bigint) => bigint): FunctionSpec {
  return define(name, 2, 2, (args) => {
    const a = toIntRoundedDown(arg(args, 0));
    const b = toIntRoundedDown(arg(args, 1));
    return a === undefined || b === undefined ? UNDEFINED : int(op(a, b));
  });
}

/**
 * bitnot: two's-complement NOT, so bitnot(13) = -14. The Functions page's example says `bitnot(13)` = 2,
 * which is the NOT of 13's four significant bits only; see the conformance test.
 */
function bitnot(args: readonly SqlValue[]): SqlValue {
  const a = toIntRoundedDown(arg(args, 0));
  return a === undefined ? UNDEFINED : int(~a);
}

/**
 * Writes a decimal literal (`-12.5`, `5E-12`, `1e+21`) in plain notation without exponent, so that it
 * can be truncated digit by digit.
 */
export function plainDecimal(text: string): string {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!m) return text;
  const sign = m[1] ?? '';
  const intPart = m[2] ?? '0';
  const frac = m[3] ?? '';
  const exp = Number(m[4] ?? '0');
  let digits = intPart + frac;
  let point = intPart.length + exp;
  if (point <= 0) {
    digits = '0'.repeat(1 - point) + digits;
    point = 1;
  } else if (point > digits.length) {
    digits = digits + '0'.repeat(point - digits.length);
  }
  const whole = digits.slice(0, point).replace(/^0+(?=\d)/, '');
  const rest = digits.slice(point);
  return rest ? `${sign}${whole}.${rest}` : `${sign}${whole}`;
}

/**
 * trunc(Decimal, Int): truncates (toward zero) to the given number of decimal places, clamped to 0..34;
 * trailing zeros are removed. Works on the decimal text of the value, not on binary
 * doubles, so trunc(0.29, 2) is 0.29. A result without decimal places is an Int (the page shows
 * `trunc(2.3, 0)` = 2 and `trunc(2.00, 5)` = 2), otherwise a Decimal.
 */
function trunc(args: readonly SqlValue[]): SqlValue {
  const value = arg(args, 0);
  const places = arg(args, 1);
  // Second argument: Int or Decimal only ("Other value" rows give Undefined).
  if (places.type !== 'Int' && places.type !== 'Decimal') return UNDEFINED;
  const p = toIntRoundedDown(places);
  if (p === undefined) return UNDEFINED;
  const n = p < 0n ? 0 : p > 34n ? 34 : Number(p);
  let text: string;
  if (value.type === 'Int') return value;
  if (value.type === 'Decimal') text = String(value.value);
  else if (value.type === 'String' && DECIMAL_STRING.test(value.value)) text = value.value;
  else return UNDEFINED;
  const plain = plainDecimal(text);
  const dot = plain.indexOf('.');
  let out = dot < 0 ? plain : plain.slice(0, dot + 1 + n);
  if (out.includes('.')) out = out.replace(/0+$/, '').replace(/\.$/, '');
  if (!out.includes('.')) {
    const i = int(BigInt(out));
    return i.type === 'Undefined' ? dec(Number(out)) : i;
  }
  return dec(Number(out));
}

export const MATH_FUNCTIONS: readonly FunctionSpec[] = [
  define('abs', 1, 1, abs),
  unaryDouble('acos', Math.acos),
  unaryDouble('asin', Math.asin),
  unaryDouble('atan', Math.atan),
  // atan2(y, x): the page's example atan2(1, 0) = 1.5707963267948966 puts y first, like Java's Math.atan2.
  binaryDouble('atan2', Math.atan2),
  unaryDouble('cos', Math.cos),
  unaryDouble('cosh', Math.cosh),
  unaryDouble('sin', Math.sin),
  unaryDouble('sinh', Math.sinh),
  unaryDouble('tan', Math.tan),
  unaryDouble('tanh', Math.tanh),
  unaryDouble('exp', Math.exp),
  unaryDouble('ln', Math.log),
  unaryDouble('log', Math.log10),
  unaryDouble('sqrt', Math.sqrt),
  binaryDouble('power', Math.pow),
  toInteger('ceil', Math.ceil),
  toInteger('floor', Math.floor),
  toInteger('round', roundHalfAwayFromZero),
  define('sign', 1, 1, sign),
  define('trunc', 2, 2, trunc),
  define('mod', 2, 2, (args) => remainder(arg(args, 0), arg(args, 1))),
  define('remainder', 2, 2, (args) => remainder(arg(args, 0), arg(args, 1))),
  bitwise('bitand', (a, b) => a & b),
  bitwise('bitor', (a, b) => a | b),
  bitwise('bitxor', (a, b) => a ^ b),
  define('bitnot', 1, 1, bitnot),
];
