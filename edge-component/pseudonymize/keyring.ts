/**
 * The pseudonymization keys: versions `k1`, `k2`, ... of at least 32 bytes each, one of them active.
 * New pseudonyms use the active version; older versions are kept so that the pseudonyms they made can
 * still be recomputed (and looked up).
 *
 * Sources: a key file for standalone runs (JSON `{ "active": "k2", "keys": { "k1": "<base64>", ... } }`,
 * refused when group or others have any access to it), or a {@link SecretSource} (Greengrass
 * SecretManager, implemented later) that yields the same JSON document.
 *
 * `rotate()` adds a random 32-byte version, makes it active and, for a file-backed ring, rewrites the
 * file atomically (temporary file with mode 0600, fsync, rename, fsync of the directory) before the new
 * version is used.
 */
import { createSecretKey, type KeyObject, randomBytes } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { inspect } from 'node:util';
import { z } from 'zod';
import { KeyFileError, KeyRingError } from './errors.js';
import { computeToken, KEY_VERSION_PATTERN, type PseudonymizableValue } from './token.js';

/** Minimum key length in bytes. */
export const MIN_KEY_BYTES = 32;
/** Length of keys made by rotate() and create(). */
export const NEW_KEY_BYTES = 32;
/** Pseudonyms remembered per key version (the oldest remembered one is dropped when full). */
export const TOKEN_CACHE_ENTRIES = 65_536;
/** Longer strings are never cached, so the cache's memory stays bounded. */
export const TOKEN_CACHE_MAX_STRING = 256;

/**
 * One key version: the KeyObject made once (not per HMAC) and a bounded cache value -> pseudonym.
 * A Map keeps `"123"` and `123` apart (SameValueZero), and `0`/`-0` share a pseudonym anyway (both are
 * `number:0`). Eviction drops the oldest inserted entry (Map iteration order).
 */
class VersionKey {
  readonly #key: KeyObject;
  readonly #cache = new Map<PseudonymizableValue, string>();

  constructor(
    readonly version: string,
    key: Buffer,
  ) {
    this.#key = createSecretKey(key);
  }

  token(value: PseudonymizableValue): string {
    const hit = this.#cache.get(value);
    if (hit !== undefined) return hit;
    const token = computeToken(this.version, this.#key, value); // throws for non-finite numbers
    if (typeof value === 'number' || value.length <= TOKEN_CACHE_MAX_STRING) {
      if (this.#cache.size >= TOKEN_CACHE_ENTRIES) {
        const oldest = this.#cache.keys().next();
        if (!oldest.done) this.#cache.delete(oldest.value);
      }
      this.#cache.set(value, token);
    }
    return token;
  }

  get cached(): number {
    return this.#cache.size;
  }
}

/**
 * Where the keys come from on a Greengrass core: a secret (AWS Secrets Manager, delivered by the
 * aws.greengrass.SecretManager component over IPC) whose value is the key file's JSON document.
 * Implemented later by the Greengrass IPC adapter.
 */
export interface SecretSource {
  /** Names the secret in errors and logs (e.g. its ARN); never the secret's value. */
  readonly name: string;
  /** The secret's current value: the key document as JSON text. */
  read(): Promise<string>;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const KeyDocumentSchema = z.strictObject(
  {
    active: z.string({
      error: (i) => (i.input === undefined ? 'is required' : 'must be a string'),
    }),
    keys: z.record(
      z.string().regex(KEY_VERSION_PATTERN, 'must be a key version (k1, k2, ...)'),
      z
        .string({ error: 'must be a base64 string' })
        .regex(BASE64, 'must be a base64 string')
        .refine(
          (s) => Buffer.from(s, 'base64').length >= MIN_KEY_BYTES,
          `must be at least ${MIN_KEY_BYTES} bytes (base64)`,
        ),
      {
        error: (i) =>
          i.input === undefined
            ? 'is required'
            : i.code === 'invalid_type'
              ? 'must be an object'
              : i.code === 'invalid_key'
                ? 'must be a key version (k1, k2, ...)'
                : undefined,
      },
    ),
  },
  { error: 'must be an object' },
);

function describeKeyIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const names =
        issue.code === 'unrecognized_keys' ? issue.keys.map((k) => [...issue.path, k]) : [issue.path];
      const msg = issue.code === 'unrecognized_keys' ? 'is not a known field' : issue.message;
      return names.map((p) => (p.length ? `${p.map(String).join('.')}: ${msg}` : msg)).join('; ');
    })
    .join('; ');
}

