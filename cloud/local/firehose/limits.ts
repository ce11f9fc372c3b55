/**
 * The Direct PUT throughput quotas of a stream ("Amazon Data Firehose Quota": requests, records and
 * bytes per second, shared by PutRecord and PutRecordBatch). A PutRecord over a quota is answered with
 * ServiceUnavailableException, a PutRecordBatch's records over it fail one by one (FailedPutCount).
 * Quotas are counted in one-second windows of the Firehose's clock.
 */
export interface ThroughputLimits {
  requestsPerSecond?: number;
  recordsPerSecond?: number;
  bytesPerSecond?: number;
}

interface Window {
  second: number;
  requests: number;
  records: number;
  bytes: number;
}

export class ThroughputMeter {
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly limits: ThroughputLimits,
    private readonly now: () => number,
  ) {}

  private window(stream: string): Window {
    const second = Math.floor(this.now() / 1000);
    let w = this.windows.get(stream);
    if (!w || w.second !== second) {
      w = { second, requests: 0, records: 0, bytes: 0 };
      this.windows.set(stream, w);
    }
    return w;
  }

  /** Counts a request; false when the stream's request quota of this second is used up. */
  admitRequest(stream: string): boolean {
    const w = this.window(stream);
    if (this.limits.requestsPerSecond !== undefined && w.requests >= this.limits.requestsPerSecond)
      return false;
    w.requests++;
    return true;
  }

  /** Counts a record of `bytes`; false (and not counted) when it would exceed a quota. */
  admitRecord(stream: string, bytes: number): boolean {
    const w = this.window(stream);
    if (this.limits.recordsPerSecond !== undefined && w.records + 1 > this.limits.recordsPerSecond)
      return false;
    if (this.limits.bytesPerSecond !== undefined && w.bytes + bytes > this.limits.bytesPerSecond)
      return false;
    w.records++;
    w.bytes += bytes;
    return true;
  }

  forget(stream: string): void {
    this.windows.delete(stream);
  }
}
