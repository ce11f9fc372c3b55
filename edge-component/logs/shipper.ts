/**
 * The log shipper: the component's own log lines and the configured files go through the `logs` spool
 * stream into a Kinesis data stream (PutRecords), with the gateway's temporary credentials.
 *
 * - Sources. The component's lines come from the root logger's LogTee (tee.ts): each line at or above
 *   `logs.component.level` becomes a body (records.ts); lines of one event-loop turn share one spool
 *   entry. The shipper's own lines (its logger's `component` is `log-shipper`) are written out but never
 *   shipped: a failing shipper would otherwise feed itself. They are few anyway (one per failed call,
 *   each followed by a backoff). Files are followed by FileTailers (tailer.ts), polled every
 *   `logs.pollIntervalMs`; each chunk of lines is one spool entry, and the file's position is saved in the
 *   spool's meta data (`logs-file:{source}`) only after that entry is durable.
 * - Durability. A line counts as accepted once it is in the spool (bulk priority, OverwriteOldestData by
 *   default: when the stream is full the oldest segment goes, and the spool logs the dropped range). A
 *   component line that cannot be spooled (the spool failed, or more than MAX_PENDING_BYTES wait for
 *   it) is counted in `droppedLines`.
 * - Shipping. One loop reads the stream oldest first into a window and sends PutRecords calls of at most
 *   `logs.batch.maxRecords` records and `maxBytes` bytes (data and partition keys, at least one record),
 *   when a call is full or its oldest line is `maxAgeMs` old. One call at a time, so that the lines of a
 *   source go out in order; the partition key `{thing}/{source}` keeps them on one shard, in order.
 * - Failures. Records a call reports as failed (ProvisionedThroughputExceededException, InternalFailure)
 *   are sent again, and only they, at the head of the next call, after a jittered exponential backoff
 *   (`logs.backoff`); a call that failed as a whole (network, throttling, expired credentials, for which
 *   the client fetches new ones, access denied, a missing stream) is retried after the same backoff. A
 *   spool entry is acked once every record of it is in. Kinesis does not promise that a failed record
 *   is not followed by an accepted one of the same shard in the same call; when that happens the
 *   retried record lands after it (counted in `reordered`; `seq` and `n` give the order back).
 * - Offline. Nothing is sent while `online()` is false (the IoT channel is down: credentials come over
 *   it); lines keep being spooled, and the backlog drains oldest first when it is back (`kick()`).
 * - Delivery is at least once: a call whose answer is lost, or a restart between a call and the ack,
 *   sends records again (with the same `seq` and `n`).
 */
import { Buffer } from 'node:buffer';
import type { Logger } from 'pino';
import {
  COMPONENT_LOG_SOURCE,
  LOG_SOURCE_PATTERN,
  logPartitionKey,
  MAX_KINESIS_RECORD_BYTES,
} from '../../protocol/logs.js';
import { backoffDelay } from '../backoff.js';
import type { LogsConfig } from '../config.js';
import type { Clock, DataStreamClient, StreamRecord } from '../ports.js';
import type { JsonValue, Spool, SpoolEntry } from '../spool/index.js';
import { Wakeup } from '../wakeup.js';
import { componentLineBody, fileLineBody, LEVEL_VALUES } from './records.js';
import { FileTailer, type TailLine, type TailPosition } from './tailer.js';
import type { LogTap } from './tee.js';

/** The `component` of the shipper's own log lines: they are never shipped. */
export const LOG_SHIPPER_COMPONENT = 'log-shipper';

/** Spool meta key of a followed file's position. */
export const positionKey = (source: string) => `logs-file:${source}`;

/** Component lines of one turn per spool entry, at most. */
const CHUNK_MAX_LINES = 500;
const CHUNK_MAX_BYTES = 1024 * 1024;
/** Component lines waiting for the spool, at most (beyond: dropped and counted). */
export const MAX_PENDING_BYTES = 8 * 1024 * 1024;
/** Spool entries read at a time. */
const READ_PAGE = 64;
const IDLE_MS = 3_600_000;
/** stop() lets a call in flight finish for this long, then aborts it. */
const STOP_GRACE_MS = 5000;
/** The same failure is logged again at most this often. */
const REPEAT_LOG_MS = 60_000;

