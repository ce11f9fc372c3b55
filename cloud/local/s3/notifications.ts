/**
 * S3 event notifications to Lambda functions ("Amazon S3 Event Notifications"), for the local S3.
 *
 * A configuration names a bucket, event types (`s3:ObjectCreated:*` or one of `s3:ObjectCreated:Put`,
 * `:Post`, `:Copy`, `:CompleteMultipartUpload`), an optional key prefix and suffix filter and a function.
 * As on AWS, two configurations of a bucket may not overlap (same event type, prefixes of which one
 * starts with the other, suffixes of which one ends with the other).
 *
 * Delivery follows S3 and Lambda's asynchronous invocation: the event is built when the object is
 * committed and delivered after the request has been answered (never blocking it), one record per
 * event, with the documented message structure (event version 2.1; the key URL-encoded as in a form,
 * `+` for a space; the ETag without quotes; a sequencer that grows per key). A failed invocation is
 * retried twice, after {@link RETRY_DELAYS_MS} (Lambda waits about one and two minutes; the local cloud
 * is faster, and configurable). Events not yet delivered when the local cloud stops are lost.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { LambdaContext } from '../../functions/index.js';

export const S3_CREATED_EVENTS = [
  's3:ObjectCreated:*',
  's3:ObjectCreated:Put',
  's3:ObjectCreated:Post',
  's3:ObjectCreated:Copy',
  's3:ObjectCreated:CompleteMultipartUpload',
] as const;
export type S3EventType = (typeof S3_CREATED_EVENTS)[number];

export interface LambdaNotificationConfiguration {
  /** Id of the configuration (`configurationId` in the event). */
  id: string;
  bucket: string;
  events: readonly S3EventType[];
  /** Key filter rules `prefix` and `suffix`. */
  prefix?: string;
  suffix?: string;
  /** Function name (of the local function registry). */
  functionName: string;
}

/** What the S3 endpoint tells the notifier about a new object. */
export interface ObjectCreated {
  /** Without the `s3:` prefix, as the event's `eventName`: `ObjectCreated:Put`, ... */
  eventName:
    | 'ObjectCreated:Put'
    | 'ObjectCreated:Post'
    | 'ObjectCreated:Copy'
    | 'ObjectCreated:CompleteMultipartUpload';
  bucket: string;
  key: string;
  size: number;
  /** As stored (quoted). */
  etag: string;
  /** The requester: `AWS:{principal id}`. */
  principalId: string;
  sourceIp: string;
  requestId: string;
  hostId: string;
  /** ms since the epoch. */
  time: number;
}

export interface S3EventRecord {
  eventVersion: '2.1';
  eventSource: 'aws:s3';
  awsRegion: string;
  eventTime: string;
  eventName: string;
  userIdentity: { principalId: string };
  requestParameters: { sourceIPAddress: string };
  responseElements: { 'x-amz-request-id': string; 'x-amz-id-2': string };
  s3: {
    s3SchemaVersion: '1.0';
    configurationId: string;
    bucket: { name: string; ownerIdentity: { principalId: string }; arn: string };
    object: { key: string; size: number; eTag: string; sequencer: string };
  };
}

export type InvokeFunction = (
  functionName: string,
  event: unknown,
  context: LambdaContext,
) => Promise<unknown>;

export interface S3NotifierOptions {
  region: string;
  accountId: string;
  /** `aws`, `aws-cn` or `aws-us-gov`. */
  partition: string;
  /** Owner principal id of every bucket (the account's canonical user). */
  bucketOwner: string;
  /** Runs a function (the local function registry); undefined for an unknown function name. */
  resolve: (
    functionName: string,
  ) => ((event: unknown, context: LambdaContext) => Promise<unknown>) | undefined;
  logger: Logger;
  /** Delays before each retry, ms (default {@link RETRY_DELAYS_MS}: two retries). */
  retryDelaysMs?: readonly number[];
}

/** Delays before the two retries of a failed invocation, ms. */
export const RETRY_DELAYS_MS: readonly number[] = [1000, 2000];

/** The nominal timeout behind `context.getRemainingTimeInMillis()` (not enforced). */
const FUNCTION_TIMEOUT_MS = 60_000;

