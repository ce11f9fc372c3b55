/**
 * Recursive-descent parser of AWS IoT SQL:
 *
 *   statement  := [SET @v = expr {, @v = expr}] query
 *   query      := SELECT [VALUE] item {, item} FROM source [WHERE expr]
 *   item       := '*' | expr [AS alias]          alias := name {. name}
 *   expr       := or;  or := and {OR and};  and := not {AND not};  not := NOT not | cmp
 *   cmp        := add [(= | <> | < | <= | > | >=) add | IN (expr {, expr}) | IN expr]
 *   add        := mul {(+ | -) mul};  mul := unary {(* | / | %) unary};  unary := (- | +) unary | postfix
 *   postfix    := primary {. name | [ expr ]}
 *   primary    := number | string | TRUE | FALSE | NULL | '*' | @var | name | name(args) | cast(expr AS type)
 *               | CASE expr WHEN expr THEN expr {...} [ELSE expr] END | {key: expr, ...} | [expr, ...]
 *               | ( expr ) | ( query )
 *
 * Errors name the position and what was expected.
 */
import type { BinaryOp, Expr, Query, SelectItem, Statement } from './ast.js';
import type { SqlVersion } from './context.js';
import { parseError, type Token, tokenize } from './lexer.js';
import { dec, FALSE, int, NULL, str, TRUE } from './values.js';

const CAST_TYPES = new Map([
  ['int', 'Int'],
  ['integer', 'Int'],
  ['decimal', 'Decimal'],
  ['double', 'Decimal'],
  ['bool', 'Boolean'],
  ['boolean', 'Boolean'],
  ['string', 'String'],
  ['varchar', 'String'],
]);

export function parseStatement(src: string, version: SqlVersion): Statement {
  return new Parser(src, version).statement();
}

/** Parses a lone expression (substitution templates). */
export function parseExpression(src: string, version: SqlVersion): Expr {
  const p = new Parser(src, version);
  const e = p.expression();
  p.expectEnd();
  return e;
}

class Parser {
  private readonly tokens: Token[];
  private i = 0;

  constructor(
    private readonly src: string,
    private readonly version: SqlVersion,
  ) {
    this.tokens = tokenize(src);
  }

  private get tok(): Token {
    return this.tokens[this.i]!;
  }

  private peek(n = 1): Token {
    return this.tokens[Math.min(this.i + n, this.tokens.length - 1)]!;
  }

  private describe(t: Token): string {
    return t.kind === 'eof' ? 'end of statement' : `'${t.raw}'`;
  }

  private fail(expected: string, t: Token = this.tok): never {
    throw parseError(this.src, t.pos, `expected ${expected} but found ${this.describe(t)}`);
  }

  private isKw(kw: string): boolean {
    return this.tok.kind === 'keyword' && this.tok.text === kw;
  }

  private isOp(op: string): boolean {
    return this.tok.kind === 'op' && this.tok.text === op;
  }

  private eatKw(kw: string): boolean {
    if (!this.isKw(kw)) return false;
    this.i++;
    return true;
  }

  private eatOp(op: string): boolean {
    if (!this.isOp(op)) return false;
    this.i++;
    return true;
  }

  private expectKw(kw: string): Token {
    if (!this.isKw(kw)) this.fail(kw);
    return this.tokens[this.i++]!;
  }

  private expectOp(op: string): Token {
    if (!this.isOp(op)) this.fail(`'${op}'`);
    return this.tokens[this.i++]!;
  }

  expectEnd(): void {
    if (this.tok.kind !== 'eof') this.fail('end of statement');
  }

  private requires2016(what: string, t: Token): void {
    if (this.version === '2015-10-08') {
      throw parseError(this.src, t.pos, `${what} requires SQL version 2016-03-23 or later`);
    }
  }

  statement(): Statement {
    const sets: Statement['sets'] = [];
    if (this.isKw('SET')) {
      this.i++;
      const seen = new Set<string>();
      do {
        const v = this.tok;
        if (v.kind !== 'var') this.fail('a variable such as @name');
        this.i++;
        if (v.text.length > 64) throw parseError(this.src, v.pos, 'variable names are at most 64 characters');
        if (seen.has(v.text)) throw parseError(this.src, v.pos, `variable @${v.text} is assigned twice`);
        seen.add(v.text);
        this.expectOp('=');
        sets.push({ name: v.text, value: this.expression(), pos: v.pos });
      } while (this.eatOp(','));
      if (this.isKw('SET'))
        throw parseError(this.src, this.tok.pos, 'SET can be used only once per statement');
    }
    const query = this.query(true);
    this.expectEnd();
    return { sets, query };
  }

