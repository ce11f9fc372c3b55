/**
 * Replaces configured fields of a record by keyed pseudonyms and records the way back.
 *
 * - Each configured JSON path (see json-path.ts) is applied to a copy of the record; the input is never
 *   mutated. Missing paths are ignored. A match that is a string or a number is replaced by its
 *   pseudonym; `null` is left as it is (there is nothing to hide); any other match (object, array,
 *   boolean, non-finite number) throws {@link UnsupportedValueError} naming the concrete path, so that
 *   a field that changed shape is never passed through unmasked.
 * - A location matched by several paths is replaced once.
 * - The new (token, value) pairs of a record are written to the re-identification store as one batch
 *   before apply() returns; if that fails, apply() throws and no pseudonymized record is produced.
 * - Logs carry counts and paths, never values.
 */
import pino, { type Logger } from 'pino';
import {
  InvalidRecordError,
  JsonPathError,
  PseudonymizerConfigError,
  UnsupportedValueError,
} from './errors.js';
import { formatJsonPath, type JsonPath, type PathSegment, parseJsonPath } from './json-path.js';
import type { KeyRing } from './keyring.js';
import type { ReidentificationEntry, ReidentificationStore } from './store.js';
import type { PseudonymizableValue } from './token.js';

export interface PseudonymizerOptions {
  /** JSON paths of the fields to pseudonymize (`$.operatorId`, `$.readings[*].patientId`, ...). */
  fields: readonly string[];
  keys: KeyRing;
  store: ReidentificationStore;
  logger?: Logger;
}

export interface PseudonymizedRecord {
  /** A new object: the record with every matched value replaced. */
  record: Record<string, unknown>;
  /** Values replaced. */
  tokens: number;
}

type Container = Record<string, unknown> | unknown[];

function isContainer(v: unknown): v is Container {
  return typeof v === 'object' && v !== null;
}

function kindOf(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'number') return `the non-finite number ${v}`;
  return `a ${typeof v}`;
}

/** Deep copy of JSON data (plain objects and arrays; other values are copied by reference). */
function copyJson(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(copyJson);
  if (isContainer(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      // defineProperty, so that an own "__proto__" member stays a member
      Object.defineProperty(out, k, {
        value: copyJson(x),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return v;
}

export class Pseudonymizer {
  readonly #paths: readonly JsonPath[];
  readonly #keys: KeyRing;
  readonly #store: ReidentificationStore;
  readonly #log: Logger;

  constructor(opts: PseudonymizerOptions) {
    const paths: JsonPath[] = [];
    const seen = new Map<string, number>();
    opts.fields.forEach((field, index) => {
      let path: JsonPath;
      try {
        path = parseJsonPath(field);
      } catch (err) {
        if (err instanceof JsonPathError) {
          throw new PseudonymizerConfigError(`fields[${index}]: ${err.message}`, index, err.position, {
            cause: err,
          });
        }
        throw err;
      }
      const normal = formatJsonPath(path.segments);
      const earlier = seen.get(normal);
      if (earlier !== undefined) {
        throw new PseudonymizerConfigError(
          `fields[${index}]: ${JSON.stringify(field)} is the same path as fields[${earlier}]`,
          index,
          undefined,
        );
      }
      seen.set(normal, index);
      paths.push(path);
    });
    this.#paths = paths;
    this.#keys = opts.keys;
    this.#store = opts.store;
    this.#log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'pseudonymizer' });
  }

  /** The configured paths, normalized. */
  get fields(): string[] {
    return this.#paths.map((p) => formatJsonPath(p.segments));
  }

  /** Pseudonymizes a copy of `record` (a JSON object). */
  apply(record: unknown): PseudonymizedRecord {
    if (!isContainer(record) || Array.isArray(record)) {
      throw new InvalidRecordError(`a record must be a JSON object, got ${kindOf(record)}`);
    }
    const out = copyJson(record) as Record<string, unknown>;
    const done = new Map<Container, Set<string | number>>();
    const entries: ReidentificationEntry[] = [];
    for (const path of this.#paths) this.#walk(out, path.segments, 0, [], done, entries);
    if (entries.length > 0) this.#store.put(entries);
    if (entries.length > 0)
      this.#log.debug({ tokens: entries.length, version: this.#keys.activeVersion }, 'pseudonymized');
    return { record: out, tokens: entries.length };
  }

  /** The original value of a pseudonym (with its type), or undefined if this gateway never made it. */
  reidentify(token: string): PseudonymizableValue | undefined {
    return this.#store.get(token);
  }

  #walk(
    node: Container,
    segments: readonly PathSegment[],
    i: number,
    at: (string | number)[],
    done: Map<Container, Set<string | number>>,
    entries: ReidentificationEntry[],
  ): void {
    const seg = segments[i] as PathSegment;
    const last = i === segments.length - 1;
    const visit = (key: string | number) => {
      const child = (node as Record<string | number, unknown>)[key];
      const where = [...at, key];
      if (!last) {
        if (isContainer(child)) this.#walk(child, segments, i + 1, where, done, entries);
        return; // a scalar (or null) where the path goes deeper: the path is missing
      }
      this.#replace(node, key, child, where, done, entries);
    };
    if (seg.kind === 'member') {
      if (!Array.isArray(node) && Object.hasOwn(node, seg.name)) visit(seg.name);
    } else if (seg.kind === 'index') {
      if (Array.isArray(node) && seg.index < node.length) visit(seg.index);
    } else if (Array.isArray(node)) {
      for (let k = 0; k < node.length; k++) visit(k);
    } else {
      for (const k of Object.keys(node)) visit(k);
    }
  }

  #replace(
    node: Container,
    key: string | number,
    value: unknown,
    where: (string | number)[],
    done: Map<Container, Set<string | number>>,
    entries: ReidentificationEntry[],
  ): void {
    let keys = done.get(node);
    if (keys?.has(key)) return; // already replaced through another path
    if (value === null) return;
    if (typeof value !== 'string' && !(typeof value === 'number' && Number.isFinite(value))) {
      const path = formatJsonPath(where);
      throw new UnsupportedValueError(
        `${path} is ${kindOf(value)}; only strings and numbers can be pseudonymized`,
        path,
      );
    }
    const token = this.#keys.pseudonym(value);
    (node as Record<string | number, unknown>)[key] = token;
    if (keys === undefined) {
      keys = new Set();
      done.set(node, keys);
    }
    keys.add(key);
    entries.push({ token, value });
  }
}