/** Counters the shipper keeps in the gateway's counters. */
export interface LogShipperCounters {
  /** Records Kinesis accepted. */
  logRecordsShipped: number;
  /** Their bytes (data and partition keys). */
  logBytesShipped: number;
  /** Records Kinesis reported as failed in a call (each is sent again). */
  logRecordsRetried: number;
}

export interface LogShipperOptions {
  config: LogsConfig;
  thingName: string;
  spool: Spool;
  /** The spool stream of the lines. */
  stream: string;
  client: DataStreamClient;
  /** Where the component's lines come from; without it, only files are shipped. */
  tap?: LogTap | undefined;
  clock: Clock;
  /** The component's root logger (the shipper logs as `component: log-shipper`). */
  logger: Logger;
  counters: LogShipperCounters;
  /** Whether calls may be made now (default: always). */
  online?: () => boolean;
  /** Random numbers in [0, 1) for the backoff jitter. */
  random?: () => number;
}

/** A spool entry being shipped: its records and which of them are in. */
interface WindowEntry {
  seq: number;
  ts: number;
  key: string;
  records: Buffer[];
  sent: Uint8Array;
  left: number;
}

interface ComponentChunk {
  bodies: string[];
  bytes: number;
}

interface Batch {
  items: { entry: WindowEntry; index: number }[];
  records: StreamRecord[];
  bytes: number;
  /** Full (by records or bytes), or more is waiting behind it: send now. */
  full: boolean;
  oldestTs: number;
}

/** The health shadow's view of log shipping. */
export interface LogShippingHealth {
  shippedRecords: number;
  shippedBytes: number;
  retriedRecords: number;
  calls: number;
  failedCalls: number;
  /** Component lines that could not be spooled. */
  droppedLines: number;
  /** Spool entries (each a chunk of lines of one source) dropped unshipped when the stream was full. */
  droppedEntries: number;
  reordered: number;
  lastShippedAt: number | null;
  lastError: string | null;
}

function errorName(err: unknown): string {
  return err instanceof Error ? err.name : 'Error';
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return `${err.name !== 'Error' ? `${err.name}: ` : ''}${err.message}${status ? ` (HTTP ${status})` : ''}`;
}

/** What a whole-call failure means for the operator. */
function callFailureKind(err: unknown): 'access-denied' | 'credentials' | 'no-stream' | 'other' {
  const name = errorName(err);
  if (name === 'AccessDeniedException' || name === 'AccessDenied' || name === 'KMSAccessDeniedException')
    return 'access-denied';
  if (
    [
      'ExpiredTokenException',
      'ExpiredToken',
      'UnrecognizedClientException',
      'InvalidSignatureException',
      'CredentialsUnavailableError',
    ].includes(name)
  )
    return 'credentials';
  if (name === 'ResourceNotFoundException') return 'no-stream';
  return 'other';
}

export class LogShipper {
  private readonly log: Logger;
  private readonly stopCtrl = new AbortController();
  private readonly callCtrl = new AbortController();
  private readonly shipWake: Wakeup;
  private readonly tailWake: Wakeup;
  private readonly tailers: { source: string; tailer: FileTailer; lastError?: string }[] = [];
  private readonly tracked = new Set<Promise<unknown>>();
  private readonly minLevel: number;
  private readonly online: () => boolean;
  private readonly random: () => number;
  private window: WindowEntry[] = [];
  /** The next spool sequence to read. */
  private cursor = 0;
  private chunk: ComponentChunk | undefined;
  private pendingBytes = 0;
  private backingOff = false;
  private stopping = false;
  private loops: Promise<void>[] = [];
  private detach: (() => void) | undefined;
  private lastLogged: { kind: string; at: number } | undefined;
  private readonly health = {
    calls: 0,
    failedCalls: 0,
    droppedLines: 0,
    reordered: 0,
    lastShippedAt: null as number | null,
    lastError: null as string | null,
  };

