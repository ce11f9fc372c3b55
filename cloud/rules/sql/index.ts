/**
 * AWS IoT SQL: compile a rule's statement once, evaluate it per message.
 *
 *   const rule = compile("SELECT color AS rgb FROM 'topic/subtopic' WHERE temperature > 50");
 *   rule.evaluate({ topic: 'topic/subtopic', payload, timestamp: Date.now() }, { accountId, region });
 */
import { randomUUID } from 'node:crypto';
import type { Expr, Query, Statement } from './ast.js';
import {
  DEFAULT_SQL_VERSION,
  type EvalContext,
  type FunctionSpec,
  type MessageContext,
  type SqlServices,
  type SqlVersion,
} from './context.js';
import { toStringValue } from './convert.js';
import { SqlEvaluationError } from './errors.js';
import { evaluate, passes, project, type Scope } from './evaluator.js';
import { FUNCTIONS, SUPPORTED_SINCE } from './functions/index.js';
import { parseError } from './lexer.js';
import { parseExpression, parseStatement } from './parser.js';
import { isValidFilter, topicMatches } from './topic.js';
import { bin, parseJsonValue, type SqlValue, toJsonText, UNDEFINED } from './values.js';

export type { EvalContext, MessageContext, SqlServices, SqlVersion } from './context.js';
export { SqlError, SqlEvaluationError, SqlParseError } from './errors.js';
export type { SqlValue } from './values.js';

export const SQL_VERSIONS: readonly SqlVersion[] = ['2015-10-08', '2016-03-23', 'beta'];

export interface EvalEnv {
  accountId: string;
  region: string;
  services?: SqlServices;
  now?: () => number;
  random?: () => number;
  uuid?: () => string;
}

export type Evaluation =
  | { matched: false }
  | {
      matched: true;
      /** The SELECT output; Undefined serializes as an empty payload. */
      output: SqlValue;
      /** Values of the SET variables, for substitution templates. */
      variables: ReadonlyMap<string, SqlValue>;
    };

export interface CompiledStatement {
  readonly sql: string;
  readonly sqlVersion: SqlVersion;
  /** The FROM topic filter. */
  readonly topicFilter: string;
  evaluate(message: MessageContext, env: EvalEnv): Evaluation;
}

function walk(e: Expr, visit: (e: Expr) => void): void {
  visit(e);
  switch (e.kind) {
    case 'member':
      walk(e.object, visit);
      break;
    case 'index':
      walk(e.object, visit);
      walk(e.index, visit);
      break;
    case 'call':
      for (const a of e.args) walk(a, visit);
      break;
    case 'cast':
      walk(e.value, visit);
      break;
    case 'unary':
      walk(e.operand, visit);
      break;
    case 'binary':
      walk(e.left, visit);
      walk(e.right, visit);
      break;
    case 'case':
      walk(e.subject, visit);
      for (const w of e.whens) {
        walk(w.when, visit);
        walk(w.result, visit);
      }
      if (e.otherwise) walk(e.otherwise, visit);
      break;
    case 'object':
      for (const x of e.entries) walk(x.value, visit);
      break;
    case 'array':
      for (const x of e.items) walk(x, visit);
      break;
    case 'select':
      walkQuery(e.query, visit);
      break;
    default:
  }
}

function walkQuery(q: Query, visit: (e: Expr) => void): void {
  for (const item of q.items) if (item.kind === 'expr') walk(item.expr, visit);
  if (q.from.kind === 'expr') walk(q.from.expr, visit);
  if (q.where) walk(q.where, visit);
}

/** Checks names at compile time: known functions, defined variables, version-gated functions. */
function check(
  src: string,
  exprs: Expr[],
  version: SqlVersion,
  defined: ReadonlySet<string>,
  functions: ReadonlyMap<string, FunctionSpec>,
): void {
  for (const root of exprs) {
    walk(root, (e) => {
      if (e.kind === 'call') {
        if (!functions.has(e.name)) throw parseError(src, e.pos, `unknown function ${e.name}()`);
        const since = SUPPORTED_SINCE.get(e.name);
        if (since !== undefined && version === '2015-10-08' && since !== '2015-10-08') {
          throw parseError(src, e.pos, `${e.name}() requires SQL version ${since} or later`);
        }
      }
      if (e.kind === 'var' && !defined.has(e.name))
        throw parseError(src, e.pos, `variable @${e.name} is not defined`);
    });
  }
}

function makeContext(message: MessageContext, env: EvalEnv, version: SqlVersion): EvalContext {
  return {
    message,
    sqlVersion: version,
    accountId: env.accountId,
    region: env.region,
    services: env.services ?? {},
    now: env.now ?? Date.now,
    random: env.random ?? Math.random,
    uuid: env.uuid ?? randomUUID,
  };
}

/** The payload as SQL sees it: JSON when it parses, otherwise raw bytes. */
export function payloadValue(payload: Uint8Array, version: SqlVersion): SqlValue {
  const text = Buffer.from(payload).toString('utf8');
  const parsed = parseJsonValue(text, version !== '2015-10-08');
  return parsed ?? bin(payload);
}

