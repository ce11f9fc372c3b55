/**
 * The pure Device Shadow document engine of the local cloud: no I/O, no MQTT, no HTTP. It takes the
 * stored shadow and the raw request bytes and returns the new stored shadow plus the documents AWS IoT
 * answers with (/update/accepted, /update/delta, /update/documents, /get/accepted, /delete/accepted)
 * or an error response document.
 *
 * Behaviour follows the AWS IoT Core Developer Guide pages "Device Shadow service documents",
 * "Interacting with shadows", "Device Shadow MQTT topics", "Device Shadow REST API", "Device Shadow
 * error messages", "Simulating Device Shadow service communications" and "Diagnosing problems with
 * shadows"; see test/conformance/shadow-documents.test.ts for the examples reproduced.
 */
import {
  checkSection,
  clone,
  decodeUtf8,
  deepEqual,
  isEmptyObject,
  isObject,
  type Json,
  type JsonObject,
  own,
  parseJson,
  put,
  remove,
  shallowCopy,
  utf8Length,
} from './json.js';

export type { Json, JsonObject } from './json.js';

/** What the service persists per (thing, shadowName). */
export interface StoredShadow {
  state: { desired?: JsonObject; reported?: JsonObject };
  /** Mirrors `state`: `{ timestamp }` per leaf value, one entry per array element. */
  metadata: { desired?: JsonObject; reported?: JsonObject };
  /** Version of the current document. */
  version: number;
  /** Epoch seconds of the last change. */
  timestamp: number;
}

/** The error response document published on .../rejected and returned by the REST API. */
export interface ShadowErrorDoc {
  code: number;
  message: string;
  timestamp: number;
  clientToken?: string;
}

export interface ShadowLimits {
  /** Bytes of desired + reported state (serialized JSON; metadata does not count). AWS: 8 KB. */
  maxStateBytes: number;
  /** Nesting levels of objects/arrays in a desired or reported section, the section itself being 1. */
  maxDepth: number;
  /** Size of the raw request payload. AWS IoT Core's MQTT message limit is 128 KB. */
  maxPayloadBytes: number;
  /** UTF-8 bytes of a client token. AWS: 64. */
  maxClientTokenBytes: number;
}

export const DEFAULT_SHADOW_LIMITS: ShadowLimits = Object.freeze({
  maxStateBytes: 8 * 1024,
  maxDepth: 6,
  maxPayloadBytes: 128 * 1024,
  maxClientTokenBytes: 64,
});

/**
 * A shadow that was deleted: recreating it within 48 hours continues from its version; after that
 * the version counter starts over ("Interacting with shadows", DELETE).
 */
export interface ShadowTombstone {
  version: number;
  /** Epoch seconds of the delete. */
  deletedAt: number;
}

/** How long a deleted shadow's version is remembered (48 hours). */
export const DELETED_VERSION_RETENTION_SECONDS = 48 * 60 * 60;

/** The messages of the "Device Shadow error messages" table, word for word. */
export const SHADOW_ERROR_MESSAGES = Object.freeze({
  invalidJson: 'Invalid JSON',
  missingState: 'Missing required node: state',
  stateNotObject: 'State node must be an object',
  desiredNotObject: 'Desired node must be an object',
  reportedNotObject: 'Reported node must be an object',
  invalidVersion: 'Invalid version',
  invalidClientToken: 'Invalid clientToken',
  /** Followed by `; maximum is <maxDepth>`. */
  tooDeep: 'JSON contains too many levels of nesting',
  invalidNode: 'State contains an invalid node',
  /** Followed by `: '<name>'`. */
  noShadow: 'No shadow exists with name',
  versionConflict: 'Version conflict',
  payloadTooLarge: 'The payload exceeds the maximum size allowed',
  unsupportedEncoding: 'Unsupported documented encoding; supported encoding is UTF-8',
});

