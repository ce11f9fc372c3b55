/**
 * Works on a record's JSON text as it arrived, so that the ingest path need neither parse the record
 * into objects nor serialize it again (both cost more than one pass over the bytes):
 *
 * - {@link scanJson} checks that the text is one JSON value, by the grammar of RFC 8259 exactly as
 *   JSON.parse applies it, and finds the byte spans of the values at the configured paths;
 * - {@link NdjsonLine} makes one NDJSON line of the text (outer whitespace off, line breaks to spaces)
 *   with some of those spans replaced, and writes it where it goes.
 *
 * The text must be valid UTF-8 ({@link scanRecord} checks; JSON.parse of a decoded text would see U+FFFD
 * where the bytes are invalid). Line breaks can only be whitespace in a valid text (inside strings
 * they are escaped), so turning them into spaces never changes a value.
 */
import { isUtf8 } from 'node:buffer';
import type { PathSegment } from './json-path.js';

export type SpanKey = string | number;

/** A value at a configured path: its location (as pseudonymizer matches name it) and its bytes. */
export interface ValueSpan {
  /** Where the value is (only when the scan was asked for them: decoding names costs). */
  keys?: SpanKey[];
  /** Offset of the value's first byte (a string's opening quote). */
  start: number;
  /** Offset after its last byte. */
  end: number;
  /** A string value with escape sequences (decode it with JSON.parse). */
  escaped: boolean;
}

export interface JsonScan {
  /** The first byte of the top-level value (`{` for an object). */
  root: number;
  /**
   * Every non-null value at a path, in text order. A member that occurs twice in an object gives two
   * spans with the same keys (JSON.parse keeps the last one only).
   */
  spans: ValueSpan[];
}

/** The paths as a trie: the segments that can follow at one depth. */
interface Node {
  members: Map<string, Edge> | undefined;
  /** The same edges, for comparing member names as UTF-8 without decoding them. */
  memberEdges: Edge[] | undefined;
  indices: Map<number, Edge> | undefined;
  wildcard: Node | undefined;
  /** `[wildcard]`, made once. */
  wildcardOnly: Node[] | undefined;
  /** A path ends here. */
  terminal: boolean;
}

/** A named member or an index, and the lists of nodes it leads to from its node alone (made once). */
interface Edge {
  name: Uint8Array;
  node: Node;
  /** `[node]`, or `[wildcard, node]` when the parent has a wildcard too. */
  next: Node[];
}

const newNode = (): Node => ({
  members: undefined,
  memberEdges: undefined,
  indices: undefined,
  wildcard: undefined,
  wildcardOnly: undefined,
  terminal: false,
});

const edge = (name: string, node: Node): Edge => ({ name: Buffer.from(name), node, next: [node] });

/** Paths compiled once for {@link scanJson}. */
export class PathTrie {
  readonly root: Node = newNode();

  constructor(paths: readonly (readonly PathSegment[])[]) {
    for (const segments of paths) {
      let node = this.root;
      for (const seg of segments) {
        let next: Edge | undefined;
        if (seg.kind === 'member') {
          node.members ??= new Map();
          next = node.members.get(seg.name);
          if (!next) {
            next = edge(seg.name, newNode());
            node.members.set(seg.name, next);
            node.memberEdges ??= [];
            node.memberEdges.push(next);
          }
        } else if (seg.kind === 'index') {
          node.indices ??= new Map();
          next = node.indices.get(seg.index);
          if (!next) {
            next = edge('', newNode());
            node.indices.set(seg.index, next);
          }
        } else {
          node.wildcard ??= newNode();
          next = { name: Buffer.alloc(0), node: node.wildcard, next: [node.wildcard] };
        }
        node = next.node;
      }
      node.terminal = true;
    }
    finish(this.root);
  }
}

/** Makes the node lists of every edge, once the trie is complete. */
function finish(node: Node): void {
  const w = node.wildcard;
  if (w) {
    node.wildcardOnly = [w];
    finish(w);
  }
  for (const e of [...(node.members?.values() ?? []), ...(node.indices?.values() ?? [])]) {
    e.next = w ? [w, e.node] : [e.node];
    finish(e.node);
  }
}

