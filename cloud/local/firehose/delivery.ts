/**
 * Buffering and delivery to S3 ("Understand buffering hints", "Configure Amazon S3 object name format").
 *
 * Each stream buffers its records; with dynamic partitioning there is one buffer per evaluated prefix
 * (the partition keys and, when the prefix has them, the timestamps of the record's arrival), and one
 * buffer of records that failed partitioning. A buffer is delivered as one object when its size reaches
 * BufferingHints.SizeInMBs or when IntervalInSeconds have passed since its oldest record arrived.
 *
 * The object is `<evaluated prefix><stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid><extension>`, the
 * prefix's timestamps and the name's time being the arrival of the oldest record (UTC, or the stream's
 * CustomTimeZone). Its body is the records as received (each followed by `\n` with the
 * AppendDelimiterToRecord processor), gzipped for GZIP; failed records are JSON lines in the documented
 * failure format. Objects are written with PutObject by the stream's role. A failed write is retried
 * with exponential backoff (the same key, so a retry never duplicates an object) until it succeeds or
 * the Firehose closes; the records stay in the journal meanwhile and are removed once the object is in S3.
 */
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Logger } from 'pino';
import type { StreamPlan } from './config.js';
import { FirehoseDeliveryError, RecordProcessingError } from './errors.js';
import type { Journal, JournalRecord } from './journal.js';
import { METADATA_EXTRACTION_FAILED } from './jq.js';
import {
  evaluatePrefix,
  MAX_EVALUATED_PREFIX_LENGTH,
  PROCESSING_FAILED,
  RANDOM_STRING_LENGTH,
} from './prefix.js';
import { compileDateTimePattern, formatDateTime } from './time-format.js';

const gzip = promisify(gzipCallback);
const NAME_TIME = compileDateTimePattern('yyyy-MM-dd-HH-mm-ss', 'object name');
const NEWLINE = Buffer.from('\n');

export interface RetryPolicy {
  /** First delay after a failed write. */
  baseMs: number;
  /** Longest delay between attempts. */
  maxMs: number;
}

export interface DeliveryDeps {
  journal: Journal;
  logger: Logger;
  now: () => number;
  /** An S3 client of the role; `invalidate` drops a cached one after a failure. */
  s3: { client(roleArn: string): Promise<S3Client>; invalidate(roleArn: string): void };
  retry: RetryPolicy;
  /** Objects written at the same time. */
  maxConcurrent: number;
}

interface ProcessingFailure {
  code: string;
  message: string;
  /** When the attempt ended, ms since the epoch. */
  at: number;
}

interface BufferedRecord {
  seq: number;
  arrival: number;
  data: Buffer;
  failure?: ProcessingFailure;
}

interface PartitionBuffer {
  key: string;
  kind: 'data' | 'error';
  partitionKeys?: Record<string, string>;
  records: BufferedRecord[];
  bytes: number;
  oldest: number;
  timer?: NodeJS.Timeout;
}

interface StreamRuntime {
  plan: StreamPlan;
  buffers: Map<string, PartitionBuffer>;
  deleted: boolean;
}

interface DeliveryJob {
  stream: StreamRuntime;
  buffer: PartitionBuffer;
}

/**
 * The key of an object: the evaluated prefix (data or error), then
 * `<stream>-<version>-<yyyy>-<MM>-<dd>-<HH>-<mm>-<ss>-<uuid><extension>`, times being the arrival of the
 * oldest record in the stream's time zone.
 */
export function objectKey(
  plan: StreamPlan,
  b: { kind: 'data' | 'error'; oldest: number; partitionKeys?: Record<string, string> },
): string {
  const zone = plan.timeZone !== undefined ? { timeZone: plan.timeZone } : {};
  const prefix = evaluatePrefix(b.kind === 'data' ? plan.prefixes.data : plan.prefixes.error, {
    arrivalMs: b.oldest,
    ...zone,
    errorOutputType: PROCESSING_FAILED,
    ...(b.partitionKeys ? { partitionKeys: b.partitionKeys } : {}),
  });
  const time = formatDateTime(NAME_TIME, b.oldest, plan.timeZone);
  return `${prefix}${plan.name}-${plan.versionId}-${time}-${randomUUID()}${plan.extension}`;
}