export type UpdateOutcome =
  | { ok: true; shadow: StoredShadow; accepted: JsonObject; delta?: JsonObject; documents: JsonObject }
  | { ok: false; error: ShadowErrorDoc };

export function shadowError(
  code: number,
  message: string,
  now: number,
  clientToken?: string,
): ShadowErrorDoc {
  const doc: ShadowErrorDoc = { code, message, timestamp: Math.floor(now) };
  if (clientToken !== undefined) doc.clientToken = clientToken;
  return doc;
}

/** The 404 answer for a shadow that does not exist (`name`: shadow name, or thing name if classic). */
export function shadowNotFound(name: string, now: number, clientToken?: string): ShadowErrorDoc {
  return shadowError(404, `${SHADOW_ERROR_MESSAGES.noShadow}: '${name}'`, now, clientToken);
}

type Fail = { ok: false; error: ShadowErrorDoc };

function fail(code: number, message: string, ts: number, clientToken?: string): Fail {
  return { ok: false, error: shadowError(code, message, ts, clientToken) };
}

/**
 * The version an update is compared against and increments when there is no current shadow:
 * the deleted shadow's version if it was deleted less than 48 hours ago, otherwise 0.
 * A bare number is a deleted version whose delete time is unknown; it is always continued.
 */
export function baseVersion(deleted: number | ShadowTombstone | undefined, now: number): number {
  if (deleted === undefined) return 0;
  if (typeof deleted === 'number') return deleted;
  return now - deleted.deletedAt <= DELETED_VERSION_RETENTION_SECONDS ? deleted.version : 0;
}

type TokenResult = { ok: true; clientToken?: string } | { ok: false };

function readClientToken(doc: JsonObject, limits: ShadowLimits): TokenResult {
  if (!Object.hasOwn(doc, 'clientToken')) return { ok: true };
  const t = doc.clientToken;
  if (typeof t !== 'string' || utf8Length(t) > limits.maxClientTokenBytes) return { ok: false };
  return { ok: true, clientToken: t };
}

/** Metadata for a value just written: `{ timestamp }` per leaf (null included), per array element. */
function writeMetadata(v: Json, ts: number): Json {
  if (Array.isArray(v)) return v.map((e) => writeMetadata(e, ts));
  if (isObject(v)) {
    const out: JsonObject = {};
    for (const k of Object.keys(v)) put(out, k, writeMetadata(v[k] as Json, ts));
    return out;
  }
  return { timestamp: ts };
}

function hasNullLeaf(o: JsonObject): boolean {
  for (const k of Object.keys(o)) {
    const v = o[k] as Json;
    if (v === null || (isObject(v) && hasNullLeaf(v))) return true;
  }
  return false;
}

/**
 * Merges a request section into a stored section and its metadata: keys not in the patch are kept,
 * `null` removes a key, objects merge key by key, anything else (scalars, arrays) replaces the old
 * value whole. An object in the patch that lands where no object was and that holds only deletions
 * creates nothing.
 */
function mergeSection(
  oldValue: JsonObject | undefined,
  oldMeta: JsonObject | undefined,
  patch: JsonObject,
  ts: number,
): { value: JsonObject; meta: JsonObject } {
  const value = oldValue ? shallowCopy(oldValue) : {};
  const meta = oldMeta ? shallowCopy(oldMeta) : {};
  for (const k of Object.keys(patch)) {
    const p = patch[k] as Json;
    if (p === null) {
      remove(value, k);
      remove(meta, k);
      continue;
    }
    if (isObject(p)) {
      const ov = own(value, k);
      if (isObject(ov)) {
        const om = own(meta, k);
        const r = mergeSection(ov, isObject(om) ? om : undefined, p, ts);
        put(value, k, r.value);
        put(meta, k, r.meta);
        continue;
      }
      const r = mergeSection(undefined, undefined, p, ts);
      if (isEmptyObject(r.value) && hasNullLeaf(p)) {
        remove(value, k);
        remove(meta, k);
      } else {
        put(value, k, r.value);
        put(meta, k, r.meta);
      }
      continue;
    }
    put(value, k, clone(p));
    put(meta, k, writeMetadata(p, ts));
  }
  return { value, meta };
}

