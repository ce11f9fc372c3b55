/**
 * The local S3's storage, all under the data dir:
 *
 * - `s3/{bucket}/{key}`: each object is a plain file holding exactly its bytes (so DuckDB and any other
 *   tool can read the lake in place); a folder marker `a/b/` is the directory `a/b`.
 * - `s3-meta/{bucket}/bucket.json`: the bucket's creation date and region.
 * - `s3-meta/{bucket}/objects/{hh}/{sha256(key)}.json`: an object's metadata (ETag, size, content
 *   headers, user metadata, checksum). Keyed by a hash of the key so that it can never clash with
 *   another key's file or directory. A metadata file whose size or mtime no longer matches the object's
 *   file is stale (the file was written by something else): such objects, and files dropped into the
 *   bucket directory by hand, are served with metadata derived from the file.
 * - `s3-tmp/`: bodies being received; complete ones are fsynced and renamed into place, so an object is
 *   replaced atomically and readers never see a partial file.
 * - `s3-uploads/{uploadId}/`: multipart uploads in progress (`upload.json`, `part-NNNNN` and
 *   `part-NNNNN.json`).
 *
 * Because keys are paths, a key cannot be both an object and a prefix of other keys' paths (`a` and
 * `a/b`): the second write is refused with `InvalidArgument` naming the conflicting key.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  constants as fsConstants,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  rmSync,
  statSync,
} from 'node:fs';
import {
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  stat,
  unlink,
} from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { readJsonFile, writeFileAtomic } from '../store.js';
import { CHECKSUM_ALGORITHMS, type ChecksumAlgorithm, type ChecksumType } from './checksums.js';
import { invalidArgument, S3Error } from './errors.js';
import { compareKeys, isFolderKey, keySegments } from './names.js';

export interface StoredChecksum {
  algorithm: ChecksumAlgorithm;
  /** Base64; `...-N` for a COMPOSITE checksum of N parts. */
  value: string;
  type: ChecksumType;
}

/** The headers stored with an object and returned on GET and HEAD. */
export interface ContentHeaders {
  contentType?: string;
  contentEncoding?: string;
  contentDisposition?: string;
  contentLanguage?: string;
  cacheControl?: string;
  expires?: string;
}

export interface ObjectMeta extends ContentHeaders {
  key: string;
  size: number;
  /** Quoted, as S3 returns it. */
  etag: string;
  /** ms since the epoch. */
  lastModified: number;
  /** The file's mtime when the object was written (detects files changed behind S3's back). */
  mtimeMs: number;
  /** `x-amz-meta-*` without the prefix, lower-case names. */
  userMetadata: Record<string, string>;
  storageClass?: string;
  checksum?: StoredChecksum;
  /** For objects made by CompleteMultipartUpload: the size of each part, in order. */
  partSizes?: number[];
  /** Metadata derived from a file without (fresh) metadata. */
  derived?: boolean;
}

/** What the writer of an object decides; the store adds size, mtime and key. */
export type NewObjectMeta = Omit<ObjectMeta, 'key' | 'size' | 'mtimeMs' | 'lastModified' | 'derived'>;

export interface BucketInfo {
  name: string;
  /** ms since the epoch. */
  creationDate: number;
  region: string;
}

export interface UploadInfo extends ContentHeaders {
  uploadId: string;
  bucket: string;
  key: string;
  /** ms since the epoch. */
  initiated: number;
  userMetadata: Record<string, string>;
  storageClass?: string;
  checksumAlgorithm?: ChecksumAlgorithm;
  checksumType?: ChecksumType;
  initiator: string;
}

export interface PartInfo {
  partNumber: number;
  etag: string;
  size: number;
  lastModified: number;
  /** Base64 checksums of the part, by algorithm. */
  checksums: Partial<Record<ChecksumAlgorithm, string>>;
}

/** A file being received in `s3-tmp/`. */
export class TempFile {
  private closed = false;
  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
  ) {}

  static async create(dir: string): Promise<TempFile> {
    const path = join(dir, `${Date.now().toString(36)}-${randomBytes(9).toString('base64url')}`);
    const handle = await open(path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o644);
    return new TempFile(path, handle);
  }

  async write(data: Uint8Array): Promise<void> {
    let off = 0;
    while (off < data.length) {
      const { bytesWritten } = await this.handle.write(data, off, data.length - off);
      off += bytesWritten;
    }
  }

  /** Flushes the bytes to disk and closes the file, ready to be renamed into place. */
  async finish(): Promise<void> {
    await this.handle.sync();
    await this.close();
  }

  async discard(): Promise<void> {
    await this.close().catch(() => {});
    await rm(this.path, { force: true }).catch(() => {});
  }

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}

