/**
 * A local event source mapping for Kinesis, as "Using AWS Lambda with Amazon Kinesis" describes the
 * one Lambda runs:
 *
 * - One worker per shard, one invocation at a time per shard (ParallelizationFactor 1), so the records
 *   of a shard reach the function in sequence order.
 * - Records are read with GetShardIterator/GetRecords through `@aws-sdk/client-kinesis`, the same path a
 *   poller on AWS takes. A worker waits for the local Kinesis' shard notifications rather than polling
 *   in a loop; a slow fallback poll covers writers the notifications do not reach.
 * - A batch holds up to BatchSize records (default 100, at most 10,000). With a batching window
 *   (MaximumBatchingWindowInSeconds) the worker keeps reading until the batch is full or the window,
 *   counted from the first record of the batch, has passed.
 * - StartingPosition TRIM_HORIZON or LATEST applies only when the shard has no checkpoint. The last
 *   processed sequence number of each shard is recorded after every part of a batch that is done and
 *   written under `checkpointDir` off the event loop, one write at a time, the writes that come in the
 *   meantime folded into the next one; stop() writes the last state. A restart resumes right after the
 *   written checkpoint (delivery is at least once: a batch cut short by stop() or by a crash is read
 *   again).
 * - Errors: a failed batch is retried up to MaximumRetryAttempts times (-1: until the records expire,
 *   as on AWS). With BisectBatchOnFunctionError a failed batch of more than one record is split in two
 *   halves that are processed in order; splitting does not count against the retries, so a poison record
 *   ends up alone, is retried, and then goes to the on-failure destination while the shard moves on.
 *   With ReportBatchItemFailures, `{batchItemFailures: [{itemIdentifier}]}` marks the records before the
 *   lowest reported sequence number as done and the rest as failed (bisected at that record); an empty
 *   or missing list is success, and an identifier that is empty or not a sequence number of the batch
 *   fails the whole batch.
 * - The on-failure destination gets the documented Kinesis failure record (requestContext,
 *   responseContext, version, timestamp, KinesisBatchInfo with the shard, the sequence range and the
 *   batch size); the error itself, which AWS leaves out, is added as `errorInfo`.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import {
  GetRecordsCommand,
  type GetRecordsCommandOutput,
  GetShardIteratorCommand,
  type KinesisClient,
  type _Record as KinesisRecord,
  ListShardsCommand,
} from '@aws-sdk/client-kinesis';
import pino, { type Logger } from 'pino';
import { z } from 'zod';
import type { Handler, LambdaContext } from '../../functions/index.js';
import { readJsonFile, writeFileAtomicAsync } from '../store.js';

export const MAX_BATCH_SIZE = 10_000;
export const DEFAULT_BATCH_SIZE = 100;
/** MaximumBatchingWindowInSeconds is at most 300. */
export const MAX_WINDOW_MS = 300_000;
/** MaximumRetryAttempts is -1 (until the record expires) or 0 to 10,000. */
export const MAX_RETRY_ATTEMPTS = 10_000;

/** The record of a Kinesis event as Lambda passes it to a function. */
export interface KinesisEventRecord {
  kinesis: {
    kinesisSchemaVersion: '1.0';
    partitionKey: string;
    sequenceNumber: string;
    /** The record's data, base64. */
    data: string;
    /** Seconds since the epoch, with milliseconds. */
    approximateArrivalTimestamp: number;
  };
  eventSource: 'aws:kinesis';
  eventVersion: '1.0';
  /** `{shardId}:{sequenceNumber}` */
  eventID: string;
  eventName: 'aws:kinesis:record';
  invokeIdentityArn: string;
  awsRegion: string;
  eventSourceARN: string;
}

export interface KinesisEvent {
  Records: KinesisEventRecord[];
}

