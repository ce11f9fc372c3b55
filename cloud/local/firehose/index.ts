/**
 * The local Amazon Data Firehose: DirectPut delivery streams to the local S3, with the documented
 * buffering hints, custom prefixes, dynamic partitioning (inline parsing), GZIP and error output.
 *
 * - Wire protocol: see route.ts (JSON 1.1, `Firehose_20150804.<Operation>`, signing name `firehose`).
 * - Durability: accepted records are journaled (fsynced, group commit) before PutRecord/PutRecordBatch
 *   answer, and removed once their object is in S3; stream definitions are stored there too (see
 *   journal.ts, under `{dataDir}/firehose/`). Opening the Firehose buffers the stored records again with
 *   their original arrival times, so they are delivered per their stream's hints.
 * - Delivery: see delivery.ts. Objects are written through the local S3's HTTP endpoint as the stream's
 *   role (`s3ForRole`), so IAM decides and S3 event notifications fire as on AWS.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { CreateDeliveryStreamCommandInput } from '@aws-sdk/client-firehose';
import type { S3Client } from '@aws-sdk/client-s3';
import pino, { type Logger } from 'pino';
import type { Authorizer } from '../authz.js';
import type { ServiceRoute } from '../http/server.js';
import { partitionOf } from '../s3/context.js';
import {
  compileStream,
  describeStream,
  type StoredStream,
  StoredStreamSchema,
  type StreamPlan,
  streamArn,
  validateCreateRequest,
} from './config.js';
import { DeliveryEngine, type RetryPolicy } from './delivery.js';
import { FirehoseStorageError, resourceInUse, resourceNotFound, serviceUnavailable } from './errors.js';
import { Journal, type JournalRecord } from './journal.js';
import { type ThroughputLimits, ThroughputMeter } from './limits.js';
import { type FirehoseBackend, firehoseRoute, type PutOutcome } from './route.js';
import { type CreateDeliveryStreamRequest, CreateDeliveryStreamSchema, parseRequest } from './schemas.js';

export type { RetryPolicy } from './delivery.js';
export type { ThroughputLimits } from './limits.js';

export interface LocalFirehoseDeps {
  dataDir: string;
  region: string;
  accountId: string;
  authorizer: Authorizer;
  logger?: Logger;
  /** An S3 client acting as the given role against the local S3 (throws if the role is unknown). */
  s3ForRole: (roleArn: string) => Promise<S3Client>;
  /** Clock for arrival timestamps (default Date.now). */
  now?: () => number;
  /** Direct PUT quotas per stream; none by default (AWS's depend on the account and Region). */
  limits?: ThroughputLimits;
  /** Backoff between attempts of a failed S3 write (default 1 s, doubling up to 60 s). */
  retry?: Partial<RetryPolicy>;
}

/** S3 clients are asked for again after this long, so role sessions are renewed before they expire. */
const CLIENT_TTL_MS = 10 * 60_000;
/** A replaced client is destroyed this long after, when the writes it carried are over. */
const RETIRED_CLIENT_GRACE_MS = 5 * 60_000;
const MAX_CONCURRENT_DELIVERIES = 8;

interface StreamState {
  stored: StoredStream;
  plan: StreamPlan;
}

export class LocalFirehose {
  private readonly streams = new Map<string, StreamState>();
  private readonly clients = new Map<string, { client: Promise<S3Client>; at: number }>();
  private readonly retired = new Set<Promise<S3Client>>();
  private readonly meter: ThroughputMeter;
  private readonly partition: string;
  private closed = false;
  /** Writes to the journal under way (close waits for them). */
  private readonly writes = new Set<Promise<unknown>>();

  private constructor(
    private readonly deps: LocalFirehoseDeps,
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly journal: Journal,
    private readonly engine: DeliveryEngine,
  ) {
    this.meter = new ThroughputMeter(deps.limits ?? {}, now);
    this.partition = partitionOf(deps.region);
  }