function versionNumber(v: string): number {
  return Number(v.slice(1));
}

/** Parses and checks a key document (the key file's JSON text). */
function parseKeyDocument(text: string, source: string): { active: string; keys: Map<string, Buffer> } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new KeyFileError(`key document ${source} is not valid JSON`, source, { cause: err });
  }
  const r = KeyDocumentSchema.safeParse(json);
  if (!r.success) {
    throw new KeyFileError(`invalid key document ${source}: ${describeKeyIssues(r.error)}`, source);
  }
  const keys = new Map<string, Buffer>();
  for (const [version, b64] of Object.entries(r.data.keys)) keys.set(version, Buffer.from(b64, 'base64'));
  if (keys.size === 0)
    throw new KeyFileError(`invalid key document ${source}: keys: must not be empty`, source);
  if (!keys.has(r.data.active)) {
    throw new KeyFileError(
      `invalid key document ${source}: active: ${JSON.stringify(r.data.active)} is not one of the keys (${[...keys.keys()].join(', ')})`,
      source,
    );
  }
  return { active: r.data.active, keys };
}

/** Writes `data` to `file` atomically: temp file (0600) + fsync + rename + fsync of the directory. */
async function writeFileAtomic(file: string, data: string): Promise<void> {
  const dir = dirname(file);
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(tmp, 'wx', 0o600);
    await handle.chmod(0o600); // whatever the umask
    await handle.writeFile(data, 'utf8');
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fsp.rename(tmp, file);
  } catch (err) {
    await handle?.close().catch(() => {});
    await fsp.rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
  // Make the rename durable. Some platforms cannot fsync a directory; the rename is done either way.
  const d = await fsp.open(dir, 'r').catch(() => undefined);
  if (d) {
    await d.sync().catch(() => {});
    await d.close();
  }
}

export class KeyRing {
  readonly #keys: Map<string, Buffer>;
  /** KeyObject and pseudonym cache per version, made on first use. */
  readonly #versionKeys = new Map<string, VersionKey>();
  #active: string;
  readonly #file: string | undefined;
  #rotation: Promise<unknown> = Promise.resolve();

  private constructor(keys: Map<string, Buffer>, active: string, file: string | undefined) {
    this.#keys = keys;
    this.#active = active;
    this.#file = file;
  }

  /** An in-memory ring (tests, or keys obtained elsewhere). Keys must be at least 32 bytes. */
  static fromKeys(active: string, keys: Readonly<Record<string, Uint8Array>>): KeyRing {
    const map = new Map<string, Buffer>();
    for (const [version, key] of Object.entries(keys)) {
      if (!KEY_VERSION_PATTERN.test(version)) {
        throw new KeyRingError(`keys.${version}: must be a key version (k1, k2, ...)`);
      }
      if (key.length < MIN_KEY_BYTES) {
        throw new KeyRingError(`keys.${version}: must be at least ${MIN_KEY_BYTES} bytes, got ${key.length}`);
      }
      map.set(version, Buffer.from(key));
    }
    if (!map.has(active)) throw new KeyRingError(`active: ${JSON.stringify(active)} is not one of the keys`);
    return new KeyRing(map, active, undefined);
  }

  /** An in-memory ring with one random key, `k1`. */
  static generate(): KeyRing {
    return new KeyRing(new Map([['k1', randomBytes(NEW_KEY_BYTES)]]), 'k1', undefined);
  }