/** What the on-failure destination receives for records the function could not process. */
export interface KinesisFailureRecord {
  requestContext: {
    requestId: string;
    functionArn: string;
    condition: 'RetryAttemptsExhausted';
    approximateInvokeCount: number;
  };
  responseContext: { statusCode: number; executedVersion: '$LATEST'; functionError: 'Unhandled' };
  version: '1.0';
  timestamp: string;
  KinesisBatchInfo: {
    shardId: string;
    startSequenceNumber: string;
    endSequenceNumber: string;
    approximateArrivalOfFirstRecord: string;
    approximateArrivalOfLastRecord: string;
    batchSize: number;
    streamArn: string;
  };
  /** Not part of AWS's record: the last error of the function on these records. */
  errorInfo: { errorType: string; errorMessage: string };
}

export const EventSourceMappingOptionsSchema = z.object({
  streamName: z.string().regex(/^[a-zA-Z0-9_.-]{1,128}$/, 'must be a Kinesis stream name'),
  functionName: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'must be a Lambda function name'),
  batchSize: z.number().int().min(1).max(MAX_BATCH_SIZE).default(DEFAULT_BATCH_SIZE),
  windowMs: z.number().int().min(0).max(MAX_WINDOW_MS).default(0),
  startingPosition: z.enum(['TRIM_HORIZON', 'LATEST']).default('LATEST'),
  /** -1: retry until the record expires (AWS's default). */
  retries: z.number().int().min(-1).max(MAX_RETRY_ATTEMPTS).default(-1),
  bisect: z.boolean().default(false),
  reportBatchItemFailures: z.boolean().default(false),
  checkpointDir: z.string().min(1),
  region: z.string().min(1).default('us-east-1'),
  accountId: z
    .string()
    .regex(/^\d{12}$/, 'must be a 12-digit account id')
    .default('000000000000'),
  /** The function's execution role (the records' invokeIdentityArn). */
  roleArn: z.string().optional(),
  /** The fallback poll when no notification arrives (default 1 s). */
  pollIntervalMs: z.number().int().min(10).max(60_000).default(1000),
  /** First delay between retries of a failed batch, doubled per retry up to 1 s (default 50 ms). */
  retryDelayMs: z.number().int().min(0).max(60_000).default(50),
});

export type EventSourceMappingSettings = z.input<typeof EventSourceMappingOptionsSchema>;

/** Notifies when records of a shard are durable (LocalKinesis.subscribe). */
export interface ShardNotifier {
  subscribe(stream: string, shardId: string, listener: () => void): () => void;
}

export interface EventSourceMappingOptions extends EventSourceMappingSettings {
  /** A Kinesis client for the stream's endpoint. */
  kinesis: KinesisClient;
  /** Wakes the workers when records arrive (the local Kinesis); without it they poll. */
  notifier?: ShardNotifier;
  handler: Handler;
  /** The on-failure destination. */
  onFailure?: (record: KinesisFailureRecord) => Promise<void> | void;
  logger?: Logger;
}

export class EventSourceMappingError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

const BatchResponseSchema = z
  .object({
    batchItemFailures: z.array(z.object({ itemIdentifier: z.unknown() }).passthrough()).nullish(),
  })
  .passthrough()
  .nullish();

const CheckpointFileSchema = z.object({
  stream: z.string(),
  function: z.string(),
  shards: z.record(z.string(), z.string().regex(/^\d+$/)),
});

type Settings = z.output<typeof EventSourceMappingOptionsSchema>;

/** Thrown inside a worker when the mapping stops; never escapes. */
class Stopped extends Error {}

/** Outcome of one invocation: success, or failed from `index` of the batch on. */
type Outcome =
  | { ok: true }
  | { ok: false; index: number; error: { errorType: string; errorMessage: string } };

export class EventSourceMapping {
  private readonly settings: Settings;
  private readonly log: Logger;
  private readonly workers: ShardWorker[] = [];
  private readonly checkpoints: Record<string, string> = {};
  private readonly checkpointFile: string;
  /** The checkpoint write in progress, and whether checkpoints changed since it started. */
  private writing: Promise<void> | undefined;
  private dirty = false;
  private stopping = false;