  private constructor(private readonly opts: LogShipperOptions) {
    this.log = opts.logger.child({ component: LOG_SHIPPER_COMPONENT });
    this.shipWake = new Wakeup(opts.clock, this.stopCtrl.signal);
    this.tailWake = new Wakeup(opts.clock, this.stopCtrl.signal);
    this.minLevel = LEVEL_VALUES[opts.config.component.level] ?? 30;
    this.online = opts.online ?? (() => true);
    this.random = opts.random ?? Math.random;
  }

  /** Starts following the files, takes the component's lines from `tap`, and starts shipping. */
  static start(opts: LogShipperOptions): LogShipper {
    const s = new LogShipper(opts);
    s.init();
    return s;
  }

  private init(): void {
    const { config, spool } = this.opts;
    for (const f of config.files) {
      const saved = spool.getMeta(positionKey(f.source)) as
        | (TailPosition & { path?: string })
        | undefined
        | JsonValue;
      const position = isPosition(saved) && saved.path === f.path ? saved : undefined;
      const tailer = new FileTailer({
        path: f.path,
        position,
        startAt: f.startAt,
        logger: this.log,
        emit: (lines) =>
          this.appendEntries(
            f.source,
            lines.map((l) => this.fileBody(l)),
          ),
        save: (p) => spool.putMeta(positionKey(f.source), { ...p, path: f.path }),
      });
      this.tailers.push({ source: f.source, tailer });
    }
    if (this.opts.tap) {
      if (config.component.enabled) this.detach = this.opts.tap.attach((line) => this.offer(line));
      else this.opts.tap.idle();
    }
    this.loops = [this.shipLoop(), ...(this.tailers.length > 0 ? [this.tailLoop()] : [])];
    this.log.info(
      {
        stream: config.streamName,
        componentLines: config.component.enabled && this.opts.tap !== undefined,
        files: config.files.map((f) => ({ path: f.path, source: f.source })),
      },
      'log shipping started',
    );
  }

  /** New work or a reconnection: try shipping now (a backoff under way is cut short). */
  kick(): void {
    this.shipWake.kick();
  }

  /** Polls the files now instead of at the next interval. */
  pollNow(): void {
    this.tailWake.kick();
  }

  healthReport(): LogShippingHealth {
    const c = this.opts.counters;
    const dropped =
      this.opts.spool.stats().streams.find((s) => s.name === this.opts.stream)?.droppedEntries ?? 0;
    return {
      shippedRecords: c.logRecordsShipped,
      shippedBytes: c.logBytesShipped,
      retriedRecords: c.logRecordsRetried,
      calls: this.health.calls,
      failedCalls: this.health.failedCalls,
      droppedLines: this.health.droppedLines,
      droppedEntries: dropped,
      reordered: this.health.reordered,
      lastShippedAt: this.health.lastShippedAt,
      lastError: this.health.lastError,
    };
  }

  // ------------------------------------------------------------------ sources

  private fileBody(l: TailLine): string {
    return fileLineBody(this.opts.clock.now(), l.text, l.cut);
  }

  /** A line of the component's log (called by the LogTee, synchronously, within the log call). */
  private offer(line: string): void {
    if (this.stopping) return;
    const r = componentLineBody(line, {
      minLevel: this.minLevel,
      ownComponent: LOG_SHIPPER_COMPONENT,
      now: this.opts.clock.now(),
    });
    if (!r.ship) return;
    const size = Buffer.byteLength(r.body) + 1;
    if (this.pendingBytes + size > MAX_PENDING_BYTES) {
      this.health.droppedLines++;
      return;
    }
    let c = this.chunk;
    if (!c || c.bodies.length >= CHUNK_MAX_LINES || c.bytes + size > CHUNK_MAX_BYTES) {
      const chunk: ComponentChunk = { bodies: [], bytes: 0 };
      this.chunk = c = chunk;
      setImmediate(() => this.flushChunk(chunk));
    }
    c.bodies.push(r.body);
    c.bytes += size;
    this.pendingBytes += size;
  }

