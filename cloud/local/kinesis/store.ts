/**
 * The local Kinesis's durable state: one LMDB environment, `{dataDir}/kinesis/kinesis.mdb`, with
 * - `streams`: the stream definitions, by name;
 * - `records`: every kept record, by `[stream, shard index, n]` where `n` grows by one per record of the
 *   shard, with its arrival time, partition key and data;
 * - `meta`: the last `n` handed out per shard (`['n', stream, shard]`, so numbers grow even after every
 *   record of a shard has expired) and the key that signs shard iterators.
 *
 * Records are committed and fsynced before PutRecord/PutRecords answer: the environment is opened with
 * `overlappingSync: false` and writes also await `flushed`. LMDB batches the writes issued while a
 * commit is under way into the next one, so concurrent requests share an fsync (group commit).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';
import { KinesisStorageError } from './errors.js';

export interface StoredStream {
  name: string;
  /** Creation time, ms since the epoch; also tells apart a stream from a deleted one of the same name. */
  created: number;
  shardCount: number;
  mode: 'PROVISIONED' | 'ON_DEMAND';
  retentionHours: number;
  tags: Record<string, string>;
}

export interface StoredRecord {
  n: number;
  /** Approximate arrival time, ms since the epoch. */
  arrival: number;
  partitionKey: string;
  data: Buffer;
}

interface RecordValue {
  t: number;
  k: string;
  d: Uint8Array;
}

type RecordKey = [string, number, number];

const MAX_N = Number.MAX_SAFE_INTEGER;

export class KinesisStore {
  private closed = false;

  private constructor(
    private readonly root: RootDatabase,
    private readonly streamsDb: Database<StoredStream, string>,
    private readonly recordsDb: Database<RecordValue, RecordKey>,
    private readonly metaDb: Database<unknown, (string | number)[]>,
  ) {}

  /** Opens (creating when missing) the store under `dir`. */
  static open(dir: string): KinesisStore {
    try {
      mkdirSync(dir, { recursive: true });
      const root = open({
        path: join(dir, 'kinesis.mdb'),
        overlappingSync: false,
        noSync: false,
        noMetaSync: false,
        maxDbs: 4,
      });
      return new KinesisStore(
        root,
        root.openDB<StoredStream, string>('streams', {}),
        root.openDB<RecordValue, RecordKey>('records', {}),
        root.openDB<unknown, (string | number)[]>('meta', {}),
      );
    } catch (err) {
      throw new KinesisStorageError(`cannot open the Kinesis store in ${dir}`, { cause: err });
    }
  }

  /** The key that signs shard iterators, created on first use. */
  async iteratorKey(): Promise<Buffer> {
    const stored = this.metaDb.get(['iteratorKey']);
    if (typeof stored === 'string') return Buffer.from(stored, 'hex');
    const key = randomBytes(32);
    await this.write(() => this.metaDb.put(['iteratorKey'], key.toString('hex')));
    return key;
  }

  /** The stored stream definitions (unvalidated). */
  streams(): unknown[] {
    return [...this.streamsDb.getRange({})].map(({ value }) => value);
  }

  async putStream(stream: StoredStream): Promise<void> {
    await this.write(() => this.streamsDb.put(stream.name, stream));
  }

  /** Removes a stream with its records and counters. */
  async deleteStream(name: string, shardCount: number): Promise<void> {
    await this.write(() =>
      this.root.transaction(() => {
        this.streamsDb.removeSync(name);
        for (let shard = 0; shard < shardCount; shard++) {
          this.metaDb.removeSync(['n', name, shard]);
          for (const key of this.recordsDb.getKeys({ start: [name, shard, 0], end: [name, shard, MAX_N] })) {
            this.recordsDb.removeSync(key);
          }
        }
      }),
    );
  }

  /** The last `n` handed out on a shard (0 when none). */
  lastN(stream: string, shard: number): number {
    const v = this.metaDb.get(['n', stream, shard]);
    return typeof v === 'number' ? v : 0;
  }

  /** Stores records of one stream (any shards) in one transaction; resolves once they are durable. */
  async append(
    stream: string,
    items: readonly { shard: number; n: number; arrival: number; partitionKey: string; data: Buffer }[],
  ): Promise<void> {
    await this.write(() =>
      this.root.transaction(() => {
        const last = new Map<number, number>();
        for (const it of items) {
          this.recordsDb.putSync([stream, it.shard, it.n], { t: it.arrival, k: it.partitionKey, d: it.data });
          last.set(it.shard, Math.max(last.get(it.shard) ?? 0, it.n));
        }
        for (const [shard, n] of last) {
          if (n > this.lastN(stream, shard)) this.metaDb.putSync(['n', stream, shard], n);
        }
      }),
    );
  }

  /** The records of a shard with `n > after`, in order. */
  *read(stream: string, shard: number, after: number): Generator<StoredRecord> {
    for (const { key, value } of this.recordsDb.getRange({
      start: [stream, shard, after + 1],
      end: [stream, shard, MAX_N],
    })) {
      const n = key[2];
      if (typeof n !== 'number' || typeof value?.t !== 'number' || !(value.d instanceof Uint8Array)) {
        throw new KinesisStorageError(`stored record ${JSON.stringify(key)} is malformed`);
      }
      yield { n, arrival: value.t, partitionKey: value.k, data: Buffer.from(value.d) };
    }
  }

  /** Removes the records of a shard that arrived before `cutoff`; resolves with how many. */
  async trim(stream: string, shard: number, cutoff: number): Promise<number> {
    const expired: RecordKey[] = [];
    for (const { key, value } of this.recordsDb.getRange({
      start: [stream, shard, 0],
      end: [stream, shard, MAX_N],
    })) {
      if (value.t >= cutoff) break;
      expired.push(key);
    }
    if (expired.length === 0) return 0;
    await this.write(() =>
      this.root.transaction(() => {
        for (const key of expired) this.recordsDb.removeSync(key);
      }),
    );
    return expired.length;
  }

  private async write(work: () => Promise<unknown>): Promise<void> {
    if (this.closed) throw new KinesisStorageError('the Kinesis store is closed');
    try {
      await work();
      await this.root.flushed;
    } catch (err) {
      throw new KinesisStorageError('writing the Kinesis store failed', { cause: err });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.root.flushed;
    await this.root.close();
  }
}