  private constructor(
    readonly options: EventSourceMappingOptions,
    settings: Settings,
  ) {
    this.settings = settings;
    this.log = (options.logger ?? pino({ level: 'silent' })).child({
      stream: settings.streamName,
      function: settings.functionName,
    });
    this.checkpointFile = join(
      settings.checkpointDir,
      `${settings.streamName}--${settings.functionName}.json`,
    );
  }

  /** Validates the settings, loads the checkpoints, lists the shards and starts one worker per shard. */
  static async start(options: EventSourceMappingOptions): Promise<EventSourceMapping> {
    const { kinesis: _k, notifier: _n, handler: _h, onFailure: _f, logger: _l, ...rest } = options;
    const parsed = EventSourceMappingOptionsSchema.safeParse(rest);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new EventSourceMappingError(
        `invalid event source mapping: ${issue.path.join('.') || '(root)'}: ${issue.message}`,
        { cause: parsed.error },
      );
    }
    const mapping = new EventSourceMapping(options, parsed.data);
    mapping.loadCheckpoints();
    const shards: string[] = [];
    let token: string | undefined;
    do {
      const page = await options.kinesis.send(
        new ListShardsCommand(token ? { NextToken: token } : { StreamName: parsed.data.streamName }),
      );
      for (const s of page.Shards ?? []) if (s.ShardId) shards.push(s.ShardId);
      token = page.NextToken;
    } while (token);
    for (const shardId of shards) {
      const worker = new ShardWorker(mapping, shardId);
      mapping.workers.push(worker);
      worker.start();
    }
    mapping.log.info({ shards: shards.length }, 'event source mapping started');
    return mapping;
  }

  get streamArn(): string {
    const s = this.settings;
    return `arn:${partitionOf(s.region)}:kinesis:${s.region}:${s.accountId}:stream/${s.streamName}`;
  }

  get functionArn(): string {
    const s = this.settings;
    return `arn:${partitionOf(s.region)}:lambda:${s.region}:${s.accountId}:function:${s.functionName}`;
  }

  /** MillisBehindLatest of each shard, as of its last GetRecords. */
  lag(): Record<string, number> {
    return Object.fromEntries(this.workers.map((w) => [w.shardId, w.millisBehind]));
  }

  /** The last processed sequence number of each shard that has one. */
  checkpoint(): Record<string, string> {
    return { ...this.checkpoints };
  }

  /** Resolves once every shard has read all it can see and has no batch in flight. */
  async idle(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.idle()));
  }

  /** Stops reading; waits for the invocations under way (their remaining records are read again next time). */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await Promise.all(this.workers.map((w) => w.stop()));
    await this.flushCheckpoints();
    this.log.info('event source mapping stopped');
  }

  // ---- used by the workers ----

  get config(): Settings {
    return this.settings;
  }

  get logger(): Logger {
    return this.log;
  }

  savedCheckpoint(shardId: string): string | undefined {
    return this.checkpoints[shardId];
  }

  saveCheckpoint(shardId: string, sequenceNumber: string): void {
    this.checkpoints[shardId] = sequenceNumber;
    this.dirty = true;
    if (!this.writing) this.writing = this.writeCheckpoints();
  }

  /** Resolves once every checkpoint recorded so far is on disk. */
  async flushCheckpoints(): Promise<void> {
    while (this.writing) await this.writing;
  }

  private async writeCheckpoints(): Promise<void> {
    while (this.dirty) {
      this.dirty = false;
      const body = `${JSON.stringify({
        stream: this.settings.streamName,
        function: this.settings.functionName,
        shards: this.checkpoints,
      })}\n`;
      try {
        await writeFileAtomicAsync(this.checkpointFile, body);
      } catch (err) {
        // The records stay processed; a restart before the next good write reads them again.
        this.log.error({ err, file: this.checkpointFile }, 'checkpoints not written');
      }
    }
    this.writing = undefined;
  }

  private loadCheckpoints(): void {
    const raw = readJsonFile<unknown>(this.checkpointFile);
    if (raw === undefined) return;
    const parsed = CheckpointFileSchema.safeParse(raw);
    if (!parsed.success) {
      this.log.warn(
        { file: this.checkpointFile },
        'checkpoint file is invalid; starting from StartingPosition',
      );
      return;
    }
    Object.assign(this.checkpoints, parsed.data.shards);
  }
}