  private flushChunk(c: ComponentChunk): void {
    if (this.chunk === c) this.chunk = undefined;
    if (c.bodies.length === 0) return;
    const p = this.appendEntry(COMPONENT_LOG_SOURCE, c.bodies)
      .catch((err: unknown) => {
        this.health.droppedLines += c.bodies.length;
        this.health.lastError = `component lines not spooled: ${describe(err)}`;
      })
      .finally(() => {
        this.pendingBytes -= c.bytes;
      });
    this.track(p);
  }

  /**
   * A file's lines as spool entries of at most CHUNK_MAX_LINES lines and CHUNK_MAX_BYTES bytes (an entry
   * that is sent again after a restart is sent whole); resolves once all are durable.
   */
  private async appendEntries(source: string, bodies: string[]): Promise<void> {
    const groups: string[][] = [];
    let group: string[] = [];
    let bytes = 0;
    for (const b of bodies) {
      const size = Buffer.byteLength(b) + 1;
      if (group.length > 0 && (group.length >= CHUNK_MAX_LINES || bytes + size > CHUNK_MAX_BYTES)) {
        groups.push(group);
        group = [];
        bytes = 0;
      }
      group.push(b);
      bytes += size;
    }
    if (group.length > 0) groups.push(group);
    // The spool runs its writes in call order: the entries keep the lines in order.
    await Promise.all(groups.map((g) => this.appendEntry(source, g)));
  }

  /** One spool entry of a source's bodies; resolves once it is durable. */
  private async appendEntry(source: string, bodies: string[]): Promise<void> {
    if (bodies.length === 0) return;
    await this.opts.spool.append(this.opts.stream, Buffer.from(bodies.join('\n')), {
      source,
      records: bodies.length,
    });
    if (!this.backingOff) this.shipWake.kick();
  }

  private async tailLoop(): Promise<void> {
    while (!this.stopping) {
      for (const t of this.tailers) {
        if (this.stopping) break;
        try {
          await t.tailer.poll();
          t.lastError = undefined;
        } catch (err) {
          const message = describe(err);
          if (message !== t.lastError) this.log.warn({ source: t.source, err: message }, 'log file not read');
          t.lastError = message;
          this.health.lastError = message;
        }
      }
      await this.tailWake.sleep(this.opts.config.pollIntervalMs);
    }
  }

  // ------------------------------------------------------------------ shipping

  private async shipLoop(): Promise<void> {
    const { backoff } = this.opts.config;
    let failures = 0;
    while (!this.stopping) {
      if (!this.online()) {
        await this.shipWake.sleep(IDLE_MS);
        continue;
      }
      let delay: number | undefined;
      try {
        await this.fillWindow();
        const batch = this.nextBatch();
        if (!batch) {
          await this.shipWake.sleep(IDLE_MS);
          continue;
        }
        if (!batch.full) {
          const wait = batch.oldestTs + this.opts.config.batch.maxAgeMs - this.opts.clock.now();
          if (wait > 0) {
            await this.shipWake.sleep(wait);
            continue;
          }
        }
        const failed = await this.put(batch);
        if (failed > 0) {
          failures++;
          delay = backoffDelay(failures, backoff, this.random);
        } else {
          failures = 0;
        }
      } catch (err) {
        if (this.stopping && this.callCtrl.signal.aborted) break;
        failures++;
        delay = backoffDelay(failures, backoff, this.random);
        this.onCallFailure(err, delay);
      }
      if (delay !== undefined && !this.stopping) {
        this.backingOff = true;
        // New lines must not cut the backoff short (a reconnection's kick() still does).
        this.shipWake.clear();
        await this.shipWake.sleep(delay);
        this.backingOff = false;
      }
    }
  }