/** A key as S3 writes it into events: URL-encoded like a form value (`+` for a space), `/` kept. */
export function encodeEventKey(key: string): string {
  return key
    .split('/')
    .map((segment) =>
      encodeURIComponent(segment)
        .replace(/[!'()~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
        .replace(/%20/g, '+'),
    )
    .join('/');
}

export class NotificationConfigurationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

function eventMatches(types: readonly S3EventType[], eventName: string): boolean {
  return types.some((t) => t === 's3:ObjectCreated:*' || t === `s3:${eventName}`);
}

function typesOverlap(a: readonly S3EventType[], b: readonly S3EventType[]): boolean {
  const wild = (t: readonly S3EventType[]) => t.includes('s3:ObjectCreated:*');
  return wild(a) || wild(b) || a.some((t) => b.includes(t));
}

export class S3Notifier {
  private readonly configs: LambdaNotificationConfiguration[] = [];
  private readonly pending = new Set<Promise<void>>();
  private readonly timers = new Map<NodeJS.Timeout, () => void>();
  private sequence = 0n;
  private stopped = false;
  private readonly delays: readonly number[];

  constructor(private readonly opts: S3NotifierOptions) {
    this.delays = opts.retryDelaysMs ?? RETRY_DELAYS_MS;
  }

  /** Adds a configuration; refuses one that overlaps another of the bucket. Returns its remover. */
  addLambdaConfiguration(config: LambdaNotificationConfiguration): () => void {
    if (config.events.length === 0) throw new NotificationConfigurationError(`${config.id}: no event types`);
    for (const other of this.configs) {
      if (other.bucket !== config.bucket) continue;
      if (other.id === config.id) {
        throw new NotificationConfigurationError(`a configuration with id '${config.id}' already exists`);
      }
      const p1 = config.prefix ?? '';
      const p2 = other.prefix ?? '';
      const s1 = config.suffix ?? '';
      const s2 = other.suffix ?? '';
      if (
        typesOverlap(config.events, other.events) &&
        (p1.startsWith(p2) || p2.startsWith(p1)) &&
        (s1.endsWith(s2) || s2.endsWith(s1))
      ) {
        throw new NotificationConfigurationError(
          `Configurations overlap. Configurations on the same bucket cannot share a common event type (${config.id} and ${other.id})`,
        );
      }
    }
    this.configs.push(config);
    return () => {
      const i = this.configs.indexOf(config);
      if (i >= 0) this.configs.splice(i, 1);
    };
  }

  configurations(bucket?: string): LambdaNotificationConfiguration[] {
    return this.configs.filter((c) => bucket === undefined || c.bucket === bucket);
  }

  /** Called by the S3 endpoint when an object has been created; delivery happens later. */
  objectCreated(e: ObjectCreated): void {
    if (this.stopped) return;
    const matching = this.configs.filter(
      (c) =>
        c.bucket === e.bucket &&
        eventMatches(c.events, e.eventName) &&
        e.key.startsWith(c.prefix ?? '') &&
        e.key.endsWith(c.suffix ?? ''),
    );
    if (matching.length === 0) return;
    this.sequence += 1n;
    const sequencer = (BigInt(e.time) * 1_000_000n + (this.sequence % 1_000_000n))
      .toString(16)
      .toUpperCase()
      .padStart(18, '0');
    for (const config of matching) this.schedule(config, this.record(config, e, sequencer), 0);
  }

  private record(
    config: LambdaNotificationConfiguration,
    e: ObjectCreated,
    sequencer: string,
  ): S3EventRecord {
    return {
      eventVersion: '2.1',
      eventSource: 'aws:s3',
      awsRegion: this.opts.region,
      eventTime: new Date(e.time).toISOString(),
      eventName: e.eventName,
      userIdentity: { principalId: e.principalId },
      requestParameters: { sourceIPAddress: e.sourceIp },
      responseElements: { 'x-amz-request-id': e.requestId, 'x-amz-id-2': e.hostId },
      s3: {
        s3SchemaVersion: '1.0',
        configurationId: config.id,
        bucket: {
          name: e.bucket,
          ownerIdentity: { principalId: this.opts.bucketOwner },
          arn: `arn:${this.opts.partition}:s3:::${e.bucket}`,
        },
        object: {
          key: encodeEventKey(e.key),
          size: e.size,
          eTag: e.etag.replace(/^"|"$/g, ''),
          sequencer,
        },
      },
    };
  }

  private schedule(config: LambdaNotificationConfiguration, record: S3EventRecord, attempt: number): void {
    const delay = attempt === 0 ? 0 : (this.delays[attempt - 1] ?? 0);
    let done!: () => void;
    const delivery = new Promise<void>((resolve) => {
      done = resolve;
    });
    this.pending.add(delivery);
    const finish = () => {
      this.pending.delete(delivery);
      done();
    };
    // setImmediate (first attempt): after the S3 response has been written.
    const run = () => {
      if (this.stopped) return finish();
      this.invoke(config, record, attempt).finally(finish);
    };
    if (delay === 0) {
      setImmediate(run);
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      run();
    }, delay);
    this.timers.set(timer, finish);
  }

  private async invoke(config: LambdaNotificationConfiguration, record: S3EventRecord, attempt: number) {
    const log = this.opts.logger.child({
      bucket: record.s3.bucket.name,
      key: record.s3.object.key,
      functionName: config.functionName,
      attempt: attempt + 1,
    });
    const handler = this.opts.resolve(config.functionName);
    if (!handler) {
      log.error('S3 notification not delivered: no such function');
      return;
    }
    const requestId = randomUUID();
    const started = Date.now();
    const arn = `arn:${this.opts.partition}:lambda:${this.opts.region}:${this.opts.accountId}:function:${config.functionName}`;
    const context: LambdaContext = {
      functionName: config.functionName,
      functionVersion: '$LATEST',
      invokedFunctionArn: arn,
      memoryLimitInMB: '512',
      awsRequestId: requestId,
      logGroupName: `/aws/lambda/${config.functionName}`,
      logStreamName: `local/${requestId}`,
      getRemainingTimeInMillis: () => Math.max(0, started + FUNCTION_TIMEOUT_MS - Date.now()),
    };
    try {
      await handler({ Records: [record] }, context);
      log.debug({ awsRequestId: requestId }, 'S3 notification delivered');
    } catch (err) {
      if (attempt < this.delays.length && !this.stopped) {
        log.warn({ err, awsRequestId: requestId }, 'S3 notification: function failed; retrying');
        this.schedule(config, record, attempt + 1);
      } else {
        log.error({ err, awsRequestId: requestId }, 'S3 notification: function failed; giving up');
      }
    }
  }

  /** Waits until every scheduled delivery (including retries) has finished. */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  /** Stops delivering: pending retries are dropped; invocations under way are awaited. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const [timer, finish] of this.timers) {
      clearTimeout(timer);
      finish();
    }
    this.timers.clear();
    await this.idle();
  }
}