  private query(topLevel: boolean): Query {
    this.expectKw('SELECT');
    const value = this.eatKw('VALUE');
    const items: SelectItem[] = [];
    do items.push(this.selectItem());
    while (this.eatOp(','));
    if (value && items.length !== 1) {
      throw parseError(this.src, items[1]!.pos, 'SELECT VALUE takes exactly one expression');
    }
    if (value && items[0]!.kind === 'expr' && items[0]!.alias) {
      throw parseError(this.src, items[0]!.pos, 'SELECT VALUE cannot have an alias');
    }
    this.expectKw('FROM');
    let from: Query['from'];
    const ft = this.tok;
    if (topLevel) {
      if (ft.kind !== 'string' || ft.quote !== "'")
        this.fail("a topic filter in single quotes, e.g. 'a/+/c'");
      this.i++;
      from = { kind: 'topic', filter: ft.text, pos: ft.pos };
    } else {
      from = { kind: 'expr', expr: this.expression(), pos: ft.pos };
    }
    const where = this.eatKw('WHERE') ? this.expression() : undefined;
    return { value, items, from, ...(where ? { where } : {}) };
  }

  private selectItem(): SelectItem {
    const t = this.tok;
    if (
      this.isOp('*') &&
      (this.peek().kind === 'eof' ||
        this.peek().text === ',' ||
        this.peek().text === 'FROM' ||
        this.peek().text === 'AS')
    ) {
      this.i++;
      if (this.isKw('AS')) {
        this.i++;
        return { kind: 'expr', expr: { kind: 'payload', pos: t.pos }, alias: this.alias(), pos: t.pos };
      }
      return { kind: 'star', pos: t.pos };
    }
    const expr = this.expression();
    if (this.eatKw('AS')) return { kind: 'expr', expr, alias: this.alias(), pos: t.pos };
    return { kind: 'expr', expr, pos: t.pos };
  }

  private alias(): string[] {
    const parts: string[] = [];
    do {
      const t = this.tok;
      if (t.kind === 'ident' || t.kind === 'keyword') parts.push(t.raw);
      else if (t.kind === 'string') parts.push(t.text);
      else this.fail('an alias name');
      this.i++;
    } while (this.eatOp('.'));
    return parts;
  }

  expression(): Expr {
    return this.or();
  }

  private or(): Expr {
    let left = this.and();
    while (this.isKw('OR')) {
      const pos = this.tok.pos;
      this.i++;
      left = { kind: 'binary', op: 'OR', left, right: this.and(), pos };
    }
    return left;
  }

  private and(): Expr {
    let left = this.not();
    while (this.isKw('AND')) {
      const pos = this.tok.pos;
      this.i++;
      left = { kind: 'binary', op: 'AND', left, right: this.not(), pos };
    }
    return left;
  }

  private not(): Expr {
    if (this.isKw('NOT')) {
      const pos = this.tok.pos;
      this.i++;
      return { kind: 'unary', op: 'NOT', operand: this.not(), pos };
    }
    return this.comparison();
  }

  private comparison(): Expr {
    const left = this.additive();
    const t = this.tok;
    if (t.kind === 'op' && ['=', '<>', '<', '<=', '>', '>='].includes(t.text)) {
      this.i++;
      const op = t.text as BinaryOp;
      return { kind: 'binary', op, left, right: this.additive(), pos: t.pos };
    }
    if (this.isKw('IN')) {
      this.i++;
      if (this.isOp('(')) {
        const open = this.tokens[this.i++]!;
        const items: Expr[] = [];
        do items.push(this.expression());
        while (this.eatOp(','));
        this.expectOp(')');
        return { kind: 'binary', op: 'IN', left, right: { kind: 'array', items, pos: open.pos }, pos: t.pos };
      }
      return { kind: 'binary', op: 'IN', left, right: this.additive(), pos: t.pos };
    }
    return left;
  }

  private additive(): Expr {
    let left = this.multiplicative();
    while (this.isOp('+') || this.isOp('-')) {
      const t = this.tokens[this.i++]!;
      left = { kind: 'binary', op: t.text as BinaryOp, left, right: this.multiplicative(), pos: t.pos };
    }
    return left;
  }

  private multiplicative(): Expr {
    let left = this.unary();
    while (this.isOp('*') || this.isOp('/') || this.isOp('%')) {
      const t = this.tokens[this.i++]!;
      left = { kind: 'binary', op: t.text as BinaryOp, left, right: this.unary(), pos: t.pos };
    }
    return left;
  }

  private unary(): Expr {
    if (this.isOp('-') || this.isOp('+')) {
      const t = this.tokens[this.i++]!;
      const operand = this.unary();
      // Fold negative numeric literals so that -9223372036854775808-style values stay exact.
      if (t.text === '-' && operand.kind === 'literal' && operand.value.type === 'Int') {
        return { kind: 'literal', value: int(-operand.value.value), pos: t.pos };
      }
      if (t.text === '-' && operand.kind === 'literal' && operand.value.type === 'Decimal') {
        return { kind: 'literal', value: dec(-operand.value.value), pos: t.pos };
      }
      return { kind: 'unary', op: t.text as '-' | '+', operand, pos: t.pos };
    }
    return this.postfix();
  }

