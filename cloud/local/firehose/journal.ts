/**
 * The local Firehose's durable state: one LMDB environment, `{dataDir}/firehose/firehose.mdb`, with
 * - `streams`: the stream definitions, by name;
 * - `records`: every accepted record not yet in S3, by a sequence number that increases in arrival
 *   order, with its stream and arrival time.
 *
 * Records are committed and fsynced before PutRecord/PutRecordBatch answer: the environment is opened
 * with `overlappingSync: false` (a commit syncs data and meta pages before its promise resolves) and the
 * writes also await `flushed`. LMDB batches the writes issued while a commit is under way into the next
 * one, so concurrent requests share an fsync (group commit). A record is removed once the object that
 * holds it is in S3; on open, the records still stored are handed back to be buffered again.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';
import { FirehoseStorageError } from './errors.js';

/** One stored record. */
export interface JournalRecord {
  seq: number;
  stream: string;
  /** Approximate arrival time, ms since the epoch. */
  arrival: number;
  data: Buffer;
}

interface StoredRecordValue {
  s: string;
  t: number;
  d: Uint8Array;
}

export class Journal {
  private nextSeq = 1;
  private closed = false;

  private constructor(
    private readonly root: RootDatabase,
    private readonly streamsDb: Database<unknown, string>,
    private readonly recordsDb: Database<StoredRecordValue, number>,
  ) {}

  /** Opens (creating when missing) the journal under `dir`. */
  static open(dir: string): Journal {
    let root: RootDatabase;
    try {
      mkdirSync(dir, { recursive: true });
      root = open({
        path: join(dir, 'firehose.mdb'),
        overlappingSync: false,
        noSync: false,
        noMetaSync: false,
        maxDbs: 4,
      });
    } catch (err) {
      throw new FirehoseStorageError(`cannot open the Firehose journal in ${dir}`, { cause: err });
    }
    const journal = new Journal(
      root,
      root.openDB<unknown, string>('streams', {}),
      root.openDB<StoredRecordValue, number>('records', {}),
    );
    for (const key of journal.recordsDb.getKeys({ reverse: true, limit: 1 })) journal.nextSeq = key + 1;
    return journal;
  }

  /** The stored stream definitions (as written by {@link putStream}; validated by the caller). */
  streams(): { name: string; value: unknown }[] {
    return [...this.streamsDb.getRange({})].map(({ key, value }) => ({ name: key, value }));
  }

  /** The stored records in arrival order. */
  *records(): Generator<JournalRecord> {
    for (const { key, value } of this.recordsDb.getRange({})) {
      if (
        typeof key !== 'number' ||
        typeof value?.s !== 'string' ||
        typeof value.t !== 'number' ||
        !(value.d instanceof Uint8Array)
      ) {
        throw new FirehoseStorageError(`journaled record ${String(key)} is malformed`);
      }
      yield { seq: key, stream: value.s, arrival: value.t, data: Buffer.from(value.d) };
    }
  }

  async putStream(name: string, value: unknown): Promise<void> {
    await this.write(() => this.streamsDb.put(name, value));
  }

  /** Removes a stream and the records of it that are still stored. */
  async deleteStream(name: string, seqs: readonly number[]): Promise<void> {
    await this.write(() =>
      this.root.transaction(() => {
        this.streamsDb.removeSync(name);
        for (const seq of seqs) this.recordsDb.removeSync(seq);
      }),
    );
  }

  /**
   * Stores records of one stream; resolves with their sequence numbers once they are durable. The
   * records of one call are committed together.
   */
  async append(stream: string, items: readonly { arrival: number; data: Buffer }[]): Promise<number[]> {
    const seqs = items.map(() => this.nextSeq++);
    await this.write(() =>
      this.root.transaction(() => {
        items.forEach((item, i) => {
          this.recordsDb.putSync(seqs[i]!, { s: stream, t: item.arrival, d: item.data });
        });
      }),
    );
    return seqs;
  }

  /** Removes delivered records; resolves once the removal is durable. */
  async remove(seqs: readonly number[]): Promise<void> {
    if (seqs.length === 0) return;
    await this.write(() =>
      this.root.transaction(() => {
        for (const seq of seqs) this.recordsDb.removeSync(seq);
      }),
    );
  }

  private async write(work: () => Promise<unknown>): Promise<void> {
    if (this.closed) throw new FirehoseStorageError('the Firehose journal is closed');
    try {
      await work();
      await this.root.flushed;
    } catch (err) {
      throw new FirehoseStorageError('writing the Firehose journal failed', { cause: err });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.root.flushed;
    await this.root.close();
  }
}