function partitionOf(region: string): string {
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  return 'aws';
}

function errorInfo(err: unknown): { errorType: string; errorMessage: string } {
  if (err instanceof Error) return { errorType: err.name, errorMessage: err.message };
  return { errorType: 'Error', errorMessage: String(err) };
}

function arrivalOf(r: KinesisRecord): number {
  return r.ApproximateArrivalTimestamp?.getTime() ?? Date.now();
}

class ShardWorker {
  millisBehind = 0;
  private running: Promise<void> | undefined;
  private stopped = false;
  private pending = false;
  private wake: (() => void) | undefined;
  private onStop: (() => void) | undefined;
  private unsubscribe: (() => void) | undefined;
  private busy = false;
  private idleWaiters: (() => void)[] = [];
  private iterator: string | undefined;
  /** The last sequence number read into a batch (to get a new iterator after one expired). */
  private lastRead: string | undefined;
  /**
   * The last read reached the tip of the shard: the next one waits for a notification (or the fallback
   * poll) instead of asking right away for records that are not there.
   */
  private caughtUp = false;

  constructor(
    private readonly mapping: EventSourceMapping,
    readonly shardId: string,
  ) {}

  private get cfg(): Settings {
    return this.mapping.config;
  }

  private get log(): Logger {
    return this.mapping.logger;
  }