  private postfix(): Expr {
    let e = this.primary();
    for (;;) {
      if (this.isOp('.')) {
        const dot = this.tokens[this.i++]!;
        const t = this.tok;
        if (t.kind !== 'ident' && t.kind !== 'keyword') this.fail('an attribute name after .');
        this.i++;
        e = { kind: 'member', object: e, name: t.raw, pos: dot.pos };
        continue;
      }
      if (this.isOp('[')) {
        const b = this.tokens[this.i++]!;
        const index = this.expression();
        this.expectOp(']');
        e = { kind: 'index', object: e, index, pos: b.pos };
        continue;
      }
      return e;
    }
  }

  private primary(): Expr {
    const t = this.tok;
    switch (t.kind) {
      case 'number': {
        this.i++;
        const isInt = /^\d+$/.test(t.text);
        const v = isInt ? int(BigInt(t.text)) : dec(Number(t.text));
        if (v.type === 'Undefined') throw parseError(this.src, t.pos, `number ${t.text} is out of range`);
        return { kind: 'literal', value: v, pos: t.pos };
      }
      case 'string':
        this.i++;
        return { kind: 'literal', value: str(t.text), pos: t.pos };
      case 'var':
        this.i++;
        return { kind: 'var', name: t.text, pos: t.pos };
      case 'keyword':
        return this.keywordPrimary(t);
      case 'ident':
        this.i++;
        if (this.isOp('(')) return this.call(t);
        return { kind: 'attr', name: t.text, pos: t.pos };
      case 'op':
        return this.opPrimary(t);
      default:
        return this.fail('an expression');
    }
  }

  private keywordPrimary(t: Token): Expr {
    switch (t.text) {
      case 'TRUE':
        this.i++;
        return { kind: 'literal', value: TRUE, pos: t.pos };
      case 'FALSE':
        this.i++;
        return { kind: 'literal', value: FALSE, pos: t.pos };
      case 'NULL':
        this.i++;
        return { kind: 'literal', value: NULL, pos: t.pos };
      case 'CASE':
        return this.caseExpr();
      default:
        return this.fail('an expression');
    }
  }

  private opPrimary(t: Token): Expr {
    switch (t.text) {
      case '*':
        this.i++;
        return { kind: 'payload', pos: t.pos };
      case '(': {
        this.i++;
        if (this.isKw('SELECT')) {
          this.requires2016('a nested SELECT', this.tok);
          const query = this.query(false);
          this.expectOp(')');
          return { kind: 'select', query, pos: t.pos };
        }
        const e = this.expression();
        this.expectOp(')');
        return e;
      }
      case '{':
        return this.objectLiteral(t);
      case '[':
        return this.arrayLiteral(t);
      default:
        return this.fail('an expression');
    }
  }

  private call(name: Token): Expr {
    this.expectOp('(');
    const lower = name.text.toLowerCase();
    if (lower === 'cast') {
      const value = this.expression();
      this.expectKw('AS');
      const tt = this.tok;
      if (tt.kind !== 'ident' && tt.kind !== 'keyword')
        this.fail('a type name (Int, Decimal, Boolean, String)');
      const type = CAST_TYPES.get(tt.raw.toLowerCase());
      if (!type)
        throw parseError(
          this.src,
          tt.pos,
          `unknown cast type '${tt.raw}'; expected Int, Decimal, Boolean or String`,
        );
      this.i++;
      this.expectOp(')');
      return { kind: 'cast', value, type, pos: name.pos };
    }
    const args: Expr[] = [];
    if (!this.isOp(')')) {
      do args.push(this.expression());
      while (this.eatOp(','));
    }
    this.expectOp(')');
    return { kind: 'call', name: lower, args, pos: name.pos };
  }

  private caseExpr(): Expr {
    const t = this.expectKw('CASE');
    const subject = this.expression();
    const whens: { when: Expr; result: Expr }[] = [];
    while (this.eatKw('WHEN')) {
      const when = this.expression();
      this.expectKw('THEN');
      whens.push({ when, result: this.expression() });
    }
    if (whens.length === 0) this.fail('WHEN (a CASE needs at least one WHEN clause)');
    const otherwise = this.eatKw('ELSE') ? this.expression() : undefined;
    this.expectKw('END');
    return { kind: 'case', subject, whens, ...(otherwise ? { otherwise } : {}), pos: t.pos };
  }

  private objectLiteral(open: Token): Expr {
    this.requires2016('an object literal', open);
    this.i++;
    const entries: { key: string; value: Expr }[] = [];
    if (!this.isOp('}')) {
      do {
        const k = this.tok;
        if (k.kind !== 'string' && k.kind !== 'ident') this.fail('a quoted key');
        this.i++;
        this.expectOp(':');
        entries.push({ key: k.text, value: this.expression() });
      } while (this.eatOp(','));
    }
    this.expectOp('}');
    return { kind: 'object', entries, pos: open.pos };
  }

  private arrayLiteral(open: Token): Expr {
    this.requires2016('an array literal', open);
    this.i++;
    const items: Expr[] = [];
    if (!this.isOp(']')) {
      do items.push(this.expression());
      while (this.eatOp(','));
    }
    this.expectOp(']');
    return { kind: 'array', items, pos: open.pos };
  }
}
