/**
 * Output formats of lake results (pure functions):
 *
 * - `table`: aligned columns under a header, numbers right-aligned, NULL as `NULL`, long cells cut with
 *   `…`, control characters escaped so that every row stays on one line, and a `(N rows)` footer.
 * - `csv`: RFC 4180 (CRLF line ends, a header line, fields with `,` `"` CR or LF quoted, quotes doubled);
 *   NULL is an empty field and the empty string `""`, so the two stay apart.
 * - `json`: an array of row objects, one per line. BIGINT and the other 64/128-bit integers are numbers
 *   when they are safe integers and strings otherwise; JSON columns are embedded as JSON values (their
 *   text verbatim, so nothing is rounded); NaN and infinities are strings; dates and timestamps are the
 *   ISO 8601 text of values.ts. Repeated column names get a suffix (`a`, `a_1`).
 */
import { isLakeObject, LakeJson, type LakeResult, type LakeValue } from './values.js';

export const LAKE_FORMATS = ['table', 'csv', 'json'] as const;
export type LakeFormat = (typeof LAKE_FORMATS)[number];

/** A value as JSON text (see the `json` format above). */
export function jsonText(value: LakeValue): string {
  if (value === null) return 'null';
  if (value instanceof LakeJson) return value.text;
  switch (typeof value) {
    case 'boolean':
      return String(value);
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : JSON.stringify(String(value));
    case 'bigint':
      return Number.isSafeInteger(Number(value)) ? value.toString() : JSON.stringify(value.toString());
    case 'string':
      return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(jsonText).join(',')}]`;
  return `{${Object.entries(value)
    .map(([k, v]) => `${JSON.stringify(k)}:${jsonText(v)}`)
    .join(',')}}`;
}

/** A value as text in a cell: strings as they are, JSON and nested values as JSON text. */
export function cellText(value: LakeValue): string | null {
  if (value === null) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') {
    return String(value);
  }
  if (value instanceof LakeJson) return value.text;
  if (Array.isArray(value) || isLakeObject(value)) return jsonText(value);
  return String(value);
}

/** Column names made unique for object keys: the second `a` becomes `a_1`, and so on. */
export function uniqueNames(names: readonly string[]): string[] {
  const taken = new Set<string>();
  return names.map((name) => {
    let candidate = name;
    for (let i = 1; taken.has(candidate); i++) candidate = `${name}_${i}`;
    taken.add(candidate);
    return candidate;
  });
}

export function formatJson(result: LakeResult): string {
  if (result.rows.length === 0) return '[]\n';
  const keys = uniqueNames(result.columns.map((c) => c.name)).map((k) => JSON.stringify(k));
  const lines = result.rows.map(
    (row) => `{${keys.map((k, i) => `${k}:${jsonText(row[i] ?? null)}`).join(',')}}`,
  );
  return `[\n${lines.join(',\n')}\n]\n`;
}

function csvField(text: string | null): string {
  if (text === null) return '';
  return text === '' || /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function formatCsv(result: LakeResult): string {
  const lines = [result.columns.map((c) => csvField(c.name)).join(',')];
  for (const row of result.rows) lines.push(row.map((v) => csvField(cellText(v))).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

const NUMERIC_TYPE =
  /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|FLOAT|DOUBLE|DECIMAL|BIGNUM)\b/;

const CONTROL: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** Text on one line: control characters escaped. */
function oneLine(text: string): string {
  let out = '';
  for (const c of text) {
    const code = c.charCodeAt(0);
    out += code < 0x20 || code === 0x7f ? (CONTROL[c] ?? `\\x${code.toString(16).padStart(2, '0')}`) : c;
  }
  return out;
}

function cut(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, Math.max(1, max - 1)).join('')}…`;
}

const width = (text: string): number => [...text].length;

export interface TableOptions {
  /** Longest cell, in characters (default 60); longer ones end in `…`. */
  maxCellWidth?: number;
}

export const rowCountText = (n: number): string => `(${n} ${n === 1 ? 'row' : 'rows'})`;

export function formatTable(result: LakeResult, options: TableOptions = {}): string {
  const max = Math.max(2, options.maxCellWidth ?? 60);
  const header = result.columns.map((c) => cut(oneLine(c.name), max));
  const numeric = result.columns.map((c) => NUMERIC_TYPE.test(c.type));
  const cells = result.rows.map((row) =>
    result.columns.map((_, i) => {
      const text = cellText(row[i] ?? null);
      return text === null ? 'NULL' : cut(oneLine(text), max);
    }),
  );
  const widths = header.map((h, i) => Math.max(width(h), ...cells.map((r) => width(r[i]!))));
  const pad = (text: string, i: number, right: boolean) => {
    const fill = ' '.repeat(widths[i]! - width(text));
    return right ? fill + text : text + fill;
  };
  const lines: string[] = [];
  if (result.columns.length > 0) {
    lines.push(header.map((h, i) => pad(h, i, false)).join(' | '));
    lines.push(widths.map((w) => '-'.repeat(w)).join('-+-'));
    for (const r of cells) lines.push(r.map((c, i) => pad(c, i, numeric[i]!)).join(' | '));
  }
  lines.push(rowCountText(result.rows.length));
  return `${lines.map((l) => l.trimEnd()).join('\n')}\n`;
}

export function formatResult(result: LakeResult, format: LakeFormat): string {
  switch (format) {
    case 'table':
      return formatTable(result);
    case 'csv':
      return formatCsv(result);
    case 'json':
      return formatJson(result);
  }
}
