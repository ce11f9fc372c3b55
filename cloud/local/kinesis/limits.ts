/**
 * The per-shard write quotas of Kinesis Data Streams ("Quotas and limits"): each shard takes up to
 * 1 MiB of data (record data plus partition key) and 1,000 records per second, shared by PutRecord and
 * PutRecords. A PutRecord over a quota is answered with ProvisionedThroughputExceededException; the
 * records of a PutRecords over it fail one by one. Quotas are counted in one-second windows of the
 * stream's clock. Reads (2 MiB and 5 GetRecords calls per second per shard) are not enforced.
 */
export interface ShardWriteLimits {
  /** Bytes (data + partition key) a shard takes per second; default 1 MiB. `Infinity` disables. */
  writeBytesPerSecond?: number;
  /** Records a shard takes per second; default 1,000. `Infinity` disables. */
  writeRecordsPerSecond?: number;
}

export const DEFAULT_WRITE_BYTES_PER_SECOND = 1024 * 1024;
export const DEFAULT_WRITE_RECORDS_PER_SECOND = 1000;

interface Window {
  second: number;
  records: number;
  bytes: number;
}

export class ShardMeter {
  private readonly windows = new Map<string, Window>();
  private readonly bytesPerSecond: number;
  private readonly recordsPerSecond: number;

  constructor(
    limits: ShardWriteLimits,
    private readonly now: () => number,
  ) {
    this.bytesPerSecond = limits.writeBytesPerSecond ?? DEFAULT_WRITE_BYTES_PER_SECOND;
    this.recordsPerSecond = limits.writeRecordsPerSecond ?? DEFAULT_WRITE_RECORDS_PER_SECOND;
  }

  /** Counts a record of `bytes` on a shard; false (and not counted) when it would exceed a quota. */
  admit(shardKey: string, bytes: number): boolean {
    const second = Math.floor(this.now() / 1000);
    let w = this.windows.get(shardKey);
    if (!w || w.second !== second) {
      w = { second, records: 0, bytes: 0 };
      this.windows.set(shardKey, w);
    }
    if (w.records + 1 > this.recordsPerSecond || w.bytes + bytes > this.bytesPerSecond) return false;
    w.records++;
    w.bytes += bytes;
    return true;
  }

  /** Forgets the windows of a stream's shards (keys `stream/...`). */
  forget(stream: string): void {
    for (const key of this.windows.keys()) if (key.startsWith(`${stream}/`)) this.windows.delete(key);
  }
}