/**
 * The nodes a member or an element leads to from `states`: `named` is the edge matching it in a node
 * (for one node, a list made once; for several, a new one), or undefined where none does.
 */
function nextStates(states: readonly Node[], named: (s: Node) => Edge | undefined): Node[] | undefined {
  if (states.length === 1) {
    const s = states[0] as Node;
    return named(s)?.next ?? s.wildcardOnly;
  }
  let next: Node[] | undefined;
  for (let j = 0; j < states.length; j++) {
    const s = states[j] as Node;
    if (s.wildcard) {
      next ??= [];
      next.push(s.wildcard);
    }
    const e = named(s);
    if (e) {
      next ??= [];
      next.push(e.node);
    }
  }
  return next;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;
const LF = 0x0a;
const CR = 0x0d;
const NULL_START = 0x6e; // n

const isSpace = (c: number) => c === 0x20 || c === LF || c === CR || c === 0x09;
const isDigit = (c: number) => c >= ZERO && c <= NINE;

/** The bytes that may follow a backslash in a string (besides `u`). */
const SIMPLE_ESCAPE = new Uint8Array(256);
for (const c of '"\\/bfnrt') SIMPLE_ESCAPE[c.charCodeAt(0)] = 1;
const HEX = new Uint8Array(256);
for (const c of '0123456789abcdefABCDEF') HEX[c.charCodeAt(0)] = 1;

const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');
const NULL = Buffer.from('null');

/**
 * The scanner's state: module variables rather than an object's fields, so that the byte loops read
 * locals and context slots only (a scan runs to its end synchronously; scans never interleave).
 */
const EMPTY = new Uint8Array(0);
const NO_SPANS: ValueSpan[] = [];
let buf: Uint8Array = EMPTY;
let len = 0;
let escaped = false;
let spans: ValueSpan[] = [];
const keys: SpanKey[] = [];
/** Whether spans get their keys. */
let withKeys = false;

/** Thrown (and caught in scanJson) where the text is not JSON. */
class NotJson extends Error {}

function fail(): never {
  throw new NotJson();
}

function ws(p: number): number {
  while (p < len && isSpace(buf[p] as number)) p++;
  return p;
}

/** From an opening quote to after the closing one; sets `escaped` when the string holds escapes. */
function string(p: number): number {
  escaped = false;
  for (p++; p < len; p++) {
    const c = buf[p] as number;
    if (c === QUOTE) return p + 1;
    if (c < 0x20) fail();
    if (c === BACKSLASH) {
      escaped = true;
      const e = buf[++p] as number;
      if (e === 0x75) {
        // \uXXXX
        if (p + 4 >= len) fail();
        for (let i = 1; i <= 4; i++) if (HEX[buf[p + i] as number] !== 1) fail();
        p += 4;
      } else if (SIMPLE_ESCAPE[e] !== 1) fail();
    }
  }
  return fail();
}

function digits(p: number): number {
  const from = p;
  while (p < len && isDigit(buf[p] as number)) p++;
  return p > from ? p : fail();
}

/** `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?` */
function number(p: number): number {
  if (buf[p] === MINUS) p++;
  if (buf[p] === ZERO) p++;
  else p = digits(p);
  if (buf[p] === DOT) p = digits(p + 1);
  const e = buf[p];
  if (e === 0x65 || e === 0x45) {
    p++;
    if (buf[p] === PLUS || buf[p] === MINUS) p++;
    p = digits(p);
  }
  return p;
}

function literal(p: number, word: Uint8Array): number {
  if (p + word.length > len) fail();
  for (let i = 0; i < word.length; i++) if (buf[p + i] !== word[i]) fail();
  return p + word.length;
}

/** One value whose location the trie nodes in `states` lead to (none: not on a path). */
function value(p: number, states: readonly Node[] | undefined): number {
  const c = buf[p];
  let end: number;
  let withEscapes = false;
  if (c === LBRACE) end = object(p, states);
  else if (c === LBRACKET) end = array(p, states);
  else if (c === QUOTE) {
    end = string(p);
    withEscapes = escaped;
  } else if (c === MINUS || (c !== undefined && isDigit(c))) end = number(p);
  else if (c === 0x74) end = literal(p, TRUE);
  else if (c === 0x66) end = literal(p, FALSE);
  else if (c === NULL_START) end = literal(p, NULL);
  else return fail();
  // (null is never replaced: there is nothing to hide)
  if (states !== undefined && c !== NULL_START) {
    for (let i = 0; i < states.length; i++) {
      if ((states[i] as Node).terminal) {
        const span: ValueSpan = { start: p, end, escaped: withEscapes };
        if (withKeys) span.keys = keys.slice();
        spans.push(span);
        break;
      }
    }
  }
  return end;
}

function decodeKey(start: number, end: number, withEscapes: boolean): string {
  const raw = Buffer.from(buf.buffer, buf.byteOffset + start, end - start);
  return withEscapes ? (JSON.parse(raw.toString()) as string) : raw.toString('utf8', 1, end - start - 1);
}

function sameBytes(start: number, end: number, name: Uint8Array): boolean {
  if (end - start !== name.length) return false;
  for (let i = 0; i < name.length; i++) if (buf[start + i] !== name[i]) return false;
  return true;
}

/** The trie nodes a member leads to from `states`, or undefined. */
function memberStates(states: readonly Node[], keyStart: number, keyEnd: number, withEscapes: boolean) {
  memberKeyStart = keyStart;
  memberKeyEnd = keyEnd;
  memberKey = withEscapes ? decodeKey(keyStart, keyEnd, true) : undefined;
  return nextStates(states, memberEdge);
}

/** The member being matched (module variables: no closure per member). */
let memberKeyStart = 0;
let memberKeyEnd = 0;
/** Its decoded name, when it holds escapes. */
let memberKey: string | undefined;

function memberEdge(s: Node): Edge | undefined {
  if (memberKey !== undefined) return s.members?.get(memberKey);
  const edges = s.memberEdges;
  if (edges === undefined) return undefined;
  for (let i = 0; i < edges.length; i++) {
    const e = edges[i] as Edge;
    if (sameBytes(memberKeyStart + 1, memberKeyEnd - 1, e.name)) return e;
  }
  return undefined;
}

/** The element being matched. */
let elementIndex = 0;

function elementEdge(s: Node): Edge | undefined {
  return s.indices?.get(elementIndex);
}

/** A member's or element's value at `key` (when spans get keys) that the nodes `next` lead to. */
function onPath(p: number, next: readonly Node[], key: SpanKey): number {
  if (!withKeys) return value(p, next);
  keys.push(key);
  const end = value(p, next);
  keys.pop();
  return end;
}

function object(p: number, states: readonly Node[] | undefined): number {
  p = ws(p + 1);
  if (buf[p] === RBRACE) return p + 1;
  for (;;) {
    if (buf[p] !== QUOTE) fail();
    const keyStart = p;
    p = string(p);
    const keyEnd = p;
    const withEscapes = escaped;
    p = ws(p);
    if (buf[p] !== COLON) fail();
    p = ws(p + 1);
    const next = states && memberStates(states, keyStart, keyEnd, withEscapes);
    p =
      next !== undefined
        ? onPath(p, next, withKeys ? decodeKey(keyStart, keyEnd, withEscapes) : '')
        : value(p, undefined);
    p = ws(p);
    const d = buf[p];
    if (d === RBRACE) return p + 1;
    if (d !== COMMA) fail();
    p = ws(p + 1);
  }
}

function array(p: number, states: readonly Node[] | undefined): number {
  p = ws(p + 1);
  if (buf[p] === RBRACKET) return p + 1;
  for (let index = 0; ; index++) {
    elementIndex = index;
    const next = states && nextStates(states, elementEdge);
    p = next !== undefined ? onPath(p, next, index) : value(p, undefined);
    p = ws(p);
    const d = buf[p];
    if (d === RBRACKET) return p + 1;
    if (d !== COMMA) fail();
    p = ws(p + 1);
  }
}

/**
 * Checks that `text` (valid UTF-8) is one JSON value, surrounded by whitespace only, and finds the
 * values at the paths of `trie`. Returns undefined when it is not JSON, or nests too deep to scan here
 * (JSON.parse then tells which, or takes it).
 */
export function scanJson(
  text: Uint8Array,
  trie: PathTrie,
  opts: { keys?: boolean } = {},
): JsonScan | undefined {
  buf = text;
  len = text.length;
  spans = [];
  keys.length = 0;
  withKeys = opts.keys === true;
  try {
    const start = ws(0);
    const end = ws(value(start, [trie.root]));
    return end === len ? { root: text[start] as number, spans } : undefined;
  } catch (err) {
    if (err instanceof NotJson || err instanceof RangeError) return undefined;
    throw err;
  } finally {
    buf = EMPTY;
    len = 0;
    spans = NO_SPANS;
  }
}

/**
 * {@link scanJson} of a record's bytes: undefined unless they are valid UTF-8 and one JSON object
 * (JSON.parse of the decoded text then tells what is wrong with them).
 */
export function scanRecord(text: Uint8Array, trie: PathTrie): JsonScan | undefined {
  if (!isUtf8(text)) return undefined;
  const scan = scanJson(text, trie);
  return scan?.root === LBRACE ? scan : undefined;
}

/** A byte range of a text to write a JSON string in place of. */
export interface Replacement {
  start: number;
  end: number;
  /** The string's content: ASCII that needs no escaping (no control characters, `"` or `\\`). */
  string: string;
}

/**
 * One NDJSON line made from a JSON text: the text without the whitespace around the value, line breaks
 * (whitespace between tokens) turned into spaces, and some spans replaced. It is written straight into
 * the buffer it goes to ({@link writeTo}), so that no intermediate copy is made.
 */
export class NdjsonLine {
  /** Bytes of the line. */
  readonly length: number;
  readonly #text: Buffer;
  readonly #from: number;
  readonly #to: number;
  readonly #replacements: readonly Replacement[];
  /** The text holds a line break (so the written bytes need a look). */
  readonly #breaks: boolean;

  constructor(text: Uint8Array, replacements: readonly Replacement[] = []) {
    this.#text = Buffer.isBuffer(text) ? text : Buffer.from(text.buffer, text.byteOffset, text.byteLength);
    let from = 0;
    let to = text.length;
    while (from < to && isSpace(text[from] as number)) from++;
    while (to > from && isSpace(text[to - 1] as number)) to--;
    this.#from = from;
    this.#to = to;
    this.#replacements = replacements;
    let length = to - from;
    for (const r of replacements) length += r.string.length + 2 - (r.end - r.start);
    this.length = length;
    const lf = this.#text.indexOf(LF, from);
    const cr = this.#text.indexOf(CR, from);
    this.#breaks = (lf !== -1 && lf < to) || (cr !== -1 && cr < to);
  }

  /** Writes the line into `out` at `at` (`out` must have room for {@link length} bytes there). */
  writeTo(out: Buffer, at: number): void {
    const text = this.#text;
    let from = this.#from;
    let o = at;
    for (const r of this.#replacements) {
      o += text.copy(out, o, from, r.start);
      out[o++] = QUOTE;
      o += out.write(r.string, o, 'latin1');
      out[o++] = QUOTE;
      from = r.end;
    }
    text.copy(out, o, from, this.#to);
    if (this.#breaks) {
      for (let i = at, end = at + this.length; i < end; i++) {
        const c = out[i];
        if (c === LF || c === CR) out[i] = 0x20;
      }
    }
  }

  /** The line in a buffer of its own (a view of the text when nothing changes). */
  toBuffer(): Buffer {
    if (this.#replacements.length === 0 && !this.#breaks) return this.#text.subarray(this.#from, this.#to);
    const out = Buffer.allocUnsafe(this.length);
    this.writeTo(out, 0);
    return out;
  }
}
