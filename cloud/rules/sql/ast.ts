/** Syntax tree of AWS IoT SQL statements. */
import type { SqlValue } from './values.js';

export type Expr =
  | { kind: 'literal'; value: SqlValue; pos: number }
  | { kind: 'payload'; pos: number }
  | { kind: 'attr'; name: string; pos: number }
  | { kind: 'var'; name: string; pos: number }
  | { kind: 'member'; object: Expr; name: string; pos: number }
  | { kind: 'index'; object: Expr; index: Expr; pos: number }
  | { kind: 'call'; name: string; args: Expr[]; pos: number }
  | { kind: 'cast'; value: Expr; type: string; pos: number }
  | { kind: 'unary'; op: 'NOT' | '-' | '+'; operand: Expr; pos: number }
  | { kind: 'binary'; op: BinaryOp; left: Expr; right: Expr; pos: number }
  | { kind: 'case'; subject: Expr; whens: { when: Expr; result: Expr }[]; otherwise?: Expr; pos: number }
  | { kind: 'object'; entries: { key: string; value: Expr }[]; pos: number }
  | { kind: 'array'; items: Expr[]; pos: number }
  | { kind: 'select'; query: Query; pos: number };

export type BinaryOp =
  | 'AND'
  | 'OR'
  | 'IN'
  | '='
  | '<>'
  | '<'
  | '<='
  | '>'
  | '>='
  | '+'
  | '-'
  | '*'
  | '/'
  | '%';

export type SelectItem =
  | { kind: 'star'; pos: number }
  | { kind: 'expr'; expr: Expr; alias?: string[]; pos: number };

export interface Query {
  value: boolean;
  items: SelectItem[];
  /** Top level: the topic filter; nested: the expression that yields the rows. */
  from: { kind: 'topic'; filter: string; pos: number } | { kind: 'expr'; expr: Expr; pos: number };
  where?: Expr;
}

export interface Statement {
  sets: { name: string; value: Expr; pos: number }[];
  query: Query;
}
