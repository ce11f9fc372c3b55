/** Tokenizer of AWS IoT SQL. Every token keeps its offset for error messages. */
import { SqlParseError } from './errors.js';

export type TokenKind = 'ident' | 'keyword' | 'number' | 'string' | 'var' | 'op' | 'eof';

export interface Token {
  kind: TokenKind;
  /** Keywords upper-cased; strings unescaped; operators as written. */
  text: string;
  /** Raw source of the token. */
  raw: string;
  pos: number;
  /** For strings: which quote delimited it. */
  quote?: "'" | '"';
}

export const KEYWORDS = new Set([
  'SELECT',
  'VALUE',
  'FROM',
  'WHERE',
  'AS',
  'AND',
  'OR',
  'NOT',
  'CASE',
  'WHEN',
  'THEN',
  'ELSE',
  'END',
  'TRUE',
  'FALSE',
  'NULL',
  'SET',
  'IN',
]);

const OPERATORS = [
  '<>',
  '<=',
  '>=',
  '=',
  '<',
  '>',
  '+',
  '-',
  '*',
  '/',
  '%',
  '(',
  ')',
  '[',
  ']',
  '{',
  '}',
  ',',
  '.',
  ':',
];

/** Line and column (1-based) of an offset. */
export function lineColumn(src: string, pos: number): { line: number; column: number } {
  let line = 1;
  let col = 1;
  for (let i = 0; i < pos && i < src.length; i++) {
    if (src[i] === '\n') {
      line++;
      col = 1;
    } else col++;
  }
  return { line, column: col };
}

export function parseError(src: string, pos: number, message: string): SqlParseError {
  const { line, column } = lineColumn(src, pos);
  return new SqlParseError(message, pos, line, column);
}

function unescapeString(src: string, start: number, body: string): string {
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const n = body[++i];
    switch (n) {
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'r':
        out += '\r';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case '0':
        out += '\0';
        break;
      case 'u': {
        const hex = body.slice(i + 1, i + 5);
        if (!/^[0-9a-fA-F]{4}$/.test(hex))
          throw parseError(src, start + i, 'invalid \\u escape in string literal');
        out += String.fromCharCode(Number.parseInt(hex, 16));
        i += 4;
        break;
      }
      case undefined:
        throw parseError(src, start + i, 'unterminated escape in string literal');
      default:
        // \\ \' \" \/ and any other character stand for themselves.
        out += n;
    }
  }
  return out;
}

export function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const start = i;
    if (c === "'" || c === '"') {
      let j = i + 1;
      while (j < src.length && src[j] !== c) j += src[j] === '\\' ? 2 : 1;
      if (j >= src.length) throw parseError(src, start, `unterminated string literal starting with ${c}`);
      const raw = src.slice(i, j + 1);
      tokens.push({
        kind: 'string',
        text: unescapeString(src, start + 1, src.slice(i + 1, j)),
        raw,
        pos: start,
        quote: c,
      });
      i = j + 1;
      continue;
    }
    if (/[0-9]/.test(c)) {
      const m = /^\d+(\.\d+)?([eE][+-]?\d+)?/.exec(src.slice(i))!;
      tokens.push({ kind: 'number', text: m[0], raw: m[0], pos: start });
      i += m[0].length;
      if (i < src.length && /[A-Za-z_]/.test(src[i]!))
        throw parseError(src, i, `unexpected '${src[i]}' after number`);
      continue;
    }
    if (c === '@') {
      const m = /^@([A-Za-z0-9_]+)/.exec(src.slice(i));
      if (!m) throw parseError(src, start, 'expected a variable name after @');
      tokens.push({ kind: 'var', text: m[1]!, raw: m[0], pos: start });
      i += m[0].length;
      continue;
    }
    if (/[A-Za-z_$]/.test(c)) {
      const m = /^[A-Za-z_$][A-Za-z0-9_$]*/.exec(src.slice(i))!;
      const up = m[0].toUpperCase();
      tokens.push(
        KEYWORDS.has(up)
          ? { kind: 'keyword', text: up, raw: m[0], pos: start }
          : { kind: 'ident', text: m[0], raw: m[0], pos: start },
      );
      i += m[0].length;
      continue;
    }
    const op = OPERATORS.find((o) => src.startsWith(o, i));
    if (!op) throw parseError(src, start, `unexpected character '${c}'`);
    tokens.push({ kind: 'op', text: op, raw: op, pos: start });
    i += op.length;
  }
  tokens.push({ kind: 'eof', text: '', raw: '', pos: src.length });
  return tokens;
}