  /**
   * Loads a key file. Refuses a file that is not a regular file or that group or others may access
   * (it must be mode 0600 or 0400); rotate() then rewrites this file.
   */
  static async load(file: string): Promise<KeyRing> {
    let text: string;
    let handle: fsp.FileHandle | undefined;
    try {
      handle = await fsp.open(file, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
      const st = await handle.stat();
      if (!st.isFile()) throw new KeyFileError(`key file ${file} is not a regular file`, file);
      if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
        throw new KeyFileError(
          `key file ${file} is accessible by group or others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); refusing to use it: run chmod 600 ${file}`,
          file,
        );
      }
      text = await handle.readFile('utf8');
    } catch (err) {
      if (err instanceof KeyFileError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      throw new KeyFileError(`cannot read key file ${file}${code ? ` (${code})` : ''}`, file, { cause: err });
    } finally {
      await handle?.close().catch(() => {});
    }
    const doc = parseKeyDocument(text, file);
    return new KeyRing(doc.keys, doc.active, file);
  }

  /** Creates a new key file (mode 0600) with one random key `k1`; refuses to overwrite an existing file. */
  static async create(file: string): Promise<KeyRing> {
    const ring = new KeyRing(new Map([['k1', randomBytes(NEW_KEY_BYTES)]]), 'k1', file);
    try {
      await fsp.access(file);
      throw new KeyFileError(`key file ${file} already exists; refusing to overwrite it`, file);
    } catch (err) {
      if (err instanceof KeyFileError) throw err;
    }
    try {
      await writeFileAtomic(file, ring.#document());
    } catch (err) {
      throw new KeyFileError(`cannot write key file ${file}`, file, { cause: err });
    }
    return ring;
  }

  /** Reads the keys from a secret (same JSON document as the key file). rotate() stays in memory. */
  static async fromSecret(source: SecretSource): Promise<KeyRing> {
    let text: string;
    try {
      text = await source.read();
    } catch (err) {
      throw new KeyFileError(`cannot read key secret ${source.name}`, source.name, { cause: err });
    }
    const doc = parseKeyDocument(text, `secret ${source.name}`);
    return new KeyRing(doc.keys, doc.active, undefined);
  }

  /** The version new pseudonyms are made with. */
  get activeVersion(): string {
    return this.#active;
  }

  /** Every version, oldest first. */
  get versions(): string[] {
    return [...this.#keys.keys()].sort((a, b) => versionNumber(a) - versionNumber(b));
  }

  /** The file rotate() writes, if any. */
  get file(): string | undefined {
    return this.#file;
  }

  has(version: string): boolean {
    return this.#keys.has(version);
  }

  /** The pseudonym of `value` under `version` (default: the active one). */
  pseudonym(value: PseudonymizableValue, version: string = this.#active): string {
    let vk = this.#versionKeys.get(version);
    if (vk === undefined) {
      const key = this.#keys.get(version);
      if (key === undefined) throw new KeyRingError(`unknown key version ${JSON.stringify(version)}`);
      vk = new VersionKey(version, key);
      this.#versionKeys.set(version, vk);
    }
    return vk.token(value);
  }

  /** Pseudonyms currently cached for `version` (diagnostics and tests; never the values). */
  cachedPseudonyms(version: string = this.#active): number {
    return this.#versionKeys.get(version)?.cached ?? 0;
  }

  /**
   * Adds a random 32-byte key version (one above the highest) and makes it active; old versions stay.
   * A file-backed ring writes the file first and switches only once that succeeded. Returns the new
   * version. Concurrent calls run one after the other.
   */
  rotate(): Promise<string> {
    const next = this.#rotation.then(() => this.#rotateNow());
    this.#rotation = next.catch(() => {});
    return next;
  }

  async #rotateNow(): Promise<string> {
    const highest = Math.max(...[...this.#keys.keys()].map(versionNumber));
    const version = `k${highest + 1}`;
    const keys = new Map(this.#keys).set(version, randomBytes(NEW_KEY_BYTES));
    if (this.#file !== undefined) {
      try {
        await writeFileAtomic(this.#file, KeyRing.#serialize(version, keys));
      } catch (err) {
        throw new KeyRingError(`cannot rotate: writing key file ${this.#file} failed`, { cause: err });
      }
    }
    this.#keys.set(version, keys.get(version) as Buffer);
    this.#active = version;
    return version;
  }

  static #serialize(active: string, keys: Map<string, Buffer>): string {
    const obj: Record<string, string> = {};
    for (const [v, k] of keys) obj[v] = k.toString('base64');
    return `${JSON.stringify({ active, keys: obj }, null, 2)}\n`;
  }

  #document(): string {
    return KeyRing.#serialize(this.#active, this.#keys);
  }

  /** Never reveals key material. */
  toJSON(): { active: string; versions: string[] } {
    return { active: this.#active, versions: this.versions };
  }

  [inspect.custom](): string {
    return `KeyRing { active: ${this.#active}, versions: [${this.versions.join(', ')}] }`;
  }
}