const CREDENTIAL_ERRORS = new Set([
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidAccessKeyId',
  'InvalidToken',
  'TokenRefreshRequired',
  'UnrecognizedClientException',
  'CredentialsProviderError',
]);

function isCredentialError(err: unknown): boolean {
  return err instanceof Error && CREDENTIAL_ERRORS.has(err.name);
}

const ERROR_KEY = '\u0000error';
const DATA_KEY = '\u0000data';

export class DeliveryEngine {
  private readonly streams = new Map<string, StreamRuntime>();
  private readonly queue: DeliveryJob[] = [];
  private active = 0;
  private readonly drained: (() => void)[] = [];
  private readonly stop = new AbortController();
  private closing = false;

  constructor(private readonly deps: DeliveryDeps) {}

  /** Starts buffering for a stream (a new or reopened one). */
  addStream(plan: StreamPlan): void {
    this.streams.set(plan.name, { plan, buffers: new Map(), deleted: false });
  }

  /**
   * Stops a deleted stream: its buffers and queued deliveries are dropped. Returns the sequence numbers
   * of the records they held (for the journal).
   */
  removeStream(name: string): number[] {
    const rt = this.streams.get(name);
    if (!rt) return [];
    this.streams.delete(name);
    rt.deleted = true;
    const seqs: number[] = [];
    for (const b of rt.buffers.values()) {
      if (b.timer) clearTimeout(b.timer);
      for (const r of b.records) seqs.push(r.seq);
    }
    rt.buffers.clear();
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const job = this.queue[i]!;
      if (job.stream !== rt) continue;
      for (const r of job.buffer.records) seqs.push(r.seq);
      this.queue.splice(i, 1);
    }
    this.settle();
    return seqs;
  }

  /** Buffers journaled records of a stream (in arrival order). */
  accept(name: string, records: readonly JournalRecord[]): void {
    const rt = this.streams.get(name);
    if (!rt || this.closing) return;
    const plan = rt.plan;
    for (const rec of records) {
      let key = DATA_KEY;
      let kind: PartitionBuffer['kind'] = 'data';
      let partitionKeys: Record<string, string> | undefined;
      let failure: ProcessingFailure | undefined;
      if (plan.query) {
        try {
          partitionKeys = plan.query.extract(rec.data);
          const evaluated = evaluatePrefix(plan.prefixes.data, {
            arrivalMs: rec.arrival,
            ...(plan.timeZone !== undefined ? { timeZone: plan.timeZone } : {}),
            partitionKeys,
            random: () => '',
          });
          const randoms = plan.prefixes.data.segments.filter((s) => s.kind === 'randomString').length;
          if (evaluated.length + randoms * RANDOM_STRING_LENGTH > MAX_EVALUATED_PREFIX_LENGTH) {
            throw new RecordProcessingError(
              METADATA_EXTRACTION_FAILED,
              `The evaluated prefix is longer than ${MAX_EVALUATED_PREFIX_LENGTH} characters`,
            );
          }
          key = evaluated;
        } catch (err) {
          if (!(err instanceof RecordProcessingError)) throw err;
          key = ERROR_KEY;
          kind = 'error';
          partitionKeys = undefined;
          failure = { code: err.code, message: err.message, at: this.deps.now() };
        }
      }
      const entry: BufferedRecord = {
        seq: rec.seq,
        arrival: rec.arrival,
        data: rec.data,
        ...(failure ? { failure } : {}),
      };
      let b = rt.buffers.get(key);
      if (!b) {
        b = {
          key,
          kind,
          records: [],
          bytes: 0,
          oldest: rec.arrival,
          ...(partitionKeys ? { partitionKeys } : {}),
        };
        rt.buffers.set(key, b);
        this.schedule(rt, b);
      }
      b.records.push(entry);
      b.bytes += rec.data.length + (kind === 'data' && plan.appendDelimiter ? 1 : 0);
      if (rec.arrival < b.oldest) b.oldest = rec.arrival;
      if (b.bytes >= plan.sizeBytes) this.detach(rt, b);
    }
  }

  /** Queues every non-empty buffer for delivery now. */
  flushAll(): void {
    for (const rt of this.streams.values()) for (const b of [...rt.buffers.values()]) this.detach(rt, b);
  }

  /** Resolves when no delivery is queued or running. */
  idle(): Promise<void> {
    if (this.active === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.drained.push(resolve));
  }

  /**
   * Stops timers and retries and waits for the writes under way; records not delivered stay in the
   * journal.
   */
  async close(): Promise<void> {
    this.closing = true;
    this.stop.abort();
    for (const rt of this.streams.values()) {
      for (const b of rt.buffers.values()) if (b.timer) clearTimeout(b.timer);
      rt.buffers.clear();
    }
    this.queue.length = 0;
    this.settle();
    await this.idle();
  }

  private schedule(rt: StreamRuntime, b: PartitionBuffer): void {
    const delay = Math.max(0, b.oldest + rt.plan.intervalMs - this.deps.now());
    b.timer = setTimeout(() => this.detach(rt, b), delay);
    b.timer.unref();
  }

  private detach(rt: StreamRuntime, b: PartitionBuffer): void {
    if (b.timer) clearTimeout(b.timer);
    if (rt.buffers.get(b.key) === b) rt.buffers.delete(b.key);
    if (b.records.length === 0 || rt.deleted || this.closing) return;
    this.queue.push({ stream: rt, buffer: b });
    this.pump();
  }

  private pump(): void {
    while (this.active < this.deps.maxConcurrent && this.queue.length > 0) {
      const job = this.queue.shift()!;
      this.active++;
      this.deliver(job)
        .catch((err) =>
          this.deps.logger.error({ err, stream: job.stream.plan.name }, 'Firehose delivery failed'),
        )
        .finally(() => {
          this.active--;
          this.pump();
          this.settle();
        });
    }
  }

  private settle(): void {
    if (this.active !== 0 || this.queue.length !== 0) return;
    for (const resolve of this.drained.splice(0)) resolve();
  }

  private async body(plan: StreamPlan, b: PartitionBuffer): Promise<Buffer> {
    let raw: Buffer;
    if (b.kind === 'error') {
      raw = Buffer.from(
        b.records
          .map((r) =>
            JSON.stringify({
              attemptsMade: 1,
              arrivalTimestamp: r.arrival,
              errorCode: r.failure?.code ?? METADATA_EXTRACTION_FAILED,
              errorMessage: r.failure?.message ?? '',
              attemptEndingTimestamp: r.failure?.at ?? r.arrival,
              rawData: r.data.toString('base64'),
            }),
          )
          .join('\n')
          .concat('\n'),
      );
    } else if (plan.appendDelimiter) {
      const parts: Buffer[] = [];
      for (const r of b.records) parts.push(r.data, NEWLINE);
      raw = Buffer.concat(parts);
    } else {
      raw = Buffer.concat(b.records.map((r) => r.data));
    }
    return plan.compression === 'GZIP' ? gzip(raw) : raw;
  }

  private async deliver(job: DeliveryJob): Promise<void> {
    const { stream, buffer } = job;
    const plan = stream.plan;
    const body = await this.body(plan, buffer);
    const key = objectKey(plan, buffer);
    const log = this.deps.logger;
    for (let attempt = 1; ; attempt++) {
      if (this.closing || stream.deleted) return;
      try {
        const client = await this.deps.s3.client(plan.roleArn);
        await client.send(new PutObjectCommand({ Bucket: plan.bucket, Key: key, Body: body }));
        break;
      } catch (err) {
        // A session the S3 endpoint no longer takes is replaced; other failures keep the client.
        if (isCredentialError(err)) this.deps.s3.invalidate(plan.roleArn);
        const delay = Math.min(this.deps.retry.maxMs, this.deps.retry.baseMs * 2 ** (attempt - 1));
        log.warn(
          {
            err: new FirehoseDeliveryError(`writing s3://${plan.bucket}/${key} failed`, { cause: err }),
            stream: plan.name,
            attempt,
            retryInMs: delay,
            records: buffer.records.length,
          },
          'Firehose delivery to S3 failed; retrying',
        );
        await this.sleep(delay);
      }
    }
    await this.deps.journal.remove(buffer.records.map((r) => r.seq));
    log.debug(
      { stream: plan.name, bucket: plan.bucket, key, records: buffer.records.length, bytes: body.length },
      buffer.kind === 'error' ? 'Firehose delivered failed records' : 'Firehose delivered an object',
    );
  }

  private sleep(ms: number): Promise<void> {
    const signal = this.stop.signal;
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const onAbort = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}
