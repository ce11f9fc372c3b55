/**
 * The local Amazon Kinesis Data Streams: provisioned streams of fixed shards, records kept on disk for
 * the stream's retention period, shard iterators and the documented per-shard write quotas.
 *
 * - Wire protocol: see route.ts (JSON 1.1, `Kinesis_20131202.<Operation>`, signing name `kinesis`).
 * - Shards: a stream of N shards splits the 128-bit hash key space evenly (the last shard takes the
 *   remainder); a record goes to the shard whose range holds the MD5 of its partition key read as a
 *   big-endian 128-bit integer, or its ExplicitHashKey. Shards are never split or merged. ON_DEMAND
 *   streams are given 4 shards, as AWS starts them, with the provisioned quotas per shard.
 * - Sequence numbers: 56 decimal digits, `49` then the stream's creation second, the shard index and a
 *   per-shard counter, so they grow strictly per shard (compare them as BigInt) and never repeat across
 *   restarts or a re-created stream of the same name.
 * - Durability: see store.ts. Records are kept for the stream's retention period (24 hours unless
 *   raised); older ones are never returned and are removed by a sweep every minute.
 * - Iterators: opaque, HMAC-signed strings naming the stream (and its creation time), the shard and the
 *   position; they expire 5 minutes after they were issued (ExpiredIteratorException).
 * - Streams are ACTIVE as soon as CreateStream answers and gone as soon as DeleteStream answers.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import type { Authorizer } from '../authz.js';
import type { ServiceRoute } from '../http/server.js';
import { partitionOf } from '../s3/context.js';
import {
  expiredIterator,
  invalidArgument,
  KinesisStorageError,
  limitExceeded,
  resourceInUse,
  resourceNotFound,
  serviceUnavailable,
  throughputExceeded,
} from './errors.js';
import { ShardMeter, type ShardWriteLimits } from './limits.js';
import { kinesisRoute } from './route.js';
import {
  MAX_GET_RECORDS,
  MAX_PUT_RECORDS_BYTES,
  MAX_RECORD_BYTES,
  parseRequest,
  type Request,
  Schemas,
} from './schemas.js';
import { KinesisStore, type StoredStream } from './store.js';

export type { ShardWriteLimits } from './limits.js';

export interface LocalKinesisDeps {
  dataDir: string;
  region: string;
  accountId: string;
  authorizer: Authorizer;
  logger?: Logger;
  /** Clock for arrival times, throttling windows, retention and iterator expiry (default Date.now). */
  now?: () => number;
  /** Per-shard write quotas; the documented ones (1 MiB and 1,000 records per second) by default. */
  limits?: ShardWriteLimits;
}

/** Notified after records of a shard are durable. */
export type ShardListener = (event: { stream: string; shardId: string; lastSequenceNumber: string }) => void;

export const ITERATOR_TTL_MS = 5 * 60_000;
export const DEFAULT_RETENTION_HOURS = 24;
export const MAX_RETENTION_HOURS = 8760;
const ON_DEMAND_SHARDS = 4;
const HASH_SPACE = 1n << 128n;
const SEQ_BASE = 49n * 10n ** 54n;
const SEQ_STREAM = 10n ** 44n;
const SEQ_SHARD = 10n ** 38n;
/** GetRecords returns at most this much data. */
const MAX_GET_BYTES = 10 * 1024 * 1024;
const SWEEP_INTERVAL_MS = 60_000;
const DEFAULT_LIST_STREAMS = 100;
const DEFAULT_LIST_SHARDS = 1000;

interface ShardState {
  index: number;
  id: string;
  start: bigint;
  end: bigint;
  /** The last `n` handed out. */
  assigned: number;
  /** The last `n` known durable. */
  committed: number;
  lastArrival: number;
}

interface StreamState {
  stored: StoredStream;
  shards: ShardState[];
}

interface IteratorPayload {
  /** stream name */
  s: string;
  /** stream creation time */
  c: number;
  /** shard index */
  h: number;
  /** records with n > p come next */
  p: number;
  /** issued at */
  t: number;
}

export type PutOutcome =
  | { SequenceNumber: string; ShardId: string }
  | { ErrorCode: string; ErrorMessage: string };

