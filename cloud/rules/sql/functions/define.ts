/** Small helpers shared by the function modules. */
import type { EvalContext, FunctionSpec, SqlFunction } from '../context.js';
import { type SqlValue, UNDEFINED } from '../values.js';

/** A function spec; `name` is lower-cased, as the evaluator looks functions up. */
export function define(name: string, minArgs: number, maxArgs: number, fn: SqlFunction): FunctionSpec {
  return { name: name.toLowerCase(), minArgs, maxArgs, fn };
}

/** The i-th argument, or Undefined when it was not given. */
export function arg(args: readonly SqlValue[], i: number): SqlValue {
  return args[i] ?? UNDEFINED;
}

export type { EvalContext, SqlValue };
