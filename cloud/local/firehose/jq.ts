/**
 * The MetadataExtraction processor's query (dynamic partitioning with inline parsing, `JQ-1.6`): a jq
 * object construction whose values are paths into the record, e.g.
 * `{customer_id: .customer_id, device: .type.device, year: .event_timestamp|strftime("%Y")}`.
 *
 * The local Firehose implements this subset of jq:
 * - keys: identifiers or "strings"; `{name}` is short for `{name: .name}`;
 * - values: `.` followed by fields (`.a.b`, `."a b"`, `.a["b"]`), optionally piped into
 *   `strftime("<format>")` (epoch seconds formatted in UTC, as jq does).
 * Other queries are refused with InvalidArgumentException when the stream is created.
 *
 * A record yields its partition keys when it is a JSON document and every value is a string, number or
 * boolean (numbers and booleans in their JSON text); otherwise the record fails with
 * `DynamicPartitioning.MetadataExtractionFailed` and goes to the error output.
 */
import { invalidArgument, RecordProcessingError } from './errors.js';
import { strftime, unsupportedStrftimeConversion } from './time-format.js';

export const METADATA_EXTRACTION_FAILED = 'DynamicPartitioning.MetadataExtractionFailed';

interface KeyQuery {
  key: string;
  path: readonly string[];
  strftime?: string;
}

/** A compiled MetadataExtractionQuery. */
export interface MetadataQuery {
  readonly source: string;
  readonly keys: readonly string[];
  /** The partition keys of one record; throws {@link RecordProcessingError}. */
  extract(data: Uint8Array): Record<string, string>;
}

class Parser {
  private i = 0;
  constructor(
    private readonly text: string,
    private readonly field: string,
  ) {}

  fail(why: string): never {
    throw invalidArgument(
      `${this.field}: '${this.text}' is not a supported jq query (${why} at position ${this.i}); the local Firehose supports object construction from paths, e.g. {customer_id: .customer_id, device: .type.device}, optionally piped into strftime("...")`,
    );
  }

  private ws(): void {
    while (this.i < this.text.length && /\s/.test(this.text[this.i]!)) this.i++;
  }

  private peek(): string | undefined {
    this.ws();
    return this.text[this.i];
  }

  private expect(c: string): void {
    if (this.peek() !== c) this.fail(`expected '${c}'`);
    this.i++;
  }

  private identifier(): string | undefined {
    this.ws();
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.text.slice(this.i));
    if (!m) return undefined;
    this.i += m[0].length;
    return m[0];
  }

  private string(): string {
    this.ws();
    if (this.text[this.i] !== '"') this.fail('expected a string');
    let out = '';
    this.i++;
    for (;;) {
      const c = this.text[this.i++];
      if (c === undefined) this.fail('unterminated string');
      if (c === '"') return out;
      if (c === '\\') {
        const e = this.text[this.i++];
        const map: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', n: '\n', t: '\t', r: '\r' };
        if (e === 'u') {
          const hex = this.text.slice(this.i, this.i + 4);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('bad \\u escape');
          out += String.fromCharCode(Number.parseInt(hex, 16));
          this.i += 4;
        } else if (e !== undefined && map[e] !== undefined) out += map[e];
        else this.fail('unsupported escape in a string');
      } else out += c;
    }
  }

  private path(): string[] {
    this.expect('.');
    const path: string[] = [];
    // `.` alone is the whole record.
    let first = true;
    for (;;) {
      const c = this.text[this.i];
      if (first && c !== undefined && /[A-Za-z_]/.test(c)) {
        path.push(this.identifier()!);
      } else if (first && c === '"') {
        path.push(this.string());
      } else if (c === '[') {
        this.i++;
        path.push(this.string());
        this.expect(']');
      } else if (c === '.') {
        this.i++;
        const next = this.text[this.i];
        if (next === '"') path.push(this.string());
        else {
          const id = this.identifier();
          if (id === undefined) this.fail('expected a field name after "."');
          path.push(id);
        }
      } else break;
      first = false;
    }
    return path;
  }

  private value(key: string): KeyQuery {
    const path = this.path();
    if (this.peek() !== '|') return { key, path };
    this.i++;
    const fn = this.identifier();
    if (fn !== 'strftime') this.fail(`unsupported function '${fn ?? this.text[this.i] ?? ''}'`);
    this.expect('(');
    const format = this.string();
    this.expect(')');
    const bad = unsupportedStrftimeConversion(format);
    if (bad !== undefined) this.fail(`strftime conversion ${bad} is not supported`);
    return { key, path, strftime: format };
  }

  parse(): KeyQuery[] {
    this.expect('{');
    const out: KeyQuery[] = [];
    if (this.peek() === '}') this.fail('the object has no keys');
    for (;;) {
      let key: string | undefined;
      if (this.peek() === '"') key = this.string();
      else key = this.identifier();
      if (key === undefined) this.fail('expected a key');
      if (out.some((q) => q.key === key)) this.fail(`duplicate key '${key}'`);
      if (this.peek() === ':') {
        this.i++;
        out.push(this.value(key));
      } else out.push({ key, path: [key] });
      const c = this.peek();
      this.i++;
      if (c === '}') break;
      if (c !== ',') this.fail("expected ',' or '}'");
    }
    if (this.peek() !== undefined) this.fail('unexpected text after the object');
    return out;
  }
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function evaluate(doc: unknown, q: KeyQuery): string {
  let v: unknown = doc;
  for (const name of q.path) {
    if (v === null || v === undefined) {
      v = null;
      continue;
    }
    if (typeof v !== 'object' || Array.isArray(v)) {
      throw new RecordProcessingError(
        METADATA_EXTRACTION_FAILED,
        `jq: error (at <stdin>:0): Cannot index ${typeName(v)} with "${name}"`,
      );
    }
    v = Object.hasOwn(v, name) ? (v as Record<string, unknown>)[name] : null;
  }
  if (q.strftime !== undefined) {
    if (typeof v !== 'number') {
      throw new RecordProcessingError(
        METADATA_EXTRACTION_FAILED,
        'jq: error (at <stdin>:0): strftime/1 requires parsed datetime inputs',
      );
    }
    return strftime(q.strftime, v);
  }
  if (typeof v === 'string') {
    if (v === '') {
      throw new RecordProcessingError(
        METADATA_EXTRACTION_FAILED,
        `The partition key '${q.key}' evaluated to an empty string`,
      );
    }
    return v;
  }
  if (typeof v === 'number' || typeof v === 'boolean') return JSON.stringify(v);
  throw new RecordProcessingError(
    METADATA_EXTRACTION_FAILED,
    v === null || v === undefined
      ? `The partition key '${q.key}' evaluated to null`
      : `The partition key '${q.key}' evaluated to an ${typeName(v)}, not a scalar value`,
  );
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Compiles a MetadataExtractionQuery; throws InvalidArgumentException naming `field`. */
export function compileMetadataQuery(text: string, field: string): MetadataQuery {
  const queries = new Parser(text, field).parse();
  return {
    source: text,
    keys: queries.map((q) => q.key),
    extract(data) {
      let doc: unknown;
      try {
        doc = JSON.parse(decoder.decode(data));
      } catch {
        throw new RecordProcessingError(METADATA_EXTRACTION_FAILED, 'Non JSON record provided');
      }
      const out: Record<string, string> = {};
      for (const q of queries) out[q.key] = evaluate(doc, q);
      return out;
    },
  };
}