  start(): void {
    const { notifier } = this.mapping.options;
    this.unsubscribe = notifier?.subscribe(this.cfg.streamName, this.shardId, () => this.signal());
    this.running = this.loop().catch((err: unknown) => {
      if (!(err instanceof Stopped)) this.log.error({ err, shard: this.shardId }, 'shard worker failed');
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.signal();
    this.onStop?.();
    await this.running;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  idle(): Promise<void> {
    if (this.stopped || (!this.busy && !this.pending && this.iterator !== undefined))
      return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private signal(): void {
    this.pending = true;
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Waits for a notification (or one that came while reading), the fallback poll, `ms`, or stop. */
  private async waitForRecords(ms: number, idle: boolean): Promise<void> {
    if (this.stopped) throw new Stopped();
    if (this.pending) return;
    if (idle) {
      this.busy = false;
      for (const w of this.idleWaiters.splice(0)) w();
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.busy = true;
    if (this.stopped) throw new Stopped();
  }

  private async freshIterator(): Promise<string> {
    const { kinesis } = this.mapping.options;
    const after = this.lastRead ?? this.mapping.savedCheckpoint(this.shardId);
    const base = { StreamName: this.cfg.streamName, ShardId: this.shardId };
    if (after !== undefined) {
      try {
        const r = await kinesis.send(
          new GetShardIteratorCommand({
            ...base,
            ShardIteratorType: 'AFTER_SEQUENCE_NUMBER',
            StartingSequenceNumber: after,
          }),
        );
        if (r.ShardIterator) return r.ShardIterator;
      } catch (err) {
        if ((err as { name?: string }).name !== 'InvalidArgumentException') throw err;
        this.log.warn(
          { shard: this.shardId, after, err },
          'checkpoint is not a sequence number of this shard; starting from StartingPosition',
        );
      }
    }
    const r = await kinesis.send(
      new GetShardIteratorCommand({ ...base, ShardIteratorType: this.cfg.startingPosition }),
    );
    if (!r.ShardIterator) throw new EventSourceMappingError(`no shard iterator for ${this.shardId}`);
    return r.ShardIterator;
  }

  private async getRecords(limit: number): Promise<KinesisRecord[]> {
    const { kinesis } = this.mapping.options;
    this.iterator ??= await this.freshIterator();
    this.pending = false;
    let out: GetRecordsCommandOutput;
    try {
      out = await kinesis.send(new GetRecordsCommand({ ShardIterator: this.iterator, Limit: limit }));
    } catch (err) {
      if ((err as { name?: string }).name !== 'ExpiredIteratorException') throw err;
      this.iterator = await this.freshIterator();
      out = await kinesis.send(new GetRecordsCommand({ ShardIterator: this.iterator, Limit: limit }));
    }
    if (out.NextShardIterator) this.iterator = out.NextShardIterator;
    this.millisBehind = out.MillisBehindLatest ?? 0;
    const records = out.Records ?? [];
    this.caughtUp = records.length < limit && this.millisBehind === 0;
    const last = records.at(-1);
    if (last?.SequenceNumber) this.lastRead = last.SequenceNumber;
    return records;
  }

  /** Reads one batch: at least one record, up to BatchSize, within the batching window. */
  private async readBatch(): Promise<KinesisRecord[]> {
    const batch: KinesisRecord[] = [];
    let deadline = 0;
    if (this.caughtUp && this.mapping.options.notifier)
      await this.waitForRecords(this.cfg.pollIntervalMs, true);
    for (;;) {
      if (this.stopped) throw new Stopped();
      const records = await this.getRecords(this.cfg.batchSize - batch.length);
      if (batch.length === 0 && records.length > 0) deadline = Date.now() + this.cfg.windowMs;
      batch.push(...records);
      if (batch.length >= this.cfg.batchSize) return batch;
      if (batch.length > 0) {
        const left = deadline - Date.now();
        if (left <= 0) return batch;
        if (records.length === 0 || this.millisBehind === 0) await this.waitForRecords(left, false);
        continue;
      }
      await this.waitForRecords(this.cfg.pollIntervalMs, true);
    }
  }

  private async loop(): Promise<void> {
    this.busy = true;
    for (;;) {
      const batch = await this.readBatch();
      await this.process(batch);
    }
  }

  private async process(records: KinesisRecord[]): Promise<void> {
    if (records.length === 0) return;
    let pending = records;
    let attempts = 0;
    for (;;) {
      if (this.stopped) throw new Stopped();
      attempts++;
      const outcome = await this.invoke(pending);
      if (outcome.ok) {
        this.done(pending);
        return;
      }
      if (outcome.index > 0) {
        this.done(pending.slice(0, outcome.index));
        pending = pending.slice(outcome.index);
      }
      if (this.cfg.bisect && pending.length > 1) {
        const half = Math.ceil(pending.length / 2);
        this.log.warn(
          { shard: this.shardId, records: pending.length, error: outcome.error.errorMessage },
          'batch failed; bisecting it',
        );
        await this.process(pending.slice(0, half));
        await this.process(pending.slice(half));
        return;
      }
      const retries = this.cfg.retries;
      if (retries === -1 || attempts <= retries) {
        const delay = Math.min(1000, this.cfg.retryDelayMs * 2 ** (attempts - 1));
        this.log.warn(
          {
            shard: this.shardId,
            records: pending.length,
            attempt: attempts,
            error: outcome.error.errorMessage,
          },
          'batch failed; retrying it',
        );
        if (delay > 0) await this.sleep(delay);
        continue;
      }
      await this.fail(pending, attempts, outcome.error);
      this.done(pending);
      return;
    }
  }

  private async sleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      // stop() cuts the delay short (record notifications do not).
      this.onStop = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.onStop = undefined;
    if (this.stopped) throw new Stopped();
  }

  private done(records: KinesisRecord[]): void {
    const last = records.at(-1)?.SequenceNumber;
    if (last !== undefined) this.mapping.saveCheckpoint(this.shardId, last);
  }

  private event(records: KinesisRecord[]): KinesisEvent {
    const cfg = this.cfg;
    const invokeIdentityArn =
      cfg.roleArn ?? `arn:${partitionOf(cfg.region)}:iam::${cfg.accountId}:role/${cfg.functionName}`;
    return {
      Records: records.map((r) => ({
        kinesis: {
          kinesisSchemaVersion: '1.0',
          partitionKey: r.PartitionKey ?? '',
          sequenceNumber: r.SequenceNumber ?? '',
          data: Buffer.from(r.Data ?? new Uint8Array()).toString('base64'),
          approximateArrivalTimestamp: arrivalOf(r) / 1000,
        },
        eventSource: 'aws:kinesis',
        eventVersion: '1.0',
        eventID: `${this.shardId}:${r.SequenceNumber ?? ''}`,
        eventName: 'aws:kinesis:record',
        invokeIdentityArn,
        awsRegion: cfg.region,
        eventSourceARN: this.mapping.streamArn,
      })),
    };
  }

  private context(): LambdaContext {
    const cfg = this.cfg;
    const started = Date.now();
    return {
      functionName: cfg.functionName,
      functionVersion: '$LATEST',
      invokedFunctionArn: this.mapping.functionArn,
      memoryLimitInMB: '128',
      awsRequestId: randomUUID(),
      logGroupName: `/aws/lambda/${cfg.functionName}`,
      logStreamName: `local/${this.shardId}`,
      getRemainingTimeInMillis: () => Math.max(0, started + 900_000 - Date.now()),
    };
  }

  private async invoke(records: KinesisRecord[]): Promise<Outcome> {
    let result: unknown;
    try {
      result = await this.mapping.options.handler(this.event(records), this.context());
    } catch (err) {
      return { ok: false, index: 0, error: errorInfo(err) };
    }
    if (!this.cfg.reportBatchItemFailures) return { ok: true };
    const parsed = BatchResponseSchema.safeParse(result);
    // A response that is not a batch response at all counts as success, as on AWS.
    const failures = parsed.success ? (parsed.data?.batchItemFailures ?? []) : [];
    if (failures.length === 0) return { ok: true };
    let lowest = records.length;
    for (const f of failures) {
      const id = f.itemIdentifier;
      const index =
        typeof id === 'string' && id !== '' ? records.findIndex((r) => r.SequenceNumber === id) : -1;
      if (index < 0) {
        return {
          ok: false,
          index: 0,
          error: {
            errorType: 'InvalidBatchItemFailure',
            errorMessage: `batchItemFailures: itemIdentifier ${JSON.stringify(id)} is not a sequence number of the batch`,
          },
        };
      }
      lowest = Math.min(lowest, index);
    }
    return {
      ok: false,
      index: lowest,
      error: {
        errorType: 'BatchItemFailure',
        errorMessage: `the function reported record ${records[lowest]?.SequenceNumber} as failed`,
      },
    };
  }

  private async fail(
    records: KinesisRecord[],
    attempts: number,
    error: { errorType: string; errorMessage: string },
  ): Promise<void> {
    const first = records[0]!;
    const last = records.at(-1)!;
    const record: KinesisFailureRecord = {
      requestContext: {
        requestId: randomUUID(),
        functionArn: this.mapping.functionArn,
        condition: 'RetryAttemptsExhausted',
        approximateInvokeCount: attempts,
      },
      responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
      version: '1.0',
      timestamp: new Date().toISOString(),
      KinesisBatchInfo: {
        shardId: this.shardId,
        startSequenceNumber: first.SequenceNumber ?? '',
        endSequenceNumber: last.SequenceNumber ?? '',
        approximateArrivalOfFirstRecord: new Date(arrivalOf(first)).toISOString(),
        approximateArrivalOfLastRecord: new Date(arrivalOf(last)).toISOString(),
        batchSize: records.length,
        streamArn: this.mapping.streamArn,
      },
      errorInfo: error,
    };
    this.log.error(
      { shard: this.shardId, batchInfo: record.KinesisBatchInfo, error },
      'records sent to the on-failure destination',
    );
    const onFailure = this.mapping.options.onFailure;
    if (!onFailure) return;
    try {
      await onFailure(record);
    } catch (err) {
      this.log.error({ err, shard: this.shardId }, 'the on-failure destination refused the failure record');
    }
  }
}
