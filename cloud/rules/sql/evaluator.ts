/**
 * Evaluation of parsed AWS IoT SQL: operators as the "Operators" page tabulates them (with the
 * conversions of "Data types"), Undefined propagation, CASE, JSON extensions, literals, variables and
 * nested object queries.
 */
import type { BinaryOp, Expr, Query, SelectItem } from './ast.js';
import type { EvalContext, FunctionSpec } from './context.js';
import { type CastType, castTo, toBoolean, toDecimal, toNumeric, toStringValue } from './convert.js';
import { SqlEvaluationError } from './errors.js';
import { CATCHES_ARGUMENT_ERRORS, RAW_PAYLOAD_ARGUMENT } from './functions/index.js';
import {
  arr,
  bin,
  bool,
  dec,
  int,
  isNumber,
  NULL,
  obj,
  type SqlValue,
  sqlEquals,
  str,
  toDouble,
  UNDEFINED,
} from './values.js';

export interface Scope {
  /** The current row: the payload at top level, an element of the FROM array in a nested query. */
  row: SqlValue;
  vars: ReadonlyMap<string, SqlValue>;
  ctx: EvalContext;
  functions: ReadonlyMap<string, FunctionSpec>;
  /** The message's bytes as received; only at top level, where `*` is the whole payload. */
  rawPayload?: Uint8Array;
}

const member = (v: SqlValue, name: string): SqlValue =>
  v.type === 'Object' ? (v.value.get(name) ?? UNDEFINED) : UNDEFINED;

function index(v: SqlValue, i: SqlValue): SqlValue {
  if (v.type === 'Array') {
    const n =
      i.type === 'Int' ? i.value : i.type === 'Decimal' && Number.isInteger(i.value) ? BigInt(i.value) : -1n;
    return n >= 0n && n < BigInt(v.value.length) ? v.value[Number(n)]! : UNDEFINED;
  }
  if (v.type === 'Object' && i.type === 'String') return v.value.get(i.value) ?? UNDEFINED;
  return UNDEFINED;
}

export function evaluate(e: Expr, s: Scope): SqlValue {
  switch (e.kind) {
    case 'literal':
      return e.value;
    case 'payload':
      return s.row;
    case 'attr':
      return member(s.row, e.name);
    case 'var': {
      const v = s.vars.get(e.name);
      if (v === undefined) throw new SqlEvaluationError(`variable @${e.name} is not defined`);
      return v;
    }
    case 'member':
      return member(evaluate(e.object, s), e.name);
    case 'index':
      return index(evaluate(e.object, s), evaluate(e.index, s));
    case 'call':
      return call(e.name, e.args, s);
    case 'cast':
      return castTo(evaluate(e.value, s), e.type as CastType);
    case 'unary':
      return unary(e.op, evaluate(e.operand, s));
    case 'binary':
      return binary(e.op, e.left, e.right, s);
    case 'case': {
      const subject = evaluate(e.subject, s);
      if (subject.type === 'Undefined') return UNDEFINED;
      for (const w of e.whens) {
        const r = compare('=', subject, evaluate(w.when, s));
        if (r.type === 'Boolean' && r.value) return evaluate(w.result, s);
      }
      return e.otherwise ? evaluate(e.otherwise, s) : UNDEFINED;
    }
    case 'object':
      return obj(e.entries.map(({ key, value }) => [key, evaluate(value, s)] as [string, SqlValue]));
    case 'array':
      return arr(e.items.map((x) => evaluate(x, s)));
    case 'select':
      return nestedQuery(e.query, s);
  }
}