function isCode(err: unknown, ...codes: string[]): boolean {
  return codes.includes((err as NodeJS.ErrnoException)?.code ?? '');
}

const ChecksumSchema = z.object({
  algorithm: z.enum(CHECKSUM_ALGORITHMS),
  value: z.string(),
  type: z.enum(['COMPOSITE', 'FULL_OBJECT']),
});

const ContentHeadersShape = {
  contentType: z.string().optional(),
  contentEncoding: z.string().optional(),
  contentDisposition: z.string().optional(),
  contentLanguage: z.string().optional(),
  cacheControl: z.string().optional(),
  expires: z.string().optional(),
};

const ObjectMetaSchema = z.object({
  ...ContentHeadersShape,
  key: z.string(),
  size: z.number(),
  etag: z.string(),
  lastModified: z.number(),
  mtimeMs: z.number(),
  userMetadata: z.record(z.string(), z.string()),
  storageClass: z.string().optional(),
  checksum: ChecksumSchema.optional(),
  partSizes: z.array(z.number()).optional(),
});

const UploadInfoSchema = z.object({
  ...ContentHeadersShape,
  uploadId: z.string(),
  bucket: z.string(),
  key: z.string(),
  initiated: z.number(),
  userMetadata: z.record(z.string(), z.string()),
  storageClass: z.string().optional(),
  checksumAlgorithm: z.enum(CHECKSUM_ALGORITHMS).optional(),
  checksumType: z.enum(['COMPOSITE', 'FULL_OBJECT']).optional(),
  initiator: z.string(),
});

const BucketInfoSchema = z.object({ name: z.string(), creationDate: z.number(), region: z.string() });

const PartInfoSchema = z.object({
  partNumber: z.number().int(),
  etag: z.string(),
  size: z.number(),
  lastModified: z.number(),
  checksums: z.partialRecord(z.enum(CHECKSUM_ALGORITHMS), z.string()),
});

/**
 * Reads a state file of this store; undefined if it is missing or unreadable (an unreadable object
 * metadata file makes the object's metadata derived from its file; an unreadable upload is gone).
 */
async function readJson<T>(path: string, schema: z.ZodType<T>): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isCode(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) return undefined;
    throw err;
  }
  try {
    const parsed = schema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Not every filesystem allows fsync on a directory; the rename is atomic regardless.
  }
}

/** A quoted ETag for a file whose metadata is unknown: stable while the file is unchanged. */
function derivedEtag(size: number, mtimeMs: number): string {
  return `"${createHash('md5').update(`derived:${size}:${mtimeMs}`).digest('hex')}"`;
}

/** Serializes async work per name (object keys, upload ids) within this process. */
class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(name) ?? Promise.resolve();
    let release!: () => void;
    const current = new Promise<void>((r) => {
      release = r;
    });
    const tail = previous.then(() => current);
    this.tails.set(name, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(name) === tail) this.tails.delete(name);
    }
  }
}

export interface WalkOptions {
  prefix: string;
  /** Only keys after this one (S3's `start-after` / continuation). */
  after?: string;
  /** `after` was a common prefix: every key under it has been returned already. */
  afterIsPrefix?: boolean;
  /** Set by the consumer while walking: keys under this prefix are skipped (a common prefix was emitted). */
  skipPrefix?: string;
}

const UPLOAD_ID_RE = /^[A-Za-z0-9_-]{16,128}$/;

export class ObjectStore {
  readonly objectsRoot: string;
  private readonly metaRoot: string;
  readonly tmpDir: string;
  private readonly uploadsRoot: string;
  private readonly locks = new KeyedLock();

  constructor(dataDir: string) {
    this.objectsRoot = join(dataDir, 's3');
    this.metaRoot = join(dataDir, 's3-meta');
    this.tmpDir = join(dataDir, 's3-tmp');
    this.uploadsRoot = join(dataDir, 's3-uploads');
    for (const d of [this.objectsRoot, this.metaRoot, this.uploadsRoot]) mkdirSync(d, { recursive: true });
    // Bodies whose request never completed (the process stopped mid-upload) are of no use.
    rmSync(this.tmpDir, { recursive: true, force: true });
    mkdirSync(this.tmpDir, { recursive: true });
  }

  // -- buckets ------------------------------------------------------------------------------------

  private bucketDir(bucket: string): string {
    return join(this.objectsRoot, bucket);
  }

  private bucketInfoPath(bucket: string): string {
    return join(this.metaRoot, bucket, 'bucket.json');
  }