/**
 * The delta between desired and reported: every desired field whose value differs from reported
 * (or is missing there); objects are compared key by key and the delta keeps the path to the root;
 * arrays and scalars are compared whole. Reported-only fields never appear.
 */
export function computeDelta(desired: JsonObject | undefined, reported: JsonObject | undefined): JsonObject {
  const out: JsonObject = {};
  if (!desired) return out;
  for (const k of Object.keys(desired)) {
    const d = desired[k] as Json;
    const r = reported ? own(reported, k) : undefined;
    if (r === undefined) {
      put(out, k, clone(d));
    } else if (isObject(d) && isObject(r)) {
      const sub = computeDelta(d, r);
      if (!isEmptyObject(sub)) put(out, k, sub);
    } else if (!deepEqual(d, r)) {
      put(out, k, clone(d));
    }
  }
  return out;
}

/** The delta's metadata: the desired metadata of each field in the delta. */
function deltaMetadata(delta: JsonObject, desired: JsonObject, desiredMeta: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const k of Object.keys(delta)) {
    const dv = delta[k] as Json;
    const m = own(desiredMeta, k);
    if (m === undefined) continue;
    const src = own(desired, k);
    if (isObject(dv) && isObject(src) && isObject(m)) put(out, k, deltaMetadata(dv, src, m));
    else put(out, k, clone(m));
  }
  return out;
}

function sections(desired: JsonObject | undefined, reported: JsonObject | undefined): JsonObject {
  const out: JsonObject = {};
  if (desired) put(out, 'desired', clone(desired));
  if (reported) put(out, 'reported', clone(reported));
  return out;
}

/** `{ state, metadata, version }` as it appears in /update/documents `previous` and `current`. */
export function shadowSnapshot(shadow: StoredShadow): JsonObject {
  return {
    state: sections(shadow.state.desired, shadow.state.reported),
    metadata: sections(shadow.metadata.desired, shadow.metadata.reported),
    version: shadow.version,
  };
}

function withToken(doc: JsonObject, clientToken: string | undefined): JsonObject {
  if (clientToken !== undefined) doc.clientToken = clientToken;
  return doc;
}

type SectionPatch = JsonObject | null | undefined;

/**
 * Applies an update request (MQTT /update payload or UpdateThingShadow body).
 *
 * `deleted` describes a deleted shadow of the same name when `current` is undefined: its version
 * (continued as is) or a tombstone (continued only within 48 hours of the delete).
 */