  /** Opens the Firehose: loads the streams and the journaled records and schedules their delivery. */
  static async open(deps: LocalFirehoseDeps): Promise<LocalFirehose> {
    const log = deps.logger ?? pino({ level: 'silent' });
    const now = deps.now ?? Date.now;
    const journal = Journal.open(join(deps.dataDir, 'firehose'));
    let firehose: LocalFirehose | undefined;
    const clients = {
      client: (roleArn: string): Promise<S3Client> => {
        if (!firehose) throw new FirehoseStorageError('the Firehose is not open yet');
        return firehose.client(roleArn);
      },
      invalidate: (roleArn: string): void => firehose?.invalidate(roleArn),
    };
    const engine: DeliveryEngine = new DeliveryEngine({
      journal,
      logger: log,
      now,
      s3: clients,
      retry: { baseMs: deps.retry?.baseMs ?? 1000, maxMs: deps.retry?.maxMs ?? 60_000 },
      maxConcurrent: MAX_CONCURRENT_DELIVERIES,
    });
    firehose = new LocalFirehose(deps, log, now, journal, engine);
    try {
      await firehose.load();
    } catch (err) {
      await journal.close().catch(() => {});
      throw err;
    }
    return firehose;
  }

  private async load(): Promise<void> {
    for (const { name, value } of this.journal.streams()) {
      try {
        const stored = StoredStreamSchema.parse(value);
        const plan = compileStream(stored);
        this.streams.set(name, { stored, plan });
        this.engine.addStream(plan);
      } catch (err) {
        throw new FirehoseStorageError(`the stored definition of Firehose stream ${name} is invalid`, {
          cause: err,
        });
      }
    }
    const orphans: number[] = [];
    let pending: { stream: string; records: JournalRecord[] } | undefined;
    let loaded = 0;
    for (const rec of this.journal.records()) {
      if (!this.streams.has(rec.stream)) {
        orphans.push(rec.seq);
        continue;
      }
      loaded++;
      if (pending && pending.stream !== rec.stream) {
        this.engine.accept(pending.stream, pending.records);
        pending = undefined;
      }
      pending ??= { stream: rec.stream, records: [] };
      pending.records.push(rec);
    }
    if (pending) this.engine.accept(pending.stream, pending.records);
    if (orphans.length > 0) await this.journal.remove(orphans);
    this.log.info(
      { streams: this.streams.size, records: loaded, removed: orphans.length },
      'Firehose opened',
    );
  }

  // ---- S3 clients of the streams' roles ----

  private client(roleArn: string): Promise<S3Client> {
    const cached = this.clients.get(roleArn);
    if (cached && Date.now() - cached.at < CLIENT_TTL_MS) return cached.client;
    if (cached) this.retire(cached.client);
    const client = this.deps.s3ForRole(roleArn);
    // A failed lookup is not cached.
    client.catch(() => {
      if (this.clients.get(roleArn)?.client === client) this.clients.delete(roleArn);
    });
    this.clients.set(roleArn, { client, at: Date.now() });
    return client;
  }

  private invalidate(roleArn: string): void {
    const cached = this.clients.get(roleArn);
    if (!cached) return;
    this.clients.delete(roleArn);
    this.retire(cached.client);
  }

  /** Destroys a replaced client once the requests it may still carry are done (or at close). */
  private retire(client: Promise<S3Client>): void {
    this.retired.add(client);
    setTimeout(() => {
      if (!this.retired.delete(client)) return;
      client.then((c) => c.destroy()).catch(() => {});
    }, RETIRED_CLIENT_GRACE_MS).unref();
  }

  // ---- the operations ----

  private arn(name: string): string {
    return streamArn(this.partition, this.deps.region, this.deps.accountId, name);
  }

  private requireStream(name: string): StreamState {
    const s = this.streams.get(name);
    if (!s) {
      throw resourceNotFound(`Firehose stream ${name} under account ${this.deps.accountId} not found.`);
    }
    return s;
  }

  private requireOpen(): void {
    if (this.closed) throw serviceUnavailable('The local Firehose is shutting down.');
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.writes.add(p);
    const done = () => this.writes.delete(p);
    p.then(done, done);
    return p;
  }

  private async create(input: CreateDeliveryStreamRequest, ifMissing: boolean): Promise<string> {
    this.requireOpen();
    const name = input.DeliveryStreamName;
    const arn = this.arn(name);
    const stored = validateCreateRequest(input, { arn, now: this.now() });
    if (this.streams.has(name)) {
      if (ifMissing) return arn;
      throw resourceInUse(`Firehose stream ${name} under account ${this.deps.accountId} already exists.`);
    }
    const plan = compileStream(stored);
    // Reserved before the write, so a concurrent create of the same name is refused.
    this.streams.set(name, { stored, plan });
    try {
      await this.track(this.journal.putStream(name, stored));
    } catch (err) {
      this.streams.delete(name);
      throw err;
    }
    this.engine.addStream(plan);
    this.log.info({ stream: name, arn }, 'Firehose stream created');
    return arn;
  }