export function shardIdOf(index: number): string {
  return `shardId-${String(index).padStart(12, '0')}`;
}

/** The hash key ranges of `count` shards: even splits of the 128-bit space, the last takes the rest. */
export function hashKeyRanges(count: number): { start: bigint; end: bigint }[] {
  const size = HASH_SPACE / BigInt(count);
  return Array.from({ length: count }, (_, i) => ({
    start: size * BigInt(i),
    end: i === count - 1 ? HASH_SPACE - 1n : size * BigInt(i + 1) - 1n,
  }));
}

/** A partition key's hash key: its MD5 read as a big-endian 128-bit integer. */
export function partitionHashKey(partitionKey: string): bigint {
  return BigInt(`0x${createHash('md5').update(partitionKey, 'utf8').digest('hex')}`);
}

function accountShardLimit(region: string): number {
  return ['us-east-1', 'us-west-2', 'eu-west-1'].includes(region) ? 500 : 200;
}

export class LocalKinesis {
  private readonly streams = new Map<string, StreamState>();
  private readonly listeners = new Map<string, Set<ShardListener>>();
  private readonly meter: ShardMeter;
  private readonly partition: string;
  private readonly writes = new Set<Promise<unknown>>();
  private sweeper: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    private readonly deps: LocalKinesisDeps,
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly store: KinesisStore,
    private readonly iteratorKey: Buffer,
  ) {
    this.meter = new ShardMeter(deps.limits ?? {}, now);
    this.partition = partitionOf(deps.region);
  }

  /** Opens the store under `{dataDir}/kinesis`, loads the streams and trims expired records. */
  static async open(deps: LocalKinesisDeps): Promise<LocalKinesis> {
    const log = deps.logger ?? pino({ level: 'silent' });
    const store = KinesisStore.open(join(deps.dataDir, 'kinesis'));
    try {
      const kinesis = new LocalKinesis(deps, log, deps.now ?? Date.now, store, await store.iteratorKey());
      kinesis.load();
      await kinesis.sweep();
      kinesis.sweeper = setInterval(() => {
        kinesis.sweep().catch((err) => log.error({ err }, 'trimming expired Kinesis records failed'));
      }, SWEEP_INTERVAL_MS);
      kinesis.sweeper.unref();
      return kinesis;
    } catch (err) {
      await store.close().catch(() => {});
      throw err;
    }
  }

  private load(): void {
    for (const value of this.store.streams()) {
      const v = value as Partial<StoredStream> | null;
      if (
        typeof v?.name !== 'string' ||
        typeof v.created !== 'number' ||
        typeof v.shardCount !== 'number' ||
        typeof v.retentionHours !== 'number'
      ) {
        throw new KinesisStorageError(
          `a stored Kinesis stream definition is invalid: ${JSON.stringify(value)}`,
        );
      }
      this.addStream(v as StoredStream);
    }
    this.log.info({ streams: this.streams.size }, 'Kinesis opened');
  }

  private addStream(stored: StoredStream): StreamState {
    const shards = hashKeyRanges(stored.shardCount).map((r, index) => {
      const last = this.store.lastN(stored.name, index);
      return { index, id: shardIdOf(index), ...r, assigned: last, committed: last, lastArrival: 0 };
    });
    const state = { stored, shards };
    this.streams.set(stored.name, state);
    return state;
  }

  /** Removes the records older than each stream's retention period. */
  private async sweep(): Promise<void> {
    for (const s of [...this.streams.values()]) {
      const cutoff = this.now() - s.stored.retentionHours * 3_600_000;
      for (const shard of s.shards) {
        if (this.closed || this.streams.get(s.stored.name) !== s) break;
        const removed = await this.track(this.store.trim(s.stored.name, shard.index, cutoff));
        if (removed > 0)
          this.log.debug({ stream: s.stored.name, shard: shard.id, removed }, 'records trimmed');
      }
    }
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.writes.add(p);
    const done = () => this.writes.delete(p);
    p.then(done, done);
    return p;
  }

  private requireOpen(): void {
    if (this.closed) throw serviceUnavailable('The local Kinesis is shutting down.');
  }

  // ---- names, ARNs, sequence numbers, iterators ----

  streamArn(name: string): string {
    return `arn:${this.partition}:kinesis:${this.deps.region}:${this.deps.accountId}:stream/${name}`;
  }

  /** The stream a request names by StreamName and/or StreamARN. */
  resolveName(input: { StreamName?: string | undefined; StreamARN?: string | undefined }): string {
    const { StreamName: name, StreamARN: arn } = input;
    if (arn === undefined) {
      if (name === undefined) throw invalidArgument('Either StreamName or StreamARN should be provided.');
      return name;
    }
    const m = /^arn:([^:]+):kinesis:([^:]+):(\d{12}):stream\/(.+)$/.exec(arn);
    const fromArn = m?.[4];
    if (!m || fromArn === undefined) throw invalidArgument(`StreamARN ${arn} is not a Kinesis stream ARN.`);
    if (name !== undefined && name !== fromArn) {
      throw invalidArgument(`StreamName ${name} and StreamARN ${arn} name different streams.`);
    }
    if (m[1] !== this.partition || m[2] !== this.deps.region || m[3] !== this.deps.accountId) {
      throw resourceNotFound(`Stream ${fromArn} under account ${m[3]} not found.`);
    }
    return fromArn;
  }

  private requireStream(name: string): StreamState {
    const s = this.streams.get(name);
    if (!s) throw resourceNotFound(`Stream ${name} under account ${this.deps.accountId} not found.`);
    return s;
  }

  private requireShard(s: StreamState, shardId: string): ShardState {
    const m = /^shardId-(\d{12})$/.exec(shardId);
    const shard = m ? s.shards[Number(m[1])] : undefined;
    if (!shard) {
      throw resourceNotFound(
        `Shard ${shardId} in stream ${s.stored.name} under account ${this.deps.accountId} does not exist`,
      );
    }
    return shard;
  }

  private sequenceNumber(s: StreamState, shard: number, n: number): string {
    const created = BigInt(Math.floor(s.stored.created / 1000));
    return (SEQ_BASE + created * SEQ_STREAM + BigInt(shard) * SEQ_SHARD + BigInt(n)).toString();
  }

  /** The counter of a sequence number of this stream and shard, or undefined if it is not one of them. */
  private counterOf(s: StreamState, shard: number, seq: string): number | undefined {
    const v = BigInt(seq) - SEQ_BASE;
    if (v < 0n) return undefined;
    if (v / SEQ_STREAM !== BigInt(Math.floor(s.stored.created / 1000))) return undefined;
    const rest = v % SEQ_STREAM;
    if (rest / SEQ_SHARD !== BigInt(shard)) return undefined;
    const n = rest % SEQ_SHARD;
    return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : undefined;
  }

  private encodeIterator(p: IteratorPayload): string {
    const body = Buffer.from(JSON.stringify(p)).toString('base64url');
    return `${body}.${this.sign(body)}`;
  }

  private sign(body: string): string {
    return createHmac('sha256', this.iteratorKey).update(body).digest('base64url').slice(0, 32);
  }

  /** Checks an iterator's signature and shape; expiry and the stream are checked by {@link getRecords}. */
  decodeIterator(iterator: string): IteratorPayload {
    const invalid = () => invalidArgument(`Invalid ShardIterator: ${iterator}`);
    const [body, mac, ...rest] = iterator.split('.');
    if (body === undefined || mac === undefined || rest.length > 0) throw invalid();
    const expected = Buffer.from(this.sign(body));
    const given = Buffer.from(mac);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) throw invalid();
    let p: Partial<IteratorPayload>;
    try {
      p = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Partial<IteratorPayload>;
    } catch (err) {
      throw invalidArgument(`Invalid ShardIterator: ${iterator}`, err);
    }
    if (
      typeof p.s !== 'string' ||
      typeof p.c !== 'number' ||
      typeof p.h !== 'number' ||
      typeof p.p !== 'number' ||
      typeof p.t !== 'number'
    ) {
      throw invalid();
    }
    return { s: p.s, c: p.c, h: p.h, p: p.p, t: p.t };
  }

  // ---- the operations (inputs validated by the route; names resolved) ----

  async createStream(input: Request<'CreateStream'>, ifMissing = false): Promise<void> {
    this.requireOpen();
    const name = input.StreamName;
    const mode = input.StreamModeDetails?.StreamMode ?? 'PROVISIONED';
    if (mode === 'PROVISIONED' && input.ShardCount === undefined) {
      throw invalidArgument('ShardCount: is required for a stream in PROVISIONED mode.');
    }
    if (mode === 'ON_DEMAND' && input.ShardCount !== undefined) {
      throw invalidArgument('ShardCount: must not be given for a stream in ON_DEMAND mode.');
    }
    if (this.streams.has(name)) {
      if (ifMissing) return;
      throw resourceInUse(`Stream ${name} under account ${this.deps.accountId} already exists.`);
    }
    const shardCount = input.ShardCount ?? ON_DEMAND_SHARDS;
    const limit = accountShardLimit(this.deps.region);
    const used = [...this.streams.values()].reduce((n, s) => n + s.stored.shardCount, 0);
    if (used + shardCount > limit) {
      throw limitExceeded(
        `This request would exceed the shard limit for the account ${this.deps.accountId} in ${this.deps.region}. Current shard count for the account: ${used}. Limit: ${limit}. Number of additional shards that would have resulted from this request: ${shardCount}.`,
      );
    }
    const stored: StoredStream = {
      name,
      created: this.now(),
      shardCount,
      mode,
      retentionHours: DEFAULT_RETENTION_HOURS,
      tags: input.Tags ?? {},
    };
    // Reserved before the write, so a concurrent create of the same name is refused.
    const state = this.addStream(stored);
    for (const shard of state.shards) shard.assigned = shard.committed = 0;
    try {
      await this.track(this.store.putStream(stored));
    } catch (err) {
      this.streams.delete(name);
      throw err;
    }
    this.log.info({ stream: name, shards: shardCount, mode }, 'Kinesis stream created');
  }

  describeStreamSummary(name: string): Record<string, unknown> {
    const s = this.requireStream(name).stored;
    return {
      StreamDescriptionSummary: {
        StreamName: s.name,
        StreamARN: this.streamArn(s.name),
        StreamStatus: 'ACTIVE',
        StreamModeDetails: { StreamMode: s.mode },
        RetentionPeriodHours: s.retentionHours,
        StreamCreationTimestamp: Math.floor(s.created / 1000),
        EnhancedMonitoring: [{ ShardLevelMetrics: [] }],
        EncryptionType: 'NONE',
        OpenShardCount: s.shardCount,
        ConsumerCount: 0,
      },
    };
  }

  listStreams(input: Request<'ListStreams'>): Record<string, unknown> {
    let after = input.ExclusiveStartStreamName;
    if (input.NextToken !== undefined) {
      if (input.ExclusiveStartStreamName !== undefined) {
        throw invalidArgument('NextToken and ExclusiveStartStreamName cannot be used together.');
      }
      after = decodeToken(input.NextToken, 'streams');
    }
    const limit = input.Limit ?? DEFAULT_LIST_STREAMS;
    const names = [...this.streams.keys()].filter((n) => after === undefined || n > after).sort();
    const page = names.slice(0, limit);
    const hasMore = names.length > limit;
    const last = page.at(-1);
    return {
      StreamNames: page,
      HasMoreStreams: hasMore,
      ...(hasMore && last !== undefined ? { NextToken: encodeToken('streams', last) } : {}),
      StreamSummaries: page.map((n) => {
        const s = this.requireStream(n).stored;
        return {
          StreamName: n,
          StreamARN: this.streamArn(n),
          StreamStatus: 'ACTIVE',
          StreamModeDetails: { StreamMode: s.mode },
          StreamCreationTimestamp: Math.floor(s.created / 1000),
        };
      }),
    };
  }

  /** The stream a ListShards request is about (its NextToken names it when no stream is given). */
  listShardsStream(input: Request<'ListShards'>): string {
    if (input.NextToken === undefined) return this.resolveName(input);
    if (input.StreamName !== undefined || input.StreamARN !== undefined) {
      throw invalidArgument('NextToken and StreamName/StreamARN cannot be used together.');
    }
    const token = decodeToken(input.NextToken, 'shards');
    const slash = token.indexOf('/');
    return slash < 0 ? token : token.slice(0, slash);
  }

  listShards(name: string, input: Request<'ListShards'>): Record<string, unknown> {
    const s = this.requireStream(name);
    let afterId = input.ExclusiveStartShardId;
    if (input.NextToken !== undefined) {
      const token = decodeToken(input.NextToken, 'shards');
      afterId = token.slice(token.indexOf('/') + 1);
    }
    if (input.ShardFilter?.Type === 'AFTER_SHARD_ID') afterId = input.ShardFilter.ShardId ?? afterId;
    const limit = input.MaxResults ?? DEFAULT_LIST_SHARDS;
    const shards = s.shards.filter((sh) => afterId === undefined || sh.id > afterId);
    const page = shards.slice(0, limit);
    const last = page.at(-1);
    return {
      Shards: page.map((sh) => this.shardDescription(s, sh)),
      ...(shards.length > limit && last !== undefined
        ? { NextToken: encodeToken('shards', `${name}/${last.id}`) }
        : {}),
    };
  }

  private shardDescription(s: StreamState, sh: ShardState): Record<string, unknown> {
    return {
      ShardId: sh.id,
      HashKeyRange: { StartingHashKey: sh.start.toString(), EndingHashKey: sh.end.toString() },
      SequenceNumberRange: { StartingSequenceNumber: this.sequenceNumber(s, sh.index, 0) },
    };
  }

  async deleteStream(name: string): Promise<void> {
    this.requireOpen();
    const s = this.requireStream(name);
    this.streams.delete(name);
    this.meter.forget(name);
    await this.track(this.store.deleteStream(name, s.stored.shardCount));
    this.log.info({ stream: name }, 'Kinesis stream deleted');
  }

  async changeRetention(name: string, hours: number, direction: 'increase' | 'decrease'): Promise<void> {
    this.requireOpen();
    const s = this.requireStream(name);
    const current = s.stored.retentionHours;
    if (direction === 'increase' && (hours < current || hours > MAX_RETENTION_HOURS)) {
      throw invalidArgument(
        `RetentionPeriodHours: ${hours} must be at least the current retention period (${current}) and at most ${MAX_RETENTION_HOURS}.`,
      );
    }
    if (direction === 'decrease' && (hours > current || hours < DEFAULT_RETENTION_HOURS)) {
      throw invalidArgument(
        `RetentionPeriodHours: ${hours} must be at most the current retention period (${current}) and at least ${DEFAULT_RETENTION_HOURS}.`,
      );
    }
    // Records already past the old period are gone for good: a longer period does not bring them back.
    const cutoff = this.now() - current * 3_600_000;
    for (const shard of s.shards) await this.track(this.store.trim(name, shard.index, cutoff));
    const stored = { ...s.stored, retentionHours: hours };
    await this.track(this.store.putStream(stored));
    s.stored = stored;
  }

  /** Puts records (one PutRecord or one PutRecords); outcomes in request order. */
  async put(
    name: string,
    records: readonly { Data: Buffer; PartitionKey: string; ExplicitHashKey?: string | undefined }[],
    mode: 'single' | 'batch',
  ): Promise<PutOutcome[]> {
    this.requireOpen();
    const s = this.requireStream(name);
    let total = 0;
    const targets = records.map((r, i) => {
      const bytes = r.Data.length + Buffer.byteLength(r.PartitionKey, 'utf8');
      const field = mode === 'single' ? 'Data' : `Records.${i + 1}`;
      if (bytes > MAX_RECORD_BYTES) {
        throw invalidArgument(
          `${field}: the record holds ${bytes} bytes of data and partition key; at most ${MAX_RECORD_BYTES} are allowed.`,
        );
      }
      total += bytes;
      let hash: bigint;
      if (r.ExplicitHashKey !== undefined) {
        hash = BigInt(r.ExplicitHashKey);
        if (hash >= HASH_SPACE) {
          throw invalidArgument(
            `${mode === 'single' ? '' : `Records.${i + 1}.`}ExplicitHashKey: must be less than 2^128.`,
          );
        }
      } else hash = partitionHashKey(r.PartitionKey);
      const shard = s.shards.find((sh) => hash >= sh.start && hash <= sh.end);
      if (!shard) throw new KinesisStorageError(`no shard of ${name} holds hash key ${hash}`);
      return { shard, bytes };
    });
    if (total > MAX_PUT_RECORDS_BYTES) {
      throw invalidArgument(
        `Records: the request holds ${total} bytes of data and partition keys; a PutRecords request may hold at most ${MAX_PUT_RECORDS_BYTES} bytes (5 MiB).`,
      );
    }
    const now = this.now();
    const items: { shard: number; n: number; arrival: number; partitionKey: string; data: Buffer }[] = [];
    const outcomes: PutOutcome[] = records.map((r, i) => {
      const { shard, bytes } = targets[i]!;
      if (!this.meter.admit(`${name}/${shard.index}`, bytes)) {
        return {
          ErrorCode: 'ProvisionedThroughputExceededException',
          ErrorMessage: `Rate exceeded for shard ${shard.id} in stream ${name} under account ${this.deps.accountId}.`,
        };
      }
      const n = ++shard.assigned;
      shard.lastArrival = Math.max(shard.lastArrival, now);
      items.push({
        shard: shard.index,
        n,
        arrival: shard.lastArrival,
        partitionKey: r.PartitionKey,
        data: r.Data,
      });
      return { SequenceNumber: this.sequenceNumber(s, shard.index, n), ShardId: shard.id };
    });
    if (mode === 'single' && items.length === 0) {
      const o = outcomes[0];
      throw throughputExceeded(o && 'ErrorMessage' in o ? o.ErrorMessage : 'Rate exceeded.');
    }
    if (items.length > 0) {
      await this.track(this.store.append(name, items));
      if (this.streams.get(name) !== s) {
        throw resourceNotFound(`Stream ${name} under account ${this.deps.accountId} not found.`);
      }
      const touched = new Set<ShardState>();
      for (const it of items) {
        const shard = s.shards[it.shard]!;
        shard.committed = Math.max(shard.committed, it.n);
        touched.add(shard);
      }
      for (const shard of touched) this.notify(s, shard);
    }
    return outcomes;
  }

  private notify(s: StreamState, shard: ShardState): void {
    const set = this.listeners.get(`${s.stored.name}/${shard.id}`);
    if (!set) return;
    const event = {
      stream: s.stored.name,
      shardId: shard.id,
      lastSequenceNumber: this.sequenceNumber(s, shard.index, shard.committed),
    };
    for (const listener of [...set]) {
      try {
        listener(event);
      } catch (err) {
        this.log.error({ err, stream: s.stored.name, shard: shard.id }, 'Kinesis shard listener failed');
      }
    }
  }

  getShardIterator(name: string, input: Request<'GetShardIterator'>): string {
    const s = this.requireStream(name);
    const shard = this.requireShard(s, input.ShardId);
    const now = this.now();
    let position: number;
    switch (input.ShardIteratorType) {
      case 'TRIM_HORIZON':
        position = 0;
        break;
      case 'LATEST':
        position = shard.committed;
        break;
      case 'AT_SEQUENCE_NUMBER':
      case 'AFTER_SEQUENCE_NUMBER': {
        const seq = input.StartingSequenceNumber;
        if (seq === undefined) {
          throw invalidArgument(
            `StartingSequenceNumber: is required for ShardIteratorType ${input.ShardIteratorType}.`,
          );
        }
        const n = this.counterOf(s, shard.index, seq);
        if (n === undefined || n > shard.assigned) {
          throw invalidArgument(
            `StartingSequenceNumber ${seq} used in GetShardIterator on shard ${shard.id} in stream ${name} under account ${this.deps.accountId} is invalid because it did not come from this stream and shard.`,
          );
        }
        position = input.ShardIteratorType === 'AT_SEQUENCE_NUMBER' ? n - 1 : n;
        break;
      }
      case 'AT_TIMESTAMP': {
        if (input.Timestamp === undefined) {
          throw invalidArgument('Timestamp: is required for ShardIteratorType AT_TIMESTAMP.');
        }
        const at = input.Timestamp * 1000;
        position = shard.committed;
        for (const rec of this.store.read(name, shard.index, 0)) {
          if (rec.arrival >= at) {
            position = rec.n - 1;
            break;
          }
        }
        break;
      }
    }
    return this.encodeIterator({ s: name, c: s.stored.created, h: shard.index, p: position, t: now });
  }

  /** Reads from a decoded iterator (see {@link decodeIterator}). */
  getRecords(it: IteratorPayload, limit = MAX_GET_RECORDS): Record<string, unknown> {
    const now = this.now();
    if (now - it.t > ITERATOR_TTL_MS) {
      throw expiredIterator(
        `Iterator expired. The iterator was created at time ${new Date(it.t).toISOString()} while right now it is ${new Date(now).toISOString()} which is further in the future than the tolerated delay of ${ITERATOR_TTL_MS} milliseconds.`,
      );
    }
    const s = this.streams.get(it.s);
    const shard = s?.stored.created === it.c ? s.shards[it.h] : undefined;
    if (!s || !shard) {
      throw resourceNotFound(
        `Shard ${shardIdOf(it.h)} in stream ${it.s} under account ${this.deps.accountId} does not exist`,
      );
    }
    const cutoff = now - s.stored.retentionHours * 3_600_000;
    const out: Record<string, unknown>[] = [];
    let position = it.p;
    let bytes = 0;
    let behind = 0;
    for (const rec of this.store.read(it.s, shard.index, it.p)) {
      if (rec.n > shard.committed) break;
      if (rec.arrival < cutoff) {
        position = rec.n;
        continue;
      }
      if (out.length >= limit || (out.length > 0 && bytes + rec.data.length > MAX_GET_BYTES)) {
        behind = Math.max(0, now - rec.arrival);
        break;
      }
      bytes += rec.data.length;
      position = rec.n;
      out.push({
        SequenceNumber: this.sequenceNumber(s, shard.index, rec.n),
        ApproximateArrivalTimestamp: rec.arrival / 1000,
        Data: rec.data.toString('base64'),
        PartitionKey: rec.partitionKey,
      });
    }
    return {
      Records: out,
      NextShardIterator: this.encodeIterator({ s: it.s, c: it.c, h: it.h, p: position, t: now }),
      MillisBehindLatest: behind,
    };
  }

  // ---- the public surface ----

  /** Creates a PROVISIONED stream of `shardCount` shards if missing (no error if it exists). */
  async ensureStream(name: string, shardCount: number): Promise<void> {
    await this.createStream(
      parseRequest(Schemas.CreateStream, { StreamName: name, ShardCount: shardCount }),
      true,
    );
  }

  /** The ids of a stream's shards. */
  shardIds(name: string): string[] {
    return this.requireStream(name).shards.map((s) => s.id);
  }

  /**
   * Calls `listener` each time records of the shard are durable (so an in-process consumer can wait
   * instead of polling); returns the function that unsubscribes.
   */
  subscribe(stream: string, shardId: string, listener: ShardListener): () => void {
    const key = `${stream}/${shardId}`;
    let set = this.listeners.get(key);
    if (!set) {
      set = new Set();
      this.listeners.set(key, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(key) === set) this.listeners.delete(key);
    };
  }

  /** The HTTP route of the Kinesis API (register it with the HTTP endpoint). */
  route(): ServiceRoute {
    return kinesisRoute(this, {
      authorizer: this.deps.authorizer,
      logger: this.log,
    });
  }

  /** Stops the sweep and waits for writes under way; everything stored stays for the next open. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sweeper) clearInterval(this.sweeper);
    this.listeners.clear();
    await Promise.allSettled([...this.writes]);
    await this.store.close();
    this.log.info('Kinesis closed');
  }
}

function encodeToken(kind: string, value: string): string {
  return Buffer.from(JSON.stringify({ k: kind, v: value })).toString('base64url');
}

function decodeToken(token: string, kind: string): string {
  try {
    const t = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { k?: unknown; v?: unknown };
    if (t.k === kind && typeof t.v === 'string') return t.v;
  } catch {
    // answered below
  }
  throw invalidArgument(`NextToken: ${token} is not a valid pagination token.`);
}