export function compile(
  sql: string,
  sqlVersion: SqlVersion = DEFAULT_SQL_VERSION,
  functions: ReadonlyMap<string, FunctionSpec> = FUNCTIONS,
): CompiledStatement {
  const statement: Statement = parseStatement(sql, sqlVersion);
  const q = statement.query;
  if (q.from.kind !== 'topic') throw parseError(sql, q.from.pos, 'expected a topic filter');
  const filter = q.from.filter;
  if (!isValidFilter(filter))
    throw parseError(sql, q.from.pos, `'${filter}' is not a valid MQTT topic filter`);
  const defined = new Set<string>();
  for (const set of statement.sets) {
    check(sql, [set.value], sqlVersion, defined, functions);
    defined.add(set.name);
  }
  const exprs: Expr[] = [];
  for (const item of q.items) if (item.kind === 'expr') exprs.push(item.expr);
  if (q.where) exprs.push(q.where);
  check(sql, exprs, sqlVersion, defined, functions);

  return {
    sql,
    sqlVersion,
    topicFilter: filter,
    evaluate(message, env) {
      if (!topicMatches(filter, message.topic)) return { matched: false };
      const ctx = makeContext(message, env, sqlVersion);
      const vars = new Map<string, SqlValue>();
      const scope: Scope = {
        row: payloadValue(message.payload, sqlVersion),
        vars,
        ctx,
        functions,
        rawPayload: message.payload,
      };
      for (const set of statement.sets) vars.set(set.name, evaluate(set.value, scope));
      if (!passes(q.where, scope)) return { matched: false };
      const output = project(q.items, q.value, scope);
      if (sqlVersion === '2015-10-08' && q.value && output.type === 'Array') {
        throw new SqlEvaluationError('SQL version 2015-10-08 cannot output an array as the top-level value');
      }
      return { matched: true, output, variables: vars };
    },
  };
}

/** The bytes a rule action receives: JSON text, raw bytes for binary output, empty for Undefined. */
export function serializeOutput(output: SqlValue): Buffer {
  if (output.type === 'Binary') return Buffer.from(output.value);
  return Buffer.from(toJsonText(output) ?? '');
}

export type TemplatePart = { kind: 'text'; text: string } | { kind: 'expr'; src: string; at: number };

/**
 * Splits a substitution template into literal text and `${expression}` sources (with the offset of
 * `${`). The closing brace is found skipping quoted strings and nested braces (object literals).
 */
export function scanTemplate(template: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let i = 0;
  let text = '';
  while (i < template.length) {
    const at = template.indexOf('${', i);
    if (at < 0) {
      text += template.slice(i);
      break;
    }
    text += template.slice(i, at);
    let depth = 1;
    let j = at + 2;
    let quote: string | undefined;
    for (; j < template.length && depth > 0; j++) {
      const c = template[j]!;
      if (quote) {
        if (c === '\\') j++;
        else if (c === quote) quote = undefined;
      } else if (c === "'" || c === '"') quote = c;
      else if (c === '{') depth++;
      else if (c === '}') depth--;
    }
    if (depth > 0) throw parseError(template, at, 'unterminated ${ in substitution template');
    if (text) parts.push({ kind: 'text', text });
    text = '';
    parts.push({ kind: 'expr', src: template.slice(at + 2, j - 1), at });
    i = j;
  }
  if (text) parts.push({ kind: 'text', text });
  return parts;
}

export interface CompiledTemplate {
  readonly template: string;
  render(message: MessageContext, env: EvalEnv, variables?: ReadonlyMap<string, SqlValue>): string;
}

/**
 * A substitution template: literal text with `${expression}` parts, each evaluated against the original
 * message (not the SELECT output) and the statement's SET variables.
 */
export function compileTemplate(
  template: string,
  sqlVersion: SqlVersion = DEFAULT_SQL_VERSION,
  functions: ReadonlyMap<string, FunctionSpec> = FUNCTIONS,
): CompiledTemplate {
  const parts: (string | { expr: Expr; src: string })[] = [];
  for (const part of scanTemplate(template)) {
    if (part.kind === 'text') {
      parts.push(part.text);
      continue;
    }
    const { src, at } = part;
    let expr: Expr;
    try {
      expr = parseExpression(src, sqlVersion);
    } catch (err) {
      const e = err as { position?: number; message: string };
      throw parseError(
        template,
        at + 2 + (e.position ?? 0),
        `in substitution template: ${e.message.replace(/ \(line .*\)$/, '')}`,
      );
    }
    walk(expr, (e) => {
      if (e.kind === 'call' && !functions.has(e.name)) {
        throw parseError(template, at + 2 + e.pos, `unknown function ${e.name}()`);
      }
    });
    parts.push({ expr, src });
  }
  return {
    template,
    render(message, env, variables = new Map()) {
      const ctx = makeContext(message, env, sqlVersion);
      const scope: Scope = {
        row: payloadValue(message.payload, sqlVersion),
        vars: variables,
        ctx,
        functions,
        rawPayload: message.payload,
      };
      return parts
        .map((p) => {
          if (typeof p === 'string') return p;
          const v = evaluate(p.expr, scope);
          if (v.type === 'Undefined') return '';
          const s = toStringValue(v);
          return s.type === 'String' ? s.value : '';
        })
        .join('');
    },
  };
}

export { UNDEFINED };