export function applyUpdate(
  current: StoredShadow | undefined,
  payload: Uint8Array,
  now: number,
  limits: ShadowLimits = DEFAULT_SHADOW_LIMITS,
  deleted?: number | ShadowTombstone,
): UpdateOutcome {
  const ts = Math.floor(now);
  const M = SHADOW_ERROR_MESSAGES;
  if (payload.byteLength > limits.maxPayloadBytes) return fail(413, M.payloadTooLarge, ts);
  const text = decodeUtf8(payload);
  if (text === undefined) return fail(415, M.unsupportedEncoding, ts);
  const parsed = parseJson(text);
  if (!parsed.ok || !isObject(parsed.value)) return fail(400, M.invalidJson, ts);
  const request = parsed.value;

  const token = readClientToken(request, limits);
  if (!token.ok) return fail(400, M.invalidClientToken, ts);
  const clientToken = token.clientToken;
  const reject = (code: number, message: string): Fail => fail(code, message, ts, clientToken);

  let expectedVersion: number | undefined;
  if (Object.hasOwn(request, 'version')) {
    const v = request.version;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) return reject(400, M.invalidVersion);
    expectedVersion = v;
  }

  if (!Object.hasOwn(request, 'state')) return reject(400, M.missingState);
  const state = request.state as Json;
  // `"state": null` is valid: it empties the shadow without deleting it ("Interacting with shadows").
  if (state !== null && !isObject(state)) return reject(400, M.stateNotObject);

  let desiredPatch: SectionPatch;
  let reportedPatch: SectionPatch;
  if (state !== null) {
    for (const key of Object.keys(state)) {
      if (key !== 'desired' && key !== 'reported') return reject(400, `${M.invalidNode}: '${key}'`);
    }
    const d = own(state, 'desired');
    if (d !== undefined && d !== null && !isObject(d)) return reject(400, M.desiredNotObject);
    const r = own(state, 'reported');
    if (r !== undefined && r !== null && !isObject(r)) return reject(400, M.reportedNotObject);
    desiredPatch = d;
    reportedPatch = r;
    for (const [name, section] of [
      ['desired', d],
      ['reported', r],
    ] as const) {
      if (!isObject(section)) continue;
      const problem = checkSection(section, limits.maxDepth);
      if (!problem) continue;
      if (problem.kind === 'depth') return reject(400, `${M.tooDeep}; maximum is ${limits.maxDepth}`);
      if (problem.kind === 'null-in-array') {
        return reject(400, `${M.invalidNode}: '${name}.${problem.path}' (arrays can't hold null)`);
      }
      return reject(400, M.invalidJson);
    }
  }

  const base = current ? current.version : baseVersion(deleted, ts);
  if (expectedVersion !== undefined && expectedVersion !== base) return reject(409, M.versionConflict);

  let desired = current?.state.desired;
  let reported = current?.state.reported;
  let desiredMeta = current?.metadata.desired;
  let reportedMeta = current?.metadata.reported;
  if (state === null) {
    desired = reported = desiredMeta = reportedMeta = undefined;
  } else {
    if (desiredPatch === null) {
      desired = desiredMeta = undefined;
    } else if (desiredPatch !== undefined) {
      const m = mergeSection(desired, desiredMeta, desiredPatch, ts);
      desired = isEmptyObject(m.value) ? undefined : m.value;
      desiredMeta = desired ? m.meta : undefined;
    }
    if (reportedPatch === null) {
      reported = reportedMeta = undefined;
    } else if (reportedPatch !== undefined) {
      const m = mergeSection(reported, reportedMeta, reportedPatch, ts);
      reported = isEmptyObject(m.value) ? undefined : m.value;
      reportedMeta = reported ? m.meta : undefined;
    }
  }

  const stateBytes =
    (desired ? utf8Length(JSON.stringify(desired)) : 0) +
    (reported ? utf8Length(JSON.stringify(reported)) : 0);
  if (stateBytes > limits.maxStateBytes) return reject(413, M.payloadTooLarge);

  const version = base + 1;
  const shadow: StoredShadow = { state: {}, metadata: {}, version, timestamp: ts };
  if (desired) {
    shadow.state.desired = clone(desired);
    shadow.metadata.desired = clone(desiredMeta ?? {});
  }
  if (reported) {
    shadow.state.reported = clone(reported);
    shadow.metadata.reported = clone(reportedMeta ?? {});
  }

  // /update/accepted: the state as sent (nulls included) and metadata for exactly what was sent.
  const accepted = withToken(
    {
      state: clone(state),
      metadata: writeMetadata(state, ts),
      version,
      timestamp: ts,
    },
    clientToken,
  );

  // /update/delta: only when the request set desired state and desired now differs from reported;
  // it then carries every differing field, not just those in this request.
  let delta: JsonObject | undefined;
  if (isObject(desiredPatch) && shadow.state.desired) {
    const d = computeDelta(shadow.state.desired, shadow.state.reported);
    if (!isEmptyObject(d)) {
      delta = withToken(
        {
          state: d,
          metadata: deltaMetadata(d, shadow.state.desired, shadow.metadata.desired ?? {}),
          version,
          timestamp: ts,
        },
        clientToken,
      );
    }
  }

  const documents = withToken(
    {
      previous: current ? shadowSnapshot(current) : null,
      current: shadowSnapshot(shadow),
      timestamp: ts,
    },
    clientToken,
  );

  return delta ? { ok: true, shadow, accepted, delta, documents } : { ok: true, shadow, accepted, documents };
}