  bucketInfo(bucket: string): BucketInfo | undefined {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(this.bucketDir(bucket));
    } catch {
      return undefined;
    }
    if (!st.isDirectory()) return undefined;
    try {
      const info = BucketInfoSchema.safeParse(readJsonFile<unknown>(this.bucketInfoPath(bucket)));
      if (info.success) return { ...info.data, name: bucket };
    } catch {
      // Unreadable bucket metadata: fall back to what the directory tells.
    }
    // A directory made by hand (or by an older version) is a bucket too.
    return { name: bucket, creationDate: Math.floor(st.birthtimeMs || st.mtimeMs), region: '' };
  }

  listBuckets(): BucketInfo[] {
    const out: BucketInfo[] = [];
    for (const e of readdirSync(this.objectsRoot, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const info = this.bucketInfo(e.name);
      if (info) out.push(info);
    }
    return out.sort((a, b) => compareKeys(a.name, b.name));
  }

  /** Creates the bucket; false if it existed already. */
  createBucket(bucket: string, region: string): boolean {
    if (this.bucketInfo(bucket)) return false;
    mkdirSync(this.bucketDir(bucket), { recursive: true });
    writeFileAtomic(
      this.bucketInfoPath(bucket),
      `${JSON.stringify({ name: bucket, creationDate: Date.now(), region } satisfies BucketInfo)}\n`,
    );
    fsyncDir(this.objectsRoot);
    return true;
  }

  /** Deletes an empty bucket; `BucketNotEmpty` if it holds objects. */
  async deleteBucket(bucket: string): Promise<void> {
    for await (const _ of this.walk(bucket, { prefix: '' })) {
      throw new S3Error(409, 'BucketNotEmpty', 'The bucket you tried to delete is not empty', {
        BucketName: bucket,
      });
    }
    await rm(this.bucketDir(bucket), { recursive: true, force: true });
    await rm(join(this.metaRoot, bucket), { recursive: true, force: true });
  }

  // -- objects ------------------------------------------------------------------------------------

  /** The file (or, for a folder marker, directory) of a key; validates the key. */
  objectPath(bucket: string, key: string): string {
    return join(this.bucketDir(bucket), ...keySegments(key));
  }

  private metaPath(bucket: string, key: string): string {
    const h = createHash('sha256').update(key).digest('hex');
    return join(this.metaRoot, bucket, 'objects', h.slice(0, 2), `${h}.json`);
  }

  private async metaFor(
    bucket: string,
    key: string,
    st: { size: number; mtimeMs: number; isDirectory(): boolean },
  ): Promise<ObjectMeta | undefined> {
    const stored = await readJson(this.metaPath(bucket, key), ObjectMetaSchema);
    if (isFolderKey(key)) {
      // A folder marker exists only by its metadata; a bare directory is just a path prefix.
      return st.isDirectory() && stored ? stored : undefined;
    }
    if (st.isDirectory()) return undefined;
    if (stored && stored.size === st.size && stored.mtimeMs === st.mtimeMs) return stored;
    return {
      key,
      size: st.size,
      etag: derivedEtag(st.size, st.mtimeMs),
      lastModified: Math.floor(st.mtimeMs),
      mtimeMs: st.mtimeMs,
      contentType: 'binary/octet-stream',
      userMetadata: {},
      derived: true,
    };
  }

  /** The object's metadata, or undefined if there is no such object. */
  async head(bucket: string, key: string): Promise<ObjectMeta | undefined> {
    const path = this.objectPath(bucket, key);
    let st: Awaited<ReturnType<typeof stat>>;
    try {
      st = await stat(path);
    } catch (err) {
      if (isCode(err, 'ENOENT', 'ENOTDIR')) return undefined;
      throw err;
    }
    return this.metaFor(bucket, key, st);
  }

  /**
   * Opens an object for reading: the metadata returned belongs to the opened file even if the object
   * is replaced meanwhile (the open file keeps the old bytes).
   */
  async open(bucket: string, key: string): Promise<{ meta: ObjectMeta; handle?: FileHandle } | undefined> {
    if (isFolderKey(key)) {
      const meta = await this.head(bucket, key);
      return meta ? { meta } : undefined;
    }
    const path = this.objectPath(bucket, key);
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      if (isCode(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) return undefined;
      throw err;
    }
    try {
      const meta = await this.metaFor(bucket, key, await handle.stat());
      if (!meta) {
        await handle.close();
        return undefined;
      }
      return { meta, handle };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  newTemp(): Promise<TempFile> {
    return TempFile.create(this.tmpDir);
  }

  /** Runs `fn` while no other write or delete of the same key runs in this process. */
  withKeyLock<T>(bucket: string, key: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(`o\0${bucket}\0${key}`, fn);
  }

  private clash(key: string, other: string): S3Error {
    return invalidArgument(
      `Object key '${key}' conflicts with '${other}': the local S3 keeps objects as files, so a key cannot also be the directory of other keys (e.g. 'a' and 'a/b')`,
      'key',
      key,
    );
  }

  /** The shortest existing file among the parent directories of a key, as a key. */
  private async fileAmongParents(bucket: string, key: string): Promise<string | undefined> {
    const segments = keySegments(key);
    const last = isFolderKey(key) ? segments.length : segments.length - 1;
    for (let i = 1; i <= last; i++) {
      try {
        const st = await stat(join(this.bucketDir(bucket), ...segments.slice(0, i)));
        if (!st.isDirectory()) return segments.slice(0, i).join('/');
      } catch {
        return undefined;
      }
    }
    return undefined;
  }

  private async ensureParent(bucket: string, key: string, dir: string): Promise<void> {
    try {
      await mkdir(dir, { recursive: true });
    } catch (err) {
      if (isCode(err, 'ENOTDIR', 'EEXIST')) {
        throw this.clash(key, (await this.fileAmongParents(bucket, key)) ?? dirname(key));
      }
      throw err;
    }
  }

  /**
   * Puts a received body into place as the object `key`, atomically, under the key's lock.
   * `check` sees the current object first (conditional writes) and may throw to refuse.
   */
  async commit(
    bucket: string,
    key: string,
    temp: TempFile | undefined,
    meta: NewObjectMeta,
    check?: (existing: ObjectMeta | undefined) => void,
  ): Promise<ObjectMeta> {
    const path = this.objectPath(bucket, key);
    return this.withKeyLock(bucket, key, async () => {
      check?.(await this.head(bucket, key));
      let st: Awaited<ReturnType<typeof stat>> | undefined;
      for (let attempt = 0; ; attempt++) {
        try {
          if (isFolderKey(key)) {
            await this.ensureParent(bucket, key, path);
          } else {
            await this.ensureParent(bucket, key, dirname(path));
            if (!temp) throw new Error('an object needs a body');
            await rename(temp.path, path);
          }
          st = await stat(path);
          break;
        } catch (err) {
          // A concurrent delete may have pruned the empty parent directory just created; try again.
          if (isCode(err, 'ENOENT') && attempt < 3) continue;
          if (isCode(err, 'EISDIR', 'ENOTEMPTY', 'EEXIST')) throw this.clash(key, `${key}/...`);
          throw err;
        }
      }
      if (isFolderKey(key) ? !st.isDirectory() : st.isDirectory()) throw this.clash(key, key);
      fsyncDir(dirname(path));
      const full: ObjectMeta = {
        ...meta,
        key,
        size: isFolderKey(key) ? 0 : st.size,
        mtimeMs: st.mtimeMs,
        lastModified: Date.now(),
      };
      writeFileAtomic(this.metaPath(bucket, key), `${JSON.stringify(full)}\n`);
      return full;
    });
  }

  /** Deletes an object if it exists (and the directories it leaves empty). */
  async delete(bucket: string, key: string): Promise<void> {
    const path = this.objectPath(bucket, key);
    await this.withKeyLock(bucket, key, async () => {
      if (isFolderKey(key)) {
        await rm(this.metaPath(bucket, key), { force: true });
        await rmdir(path).catch(() => {});
      } else {
        try {
          await unlink(path);
        } catch (err) {
          if (!isCode(err, 'ENOENT', 'ENOTDIR', 'EISDIR', 'EPERM')) throw err;
        }
        await rm(this.metaPath(bucket, key), { force: true });
      }
      await this.pruneParents(bucket, dirname(path));
    });
  }

  private async pruneParents(bucket: string, from: string): Promise<void> {
    const root = this.bucketDir(bucket);
    let dir = from;
    while (dir.startsWith(`${root}/`)) {
      const key = `${dir.slice(root.length + 1)}/`;
      if (await readJson(this.metaPath(bucket, key), ObjectMetaSchema)) return; // a folder marker keeps its directory
      try {
        await rmdir(dir);
      } catch {
        return;
      }
      dir = dirname(dir);
    }
  }

  /**
   * Yields the bucket's keys in S3's order (UTF-8 binary), starting after `after`, limited to `prefix`.
   * Directories outside the prefix or wholly before `after` are not read.
   */
  async *walk(bucket: string, opts: WalkOptions): AsyncGenerator<string> {
    const { prefix } = opts;
    const included = (k: string) =>
      k.startsWith(prefix) &&
      (opts.after === undefined || compareKeys(k, opts.after) > 0) &&
      !(opts.afterIsPrefix && opts.after !== undefined && k.startsWith(opts.after)) &&
      !(opts.skipPrefix !== undefined && k.startsWith(opts.skipPrefix));
    const self = this;
    async function* visit(dir: string, keyPrefix: string): AsyncGenerator<string> {
      let entries: import('node:fs').Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if (isCode(err, 'ENOENT', 'ENOTDIR')) return;
        throw err;
      }
      const items = entries
        .filter((e) => e.isDirectory() || e.isFile())
        .map((e) => ({
          name: e.name,
          dir: e.isDirectory(),
          sortKey: e.isDirectory() ? `${e.name}/` : e.name,
        }))
        .sort((a, b) => compareKeys(a.sortKey, b.sortKey));
      for (const item of items) {
        const k = keyPrefix + item.sortKey;
        if (!item.dir) {
          if (included(k)) yield k;
          continue;
        }
        if (!(k.startsWith(prefix) || prefix.startsWith(k))) continue;
        if (opts.skipPrefix !== undefined && k.startsWith(opts.skipPrefix)) continue;
        if (opts.after !== undefined) {
          if (opts.afterIsPrefix && k.startsWith(opts.after)) continue;
          if (!opts.after.startsWith(k) && compareKeys(k, opts.after) < 0) continue;
        }
        if (included(k) && (await readJson(self.metaPath(bucket, k), ObjectMetaSchema))) yield k;
        yield* visit(join(dir, item.name), k);
      }
    }
    yield* visit(this.bucketDir(bucket), '');
  }

  // -- multipart uploads --------------------------------------------------------------------------

  private uploadDir(uploadId: string): string {
    return join(this.uploadsRoot, uploadId);
  }

  private partPath(uploadId: string, partNumber: number): string {
    return join(this.uploadDir(uploadId), `part-${String(partNumber).padStart(5, '0')}`);
  }

  async createUpload(info: Omit<UploadInfo, 'uploadId' | 'initiated'>): Promise<UploadInfo> {
    const upload: UploadInfo = {
      ...info,
      uploadId: randomBytes(36).toString('base64url'),
      initiated: Date.now(),
    };
    await mkdir(this.uploadDir(upload.uploadId), { recursive: true });
    writeFileAtomic(join(this.uploadDir(upload.uploadId), 'upload.json'), `${JSON.stringify(upload)}\n`);
    return upload;
  }

  async upload(uploadId: string): Promise<UploadInfo | undefined> {
    if (!UPLOAD_ID_RE.test(uploadId)) return undefined;
    return readJson(join(this.uploadDir(uploadId), 'upload.json'), UploadInfoSchema);
  }

  withUploadLock<T>(uploadId: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(`u\0${uploadId}`, fn);
  }

  /** Stores a received part (replacing an earlier upload of the same part number). */
  async putPart(uploadId: string, temp: TempFile, part: PartInfo): Promise<boolean> {
    return this.withUploadLock(uploadId, async () => {
      if (!(await this.upload(uploadId))) return false;
      const path = this.partPath(uploadId, part.partNumber);
      await rename(temp.path, path);
      writeFileAtomic(`${path}.json`, `${JSON.stringify(part)}\n`);
      return true;
    });
  }

  async listParts(uploadId: string): Promise<PartInfo[]> {
    let names: string[];
    try {
      names = await readdir(this.uploadDir(uploadId));
    } catch {
      return [];
    }
    const parts: PartInfo[] = [];
    for (const n of names.filter((x) => /^part-\d{5}\.json$/.test(x)).sort()) {
      const p = await readJson(join(this.uploadDir(uploadId), n), PartInfoSchema);
      if (p) parts.push(p);
    }
    return parts;
  }

  partFile(uploadId: string, partNumber: number): string {
    return this.partPath(uploadId, partNumber);
  }

  async removeUpload(uploadId: string): Promise<void> {
    if (!UPLOAD_ID_RE.test(uploadId)) return;
    await rm(this.uploadDir(uploadId), { recursive: true, force: true });
  }

  async listUploads(bucket: string): Promise<UploadInfo[]> {
    const out: UploadInfo[] = [];
    for (const id of await readdir(this.uploadsRoot)) {
      const u = await this.upload(id);
      if (u && u.bucket === bucket) out.push(u);
    }
    return out.sort((a, b) => compareKeys(a.key, b.key) || a.initiated - b.initiated);
  }
}
