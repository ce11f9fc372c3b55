/**
 * Small, allocation-conscious JSON helpers for the shadow engine. Every object write goes through
 * `put` (a data property), and every read through `own`, so keys such as `__proto__`, `constructor`
 * or `toString` in client documents are stored and compared like any other key.
 */

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The own property `k` of `o`, or undefined (never an inherited member). */
export function own(o: JsonObject, k: string): Json | undefined {
  return Object.hasOwn(o, k) ? o[k] : undefined;
}

/** Sets `o[k] = v` as an own enumerable data property (safe for `__proto__`). */
export function put(o: JsonObject, k: string, v: Json): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

export function remove(o: JsonObject, k: string): void {
  if (Object.hasOwn(o, k)) delete o[k];
}

export function isEmptyObject(o: JsonObject): boolean {
  for (const k in o) if (Object.hasOwn(o, k)) return false;
  return true;
}

/** A shallow copy of an object (its values are shared). */
export function shallowCopy(o: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const k of Object.keys(o)) put(out, k, o[k] as Json);
  return out;
}

/** A deep copy. Only call on values whose depth has been bounded (documents, not raw requests). */
export function clone<T extends Json>(v: T): T {
  if (Array.isArray(v)) return v.map((e) => clone(e)) as T;
  if (isObject(v)) {
    const out: JsonObject = {};
    for (const k of Object.keys(v)) put(out, k, clone(v[k] as Json));
    return out as T;
  }
  return v;
}

/**
 * Structural equality of two JSON values: objects compared per key regardless of key order, arrays
 * element by element, numbers by value (so `1` and `1.0`, which parse to the same number, are equal).
 */
export function deepEqual(a: Json, b: Json): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!deepEqual(a[i] as Json, b[i] as Json)) return false;
    return true;
  }
  if (isObject(a)) {
    if (!isObject(b)) return false;
    const ka = Object.keys(a);
    if (ka.length !== Object.keys(b).length) return false;
    for (const k of ka) {
      if (!Object.hasOwn(b, k)) return false;
      if (!deepEqual(a[k] as Json, b[k] as Json)) return false;
    }
    return true;
  }
  return false;
}

const encoder = new TextEncoder();

export function utf8Length(s: string): number {
  return encoder.encode(s).length;
}

/** Decodes strict UTF-8 (a leading BOM is dropped); undefined when the bytes are not valid UTF-8. */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

export type ParsedJson = { ok: true; value: Json } | { ok: false };

export function parseJson(text: string): ParsedJson {
  try {
    return { ok: true, value: JSON.parse(text) as Json };
  } catch {
    return { ok: false };
  }
}

/** What is wrong inside a `desired` or `reported` section of a request, if anything. */
export type SectionProblem =
  | { kind: 'depth' }
  | { kind: 'null-in-array'; path: string }
  | { kind: 'non-finite-number'; path: string };

/**
 * Walks a request section. Nesting depth counts objects and arrays, the section object itself being
 * level 1; the walk stops as soon as `maxDepth` is exceeded, so it never recurses deeper than
 * `maxDepth + 1` however deep the input is. Also rejects null array elements (arrays can't hold null
 * values in a shadow) and numbers JSON.parse could only represent as Infinity.
 */
export function checkSection(section: JsonObject, maxDepth: number): SectionProblem | undefined {
  return walk(section, 1, maxDepth, '');
}

function walk(v: Json, level: number, maxDepth: number, path: string): SectionProblem | undefined {
  if (typeof v === 'number') {
    return Number.isFinite(v) ? undefined : { kind: 'non-finite-number', path };
  }
  if (v === null || typeof v !== 'object') return undefined;
  if (level > maxDepth) return { kind: 'depth' };
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const e = v[i] as Json;
      const p = `${path}[${i}]`;
      if (e === null) return { kind: 'null-in-array', path: p };
      const r = walk(e, level + 1, maxDepth, p);
      if (r) return r;
    }
    return undefined;
  }
  for (const k of Object.keys(v)) {
    const r = walk(v[k] as Json, level + 1, maxDepth, path === '' ? k : `${path}.${k}`);
    if (r) return r;
  }
  return undefined;
}
