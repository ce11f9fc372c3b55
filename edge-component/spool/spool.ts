/**
 * The durable spool: named streams of entries kept on disk (one LMDB environment in a directory) until
 * they are acknowledged, modelled on Greengrass stream manager's `MessageStreamDefinition`
 * (`maxSize`, `streamSegmentSize`, `strategyOnFull`).
 *
 * Guarantees:
 * - An entry is durable (committed AND fsynced) before `append()`/`appendFile()` resolves: the
 *   environment is opened with `overlappingSync: false` (each LMDB commit syncs data and meta pages
 *   before it returns; `noSync`/`noMetaSync` are never set), and the spool also awaits `flushed`.
 *   Concurrent appends of one event turn share one commit (group commit).
 * - Sequence numbers per stream start at 1, increase by 1 per accepted entry and are never reused.
 * - Stored entries of a stream are always the contiguous range `[firstSeq, nextSeq)`: entries leave
 *   only from the front (ack, eviction of the oldest segment), so a reopened spool resumes reading at
 *   the first unacknowledged entry.
 * - Eviction (OverwriteOldestData) only removes entries of the stream being written to, a whole
 *   segment at a time, and is logged (warn) and counted.
 * - Blobs (`appendFile`) are written as files (temp + fsync + rename + fsync of the directory) before
 *   the entry that references them is committed; files nobody references (a crash between the two
 *   steps, or between a commit and an unlink) are removed when the spool opens.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, open as openFile, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';
import pino, { type Logger } from 'pino';
import { z } from 'zod';
import { systemClock } from '../clock.js';
import { describeIssues } from '../config.js';
import type { Clock } from '../ports.js';
import {
  SpoolAckError,
  SpoolClosedError,
  SpoolConfigError,
  SpoolFullError,
  type SpoolFullReason,
  SpoolStorageError,
  UnknownStreamError,
} from './errors.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/**
 * The size of lmdb's memory map. Left alone, lmdb-js starts with a small map and makes a new, larger
 * one each time the database outgrows it; the older maps stay mapped with their pages resident (the
 * spool of a busy gateway held 21 MB of them for a 9 MB file). One map sized for the streams' quotas
 * from the start avoids that: it is address space, not memory (only the pages read count), and the
 * file grows only with its data. A 32-bit process keeps lmdb-js's default (maps in chunks), as its
 * address space is small.
 */
function mapSizeFor(config: SpoolConfig): { mapSize?: number } {
  if (process.arch === 'arm' || process.arch === 'ia32') return {};
  const quota = config.streams.reduce((n, s) => n + s.maxSizeBytes, 0);
  // Twice the data, for the B-tree pages and the copies a transaction makes; lmdb grows it if need be.
  const data = Math.min(quota, config.maxTotalBytes ?? quota);
  return { mapSize: Math.min(4 * GiB, Math.max(64 * MiB, 2 * data)) };
}

/** Stream names double as directory names for blobs: letters, digits, `.`, `_`, `-`. */
const StreamNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/, 'must be 1-128 of A-Z a-z 0-9 . _ - (not starting with .)');

export const StreamConfigSchema = z
  .strictObject({
    name: StreamNameSchema,
    /** Payload (and blob) bytes the stream may hold; Greengrass's default is 256 MiB. */
    maxSizeBytes: z
      .int()
      .positive()
      .default(256 * MiB),
    /** Eviction unit; Greengrass's default is 16 MiB. */
    segmentSizeBytes: z
      .int()
      .positive()
      .default(16 * MiB),
    strategyOnFull: z.enum(['RejectNewData', 'OverwriteOldestData']),
    /** `critical` streams keep their room under `maxTotalBytes`; `bulk` ones give way. */
    priority: z.enum(['critical', 'bulk']).default('critical'),
  })
  .refine((s) => s.segmentSizeBytes <= s.maxSizeBytes, {
    message: 'must not be larger than maxSizeBytes',
    path: ['segmentSizeBytes'],
  });

export const SpoolConfigSchema = z
  .strictObject({
    /** Directory of the spool (created if missing): `spool.mdb` and `blobs/<stream>/`. */
    dir: z.string().min(1),
    streams: z.array(StreamConfigSchema).min(1),
    /** Bytes all streams together may hold; unset: no global limit. */
    maxTotalBytes: z.int().positive().optional(),
  })
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.streams.forEach((s, i) => {
      if (seen.has(s.name))
        ctx.addIssue({
          code: 'custom',
          message: `duplicate stream name '${s.name}'`,
          path: ['streams', i, 'name'],
        });
      seen.add(s.name);
    });
  });