  private onCallFailure(err: unknown, retryInMs: number): void {
    this.health.failedCalls++;
    const kind = callFailureKind(err);
    const message = describe(err);
    this.health.lastError = message;
    const now = this.opts.clock.now();
    const last = this.lastLogged;
    if (last && last.kind === kind && now - last.at < REPEAT_LOG_MS) return;
    this.lastLogged = { kind, at: now };
    const stream = this.opts.config.streamName;
    if (kind === 'access-denied') {
      this.log.error(
        { stream, err: message, retryInMs },
        'the log stream refuses the gateway: the upload role and the session policy must allow kinesis:PutRecords on it; lines stay spooled',
      );
    } else if (kind === 'no-stream') {
      this.log.error(
        { stream, err: message, retryInMs },
        'the log stream does not exist; lines stay spooled',
      );
    } else {
      this.log.warn({ stream, err: message, retryInMs }, 'PutRecords failed; lines stay spooled');
    }
  }

  /** Reads spool entries into the window until it holds a full call of unsent records (or all there is). */
  private async fillWindow(): Promise<void> {
    const { maxRecords, maxBytes } = this.opts.config.batch;
    let records = 0;
    let bytes = 0;
    for (const e of this.window) {
      for (let i = 0; i < e.records.length; i++) {
        if (e.sent[i] === 1) continue;
        records++;
        bytes += e.records[i]!.length + e.key.length;
      }
    }
    while (records < maxRecords && bytes < maxBytes) {
      const entries = await this.opts.spool.read(this.opts.stream, {
        fromSeq: this.cursor,
        maxEntries: READ_PAGE,
        maxBytes,
      });
      if (entries.length === 0) return;
      for (const e of entries) {
        this.cursor = e.seq + 1;
        const w = this.toWindowEntry(e);
        if (!w) {
          await this.opts.spool.ackOne(this.opts.stream, e.seq);
          continue;
        }
        this.window.push(w);
        records += w.records.length;
        for (const r of w.records) bytes += r.length + w.key.length;
      }
    }
  }

  /** The records of a spool entry, with their envelope; undefined for an entry that is not ours. */
  private toWindowEntry(e: SpoolEntry): WindowEntry | undefined {
    const meta = e.metadata as { source?: unknown } | undefined;
    const source = meta?.source;
    if (typeof source !== 'string' || !LOG_SOURCE_PATTERN.test(source)) {
      this.log.error({ seq: e.seq }, 'spooled log entry without a valid source; dropped');
      return undefined;
    }
    const thing = this.opts.thingName;
    const key = logPartitionKey(thing, source);
    const keyBytes = Buffer.byteLength(key);
    const head = `{"thing":${JSON.stringify(thing)},"source":${JSON.stringify(source)},"seq":${e.seq},"n":`;
    const bytes = Buffer.from(e.bytes.buffer, e.bytes.byteOffset, e.bytes.byteLength);
    const records: Buffer[] = [];
    let start = 0;
    for (let n = 0; start <= bytes.length; n++) {
      let end = bytes.indexOf(0x0a, start);
      if (end === -1) end = bytes.length;
      let body = bytes.subarray(start, end);
      start = end + 1;
      if (body.length < 3 || body[0] !== 0x7b) {
        // Not a body the shipper wrote (cannot happen unless the spool was tampered with): kept as text.
        body = Buffer.from(fileLineBody(e.timestamp, body.toString('utf8'), false));
      }
      let record = Buffer.concat([Buffer.from(`${head}${n},`), body.subarray(1)]);
      if (record.length + keyBytes > MAX_KINESIS_RECORD_BYTES) {
        record = Buffer.from(`${head}${n},"ts":${e.timestamp},"line":"(line too large)","cut":true}`);
      }
      records.push(record);
    }
    return {
      seq: e.seq,
      ts: e.timestamp,
      key,
      records,
      sent: new Uint8Array(records.length),
      left: records.length,
    };
  }