  private async remove(name: string): Promise<void> {
    this.requireOpen();
    this.requireStream(name);
    this.streams.delete(name);
    this.meter.forget(name);
    const seqs = this.engine.removeStream(name);
    await this.track(this.journal.deleteStream(name, seqs));
    if (seqs.length > 0) {
      this.log.warn(
        { stream: name, records: seqs.length },
        'Firehose stream deleted with undelivered records',
      );
    } else this.log.info({ stream: name }, 'Firehose stream deleted');
  }

  private async put(
    name: string,
    records: readonly Buffer[],
    mode: 'single' | 'batch',
  ): Promise<PutOutcome[]> {
    this.requireOpen();
    const s = this.requireStream(name);
    if (!this.meter.admitRequest(name)) throw serviceUnavailable('Slow down.');
    const arrival = this.now();
    const admitted: { index: number; data: Buffer }[] = [];
    const outcomes: PutOutcome[] = records.map((data, index) => {
      if (this.meter.admitRecord(name, data.length)) {
        admitted.push({ index, data });
        return { ok: true, recordId: '' };
      }
      return { ok: false, errorCode: 'ServiceUnavailableException', errorMessage: 'Slow down.' };
    });
    if (mode === 'single' && admitted.length === 0) throw serviceUnavailable('Slow down.');
    if (admitted.length > 0) {
      const seqs = await this.track(
        this.journal.append(
          name,
          admitted.map((a) => ({ arrival, data: a.data })),
        ),
      );
      // The stream may have been deleted while the records were written: they go with it.
      if (this.streams.get(name) !== s) {
        await this.journal.remove(seqs);
        throw resourceNotFound(`Firehose stream ${name} under account ${this.deps.accountId} not found.`);
      }
      this.engine.accept(
        name,
        admitted.map((a, i) => ({ seq: seqs[i]!, stream: name, arrival, data: a.data })),
      );
      for (const a of admitted) outcomes[a.index] = { ok: true, recordId: recordId() };
    }
    return outcomes;
  }

  private backend(): FirehoseBackend {
    return {
      region: this.deps.region,
      accountId: this.deps.accountId,
      authorizer: this.deps.authorizer,
      logger: this.log,
      streamArn: (name) => this.arn(name),
      create: (input) => this.create(input, false),
      describe: (name, opts) => describeStream(this.requireStream(name).stored, opts),
      list: ({ limit, type, exclusiveStart }) => {
        const names = [...this.streams.keys()]
          .filter(() => type === undefined || type === 'DirectPut')
          .filter((n) => exclusiveStart === undefined || n > exclusiveStart)
          .sort();
        return { names: names.slice(0, limit), hasMore: names.length > limit };
      },
      remove: (name) => this.remove(name),
      put: (name, records, mode) => this.put(name, records, mode),
      encrypted: (name) => this.requireStream(name).stored.encryption !== undefined,
    };
  }

  // ---- the public surface ----

  /** Creates the stream if missing (same validation as the API; no error if it exists). */
  async ensureDeliveryStream(input: CreateDeliveryStreamCommandInput): Promise<void> {
    await this.create(parseRequest(CreateDeliveryStreamSchema, input), true);
  }

  /** The HTTP route of the Firehose API (register it with the HTTP endpoint). */
  route(): ServiceRoute {
    return firehoseRoute(this.backend());
  }

  /** Delivers every non-empty buffer now, regardless of hints; resolves when no delivery is in flight. */
  async flush(): Promise<void> {
    this.engine.flushAll();
    await this.engine.idle();
  }

  /** Resolves when no delivery is in flight. */
  async idle(): Promise<void> {
    await this.engine.idle();
  }

  /** Stops timers, waits for in-flight deliveries; buffered records stay in the journal. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.writes]);
    await this.engine.close();
    await this.journal.close();
    const clients = await Promise.allSettled([
      ...this.retired,
      ...[...this.clients.values()].map((c) => c.client),
    ]);
    for (const c of clients) if (c.status === 'fulfilled') c.value.destroy();
    this.clients.clear();
    this.retired.clear();
    this.log.info('Firehose closed');
  }
}

/** An opaque, unique record id. */
function recordId(): string {
  return randomBytes(42).toString('base64');
}
