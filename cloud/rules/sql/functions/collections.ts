/**
 * Functions on values and collections ("Functions" page of the AWS IoT SQL reference): get,
 * get_or_default, isNull, isUndefined, nanvl, transform.
 */
import type { FunctionSpec } from '../context.js';
import { arr, bool, obj, type SqlValue, str, UNDEFINED } from '../values.js';
import { toIntRoundedDown } from './convert.js';
import { arg, define } from './define.js';

/**
 * get(collection, key): Array and String take an index converted to an Int (0-based; outside the bounds
 * → Undefined), Object takes a String key with no conversion; anything else → Undefined.
 */
function get(args: readonly SqlValue[]): SqlValue {
  const c = arg(args, 0);
  const k = arg(args, 1);
  switch (c.type) {
    case 'Array':
    case 'String': {
      const i = toIntRoundedDown(k);
      if (i === undefined || i < 0n || i >= BigInt(c.value.length)) return UNDEFINED;
      return c.type === 'Array' ? (c.value[Number(i)] ?? UNDEFINED) : str(c.value[Number(i)]!);
    }
    case 'Object':
      return k.type === 'String' ? (c.value.get(k.value) ?? UNDEFINED) : UNDEFINED;
    default:
      return UNDEFINED;
  }
}

/**
 * get_or_default(expression, defaultValue): the expression's value, or the default (Undefined if not
 * given) when it is Null or Undefined. The third case of the documentation, an expression that *fails*,
 * happens while the evaluator evaluates the argument: the evaluator must catch that error and call this
 * function with Undefined (see CATCHES_ARGUMENT_ERRORS in index.ts).
 */
function getOrDefault(args: readonly SqlValue[]): SqlValue {
  const v = arg(args, 0);
  return v.type === 'Null' || v.type === 'Undefined' ? arg(args, 1) : v;
}

/** nanvl(a, b): a, unless a is Undefined, Null or a NaN Decimal, then b. */
function nanvl(args: readonly SqlValue[]): SqlValue {
  const a = arg(args, 0);
  if (a.type === 'Undefined' || a.type === 'Null' || (a.type === 'Decimal' && Number.isNaN(a.value))) {
    return arg(args, 1);
  }
  return a;
}

/**
 * transform(mode, object, array). Mode `enrichArray`: every element of the array (each an Object) gets
 * the object's attributes added (the object's value wins on a key both have; the element's keys keep
 * their order, new keys follow). Any other mode, a non-Object second argument, a non-Array third
 * argument or an element that is not an Object → Undefined.
 */
function transform(args: readonly SqlValue[]): SqlValue {
  const mode = arg(args, 0);
  const attributes = arg(args, 1);
  const items = arg(args, 2);
  if (mode.type !== 'String' || mode.value !== 'enrichArray') return UNDEFINED;
  if (attributes.type !== 'Object' || items.type !== 'Array') return UNDEFINED;
  const out: SqlValue[] = [];
  for (const item of items.value) {
    if (item.type !== 'Object') return UNDEFINED;
    const merged = new Map(item.value);
    for (const [k, v] of attributes.value) merged.set(k, v);
    out.push(obj(merged));
  }
  return arr(out);
}

export const VALUE_FUNCTIONS: readonly FunctionSpec[] = [
  define('get', 2, 2, get),
  define('get_or_default', 1, 2, getOrDefault),
  define('isNull', 1, 1, (args) => bool(arg(args, 0).type === 'Null')),
  define('isUndefined', 1, 1, (args) => bool(arg(args, 0).type === 'Undefined')),
  define('nanvl', 2, 2, nanvl),
  define('transform', 3, 3, transform),
];