function call(name: string, args: Expr[], s: Scope): SqlValue {
  const spec = s.functions.get(name);
  if (!spec) throw new SqlEvaluationError(`unknown function ${name}()`);
  const rawAt = RAW_PAYLOAD_ARGUMENT.get(name);
  const values = args.map((a, i) => {
    // encode(*, ...) / decode(*, ...) work on the payload bytes as received, JSON or not.
    if (i === rawAt && a.kind === 'payload' && s.rawPayload) return bin(s.rawPayload);
    if (i === 0 && CATCHES_ARGUMENT_ERRORS.has(name)) {
      try {
        return evaluate(a, s);
      } catch (err) {
        if (err instanceof SqlEvaluationError) return UNDEFINED;
        throw err;
      }
    }
    return evaluate(a, s);
  });
  // Functions called with the wrong number of arguments return Undefined ("Data types").
  if (values.length < spec.minArgs || values.length > spec.maxArgs) return UNDEFINED;
  return spec.fn(values, s.ctx);
}

function unary(op: 'NOT' | '-' | '+', v: SqlValue): SqlValue {
  if (op === 'NOT') {
    const b = toBoolean(v);
    return b.type === 'Boolean' ? bool(!b.value) : UNDEFINED;
  }
  const n = toNumeric(v);
  if (n.type === 'Int') return op === '-' ? int(-n.value) : n;
  if (n.type === 'Decimal') return op === '-' ? dec(-n.value) : n;
  return UNDEFINED;
}

function logical(op: 'AND' | 'OR', l: SqlValue, r: SqlValue): SqlValue {
  const a = toBoolean(l);
  const b = toBoolean(r);
  if (a.type !== 'Boolean' || b.type !== 'Boolean') return UNDEFINED;
  return bool(op === 'AND' ? a.value && b.value : a.value || b.value);
}

function binary(op: BinaryOp, le: Expr, re: Expr, s: Scope): SqlValue {
  const l = evaluate(le, s);
  const r = evaluate(re, s);
  switch (op) {
    case 'AND':
    case 'OR':
      return logical(op, l, r);
    case 'IN': {
      // True when the left value equals (as `=` does) any element of the right array.
      if (l.type === 'Undefined' || r.type !== 'Array') return UNDEFINED;
      return bool(
        r.value.some((x) => {
          const eq = compare('=', l, x);
          return eq.type === 'Boolean' && eq.value;
        }),
      );
    }
    case '=':
    case '<>':
    case '<':
    case '<=':
    case '>':
    case '>=':
      return compare(op, l, r);
    default:
      return arithmetic(op, l, r);
  }
}

/** Comparison operators. `=`/`<>` compare same-typed values; ordering converts both sides to Decimal. */
export function compare(op: '=' | '<>' | '<' | '<=' | '>' | '>=', l: SqlValue, r: SqlValue): SqlValue {
  if (l.type === 'Undefined' || r.type === 'Undefined') return UNDEFINED;
  if (op === '=' || op === '<>') {
    let eq: boolean;
    if (isNumber(l) && isNumber(r)) eq = sqlEquals(l, r);
    else if (l.type !== r.type)
      return bool(op === '<>'); // mismatched types: = is false, <> is true
    else if (l.type === 'Null') return bool(op === '=');
    else eq = sqlEquals(l, r);
    return bool(op === '=' ? eq : !eq);
  }
  const a = isNumber(l) ? l : l.type === 'String' ? toDecimal(l) : UNDEFINED;
  const b = isNumber(r) ? r : r.type === 'String' ? toDecimal(r) : UNDEFINED;
  if (!isNumber(a) || !isNumber(b)) return UNDEFINED;
  if (a.type === 'Int' && b.type === 'Int') {
    const x = a.value;
    const y = b.value;
    return bool(op === '<' ? x < y : op === '<=' ? x <= y : op === '>' ? x > y : x >= y);
  }
  const x = toDouble(a);
  const y = toDouble(b);
  return bool(op === '<' ? x < y : op === '<=' ? x <= y : op === '>' ? x > y : x >= y);
}

