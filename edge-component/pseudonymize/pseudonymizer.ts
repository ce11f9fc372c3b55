/**
 * Replaces configured fields of a record by keyed pseudonyms and records the way back.
 *
 * - Each configured JSON path (see json-path.ts) is applied to the record. apply() works on a deep copy;
 *   applyAsync() copies only the containers on the way to a replaced value (the result shares every
 *   other subtree with the input), or with `inPlace` changes the caller's record itself. The input is
 *   never mutated otherwise. Missing paths are ignored. A match that is a string or a number is
 *   replaced by its pseudonym; `null` is left as it is (there is nothing to hide); any other match
 *   (object, array, boolean, non-finite number) throws {@link UnsupportedValueError} naming the concrete
 *   path, so that a field that changed shape is never passed through unmasked.
 * - Every match is found (and checked) before anything is replaced, so an error leaves the record as it
 *   was, also with `inPlace`.
 * - A location matched by several paths is replaced once.
 * - The new (token, value) pairs of a record are stored durably in the re-identification store before
 *   apply() returns (put) or applyAsync() resolves (putDurable, group commit); if that fails, no
 *   pseudonymized record is produced (an `inPlace` record gets its values back).
 * - applyToText() does the same on a record's JSON text (as received), without parsing it into objects:
 *   the values are found by one validating scan (json-spans.ts) and the pseudonyms written in their
 *   place; every occurrence of a location is replaced, also a repeated member JSON.parse would drop.
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
import {
  NdjsonLine,
  PathTrie,
  type Replacement,
  scanJson,
  scanRecord,
  type ValueSpan,
} from './json-spans.js';
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

export interface ApplyOptions {
  /**
   * Replace the values in `record` itself instead of in a copy (for a record the caller has just parsed
   * and owns). On failure the record gets its original values back.
   */
  inPlace?: boolean;
}

export interface PseudonymizedRecord {
  /** The record with every matched value replaced: a new object, or the input itself with `inPlace`. */
  record: Record<string, unknown>;
  /** Values replaced. */
  tokens: number;
}

/** What {@link Pseudonymizer.applyToText} makes of a record's text. */
export interface PseudonymizedText {
  /**
   * The text with every matched value's bytes replaced by its pseudonym (a JSON string), as one NDJSON
   * line: no whitespace around it, line breaks (whitespace) as spaces. Everything else is the text as
   * it came: members in their order, numbers as written.
   */
  line: NdjsonLine;
  /** Values replaced. */
  tokens: number;
}

type Container = Record<string, unknown> | unknown[];
type Key = string | number;

/** A value to replace: `keys` lead from the record to it, `parents[i]` is the container of `keys[i]`. */
interface Match {
  readonly parents: readonly Container[];
  readonly keys: readonly Key[];
  readonly value: PseudonymizableValue;
}

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

/**
 * Sets a member. Plain assignment, except for "__proto__", which assignment would take as the
 * prototype when the object does not have it as an own member yet.
 */
function setMember(node: Container, key: Key, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(node, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    (node as Record<Key, unknown>)[key] = value;
  }
}

/**
 * A shallow copy: arrays by slice(), objects by spread, which copies own enumerable members as data
 * properties (an own "__proto__" member stays a member; the copy's prototype is Object.prototype).
 */
function shallowCopy<T extends Container>(v: T): T {
  return (Array.isArray(v) ? v.slice() : { ...v }) as T;
}

/** Deep copy of JSON data (plain objects and arrays; other values are copied by reference). */
function copyJson<T extends Container>(v: T): T {
  const out = shallowCopy(v);
  if (Array.isArray(out)) {
    for (let i = 0; i < out.length; i++) {
      const x = out[i];
      if (isContainer(x)) out[i] = copyJson(x);
    }
  } else {
    const o = out as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      const x = o[k];
      // the copy has every key as an own member already, so assignment (even of "__proto__") sets it
      if (isContainer(x)) o[k] = copyJson(x);
    }
  }
  return out;
}