  /** The next call's records: the unsent records of the window in order, as many as one call takes. */
  private nextBatch(): Batch | undefined {
    const { maxRecords, maxBytes } = this.opts.config.batch;
    const batch: Batch = {
      items: [],
      records: [],
      bytes: 0,
      full: false,
      oldestTs: Number.POSITIVE_INFINITY,
    };
    for (const entry of this.window) {
      for (let index = 0; index < entry.records.length; index++) {
        if (entry.sent[index] === 1) continue;
        const data = entry.records[index]!;
        const size = data.length + Buffer.byteLength(entry.key);
        if (
          batch.records.length >= maxRecords ||
          (batch.records.length > 0 && batch.bytes + size > maxBytes)
        ) {
          batch.full = true;
          return batch;
        }
        batch.items.push({ entry, index });
        batch.records.push({ data, partitionKey: entry.key });
        batch.bytes += size;
        batch.oldestTs = Math.min(batch.oldestTs, entry.ts);
      }
    }
    if (batch.records.length === 0) return undefined;
    batch.full = batch.records.length >= maxRecords || batch.bytes >= maxBytes;
    return batch;
  }

  /** Sends one call; marks what got in, acks complete entries; resolves with the number of failed records. */
  private async put(batch: Batch): Promise<number> {
    this.health.calls++;
    const outcomes = await this.opts.client.putRecords(batch.records, this.callCtrl.signal);
    const c = this.opts.counters;
    let failed = 0;
    const codes: Record<string, number> = {};
    const failedKeys = new Set<string>();
    outcomes.forEach((o, i) => {
      const { entry, index } = batch.items[i]!;
      if (!o.ok) {
        failed++;
        codes[o.code] = (codes[o.code] ?? 0) + 1;
        failedKeys.add(entry.key);
        return;
      }
      if (failedKeys.has(entry.key)) this.health.reordered++;
      if (entry.sent[index] === 1) return;
      entry.sent[index] = 1;
      entry.left--;
      c.logRecordsShipped++;
      c.logBytesShipped += batch.records[i]!.data.length + Buffer.byteLength(entry.key);
    });
    c.logRecordsRetried += failed;
    if (failed < outcomes.length) this.health.lastShippedAt = this.opts.clock.now();
    if (failed > 0) {
      this.health.lastError = `${failed} of ${outcomes.length} records failed: ${Object.keys(codes).join(', ')}`;
      this.log.debug({ failed, of: outcomes.length, codes }, 'records failed; they are sent again');
    } else {
      this.log.debug({ records: outcomes.length, bytes: batch.bytes }, 'log records shipped');
    }
    await this.ackComplete();
    return failed;
  }

  /** Acks the entries whose records are all in: the leading run with one ack, the others one by one. */
  private async ackComplete(): Promise<void> {
    let upTo: number | undefined;
    while (this.window[0] && this.window[0].left === 0) upTo = this.window.shift()!.seq;
    const done = this.window.filter((e) => e.left === 0);
    if (done.length > 0) this.window = this.window.filter((e) => e.left > 0);
    if (upTo !== undefined) await this.opts.spool.ack(this.opts.stream, upTo);
    for (const e of done) await this.opts.spool.ackOne(this.opts.stream, e.seq);
  }

  // ------------------------------------------------------------------ lifecycle

  private track(p: Promise<unknown>): void {
    this.tracked.add(p);
    void p.finally(() => this.tracked.delete(p));
  }

  /**
   * Stops taking lines (the component lines of this turn are still spooled), stops following the files
   * and shipping (a call in flight gets STOP_GRACE_MS to finish). What is not shipped stays spooled.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.detach?.();
    if (this.chunk) this.flushChunk(this.chunk);
    this.stopCtrl.abort();
    const grace = setTimeout(() => this.callCtrl.abort(), STOP_GRACE_MS);
    try {
      await Promise.allSettled(this.loops);
      await Promise.allSettled([...this.tracked]);
    } finally {
      clearTimeout(grace);
    }
    for (const t of this.tailers) await t.tailer.close();
    this.log.info(this.healthReport(), 'log shipping stopped');
  }
}

function isPosition(v: unknown): v is TailPosition & { path?: string } {
  if (typeof v !== 'object' || v === null) return false;
  const p = v as Record<string, unknown>;
  return (
    typeof p.dev === 'string' &&
    typeof p.ino === 'string' &&
    typeof p.offset === 'number' &&
    Number.isSafeInteger(p.offset) &&
    p.offset >= 0
  );
}