/** `+ - * / %`: Int op Int stays Int; a Decimal or numeric string makes a Decimal; `+` with a String concatenates. */
export function arithmetic(op: '+' | '-' | '*' | '/' | '%', l: SqlValue, r: SqlValue): SqlValue {
  if (op === '+' && (l.type === 'String' || r.type === 'String')) {
    if (l.type === 'Undefined' || r.type === 'Undefined') return UNDEFINED;
    const a = toStringValue(l);
    const b = toStringValue(r);
    if (a.type !== 'String' || b.type !== 'String') return UNDEFINED;
    return str(a.value + b.value);
  }
  if (l.type === 'Int' && r.type === 'Int') {
    const x = l.value;
    const y = r.value;
    switch (op) {
      case '+':
        return int(x + y);
      case '-':
        return int(x - y);
      case '*':
        return int(x * y);
      case '/':
        return y === 0n ? UNDEFINED : int(x / y);
      case '%':
        return y === 0n ? UNDEFINED : int(x % y);
    }
  }
  // + accepts only numbers here; - * / % also convert numeric strings, and give a Decimal.
  const a = op === '+' ? (isNumber(l) ? l : UNDEFINED) : toNumeric(l);
  const b = op === '+' ? (isNumber(r) ? r : UNDEFINED) : toNumeric(r);
  if (!isNumber(a) || !isNumber(b)) return UNDEFINED;
  const x = toDouble(a);
  const y = toDouble(b);
  switch (op) {
    case '+':
      return dec(x + y);
    case '-':
      return dec(x - y);
    case '*':
      return dec(x * y);
    case '/':
      return y === 0 ? UNDEFINED : dec(x / y);
    case '%':
      return y === 0 ? UNDEFINED : dec(x % y);
  }
}

/** The key an unaliased SELECT item gets: the attribute's (last) name, or the function's name. */
export function defaultKey(e: Expr, position: number): string {
  switch (e.kind) {
    case 'attr':
      return e.name;
    case 'member':
      return e.name;
    case 'call':
      return e.name;
    case 'var':
      return e.name;
    case 'cast':
      return 'cast';
    default:
      return `_${position}`;
  }
}

function setPath(target: Map<string, SqlValue>, path: string[], value: SqlValue): void {
  const [head, ...rest] = path;
  if (head === undefined) return;
  if (rest.length === 0) {
    target.set(head, value);
    return;
  }
  const existing = target.get(head);
  const child = existing?.type === 'Object' ? new Map(existing.value) : new Map<string, SqlValue>();
  setPath(child, rest, value);
  target.set(head, obj(child));
}

/** Projects the SELECT list over one row. */
export function project(items: SelectItem[], value: boolean, s: Scope): SqlValue {
  if (value) {
    const item = items[0]!;
    return item.kind === 'star' ? s.row : evaluate(item.expr, s);
  }
  if (items.length === 1 && items[0]!.kind === 'star') return s.row;
  const out = new Map<string, SqlValue>();
  items.forEach((item, i) => {
    if (item.kind === 'star') {
      if (s.row.type === 'Object') for (const [k, v] of s.row.value) out.set(k, v);
      return;
    }
    const v = evaluate(item.expr, s);
    if (v.type === 'Undefined') return;
    setPath(out, item.alias ?? [defaultKey(item.expr, i + 1)], v);
  });
  return obj(out);
}

/** WHERE passes only when the condition is the Boolean true (or the string "true"). */
export function passes(where: Expr | undefined, s: Scope): boolean {
  if (!where) return true;
  const b = toBoolean(evaluate(where, s));
  return b.type === 'Boolean' && b.value;
}

/** `(SELECT ... FROM array [WHERE ...])`: one output per element that passes WHERE. */
function nestedQuery(q: Query, s: Scope): SqlValue {
  if (q.from.kind !== 'expr') return UNDEFINED;
  const source = evaluate(q.from.expr, s);
  if (source.type !== 'Array') return UNDEFINED;
  const out: SqlValue[] = [];
  for (const row of source.value) {
    const { rawPayload: _raw, ...outer } = s;
    const inner: Scope = { ...outer, row };
    if (!passes(q.where, inner)) continue;
    const v = project(q.items, q.value, inner);
    if (v.type !== 'Undefined') out.push(v);
  }
  return arr(out);
}

export { NULL };