export type StreamConfigInput = z.input<typeof StreamConfigSchema>;
export type StreamConfig = z.output<typeof StreamConfigSchema>;
export type SpoolConfigInput = z.input<typeof SpoolConfigSchema>;
export type SpoolConfig = z.output<typeof SpoolConfigSchema>;

const ReadOptionsSchema = z.strictObject({
  fromSeq: z.int().nonnegative().optional(),
  maxEntries: z.int().positive(),
  maxBytes: z.int().positive(),
});
export type ReadOptions = z.input<typeof ReadOptionsSchema>;

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** One entry, as `read()` returns it. */
export interface SpoolEntry {
  seq: number;
  /** When it was appended (ms since the epoch, from the spool's clock). */
  timestamp: number;
  metadata?: JsonValue;
  bytes: Uint8Array;
  /** Whether the payload was stored as a blob file (`appendFile`). */
  blob: boolean;
}

export interface StreamStats {
  name: string;
  priority: 'critical' | 'bulk';
  /** Entries stored and not yet acknowledged. */
  depth: number;
  /** Payload and blob bytes stored (acknowledged-out-of-order entries count until they are freed). */
  bytes: number;
  maxSizeBytes: number;
  /** Age of the oldest unacknowledged entry, or null when there is none. */
  oldestUnackedAgeMs: number | null;
  /** Unacknowledged entries lost to OverwriteOldestData, and their bytes, since the stream was created. */
  droppedEntries: number;
  droppedBytes: number;
  /** Segments dropped by OverwriteOldestData. */
  dropEvents: number;
  /** Last `ack`/`ackOne` (ms since the epoch), or null. */
  lastAckAt: number | null;
  /** The sequence number the next accepted entry gets. */
  nextSeq: number;
}

export interface SpoolStats {
  totalBytes: number;
  maxTotalBytes?: number;
  streams: StreamStats[];
}

/** What an append returns. */
export interface AppendResult {
  seq: number;
  /** Sequence range dropped to make room (OverwriteOldestData), oldest first. */
  dropped: { fromSeq: number; toSeq: number; entries: number; bytes: number }[];
}

export interface SpoolDeps {
  logger?: Logger;
  clock?: Clock;
}

interface Segment {
  id: number;
  firstSeq: number;
  lastSeq: number;
  bytes: number;
}

/** Persisted per-stream state (the `state` database, key = stream name). */
interface StreamState {
  nextSeq: number;
  /** First stored entry; everything before it is gone (acked or dropped). */
  firstSeq: number;
  /** Highest sequence acknowledged with `ack(upTo)` (or freed after `ackOne`). */
  ackedUpTo: number;
  /** Entries in [firstSeq, nextSeq) acknowledged out of order; kept (and counted) until freed. */
  acked: number[];
  segments: Segment[];
  nextSegmentId: number;
  droppedEntries: number;
  droppedBytes: number;
  dropEvents: number;
  lastAckAt: number | null;
}

/** An entry as stored: payload inline (`p`) or in a blob file (`f`). */
interface StoredEntry {
  t: number;
  n: number;
  m?: JsonValue;
  p?: Uint8Array;
  f?: string;
}

interface StreamRuntime {
  cfg: StreamConfig;
  state: StreamState;
  acked: Set<number>;
  entries: Database<StoredEntry, number>;
  blobDir: string;
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: Error };

function initialState(): StreamState {
  return {
    nextSeq: 1,
    firstSeq: 1,
    ackedUpTo: 0,
    acked: [],
    segments: [],
    nextSegmentId: 1,
    droppedEntries: 0,
    droppedBytes: 0,
    dropEvents: 0,
    lastAckAt: null,
  };
}

function streamBytes(st: StreamState): number {
  let n = 0;
  for (const s of st.segments) n += s.bytes;
  return n;
}

function isEnoent(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

function parseOrThrow<T extends z.ZodType>(schema: T, input: unknown, what: string): z.output<T> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issues = describeIssues(r.error);
  throw new SpoolConfigError(
    `invalid ${what}: ${issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ')}`,
    issues,
  );
}