type RequestMeta = { ok: true; clientToken?: string } | Fail;

/** Reads an optional get request body: empty, or JSON that may carry a clientToken. */
function readOptionalRequest(payload: Uint8Array, ts: number, limits: ShadowLimits): RequestMeta {
  const M = SHADOW_ERROR_MESSAGES;
  if (payload.byteLength === 0) return { ok: true };
  if (payload.byteLength > limits.maxPayloadBytes) return fail(413, M.payloadTooLarge, ts);
  const text = decodeUtf8(payload);
  if (text === undefined) return fail(415, M.unsupportedEncoding, ts);
  if (text.trim() === '') return { ok: true };
  const parsed = parseJson(text);
  if (!parsed.ok) return fail(400, M.invalidJson, ts);
  if (!isObject(parsed.value)) return { ok: true };
  const token = readClientToken(parsed.value, limits);
  if (!token.ok) return fail(400, M.invalidClientToken, ts);
  return token;
}

/** The full shadow document of /get/accepted and GetThingShadow, delta included when there is one. */
export function shadowDocument(shadow: StoredShadow, now: number, clientToken?: string): JsonObject {
  const state = sections(shadow.state.desired, shadow.state.reported);
  const delta = computeDelta(shadow.state.desired, shadow.state.reported);
  if (!isEmptyObject(delta)) put(state, 'delta', delta);
  return withToken(
    {
      state,
      metadata: sections(shadow.metadata.desired, shadow.metadata.reported),
      version: shadow.version,
      timestamp: Math.floor(now),
    },
    clientToken,
  );
}

/**
 * Answers a get request (MQTT /get payload or GetThingShadow). `name` is what the 404 message names:
 * the shadow name of a named shadow, the thing name of the classic shadow.
 */
export function getShadow(
  current: StoredShadow | undefined,
  payload: Uint8Array,
  now: number,
  name = '',
  limits: ShadowLimits = DEFAULT_SHADOW_LIMITS,
): { ok: true; document: JsonObject } | { ok: false; error: ShadowErrorDoc } {
  const ts = Math.floor(now);
  const req = readOptionalRequest(payload, ts, limits);
  if (!req.ok) return req;
  if (!current) return { ok: false, error: shadowNotFound(name, ts, req.clientToken) };
  return { ok: true, document: shadowDocument(current, ts, req.clientToken) };
}

/**
 * Answers a delete request (MQTT /delete payload or DeleteThingShadow). The message content is
 * ignored ("Device Shadow MQTT topics", /delete) except a well-formed clientToken, which is echoed.
 * On success `deletedVersion` and `tombstone` say what to remember so a recreated shadow continues
 * the version (see `applyUpdate`'s `deleted`).
 */
export function deleteShadow(
  current: StoredShadow | undefined,
  payload: Uint8Array,
  now: number,
  name = '',
  limits: ShadowLimits = DEFAULT_SHADOW_LIMITS,
):
  | { ok: true; accepted: JsonObject; deletedVersion: number; tombstone: ShadowTombstone }
  | { ok: false; error: ShadowErrorDoc } {
  const ts = Math.floor(now);
  const req = readOptionalRequest(payload, ts, limits);
  const clientToken = req.ok ? req.clientToken : undefined;
  if (!current) return { ok: false, error: shadowNotFound(name, ts, clientToken) };
  return {
    ok: true,
    accepted: withToken({ version: current.version, timestamp: ts }, clientToken),
    deletedVersion: current.version,
    tombstone: { version: current.version, deletedAt: ts },
  };
}