export class Pseudonymizer {
  readonly #paths: readonly JsonPath[];
  /** Some two paths can name the same location (`$.a[*]` and `$.a[0]`). */
  readonly #overlapping: boolean;
  readonly #keys: KeyRing;
  readonly #store: ReidentificationStore;
  readonly #log: Logger;
  /** The paths for scanning a record's text. */
  readonly #trie: PathTrie;

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
    this.#trie = new PathTrie(paths.map((p) => p.segments));
    this.#overlapping = paths.some((p, i) =>
      paths.slice(i + 1).some((q) => canOverlap(p.segments, q.segments)),
    );
    this.#keys = opts.keys;
    this.#store = opts.store;
    this.#log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'pseudonymizer' });
  }

  /** The configured paths, normalized. */
  get fields(): string[] {
    return this.#paths.map((p) => formatJsonPath(p.segments));
  }

  /**
   * Pseudonymizes a deep copy of `record` (a JSON object); the new entries are stored with the store's
   * synchronous put(), which blocks until they are durable. See applyAsync() for the ingest path.
   */
  apply(record: unknown): PseudonymizedRecord {
    const root = this.#check(record);
    const matches = this.#find(root);
    const out = copyJson(root);
    if (matches.length === 0) return { record: out, tokens: 0 };
    // The copy has the same shape: follow the keys of each match in it.
    const entries: ReidentificationEntry[] = [];
    for (const m of matches) {
      let node: Container = out;
      const last = m.keys.length - 1;
      for (let i = 0; i < last; i++) node = (node as Record<Key, unknown>)[m.keys[i] as Key] as Container;
      const token = this.#keys.pseudonym(m.value);
      setMember(node, m.keys[last] as Key, token);
      entries.push({ token, value: m.value });
    }
    this.#store.put(entries);
    this.#logApplied(entries.length);
    return { record: out, tokens: entries.length };
  }

  /**
   * Like apply() (same results, same errors, as rejections), but the new entries go through the store's
   * putDurable() (group commit, off the event loop), and it resolves only once they are durable. Without
   * `inPlace`, only the containers on the way to a replaced value are copied: the result shares every
   * other subtree with `record` (neither is changed here; a caller that later mutates one of them should
   * pass a record it owns with `inPlace`).
   */
  async applyAsync(record: unknown, opts: ApplyOptions = {}): Promise<PseudonymizedRecord> {
    const root = this.#check(record);
    const matches = this.#find(root);
    if (matches.length === 0) return { record: opts.inPlace ? root : shallowCopy(root), tokens: 0 };
    const entries: ReidentificationEntry[] = [];
    for (const m of matches) entries.push({ token: this.#keys.pseudonym(m.value), value: m.value });
    let out: Record<string, unknown>;
    if (opts.inPlace) {
      out = root;
      for (let j = 0; j < matches.length; j++) {
        const m = matches[j] as Match;
        const last = m.keys.length - 1;
        setMember(
          m.parents[last] as Container,
          m.keys[last] as Key,
          (entries[j] as ReidentificationEntry).token,
        );
      }
      try {
        await this.#store.putDurable(entries);
      } catch (err) {
        // No pseudonymized record without its mapping: give the caller its record back as it was.
        for (const m of matches) {
          const last = m.keys.length - 1;
          setMember(m.parents[last] as Container, m.keys[last] as Key, m.value);
        }
        throw err;
      }
    } else {
      out = shallowCopy(root);
      // original container -> its copy (a container reached twice is copied once)
      const copies = new Map<Container, Container>([[root, out]]);
      for (let j = 0; j < matches.length; j++) {
        const m = matches[j] as Match;
        let node: Container = out;
        const last = m.keys.length - 1;
        for (let i = 1; i <= last; i++) {
          const original = m.parents[i] as Container;
          let copy = copies.get(original);
          if (copy === undefined) {
            copy = shallowCopy(original);
            copies.set(original, copy);
          }
          setMember(node, m.keys[i - 1] as Key, copy);
          node = copy;
        }
        setMember(node, m.keys[last] as Key, (entries[j] as ReidentificationEntry).token);
      }
      await this.#store.putDurable(entries);
    }
    this.#logApplied(entries.length);
    return { record: out, tokens: entries.length };
  }

  /**
   * applyAsync() on the record's JSON text itself, without making objects of it: the same values are
   * replaced by the same pseudonyms, the same errors are thrown (as rejections), and the mapping back is
   * durable when it resolves; the result is the text with the pseudonyms spliced in. Every occurrence
   * is replaced, also one JSON.parse would not keep (a member name repeated in an object), so that no
   * raw value can pass in the text. Resolves with undefined, replacing nothing, unless the text is valid
   * UTF-8 and one JSON object: JSON.parse then tells what is wrong with it.
   */
  async applyToText(text: Uint8Array): Promise<PseudonymizedText | undefined> {
    const scan = scanRecord(text, this.#trie);
    if (scan === undefined) return undefined;
    if (scan.spans.length === 0) return { line: new NdjsonLine(text), tokens: 0 };
    const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text.buffer, text.byteOffset, text.byteLength);
    const spans = scan.spans;
    const entries: ReidentificationEntry[] = [];
    const replacements: Replacement[] = [];
    // (indexed loops: iterators and destructuring would allocate on every record)
    for (let i = 0; i < spans.length; i++) {
      const span = spans[i] as ValueSpan;
      const first = bytes[span.start];
      let value: unknown;
      if (first === 0x22) {
        value = span.escaped
          ? JSON.parse(bytes.toString('utf8', span.start, span.end))
          : bytes.toString('utf8', span.start + 1, span.end - 1);
      } else if (first === 0x2d || (first !== undefined && first >= 0x30 && first <= 0x39)) {
        value = Number(bytes.toString('latin1', span.start, span.end));
      } else {
        value = first === 0x7b ? {} : first === 0x5b ? [] : first === 0x74;
      }
      if (typeof value !== 'string' && !(typeof value === 'number' && Number.isFinite(value))) {
        // The same scan again, with the spans' keys this time, to name the value.
        const path = formatJsonPath(scanJson(text, this.#trie, { keys: true })?.spans[i]?.keys ?? []);
        throw new UnsupportedValueError(
          `${path} is ${kindOf(value)}; only strings and numbers can be pseudonymized`,
          path,
        );
      }
      const token = this.#keys.pseudonym(value);
      // Only a new pseudonym's way back has to be stored (and waited for).
      if (!this.#store.has(token)) entries.push({ token, value });
      replacements.push({ start: span.start, end: span.end, string: token });
    }
    if (entries.length > 0) await this.#store.putDurable(entries);
    this.#logApplied(replacements.length);
    return { line: new NdjsonLine(bytes, replacements), tokens: replacements.length };
  }

  #check(record: unknown): Record<string, unknown> {
    if (!isContainer(record) || Array.isArray(record)) {
      throw new InvalidRecordError(`a record must be a JSON object, got ${kindOf(record)}`);
    }
    return record;
  }

  #logApplied(tokens: number): void {
    if (this.#log.isLevelEnabled('debug')) {
      this.#log.debug({ tokens, version: this.#keys.activeVersion }, 'pseudonymized');
    }
  }

  /** The original value of a pseudonym (with its type), or undefined if this gateway never made it. */
  reidentify(token: string): PseudonymizableValue | undefined {
    return this.#store.get(token);
  }

  /**
   * Every location to replace, in path order, each once; throws {@link UnsupportedValueError} for the
   * first match that cannot be pseudonymized. Reads the record only.
   */
  #find(root: Record<string, unknown>): Match[] {
    const walk: Walk = {
      parents: [],
      keys: [],
      matches: [],
      // Only paths that can name the same location need to remember what they matched.
      done: this.#overlapping ? new Set() : undefined,
    };
    for (const path of this.#paths) this.#walk(root, path.segments, 0, walk);
    return walk.matches;
  }

  #walk(node: Container, segments: readonly PathSegment[], i: number, walk: Walk): void {
    const seg = segments[i] as PathSegment;
    if (seg.kind === 'member') {
      if (!Array.isArray(node) && Object.hasOwn(node, seg.name))
        this.#visit(node, seg.name, segments, i, walk);
    } else if (seg.kind === 'index') {
      if (Array.isArray(node) && seg.index < node.length) this.#visit(node, seg.index, segments, i, walk);
    } else if (Array.isArray(node)) {
      for (let k = 0; k < node.length; k++) this.#visit(node, k, segments, i, walk);
    } else {
      for (const k of Object.keys(node)) this.#visit(node, k, segments, i, walk);
    }
  }

  #visit(node: Container, key: Key, segments: readonly PathSegment[], i: number, walk: Walk): void {
    const child = (node as Record<Key, unknown>)[key];
    if (i < segments.length - 1) {
      // a scalar (or null) where the path goes deeper: the path is missing
      if (!isContainer(child)) return;
      walk.parents.push(node);
      walk.keys.push(key);
      this.#walk(child, segments, i + 1, walk);
      walk.parents.pop();
      walk.keys.pop();
      return;
    }
    if (child === null) return;
    if (typeof child !== 'string' && !(typeof child === 'number' && Number.isFinite(child))) {
      // (a location already matched through another path held a string or a number)
      const path = formatJsonPath([...walk.keys, key]);
      throw new UnsupportedValueError(
        `${path} is ${kindOf(child)}; only strings and numbers can be pseudonymized`,
        path,
      );
    }
    const keys = [...walk.keys, key];
    if (walk.done !== undefined) {
      const where = JSON.stringify(keys);
      if (walk.done.has(where)) return; // already matched through another path
      walk.done.add(where);
    }
    walk.matches.push({ parents: [...walk.parents, node], keys, value: child });
  }
}

/** State of one #find(). */
interface Walk {
  /** The containers and keys from the record down to the node being visited. */
  readonly parents: Container[];
  readonly keys: Key[];
  readonly matches: Match[];
  /** Locations matched so far (their keys as JSON), when paths can overlap. */
  readonly done: Set<string> | undefined;
}

/**
 * Whether two paths can name the same location: the same number of segments, and at each position a
 * wildcard, or the same member name, or the same index (a member never names an array element).
 */
function canOverlap(a: readonly PathSegment[], b: readonly PathSegment[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as PathSegment;
    const y = b[i] as PathSegment;
    if (x.kind === 'wildcard' || y.kind === 'wildcard') continue;
    if (x.kind === 'member' && y.kind === 'member' && x.name === y.name) continue;
    if (x.kind === 'index' && y.kind === 'index' && x.index === y.index) continue;
    return false;
  }
  return true;
}