async function fsyncDir(dir: string): Promise<void> {
  const h = await openFile(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

export class Spool {
  private readonly streams = new Map<string, StreamRuntime>();
  /** Bytes of streams on disk that are not configured any more (they still count against the total). */
  private orphanBytes = 0;
  private closed = false;
  private failed: Error | undefined;
  private readonly pending = new Set<Promise<unknown>>();

  private constructor(
    private readonly config: SpoolConfig,
    private readonly root: RootDatabase,
    private readonly stateDb: Database<StreamState, string>,
    private readonly metaDb: Database<JsonValue, string>,
    private readonly log: Logger,
    private readonly clock: Clock,
  ) {}

  /** Opens (creating if needed) the spool in `config.dir` and resumes its streams. */
  static async open(input: SpoolConfigInput, deps: SpoolDeps = {}): Promise<Spool> {
    const config = parseOrThrow(SpoolConfigSchema, input, 'spool configuration');
    const log = (deps.logger ?? pino({ level: 'silent' })).child({ component: 'spool' });
    await mkdir(join(config.dir, 'blobs'), { recursive: true });
    let root: RootDatabase;
    try {
      root = open({
        path: join(config.dir, 'spool.mdb'),
        // Durability: every commit fsyncs data and meta pages before the write promise resolves.
        // overlappingSync (the default off Windows) would resolve at commit and sync later.
        overlappingSync: false,
        noSync: false,
        noMetaSync: false,
        maxDbs: 2 + 2 * config.streams.length + 32,
        ...mapSizeFor(config),
      });
    } catch (err) {
      throw new SpoolStorageError(`cannot open the spool database in ${config.dir}`, { cause: err });
    }
    const stateDb = root.openDB<StreamState, string>('state', {});
    const metaDb = root.openDB<JsonValue, string>('meta', {});
    const spool = new Spool(config, root, stateDb, metaDb, log, deps.clock ?? systemClock);
    try {
      await spool.load();
    } catch (err) {
      await root.close();
      throw err;
    }
    return spool;
  }

  private async load(): Promise<void> {
    const fresh: string[] = [];
    for (const cfg of this.config.streams) {
      const entries = this.root.openDB<StoredEntry, number>(`entries:${cfg.name}`, {});
      const stored = this.stateDb.get(cfg.name);
      const state = stored ?? initialState();
      if (!stored) fresh.push(cfg.name);
      const blobDir = join(this.config.dir, 'blobs', cfg.name);
      this.streams.set(cfg.name, { cfg, state, acked: new Set(state.acked), entries, blobDir });
    }
    for (const { key, value } of this.stateDb.getRange({})) {
      if (!this.streams.has(key)) this.orphanBytes += streamBytes(value);
    }
    if (fresh.length > 0) {
      await this.commit(() => {
        for (const name of fresh) this.stateDb.putSync(name, this.streams.get(name)!.state);
        return { ok: true, value: undefined };
      });
    }
    for (const rt of this.streams.values()) await this.sweepBlobs(rt);
    this.log.info(
      { dir: this.config.dir, streams: [...this.streams.keys()], totalBytes: this.totalBytes() },
      'spool opened',
    );
  }

  /** Removes temp files and blob files no stored entry references. */
  private async sweepBlobs(rt: StreamRuntime): Promise<void> {
    let names: string[];
    try {
      names = await readdir(rt.blobDir);
    } catch (err) {
      if (isEnoent(err)) return;
      throw err;
    }
    if (names.length === 0) return;
    const referenced = new Set<string>();
    for (const { value } of rt.entries.getRange({ start: rt.state.firstSeq, end: rt.state.nextSeq })) {
      if (value.f) referenced.add(value.f);
    }
    const stray = names.filter((n) => !referenced.has(n));
    for (const n of stray) await unlink(join(rt.blobDir, n)).catch(() => undefined);
    if (stray.length > 0)
      this.log.info({ stream: rt.cfg.name, files: stray.length }, 'removed stray blob files');
  }

  private assertOpen(): void {
    if (this.closed) throw new SpoolClosedError('the spool is closed');
    if (this.failed)
      throw new SpoolStorageError('the spool failed to commit; reopen it', { cause: this.failed });
  }

  private stream(name: string): StreamRuntime {
    this.assertOpen();
    const rt = this.streams.get(name);
    if (!rt) throw new UnknownStreamError(name);
    return rt;
  }

  private totalBytes(): number {
    let n = this.orphanBytes;
    for (const rt of this.streams.values()) n += streamBytes(rt.state);
    return n;
  }

  /** Room kept for critical streams: what they may still grow to under their own maxSizeBytes. */
  private criticalReserve(): number {
    let n = 0;
    for (const rt of this.streams.values())
      if (rt.cfg.priority === 'critical') n += Math.max(0, rt.cfg.maxSizeBytes - streamBytes(rt.state));
    return n;
  }

  /**
   * Runs `work` inside an LMDB write transaction (queued in call order, batched with the other writes
   * of the event turn), then waits until the commit is durable. `work` must not throw: it reports a
   * refusal as `{ ok: false }` so that the batch it shares with other callers still commits.
   */
  private async commit<T>(work: () => Outcome<T>): Promise<T> {
    {
      let outcome: Outcome<T>;
      try {
        outcome = await this.root.transaction(() => {
          try {
            return work();
          } catch (err) {
            // A bug in `work` after it changed the in-memory view: fail closed.
            this.failed ??= err instanceof Error ? err : new Error(String(err));
            return { ok: false, error: err instanceof Error ? err : new Error(String(err)) } as Outcome<T>;
          }
        });
        await this.root.flushed;
      } catch (err) {
        this.failed ??= err instanceof Error ? err : new Error(String(err));
        throw new SpoolStorageError('spool commit failed', { cause: err });
      }
      if (!outcome.ok) throw outcome.error;
      return outcome.value;
    }
  }

  /** Runs a public operation so that close() waits for it. */
  private async track<T>(op: () => Promise<T>): Promise<T> {
    const run = op();
    this.pending.add(run);
    try {
      return await run;
    } finally {
      this.pending.delete(run);
    }
  }

  private persistState(rt: StreamRuntime): void {
    rt.state.acked = [...rt.acked].sort((a, b) => a - b);
    this.stateDb.putSync(rt.cfg.name, rt.state);
  }

  /**
   * Deletes the stored prefix up to `upTo` (inclusive) inside the current transaction. Returns the
   * blob files to unlink after the commit, and how many of the removed entries were unacknowledged.
   */
  private removePrefix(rt: StreamRuntime, upTo: number): { files: string[]; unacked: number; bytes: number } {
    const st = rt.state;
    const files: string[] = [];
    let unacked = 0;
    let bytes = 0;
    for (let seq = st.firstSeq; seq <= upTo && seq < st.nextSeq; seq++) {
      const e = rt.entries.get(seq);
      const n = e?.n ?? 0;
      if (e?.f) files.push(e.f);
      rt.entries.removeSync(seq);
      if (rt.acked.has(seq)) rt.acked.delete(seq);
      else unacked++;
      bytes += n;
      const seg = st.segments[0];
      if (seg) {
        seg.bytes -= n;
        seg.firstSeq = seq + 1;
        if (seg.lastSeq <= seq) st.segments.shift();
      }
      st.firstSeq = seq + 1;
    }
    return { files, unacked, bytes };
  }

  /** Frees leading entries that were acknowledged out of order. */
  private freeAckedFront(rt: StreamRuntime, files: string[]): void {
    const st = rt.state;
    while (st.firstSeq < st.nextSeq && rt.acked.has(st.firstSeq)) {
      const seq = st.firstSeq;
      files.push(...this.removePrefix(rt, seq).files);
      st.ackedUpTo = Math.max(st.ackedUpTo, seq);
    }
  }

  private async unlinkBlobs(rt: StreamRuntime, files: string[]): Promise<void> {
    for (const f of files) {
      await unlink(join(rt.blobDir, f)).catch((err: unknown) => {
        if (!isEnoent(err)) this.log.warn({ stream: rt.cfg.name, file: f, err }, 'cannot remove blob file');
      });
    }
  }

  private fullError(
    rt: StreamRuntime,
    reason: SpoolFullReason,
    entryBytes: number,
    reserved: number,
  ): SpoolFullError {
    const sBytes = streamBytes(rt.state);
    const total = this.totalBytes();
    const max = this.config.maxTotalBytes;
    const what =
      reason === 'entry-too-large'
        ? `entry of ${entryBytes} bytes is larger than the stream's maxSizeBytes ${rt.cfg.maxSizeBytes}`
        : reason === 'stream-full'
          ? `stream holds ${sBytes} of ${rt.cfg.maxSizeBytes} bytes (RejectNewData), entry of ${entryBytes} bytes`
          : `spool holds ${total} of maxTotalBytes ${max} bytes${reserved > 0 ? ` (${reserved} reserved for critical streams)` : ''}, entry of ${entryBytes} bytes`;
    return new SpoolFullError(`spool stream '${rt.cfg.name}' is full: ${what}`, rt.cfg.name, reason, {
      entryBytes,
      streamBytes: sBytes,
      maxSizeBytes: rt.cfg.maxSizeBytes,
      totalBytes: total,
      ...(max !== undefined ? { maxTotalBytes: max } : {}),
      reservedBytes: reserved,
    });
  }

  /** Why an entry of `size` bytes cannot be accepted now (before any eviction), or undefined. */
  private refusal(
    rt: StreamRuntime,
    size: number,
  ): { reason: SpoolFullReason; reserved: number } | undefined {
    if (size > rt.cfg.maxSizeBytes) return { reason: 'entry-too-large', reserved: 0 };
    const reserved = rt.cfg.priority === 'bulk' ? this.criticalReserve() : 0;
    const max = this.config.maxTotalBytes;
    const sBytes = streamBytes(rt.state);
    const overwrite = rt.cfg.strategyOnFull === 'OverwriteOldestData';
    // Room the stream could make by dropping its own entries (and only its own).
    const freeable = overwrite ? sBytes : 0;
    if (max !== undefined && this.totalBytes() - freeable + size + reserved > max)
      return { reason: 'total-full', reserved };
    if (sBytes - freeable + size > rt.cfg.maxSizeBytes) return { reason: 'stream-full', reserved };
    return undefined;
  }

  /** Drops the stream's oldest segments until `size` more bytes fit (call only when refusal() is undefined). */
  private makeRoom(rt: StreamRuntime, size: number, files: string[]): AppendResult['dropped'] {
    const dropped: AppendResult['dropped'] = [];
    const max = this.config.maxTotalBytes;
    const fits = () => {
      const reserved = rt.cfg.priority === 'bulk' ? this.criticalReserve() : 0;
      return (
        streamBytes(rt.state) + size <= rt.cfg.maxSizeBytes &&
        (max === undefined || this.totalBytes() + size + reserved <= max)
      );
    };
    while (!fits()) {
      const seg = rt.state.segments[0];
      if (!seg) break; // cannot happen after refusal() said it fits once the stream is empty
      const fromSeq = rt.state.firstSeq;
      const toSeq = seg.lastSeq;
      const r = this.removePrefix(rt, toSeq);
      files.push(...r.files);
      rt.state.droppedEntries += r.unacked;
      rt.state.droppedBytes += r.bytes;
      rt.state.dropEvents++;
      dropped.push({ fromSeq, toSeq, entries: r.unacked, bytes: r.bytes });
      this.log.warn(
        { stream: rt.cfg.name, fromSeq, toSeq, entries: r.unacked, bytes: r.bytes },
        'spool full: dropped the oldest segment (OverwriteOldestData)',
      );
    }
    return dropped;
  }

  private async appendStored(
    rt: StreamRuntime,
    size: number,
    make: (seq: number) => StoredEntry,
    onRefused?: () => Promise<void>,
  ): Promise<AppendResult> {
    const files: string[] = [];
    let result: AppendResult;
    try {
      result = await this.commit<AppendResult>(() => {
        const refused = this.refusal(rt, size);
        if (refused) return { ok: false, error: this.fullError(rt, refused.reason, size, refused.reserved) };
        const dropped = this.makeRoom(rt, size, files);
        const st = rt.state;
        const seq = st.nextSeq;
        let seg = st.segments[st.segments.length - 1];
        if (
          !seg ||
          seg.id !== st.nextSegmentId - 1 ||
          (seg.bytes > 0 && seg.bytes + size > rt.cfg.segmentSizeBytes)
        ) {
          seg = { id: st.nextSegmentId++, firstSeq: seq, lastSeq: seq, bytes: 0 };
          st.segments.push(seg);
        }
        seg.lastSeq = seq;
        seg.bytes += size;
        st.nextSeq = seq + 1;
        rt.entries.putSync(seq, make(seq));
        this.persistState(rt);
        return { ok: true, value: { seq, dropped } };
      });
    } catch (err) {
      if (onRefused) await onRefused();
      throw err;
    }
    await this.unlinkBlobs(rt, files);
    return result;
  }

  /**
   * Appends one entry; resolves with its sequence number once it is durable. The bytes are copied,
   * unless `stable` says that the caller leaves them unchanged until the returned promise settles.
   */
  async append(
    stream: string,
    bytes: Uint8Array,
    metadata?: JsonValue,
    opts: { stable?: boolean } = {},
  ): Promise<AppendResult> {
    const rt = this.stream(stream);
    const payload = opts.stable ? bytes : Uint8Array.from(bytes);
    const size = payload.byteLength;
    const t = this.clock.now();
    return this.track(() =>
      this.appendStored(rt, size, () => ({
        t,
        n: size,
        p: payload,
        ...(metadata !== undefined ? { m: metadata } : {}),
      })),
    );
  }

  /**
   * Appends one entry whose payload is kept in a file next to the database (for large blobs such as
   * frames). The file is durable (written to a temp file, fsynced, renamed, directory fsynced) before
   * the entry is committed; it is removed when the entry is acked or dropped.
   */
  async appendFile(stream: string, bytes: Uint8Array, metadata?: JsonValue): Promise<AppendResult> {
    const rt = this.stream(stream);
    const size = bytes.byteLength;
    const early = this.refusal(rt, size);
    if (early) throw this.fullError(rt, early.reason, size, early.reserved);
    return this.track(() => this.writeBlobAndAppend(rt, bytes, metadata));
  }

  private async writeBlobAndAppend(
    rt: StreamRuntime,
    bytes: Uint8Array,
    metadata?: JsonValue,
  ): Promise<AppendResult> {
    const stream = rt.cfg.name;
    const size = bytes.byteLength;
    await mkdir(rt.blobDir, { recursive: true });
    const id = randomUUID();
    const file = `${id}.blob`;
    const tmp = join(rt.blobDir, `.${id}.tmp`);
    try {
      const h = await openFile(tmp, 'wx', 0o600);
      try {
        await h.writeFile(bytes);
        await h.sync();
      } finally {
        await h.close();
      }
      await rename(tmp, join(rt.blobDir, file));
      await fsyncDir(rt.blobDir);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw new SpoolStorageError(`cannot write a blob file for stream '${stream}'`, { cause: err });
    }
    const t = this.clock.now();
    return this.appendStored(
      rt,
      size,
      () => ({ t, n: size, f: file, ...(metadata !== undefined ? { m: metadata } : {}) }),
      () => unlink(join(rt.blobDir, file)).catch(() => undefined),
    );
  }

  /**
   * Reads unacknowledged entries in order, from the first unacknowledged one (or `fromSeq`, if later),
   * skipping entries acknowledged out of order; stops at `maxEntries` or before exceeding `maxBytes`
   * (the first entry is returned even when it alone exceeds `maxBytes`).
   */
  async read(stream: string, options: ReadOptions): Promise<SpoolEntry[]> {
    const rt = this.stream(stream);
    const opts = parseOrThrow(ReadOptionsSchema, options, 'read options');
    const st = rt.state;
    const start = Math.max(opts.fromSeq ?? 0, st.firstSeq);
    const picked: { seq: number; e: StoredEntry }[] = [];
    let bytes = 0;
    for (const { key, value } of rt.entries.getRange({ start, end: st.nextSeq })) {
      if (rt.acked.has(key)) continue;
      if (picked.length >= opts.maxEntries) break;
      if (picked.length > 0 && bytes + value.n > opts.maxBytes) break;
      picked.push({ seq: key, e: value });
      bytes += value.n;
    }
    const out: SpoolEntry[] = [];
    for (const { seq, e } of picked) {
      let payload: Uint8Array;
      if (e.f !== undefined) {
        try {
          payload = await readFile(join(rt.blobDir, e.f));
        } catch (err) {
          // Acked or dropped meanwhile: the entry is gone, and so is everything before it.
          if (isEnoent(err) && seq < rt.state.firstSeq) continue;
          throw new SpoolStorageError(`cannot read the blob of ${stream}#${seq}`, { cause: err });
        }
      } else {
        payload = e.p ?? new Uint8Array(0);
      }
      out.push({
        seq,
        timestamp: e.t,
        ...(e.m !== undefined ? { metadata: e.m } : {}),
        bytes: payload,
        blob: e.f !== undefined,
      });
    }
    return out;
  }

  /** Acknowledges every entry up to `upToSeq` (inclusive) and frees them; durable when it resolves. */
  async ack(stream: string, upToSeq: number): Promise<void> {
    const rt = this.stream(stream);
    if (!Number.isSafeInteger(upToSeq) || upToSeq < 0)
      throw new SpoolConfigError(`upToSeq: must be a non-negative integer, got ${upToSeq}`, [
        { path: 'upToSeq', message: 'must be a non-negative integer' },
      ]);
    return this.track(async () => {
      const files: string[] = [];
      await this.commit<void>(() => {
        const st = rt.state;
        if (upToSeq >= st.nextSeq)
          return {
            ok: false,
            error: new SpoolAckError(
              `cannot ack ${stream}#${upToSeq}: the last sequence issued is ${st.nextSeq - 1}`,
            ),
          };
        files.push(...this.removePrefix(rt, upToSeq).files);
        st.ackedUpTo = Math.max(st.ackedUpTo, upToSeq);
        this.freeAckedFront(rt, files);
        st.lastAckAt = this.clock.now();
        this.persistState(rt);
        return { ok: true, value: undefined };
      });
      await this.unlinkBlobs(rt, files);
    });
  }

  /**
   * Acknowledges one entry out of order: reads skip it from now on; it is freed once every entry
   * before it is acknowledged (or dropped). Acking an entry already gone is a no-op.
   */
  async ackOne(stream: string, seq: number): Promise<void> {
    const rt = this.stream(stream);
    if (!Number.isSafeInteger(seq) || seq < 1)
      throw new SpoolConfigError(`seq: must be a positive integer, got ${seq}`, [
        { path: 'seq', message: 'must be a positive integer' },
      ]);
    return this.track(async () => {
      const files: string[] = [];
      await this.commit<void>(() => {
        const st = rt.state;
        if (seq >= st.nextSeq)
          return {
            ok: false,
            error: new SpoolAckError(
              `cannot ack ${stream}#${seq}: the last sequence issued is ${st.nextSeq - 1}`,
            ),
          };
        if (seq >= st.firstSeq) rt.acked.add(seq);
        this.freeAckedFront(rt, files);
        st.lastAckAt = this.clock.now();
        this.persistState(rt);
        return { ok: true, value: undefined };
      });
      await this.unlinkBlobs(rt, files);
    });
  }

  /** Per-stream figures for the health shadow. */
  /**
   * Keeps a small value of the spool's owner (e.g. batch boundaries) with the entries' durability; it
   * shares the commit of concurrent writes. Resolves once it is durable.
   */
  async putMeta(key: string, value: JsonValue): Promise<void> {
    this.assertOpen();
    return this.track(() =>
      this.commit(() => {
        this.metaDb.putSync(key, value);
        return { ok: true, value: undefined };
      }),
    );
  }

  /** A value stored with putMeta(), or undefined. */
  getMeta(key: string): JsonValue | undefined {
    this.assertOpen();
    return this.metaDb.get(key) ?? undefined;
  }

  stats(): SpoolStats {
    const now = this.clock.now();
    const streams: StreamStats[] = [];
    for (const rt of this.streams.values()) {
      const st = rt.state;
      let oldest: number | null = null;
      for (let seq = st.firstSeq; seq < st.nextSeq; seq++) {
        if (rt.acked.has(seq)) continue;
        const e = rt.entries.get(seq);
        if (e) oldest = Math.max(0, now - e.t);
        break;
      }
      streams.push({
        name: rt.cfg.name,
        priority: rt.cfg.priority,
        depth: st.nextSeq - st.firstSeq - rt.acked.size,
        bytes: streamBytes(st),
        maxSizeBytes: rt.cfg.maxSizeBytes,
        oldestUnackedAgeMs: oldest,
        droppedEntries: st.droppedEntries,
        droppedBytes: st.droppedBytes,
        dropEvents: st.dropEvents,
        lastAckAt: st.lastAckAt,
        nextSeq: st.nextSeq,
      });
    }
    return {
      totalBytes: this.totalBytes(),
      ...(this.config.maxTotalBytes !== undefined ? { maxTotalBytes: this.config.maxTotalBytes } : {}),
      streams,
    };
  }

  /** Waits for the operations under way, flushes and closes; idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.pending]);
    try {
      await this.root.flushed;
    } finally {
      await this.root.close();
    }
    this.log.info({ dir: this.config.dir }, 'spool closed');
  }
}
