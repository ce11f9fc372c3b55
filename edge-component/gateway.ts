/**
 * The gateway runtime: wires ingest, pseudonymization, the durable spool, batching, uploads, exactly-once
 * events and the health shadow together. Everything it talks to is injected (ports and adapters).
 *
 * - Ingest: a record (an object, or JSON text/bytes from the simulator or a local MQTT broker) must be a
 *   JSON object; it is pseudonymized (when configured) and appended to the `telemetry` stream. It
 *   counts as accepted only once that append is durable. A malformed record, or one whose
 *   pseudonymization fails, goes to the `deadletter` stream with the reason, never anywhere else. The
 *   deadletter stream stays on the gateway (it is never uploaded), so raw IDs in it never leave the site.
 * - Telemetry: records accepted in the same event-loop turn share one spool entry (NDJSON lines, the
 *   record count in its metadata) and one commit. The upload loop reads the head of the `telemetry`
 *   stream, cuts batches with cutBatch (limits from `batching`; a batch holds whole entries), records
 *   the cuts in the spool, uploads up to `drain.concurrency` batches at once, and acks the spool up
 *   to the last batch of the uploaded prefix. A failed batch is kept (in memory, the very same batch,
 *   so a retry writes the same key and bytes) and retried with exponential backoff. Nothing is tried
 *   while the IoT channel is down (credentials come over it); on reconnect the backlog drains oldest
 *   first while new records keep being spooled.
 * - Events: `emitEvent()` spools the event (UUID msgId) in the `events` stream, publishes it QoS 1 on
 *   `dt/{thing}/events` and retransmits it with exponential backoff (retransmitInitialMs doubling up to
 *   retransmitMaxMs) until `{msgId, status}` arrives on `things/{thing}/ack`; then the entry is acked
 *   (ackOne). `accepted`/`duplicate` settle it; `rejected` moves it to deadletter. Acks for unknown ids
 *   (late duplicates) are ignored. Events still in the spool at start are retransmitted.
 * - Health: every `health.intervalMs` (and on each reconnect) the `health` named shadow gets the spool
 *   figures, the last upload and event-ack times and the deadletter depth, while connected.
 * - Frames: each configured camera (`cameras`, or `frameSources` given) runs its source through its
 *   pipeline (frames/pipeline.ts: resize, change detector, face detection and masking, encode) into
 *   the `frames` stream. The frames upload loop uploads the oldest spooled frame to
 *   `frames/{thing}/{camera}/dt=YYYY-MM-DD/hour=HH/{capturedAt}-{seq}.{jpg|webp}` (identification
 *   cameras: `frames-identify/...`) with a `.json` sidecar holding its metadata, then acks it (ackOne);
 *   a failure is retried with exponential backoff (upload.backoff), nothing is tried while offline. The
 *   keys are deterministic, so a retry after a restart finds the earlier upload (If-None-Match).
 *   Camera health (status, last frame, kept/skipped/rejected counts, last error) goes to the health
 *   shadow under `cameras`.
 * - Logs: with a `logs` section, the log shipper (logs/shipper.ts) puts the component's own log lines
 *   (taken from the root logger's LogTee, `deps.logTap`) and the configured files' lines into the `logs`
 *   spool stream and ships them to a Kinesis data stream (`deps.logStream`) with PutRecords; it is kicked
 *   on every reconnection, and its figures go to the health shadow under `logs`.
 * - stop(): stops ingest, the cameras and the loops, uploads what is left as final batches (cutBatch
 *   with shuttingDown) if connected, stops the log shipper and closes the spool; whatever could not be
 *   uploaded or shipped (frames and log lines included) stays spooled.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import pino, { type Logger } from 'pino';
import { DetectorBank } from '../analytics/anomaly/bank.js';
import { AckSchema, EventSchema, eventTopics } from '../protocol/events.js';
import { shadowTopics, telemetryTopic } from '../protocol/topics.js';
import { type BatchEntry, type Batch as CutBatch, cutBatch, gzipBatch } from './batching.js';
import { systemClock } from './clock.js';
import { type GatewayConfig, MAX_STREAM_RECORD_BYTES } from './config.js';
import { DuplicateKeyError, EdgeError, InvalidObjectKeyError, UploadFailedError } from './errors.js';
import type { FirmwareAgent } from './firmware/agent.js';
import type { HttpGet } from './firmware/download.js';
import type { CameraHealth } from './frames/camera.js';
import { FrameMetadataSchema, frameObjectKeys } from './frames/keys.js';
import type { FrameOutcome } from './frames/pipeline.js';
import type { FaceDetector, FrameSource } from './frames/ports.js';
import type { FrameService } from './frames/service.js';
import type { LogShipper } from './logs/shipper.js';
import type { LogTap } from './logs/tee.js';
import type {
  ChannelState,
  Clock,
  DataStreamClient,
  IotChannel,
  LocalMessage,
  LocalPubSub,
  ShadowClient,
  Unsubscribe,
} from './ports.js';
import { NdjsonLine, PathTrie, scanRecord } from './pseudonymize/json-spans.js';
import { KeyRing, type SecretSource } from './pseudonymize/keyring.js';
import { Pseudonymizer } from './pseudonymize/pseudonymizer.js';
import { FileReidentificationStore } from './pseudonymize/store.js';
import { type SimulatorHandle, startSimulator } from './simulator.js';
import { type AppendResult, type JsonValue, Spool, type SpoolEntry } from './spool/index.js';
import type { UploadRequest, UploadResult } from './uploader.js';
import { Wakeup } from './wakeup.js';

export class GatewayError extends EdgeError {}
/** ingest()/emitEvent() after stop() began. */
export class GatewayStoppedError extends GatewayError {}
/** emitEvent() with an invalid type or data; the message names the field. */
export class InvalidEventError extends GatewayError {}

export const STREAMS = {
  telemetry: 'telemetry',
  events: 'events',
  frames: 'frames',
  deadletter: 'deadletter',
} as const;

/** The spool stream of log lines waiting to be shipped (opened only with a `logs` section). */
export const LOGS_STREAM = 'logs';

/** What the gateway needs of an uploader (S3Uploader in production). */
export interface BatchUploader {
  upload(req: UploadRequest): Promise<UploadResult>;
}

export interface GatewayDeps {
  channel: IotChannel;
  uploader: BatchUploader;
  /** The health shadow's client; default: shadow topics over `channel`. */
  shadows?: ShadowClient;
  /** Greengrass local publish/subscribe, for `ingest.localPubSub`. */
  localPubSub?: LocalPubSub;
  /** Greengrass SecretManager, for `pseudonymization.keySecretId`. */
  secrets?: (secretId: string) => SecretSource;
  logger?: Logger;
  clock?: Clock;
  /**
   * Overrides the pseudonymizer built from `config.pseudonymization` (key file and map file);
   * null: no pseudonymization even if configured.
   */
  pseudonymizer?: Pseudonymizer | null;
  /** Frame sources by camera id (each needs its entry in `config.cameras`); default: built from it. */
  frameSources?: FrameSource[];
  /** Default: face-api on tfjs wasm (analytics/vision), loaded when a camera needs it. */
  faceDetector?: FaceDetector;
  /** Called after each camera frame went through its pipeline (kept, skipped or rejected). */
  onFrame?: (camera: string, outcome: FrameOutcome) => void;
  /** The firmware agent's HTTP GET (artifact downloads); default: fetch. */
  firmwareHttpGet?: HttpGet;
  /** Where `logs` ships to (adapters/kinesis-log-stream.ts); required with a `logs` section. */
  logStream?: DataStreamClient;
  /** The root logger's LogTee: the component's own lines are shipped from there (`logs.component`). */
  logTap?: LogTap;
}

export type IngestResult =
  | { accepted: true; seq: number }
  | { accepted: false; reason: string; deadletterSeq: number };

export interface GatewayCounters {
  accepted: number;
  deadlettered: number;
  uploadedBatches: number;
  uploadedRecords: number;
  /** Records streamed on `dt/{thing}/telemetry` and acknowledged by the broker (delivery 'stream'). */
  streamedRecords: number;
  uploadFailures: number;
  eventsEmitted: number;
  eventsAcked: number;
  eventsRejected: number;
  eventPublishes: number;
  healthReports: number;
  framesUploaded: number;
  frameUploadFailures: number;
  /** Alarms of the anomaly detectors (each sent as an `anomaly` event). */
  anomalies: number;
  /** Log records the log stream accepted, and their bytes (data and partition keys). */
  logRecordsShipped: number;
  logBytesShipped: number;
  /** Log records the stream refused in a call (throttling); each is sent again. */
  logRecordsRetried: number;
}

interface PendingBatch {
  batch: CutBatch;
  /** Uploads: the gzip body, made once, so that every retry sends the same bytes. */
  body?: Buffer;
  /** Streaming: the batch's records, and which of them the broker has acknowledged (PUBACK). */
  lines?: Buffer[];
  sent?: Uint8Array;
  done: boolean;
}

interface OutstandingEvent {
  msgId: string;
  seq: number;
  payload: string;
  attempts: number;
  nextAt: number;
}

const IDLE_MS = 3_600_000;
/**
 * Batches cut (and compressed) per upload round when a backlog waits: a round costs a few event-loop
 * turns whatever it carries, so under load it carries several batches. Uploads still run at most
 * `drain.concurrency` at a time.
 */
const CUT_AHEAD = 8;
/** Spool meta key of the anomaly detectors' state, saved every ANOMALY_SAVE_EVERY readings and at stop. */
const ANOMALY_STATE_KEY = 'anomaly-detectors';
const ANOMALY_SAVE_EVERY = 10_000;
/** Spool meta key of the telemetry batches cut but not yet acked (first sequence -> last sequence). */
const CUTS_KEY = 'telemetry-cuts';
/** Limits of one telemetry spool entry (records accepted in the same turn); also at most a batch. */
const CHUNK_MAX_RECORDS = 256;
const CHUNK_MAX_BYTES = 256 * 1024;
/** Chunk buffers kept for reuse (more are in use only while that many chunks wait for commits). */
const CHUNK_BUFFERS_KEPT = 8;
/** Telemetry entries read at a time while looking for the next batch. */
const HEAD_PAGE = 8;
/** For checking a record's text when no field is pseudonymized. */
const NO_PATHS = new PathTrie([]);

interface TelemetryChunk {
  /** The records' lines, newline-separated, from offset 0. */
  buf: Buffer;
  /** Bytes of the records plus one separator each (the last one not written). */
  bytes: number;
  count: number;
  done: Promise<AppendResult>;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** Builds the pseudonymizer of `config.pseudonymization` (creating the key file on first use). */
async function pseudonymizerFromConfig(
  config: GatewayConfig,
  logger: Logger,
  secrets: GatewayDeps['secrets'],
): Promise<{ pseudonymizer: Pseudonymizer; store: FileReidentificationStore } | undefined> {
  const p = config.pseudonymization;
  if (!p) return undefined;
  let keys: KeyRing;
  if (p.keySecretId !== undefined) {
    if (!secrets) {
      throw new GatewayError(
        'pseudonymization.keySecretId needs Greengrass SecretManager (use keyFile standalone)',
      );
    }
    keys = await KeyRing.fromSecret(secrets(p.keySecretId));
  } else {
    const file = p.keyFile!;
    keys = existsSync(file) ? await KeyRing.load(file) : await KeyRing.create(file);
  }
  const store = FileReidentificationStore.open(p.mapFile, { logger });
  return { pseudonymizer: new Pseudonymizer({ fields: p.fields, keys, store, logger }), store };
}

export class Gateway {
  readonly counters: GatewayCounters = {
    accepted: 0,
    deadlettered: 0,
    uploadedBatches: 0,
    uploadedRecords: 0,
    streamedRecords: 0,
    uploadFailures: 0,
    eventsEmitted: 0,
    eventsAcked: 0,
    eventsRejected: 0,
    eventPublishes: 0,
    healthReports: 0,
    framesUploaded: 0,
    frameUploadFailures: 0,
    anomalies: 0,
    logRecordsShipped: 0,
    logBytesShipped: 0,
    logRecordsRetried: 0,
  };
  lastFrameUploadAt: number | null = null;
  lastUploadAt: number | null = null;
  lastEventAckAt: number | null = null;

  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly stopCtrl = new AbortController();
  private readonly uploadWake: Wakeup;
  private readonly eventWake: Wakeup;
  private readonly healthWake: Wakeup;
  private readonly framesWake: Wakeup;
  private frames: FrameService | undefined;
  /** The firmware agent, when `config.firmware` is set. */
  firmware: FirmwareAgent | undefined;
  /** The log shipper, when `config.logs` is set. */
  logShipper: LogShipper | undefined;
  /** Anomaly detection on live readings (config.anomaly); its state lives in the spool's meta data. */
  private anomalies: DetectorBank | undefined;
  private anomalySaves = 0;
  /** Frames before it failed for good (kept spooled until a restart); the loop reads from here. */
  private frameCursor = 0;
  private readonly outstanding = new Map<string, OutstandingEvent>();
  private readonly tracked = new Set<Promise<unknown>>();
  private pending: PendingBatch[] = [];
  /**
   * Batches cut but not yet acked in the spool, first sequence -> last sequence, kept in the spool's
   * meta data (durable before the batch's upload starts): after a restart between an upload and its ack, the same records are cut into the same
   * batch again (same key, same bytes), so `If-None-Match` finds the earlier upload instead of writing the
   * records a second time under another key.
   */
  private cuts = new Map<number, number>();
  private appendedSinceRound = 0;
  private appendedBytesSinceRound = 0;
  /**
   * The open batch at the head of the telemetry stream as the last upload round found it (records and
   * NDJSON bytes), or undefined if that round found none: ingest wakes the loop only once that batch
   * is full, instead of making it read the open batch again for every new record.
   */
  private openBatch: { count: number; bytes: number } | undefined;
  /** The upload loop waits out a failure: new records must not cut the backoff short. */
  private uploadBackingOff = false;
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private loops: Promise<void>[] = [];
  private unsubscribeAck: Unsubscribe | undefined;
  private offState: (() => void) | undefined;
  private simulator: SimulatorHandle | undefined;
  private localBroker: MqttClient | undefined;
  private readonly localSubs: Unsubscribe[] = [];
  /** The telemetry entry being filled in this event-loop turn. */
  private chunk: TelemetryChunk | undefined;
  private readonly chunkBuffers: Buffer[] = [];
  private readonly topics: ReturnType<typeof eventTopics>;

  private constructor(
    readonly config: GatewayConfig,
    readonly spool: Spool,
    private readonly channel: IotChannel,
    private readonly shadows: ShadowClient,
    private readonly uploader: BatchUploader,
    private readonly pseudonymizer: Pseudonymizer | undefined,
    private readonly ownedStore: FileReidentificationStore | undefined,
    logger: Logger,
    clock: Clock,
  ) {
    this.log = logger.child({ component: 'gateway', thing: config.thingName });
    this.clock = clock;
    this.uploadWake = new Wakeup(clock, this.stopCtrl.signal);
    this.eventWake = new Wakeup(clock, this.stopCtrl.signal);
    this.healthWake = new Wakeup(clock, this.stopCtrl.signal);
    this.framesWake = new Wakeup(clock, this.stopCtrl.signal);
    this.topics = eventTopics(config.thingName);
  }

  /** Opens the spool, resumes unacknowledged events, subscribes to acks and starts the loops and ingest. */
  static async start(config: GatewayConfig, deps: GatewayDeps): Promise<Gateway> {
    const logger = deps.logger ?? pino({ level: 'silent' });
    const clock = deps.clock ?? systemClock;
    let pseudonymizer: Pseudonymizer | undefined;
    let store: FileReidentificationStore | undefined;
    if (deps.pseudonymizer !== undefined) {
      pseudonymizer = deps.pseudonymizer ?? undefined;
    } else {
      const built = await pseudonymizerFromConfig(config, logger, deps.secrets);
      pseudonymizer = built?.pseudonymizer;
      store = built?.store;
    }
    const s = config.spool;
    let spool: Spool;
    try {
      spool = await Spool.open(
        {
          dir: s.dir,
          ...(s.maxTotalBytes !== undefined ? { maxTotalBytes: s.maxTotalBytes } : {}),
          streams: [
            ...Object.values(STREAMS).map((name) => ({ name, ...s.streams[name] })),
            ...(config.logs ? [{ name: LOGS_STREAM, ...s.streams.logs }] : []),
          ],
        },
        { logger, clock },
      );
    } catch (err) {
      store?.close();
      throw err;
    }
    const shadows = deps.shadows ?? mqttShadowClient(deps.channel, config.thingName);
    const gw = new Gateway(
      config,
      spool,
      deps.channel,
      shadows,
      deps.uploader,
      pseudonymizer,
      store,
      logger,
      clock,
    );
    try {
      await gw.startLogShipping(deps, logger);
      await gw.init(deps.localPubSub);
      await gw.startFrames(deps);
      await gw.startFirmware(deps);
    } catch (err) {
      await gw.stop().catch(() => {});
      throw err;
    }
    return gw;
  }

  /** Where earlier versions kept the cut ranges: read once, then they live in the spool. */
  private get legacyCutsFile(): string {
    return join(this.config.spool.dir, 'telemetry-cuts.json');
  }

  private async loadCuts(): Promise<void> {
    let parsed: unknown = this.spool.getMeta(CUTS_KEY);
    const legacy = this.legacyCutsFile;
    if (parsed === undefined && existsSync(legacy)) parsed = JSON.parse(readFileSync(legacy, 'utf8'));
    const pairs = Array.isArray(parsed) ? (parsed as unknown[]) : [];
    this.cuts = new Map(
      pairs
        .filter((p): p is [number, number] => Array.isArray(p) && p.length === 2)
        .filter(([a, b]) => Number.isSafeInteger(a) && Number.isSafeInteger(b) && a <= b),
    );
    if (existsSync(legacy)) {
      await this.saveCuts();
      await unlink(legacy);
    }
  }

  /** Records the cut ranges in the spool (durable, sharing the commit of concurrent appends). */
  private async saveCuts(): Promise<void> {
    await this.spool.putMeta(CUTS_KEY, [...this.cuts]);
  }

  private async init(localPubSub: LocalPubSub | undefined): Promise<void> {
    await this.loadCuts();
    this.loadAnomalyState();
    await this.loadOutstandingEvents();
    this.offState = this.channel.onStateChange((state) => this.onChannelState(state));
    this.unsubscribeAck = await this.channel.subscribe(
      this.topics.ack,
      (_topic, payload) => this.onAck(payload),
      1,
    );
    this.loops = [this.uploadLoop(), this.eventLoop(), this.healthLoop(), this.framesLoop()];
    const ingest = this.config.ingest;
    if (ingest.simulator) {
      this.simulator = startSimulator(
        ingest.simulator,
        this.clock,
        (r) => this.ingest(r),
        (err) => this.log.warn({ err: describe(err) }, 'simulated record not accepted'),
      );
    }
    if (ingest.localBroker) await this.startLocalBroker(ingest.localBroker.url, ingest.localBroker.topics);
    if (ingest.localPubSub) {
      if (!localPubSub) throw new GatewayError('ingest.localPubSub needs Greengrass local publish/subscribe');
      for (const topic of ingest.localPubSub.topics) {
        this.localSubs.push(
          await localPubSub.subscribe(topic, (t, message) => this.onLocalMessage(t, message)),
        );
      }
    }
    this.log.info(
      { spool: this.config.spool.dir, outstandingEvents: this.outstanding.size },
      'gateway started',
    );
  }

  // ---------------------------------------------------------------- ingest

  /**
   * Accepts one record: a JSON object, or JSON text/bytes of one. Resolves once it is durable in the
   * telemetry spool (accepted) or in the deadletter stream (with the reason). Rejects with
   * SpoolFullError when the spool refuses it, GatewayStoppedError after stop(). An object is not
   * changed, unless `owned` says the caller hands it over (it was parsed for this call only). A valid
   * record given as bytes is stored as it was written, its configured values pseudonymized in place
   * (ingestText), unless anomaly detection needs it parsed.
   */
  async ingest(record: unknown, opts: { owned?: boolean } = {}): Promise<IngestResult> {
    if (this.stopping) throw new GatewayStoppedError('the gateway is stopping: record not accepted');
    // JSON bytes are stored as they came (pseudonyms spliced in), without parsing them into objects
    // and serializing them again, unless anomaly detection needs the values.
    if (record instanceof Uint8Array && !this.anomalies) {
      const result = await this.ingestText(record);
      if (result) return result;
    }
    let value: unknown = record;
    let owned = opts.owned === true;
    if (typeof record === 'string' || record instanceof Uint8Array) {
      owned = true;
      const text = typeof record === 'string' ? record : Buffer.from(record).toString('utf8');
      try {
        value = JSON.parse(text);
      } catch (err) {
        return this.deadletter('ingest', `malformed JSON: ${describe(err)}`, { text });
      }
    }
    if (!isPlainObject(value)) {
      const kind = Array.isArray(value) ? 'an array' : value === null ? 'null' : `a ${typeof value}`;
      return this.deadletter('ingest', `a record must be a JSON object, got ${kind}`, {
        record: value as JsonValue,
      });
    }
    let out: Record<string, unknown> = value;
    if (this.pseudonymizer) {
      try {
        // Resolves once the new pseudonyms' mapping back is durable (group commit with other records).
        out = (await this.pseudonymizer.applyAsync(value, { inPlace: owned })).record;
      } catch (err) {
        // In place, a failed pseudonymization restores the original values first.
        return this.deadletter('ingest', `pseudonymization failed: ${describe(err)}`, {
          record: value as JsonValue,
        });
      }
    }
    let json: string;
    try {
      json = JSON.stringify(out);
    } catch (err) {
      return this.deadletter('ingest', `record cannot be serialized: ${describe(err)}`, {});
    }
    return this.accept(Buffer.from(json), out);
  }

  /**
   * ingest() of JSON bytes that are one valid JSON object, done on the text (see
   * Pseudonymizer.applyToText); undefined for any other bytes, which ingest() then parses (and
   * deadletters with JSON.parse's reason).
   */
  private async ingestText(text: Uint8Array): Promise<IngestResult | undefined> {
    let line: NdjsonLine;
    if (this.pseudonymizer) {
      try {
        const r = await this.pseudonymizer.applyToText(text);
        if (!r) return undefined;
        line = r.line;
      } catch (err) {
        return this.deadletter('ingest', `pseudonymization failed: ${describe(err)}`, {
          record: JSON.parse(Buffer.from(text.buffer, text.byteOffset, text.byteLength).toString()),
        });
      }
    } else {
      if (scanRecord(text, NO_PATHS) === undefined) return undefined;
      line = new NdjsonLine(text);
    }
    return this.accept(line);
  }

  /**
   * Appends an accepted record's NDJSON line to the telemetry stream; `record` is its value, when it
   * was parsed (anomaly detection runs on it).
   */
  private async accept(bytes: Buffer | NdjsonLine, record?: Record<string, unknown>): Promise<IngestResult> {
    if (this.config.telemetry.delivery === 'stream' && bytes.length > MAX_STREAM_RECORD_BYTES) {
      const text = bytes instanceof NdjsonLine ? bytes.toBuffer() : bytes;
      return this.deadletter(
        'ingest',
        `record of ${bytes.length} bytes is too large to stream (AWS IoT Core takes messages of at most ${MAX_STREAM_RECORD_BYTES} bytes)`,
        { record: (record ?? JSON.parse(text.toString())) as JsonValue },
      );
    }
    const { seq } = await this.appendTelemetry(bytes);
    this.counters.accepted++;
    if (this.anomalies && record) await this.detectAnomalies(record);
    this.appendedSinceRound++;
    this.appendedBytesSinceRound += bytes.length + 1;
    // Without an open batch, the first record after a round wakes the loop so that it arms the age
    // timer (an idle loop sleeps for an hour); a full batch wakes it to upload at once.
    const limits = this.config.batching;
    const open = this.openBatch ?? { count: 0, bytes: 0 };
    const full =
      open.count + this.appendedSinceRound >= limits.maxRecords ||
      open.bytes + this.appendedBytesSinceRound >= limits.maxBytes;
    if (!this.uploadBackingOff && (full || (this.openBatch === undefined && this.appendedSinceRound === 1))) {
      this.uploadWake.kick();
    }
    return { accepted: true, seq };
  }

  /**
   * Records accepted in the same event-loop turn share one spool entry (their NDJSON lines, with the
   * record count as its metadata) and one commit: the spool's work per record stays small under load.
   * Each caller resolves once that entry is durable.
   */
  private appendTelemetry(bytes: Buffer | NdjsonLine): Promise<AppendResult> {
    const limits = this.config.batching;
    let c = this.chunk;
    if (
      !c ||
      c.count >= Math.min(CHUNK_MAX_RECORDS, limits.maxRecords) ||
      c.bytes + bytes.length + 1 > Math.min(CHUNK_MAX_BYTES, limits.maxBytes)
    ) {
      // The lines are written into a reused buffer (a record larger than one gets a buffer of its own):
      // no new buffer per entry, and the spool need not copy it (it stays unchanged until the append
      // settles, and the commit copies it into the database).
      const buf =
        bytes.length <= CHUNK_MAX_BYTES ? this.chunkBuffers.pop() : Buffer.allocUnsafeSlow(bytes.length);
      const chunk: TelemetryChunk = {
        buf: buf ?? Buffer.allocUnsafeSlow(CHUNK_MAX_BYTES),
        bytes: 0,
        count: 0,
        done: Promise.resolve(undefined as never),
      };
      chunk.done = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        if (this.chunk === chunk) this.chunk = undefined;
        const appended = this.spool.append(
          STREAMS.telemetry,
          chunk.buf.subarray(0, chunk.bytes - 1),
          chunk.count > 1 ? { records: chunk.count } : undefined,
          { stable: true },
        );
        const release = () => {
          if (chunk.buf.length === CHUNK_MAX_BYTES && this.chunkBuffers.length < CHUNK_BUFFERS_KEPT) {
            this.chunkBuffers.push(chunk.buf);
          }
        };
        appended.then(release, release);
        return appended;
      });
      this.chunk = c = chunk;
    }
    if (c.count > 0) c.buf[c.bytes - 1] = 0x0a;
    if (bytes instanceof NdjsonLine) bytes.writeTo(c.buf, c.bytes);
    else c.buf.set(bytes, c.bytes);
    c.bytes += bytes.length + 1;
    c.count++;
    return c.done;
  }

  private async deadletter(
    source: 'ingest' | 'event',
    reason: string,
    body: { text?: string; record?: JsonValue; event?: JsonValue },
  ): Promise<IngestResult & { accepted: false }> {
    const entry = { source, reason, at: this.clock.now(), ...body };
    const { seq } = await this.spool.append(STREAMS.deadletter, Buffer.from(JSON.stringify(entry)));
    this.counters.deadlettered++;
    // The reason never holds a record's values (pseudonymizer errors name paths only).
    this.log.warn({ source, reason, deadletterSeq: seq }, 'moved to deadletter');
    return { accepted: false, reason, deadletterSeq: seq };
  }

  /**
   * A record from Greengrass local publish/subscribe. The bus has no acknowledgement, so a record that
   * the spool refuses (full) is logged with its topic; malformed ones go to deadletter as usual.
   */
  private onLocalMessage(topic: string, message: LocalMessage): void {
    if (this.stopping) {
      this.log.warn({ topic }, 'local record arrived while stopping: not accepted');
      return;
    }
    const record = 'json' in message ? message.json : message.bytes;
    this.track(
      this.ingest(record, { owned: true }).catch((err: unknown) => {
        this.log.error({ err: describe(err), topic }, 'local record not accepted');
      }),
    );
  }

  private async startLocalBroker(url: string, topics: string[]): Promise<void> {
    // Loaded only when a local broker is configured (a gateway without one saves its memory).
    const { default: mqtt } = await import('mqtt');
    const client = mqtt.connect(url, { reconnectPeriod: 1000, clean: true });
    // Acknowledge (PUBACK) a QoS 1 message only after the record is durable (or deadlettered). A record
    // the spool refuses (full, RejectNewData) or that arrives while stopping is lost: logged as such.
    client.handleMessage = (packet, callback) => {
      this.ingest(packet.payload).then(
        () => callback(),
        (err: unknown) => {
          this.log.error(
            { err: describe(err), topic: packet.topic },
            'local record not accepted: it is lost',
          );
          callback();
        },
      );
    };
    client.on('connect', () => {
      client.subscribe(topics, { qos: 1 }, (err) => {
        if (err) this.log.error({ err: describe(err), url }, 'local broker subscription failed');
        else this.log.info({ url, topics }, 'subscribed to the local broker');
      });
    });
    client.on('error', (err) => this.log.warn({ err: describe(err), url }, 'local broker error'));
    this.localBroker = client;
  }

  // ---------------------------------------------------------------- anomaly detection

  private loadAnomalyState(): void {
    const a = this.config.anomaly;
    if (!a) return;
    const saved = this.spool.getMeta(ANOMALY_STATE_KEY);
    if (saved !== undefined) {
      try {
        this.anomalies = DetectorBank.fromJSON(saved);
      } catch (err) {
        this.log.warn({ err: describe(err) }, 'anomaly detector state not usable; detection starts afresh');
      }
    }
    this.anomalies ??= new DetectorBank({ maxSeries: a.maxSeries, detector: a.detector });
  }

  /**
   * Runs the configured metrics of an accepted record through their detectors; an alarm becomes an
   * exactly-once `anomaly` event (spooled, so it is raised while offline and sent when the link
   * returns). The detectors' state is saved in the spool every ANOMALY_SAVE_EVERY readings and at stop.
   */
  private async detectAnomalies(record: Record<string, unknown>): Promise<void> {
    const a = this.config.anomaly!;
    const bank = this.anomalies!;
    const device = record[a.deviceField];
    if (typeof device !== 'string' && typeof device !== 'number') return;
    const ts = typeof record.ts === 'number' && Number.isFinite(record.ts) ? record.ts : this.clock.now();
    for (const metric of a.metrics) {
      const value = record[metric];
      if (typeof value !== 'number') continue;
      const r = bank.observe(String(device), metric, value, ts);
      if (!r.anomaly) continue;
      this.counters.anomalies++;
      await this.emitEvent('anomaly', {
        deviceId: String(device),
        metric,
        value,
        ts,
        score: r.score,
        kind: r.kind ?? 'spike',
        ...(r.expected !== undefined ? { expected: r.expected } : {}),
      }).catch((err) => this.log.warn({ err: describe(err), metric }, 'anomaly event not spooled'));
    }
    if (++this.anomalySaves >= ANOMALY_SAVE_EVERY) await this.saveAnomalyState();
  }

  private async saveAnomalyState(): Promise<void> {
    if (!this.anomalies) return;
    this.anomalySaves = 0;
    await this.spool
      .putMeta(ANOMALY_STATE_KEY, this.anomalies.toJSON() as unknown as JsonValue)
      .catch((err) => this.log.warn({ err: describe(err) }, 'anomaly detector state not saved'));
  }

  // ---------------------------------------------------------------- telemetry uploads

  private async uploadLoop(): Promise<void> {
    let failures = 0;
    const b = this.config.upload.backoff;
    while (!this.stopping) {
      if (!this.channel.connected) {
        await this.uploadWake.sleep(IDLE_MS);
        continue;
      }
      let delay: number;
      try {
        const r = await this.uploadRound(false);
        if (r.failed) {
          failures++;
          delay = Math.min(b.maxDelayMs, b.initialDelayMs * 2 ** Math.min(20, failures - 1));
        } else {
          failures = 0;
          if (r.progress) continue;
          delay = r.waitMs ?? IDLE_MS;
        }
      } catch (err) {
        if (this.stopping) break;
        failures++;
        delay = Math.min(b.maxDelayMs, b.initialDelayMs * 2 ** Math.min(20, failures - 1));
        this.log.error({ err: describe(err), retryInMs: delay }, 'upload loop failed');
      }
      this.uploadBackingOff = failures > 0;
      // Records that arrived during a failed round must not cut its backoff short.
      if (this.uploadBackingOff) this.uploadWake.clear();
      await this.uploadWake.sleep(delay);
      this.uploadBackingOff = false;
    }
  }

  /**
   * Cuts up to CUT_AHEAD (at least `drain.concurrency`) batches from the head of the telemetry stream,
   * records the cuts and compresses them, uploads them `drain.concurrency` at a time and acks the
   * uploaded prefix. When shutting down, rounds repeat until nothing is left.
   */
  private async uploadRound(
    shuttingDown: boolean,
  ): Promise<{ progress: boolean; failed: boolean; waitMs?: number }> {
    const streaming = this.config.telemetry.delivery === 'stream';
    // Streamed records do not wait for a batch to fill: whatever is spooled goes out at once.
    const limits = streaming ? { ...this.config.batching, maxAgeMs: 0 } : this.config.batching;
    const now = this.clock.now();
    let waitMs: number | undefined;
    this.appendedSinceRound = 0;
    this.appendedBytesSinceRound = 0;
    this.openBatch = undefined;
    // Cut every batch that fits in the round first, then record the new cuts with one write and
    // compress them in parallel on the thread pool.
    const fresh: CutBatch[] = [];
    let lastSeq = this.pending[this.pending.length - 1]?.batch.lastSeq;
    const ahead = Math.max(CUT_AHEAD, this.config.drain.concurrency);
    while (this.pending.length + fresh.length < ahead) {
      const entries = await this.readBatchHead(lastSeq !== undefined ? lastSeq + 1 : 0);
      const first = entries[0];
      if (!first) break;
      // A batch cut before a restart is cut again exactly: its recorded entries, closed now.
      const recordedLast = this.cuts.get(first.seq);
      const cut = cutBatch(
        this.config.thingName,
        STREAMS.telemetry,
        (recordedLast === undefined ? entries : entries.filter((e) => e.seq <= recordedLast)).map(
          toBatchEntry,
        ),
        limits,
        now,
        shuttingDown || recordedLast !== undefined,
      );
      if (!cut) {
        waitMs = Math.max(1, first.timestamp + limits.maxAgeMs - now);
        let bytes = 0;
        let count = 0;
        for (const e of entries) {
          bytes += e.bytes.length + 1;
          count += entryRecords(e);
        }
        this.openBatch = { count, bytes };
        break;
      }
      if (recordedLast === undefined) this.cuts.set(cut.batch.firstSeq, cut.batch.lastSeq);
      fresh.push(cut.batch);
      lastSeq = cut.batch.lastSeq;
    }
    // The new cuts are durable before their upload starts (saved while the bodies are compressed).
    const [bodies] = await Promise.all([
      Promise.all(fresh.map((b) => (streaming ? undefined : gzipBatch(b, limits.gzipLevel)))),
      fresh.length > 0 ? this.saveCuts() : undefined,
    ]);
    fresh.forEach((batch, i) => {
      const body = bodies[i];
      this.pending.push({ batch, ...(body ? { body } : {}), done: false });
    });
    if (this.pending.length === 0) return { progress: false, failed: false, ...(waitMs ? { waitMs } : {}) };
    const signal = shuttingDown ? undefined : this.stopCtrl.signal;
    // Up to drain.concurrency uploads at once, oldest first.
    const todo = this.pending.filter((p) => !p.done);
    const results: PromiseSettledResult<void>[] = [];
    const worker = async () => {
      for (let p = todo.shift(); p; p = todo.shift()) {
        results.push(
          await this.uploadBatch(p, signal).then(
            () => ({ status: 'fulfilled', value: undefined }) as const,
            (reason: unknown) => ({ status: 'rejected', reason }) as const,
          ),
        );
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.config.drain.concurrency, todo.length) }, worker));
    let ackTo: number | undefined;
    while (this.pending[0]?.done) ackTo = this.pending.shift()!.batch.lastSeq;
    if (ackTo !== undefined) {
      await this.spool.ack(STREAMS.telemetry, ackTo);
      // The file keeps the acked ranges until the next cut rewrites it: they are never read again.
      for (const [firstSeq, lastSeq] of this.cuts) if (lastSeq <= ackTo) this.cuts.delete(firstSeq);
    }
    const failed = results.some((r) => r.status === 'rejected');
    return { progress: ackTo !== undefined, failed, ...(waitMs ? { waitMs } : {}) };
  }

  /**
   * The entries from `fromSeq` on that one batch can hold, plus the next one (so that cutBatch sees
   * that the batch is full), read a page at a time: never much more than a batch in memory.
   */
  private async readBatchHead(fromSeq: number): Promise<SpoolEntry[]> {
    const limits = this.config.batching;
    const out: SpoolEntry[] = [];
    let records = 0;
    let bytes = 0;
    for (let from = fromSeq; ; ) {
      const page = await this.spool.read(STREAMS.telemetry, {
        fromSeq: from,
        maxEntries: HEAD_PAGE,
        // What the batch can still hold plus one more entry: never much more than a batch in memory.
        maxBytes: Math.max(0, limits.maxBytes - bytes) + CHUNK_MAX_BYTES,
      });
      for (const e of page) {
        out.push(e);
        records += entryRecords(e);
        bytes += e.bytes.length + 1;
        if (records > limits.maxRecords || bytes > limits.maxBytes) return out;
      }
      const last = page[page.length - 1];
      if (!last || page.length < HEAD_PAGE) return out;
      from = last.seq + 1;
    }
  }

  private async uploadBatch(p: PendingBatch, signal: AbortSignal | undefined): Promise<void> {
    const { batch } = p;
    if (!p.body) return this.streamBatch(p, signal);
    try {
      const result = await this.uploader.upload({
        key: batch.key,
        source: { data: p.body },
        contentType: 'application/gzip',
        metadata: {
          records: String(batch.records),
          'first-seq': String(batch.firstSeq),
          'last-seq': String(batch.lastSeq),
        },
        ...(signal ? { signal } : {}),
      });
      p.done = true;
      this.counters.uploadedBatches++;
      this.counters.uploadedRecords += batch.records;
      this.lastUploadAt = this.clock.now();
      this.log.info(
        {
          key: batch.key,
          records: batch.records,
          bytes: result.bytes,
          alreadyUploaded: result.alreadyUploaded,
        },
        'batch uploaded',
      );
    } catch (err) {
      this.counters.uploadFailures++;
      if (!this.stopCtrl.signal.aborted || signal === undefined)
        this.log.warn({ key: batch.key, err: describe(err) }, 'batch upload failed; kept in the spool');
      throw err;
    }
  }

  /**
   * Delivery 'stream': publishes each record of the batch as its own QoS 1 message on
   * `dt/{thing}/telemetry`, up to `telemetry.streamInFlight` at once. The batch is done once the broker
   * acknowledged every record; a retry publishes only the records not acknowledged yet (a record whose
   * PUBACK was lost is sent again: at least once, as Firehose itself delivers).
   */
  private async streamBatch(p: PendingBatch, signal: AbortSignal | undefined): Promise<void> {
    p.lines ??= splitLines(p.batch.ndjson);
    p.sent ??= new Uint8Array(p.lines.length);
    const { lines, sent } = p;
    const topic = telemetryTopic(this.config.thingName);
    let next = 0;
    let failure: { err: unknown } | undefined;
    const worker = async () => {
      for (;;) {
        if (failure || signal?.aborted) return;
        while (next < lines.length && sent[next] === 1) next++;
        const i = next++;
        if (i >= lines.length) return;
        try {
          await this.channel.publish(topic, lines[i]!, 1);
          sent[i] = 1;
        } catch (err) {
          failure ??= { err };
        }
      }
    };
    const workers = Math.min(this.config.telemetry.streamInFlight, lines.length);
    await Promise.all(Array.from({ length: workers }, worker));
    const left = sent.reduce((n, v) => n + (v === 1 ? 0 : 1), 0);
    if (failure || left > 0) {
      this.counters.uploadFailures++;
      const err = failure?.err ?? new EdgeError(`streaming stopped with ${left} records not published`);
      if (!this.stopCtrl.signal.aborted || signal === undefined)
        this.log.warn(
          { topic, records: lines.length, notAcknowledged: left, err: describe(err) },
          'streaming a batch failed; the records not acknowledged stay in the spool',
        );
      throw err;
    }
    p.done = true;
    this.counters.streamedRecords += p.batch.records;
    this.lastUploadAt = this.clock.now();
    this.log.debug({ topic, records: p.batch.records, firstSeq: p.batch.firstSeq }, 'records streamed');
  }

  // ---------------------------------------------------------------- logs

  /** Starts the log shipper (loaded only with a `logs` section). */
  private async startLogShipping(deps: GatewayDeps, rootLogger: Logger): Promise<void> {
    const logs = this.config.logs;
    if (!logs) {
      deps.logTap?.idle();
      return;
    }
    if (!deps.logStream) throw new GatewayError('logs needs a data stream client (deps.logStream)');
    if (logs.component.enabled && !deps.logTap) {
      this.log.warn("the logger has no LogTee: the component's own lines are not shipped (logs.component)");
    }
    const { LogShipper } = await import('./logs/shipper.js');
    this.logShipper = LogShipper.start({
      config: logs,
      thingName: this.config.thingName,
      spool: this.spool,
      stream: LOGS_STREAM,
      client: deps.logStream,
      tap: deps.logTap,
      clock: this.clock,
      logger: rootLogger,
      counters: this.counters,
      online: () => this.channel.connected,
    });
  }

  // ---------------------------------------------------------------- frames

  /** Starts the cameras (the frames code, sharp included, is loaded only when there are any). */
  private async startFirmware(deps: GatewayDeps): Promise<void> {
    const fw = this.config.firmware;
    if (!fw) return;
    // Loaded on demand: a gateway without the firmware section does not load the agent.
    const { FirmwareAgent } = await import('./firmware/agent.js');
    this.firmware = await FirmwareAgent.start({
      config: fw,
      thingName: this.config.thingName,
      channel: this.channel,
      shadows: this.shadows,
      clock: this.clock,
      logger: this.log,
      ...(deps.firmwareHttpGet ? { httpGet: deps.firmwareHttpGet } : {}),
    });
  }

  private async startFrames(deps: GatewayDeps): Promise<void> {
    const cameras = this.config.cameras;
    if (cameras.length === 0 && (deps.frameSources ?? []).length === 0) return;
    const { FrameService } = await import('./frames/service.js');
    this.frames = FrameService.create(cameras, {
      thing: this.config.thingName,
      sink: this.spool,
      ...(deps.frameSources ? { sources: deps.frameSources } : {}),
      ...(deps.faceDetector ? { detector: deps.faceDetector } : {}),
      clock: this.clock,
      logger: this.log,
      onOutcome: (camera, outcome) => {
        if (outcome.result === 'kept') this.framesWake.kick();
        deps.onFrame?.(camera, outcome);
      },
    });
    await this.frames.start();
    this.log.info({ cameras: cameras.map((c) => c.id) }, 'cameras started');
  }

  /** Uploads spooled frames, oldest first, each with its metadata sidecar, then acks it. */
  private async framesLoop(): Promise<void> {
    let failures = 0;
    const b = this.config.upload.backoff;
    while (!this.stopping) {
      if (!this.channel.connected) {
        await this.framesWake.sleep(IDLE_MS);
        continue;
      }
      let delay = 0;
      try {
        const [entry] = await this.spool.read(STREAMS.frames, {
          fromSeq: this.frameCursor,
          maxEntries: 1,
          maxBytes: 1,
        });
        if (!entry) {
          await this.framesWake.sleep(IDLE_MS);
          continue;
        }
        try {
          await this.uploadFrame(entry);
        } catch (err) {
          if (!(await isPermanentUploadError(err))) throw err;
          // It would fail again and hold up every frame behind it: it stays spooled (tried again
          // after a restart, or evicted), and the loop moves on.
          this.frameCursor = entry.seq + 1;
          this.counters.frameUploadFailures++;
          this.log.error({ seq: entry.seq, err: describe(err) }, 'frame cannot be uploaded; skipped');
        }
        failures = 0;
        continue;
      } catch (err) {
        if (this.stopping) break;
        failures++;
        this.counters.frameUploadFailures++;
        delay = Math.min(b.maxDelayMs, b.initialDelayMs * 2 ** Math.min(20, failures - 1));
        this.log.warn({ err: describe(err), retryInMs: delay }, 'frame upload failed; kept in the spool');
      }
      // New frames must not cut the backoff short.
      this.framesWake.clear();
      await this.framesWake.sleep(delay);
    }
  }

  private async uploadFrame(entry: SpoolEntry): Promise<void> {
    const parsed = FrameMetadataSchema.safeParse(entry.metadata);
    if (!parsed.success || parsed.data.thing !== this.config.thingName) {
      // Not something the pipeline wrote: never upload what we cannot place (or tell is masked).
      this.log.error({ seq: entry.seq }, 'spooled frame without valid metadata; dropped');
      await this.spool.ackOne(STREAMS.frames, entry.seq);
      return;
    }
    const meta = parsed.data;
    const { key, sidecarKey } = frameObjectKeys(meta, entry.seq);
    const signal = this.stopCtrl.signal;
    await this.uploader.upload({
      key,
      source: { data: entry.bytes },
      contentType: meta.format === 'webp' ? 'image/webp' : 'image/jpeg',
      metadata: {
        camera: meta.camera,
        'captured-at': String(meta.capturedAt),
        faces: String(meta.faces),
        masking: meta.masking,
      },
      signal,
    });
    await this.uploader.upload({
      key: sidecarKey,
      source: { data: Buffer.from(JSON.stringify({ ...meta, key, seq: entry.seq })) },
      contentType: 'application/json',
      signal,
    });
    await this.spool.ackOne(STREAMS.frames, entry.seq);
    this.counters.framesUploaded++;
    this.lastFrameUploadAt = this.clock.now();
    this.log.debug({ key, faces: meta.faces, masking: meta.masking }, 'frame uploaded');
  }

  /** Each camera's health (empty without cameras). */
  cameraHealth(): Record<string, CameraHealth> {
    return this.frames?.health() ?? {};
  }

  // ---------------------------------------------------------------- events

  /**
   * Spools an event and sends it until the cloud acknowledges it. Resolves with its msgId once it is
   * durable in the spool.
   */
  async emitEvent(type: string, data: Record<string, unknown> = {}): Promise<{ msgId: string; seq: number }> {
    if (this.stopping) throw new GatewayStoppedError('the gateway is stopping: event not accepted');
    // Events leave the gateway too: their data gets the same pseudonyms as records.
    let safeData = data;
    if (this.pseudonymizer) {
      try {
        safeData = (await this.pseudonymizer.applyAsync(data)).record as Record<string, unknown>;
      } catch (err) {
        throw new InvalidEventError(`invalid event: pseudonymization failed: ${describe(err)}`, {
          cause: err,
        });
      }
    }
    const parsed = EventSchema.safeParse({ msgId: randomUUID(), type, ts: this.clock.now(), data: safeData });
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new InvalidEventError(
        `invalid event: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'}`,
      );
    }
    const event = parsed.data;
    const payload = JSON.stringify(event);
    const { seq } = await this.spool.append(STREAMS.events, Buffer.from(payload));
    this.counters.eventsEmitted++;
    this.outstanding.set(event.msgId, {
      msgId: event.msgId,
      seq,
      payload,
      attempts: 0,
      nextAt: this.clock.now(),
    });
    this.eventWake.kick();
    return { msgId: event.msgId, seq };
  }

  /** Events sent and not yet acknowledged. */
  get outstandingEvents(): number {
    return this.outstanding.size;
  }

  private async loadOutstandingEvents(): Promise<void> {
    let from = 0;
    const now = this.clock.now();
    for (;;) {
      const entries = await this.spool.read(STREAMS.events, {
        fromSeq: from,
        maxEntries: 1000,
        maxBytes: 16 * 1024 * 1024,
      });
      if (entries.length === 0) return;
      for (const e of entries) {
        from = e.seq + 1;
        const payload = Buffer.from(e.bytes).toString('utf8');
        let msgId: string | undefined;
        try {
          msgId = EventSchema.parse(JSON.parse(payload)).msgId;
        } catch (err) {
          await this.deadletter('event', `spooled event unreadable: ${describe(err)}`, { text: payload });
          await this.spool.ackOne(STREAMS.events, e.seq);
          continue;
        }
        this.outstanding.set(msgId, { msgId, seq: e.seq, payload, attempts: 0, nextAt: now });
      }
    }
  }

  private retransmitDelay(attempts: number): number {
    const e = this.config.events;
    return Math.min(e.retransmitMaxMs, e.retransmitInitialMs * 2 ** Math.min(30, attempts - 1));
  }

  private async eventLoop(): Promise<void> {
    while (!this.stopping) {
      let nextAt = Number.POSITIVE_INFINITY;
      if (this.channel.connected) {
        const now = this.clock.now();
        const due: OutstandingEvent[] = [];
        for (const o of this.outstanding.values()) {
          if (o.nextAt <= now) {
            o.attempts++;
            o.nextAt = now + this.retransmitDelay(o.attempts);
            due.push(o);
          }
          nextAt = Math.min(nextAt, o.nextAt);
        }
        for (let i = 0; i < due.length && !this.stopping; i += 32) {
          await Promise.all(due.slice(i, i + 32).map((o) => this.publishEvent(o)));
        }
      }
      const wait = nextAt === Number.POSITIVE_INFINITY ? IDLE_MS : nextAt - this.clock.now();
      await this.eventWake.sleep(wait);
    }
  }

  private async publishEvent(o: OutstandingEvent): Promise<void> {
    try {
      this.counters.eventPublishes++;
      await this.channel.publish(this.topics.events, o.payload, 1);
      this.log.debug({ msgId: o.msgId, attempt: o.attempts }, 'event sent');
    } catch (err) {
      this.log.debug({ msgId: o.msgId, err: describe(err) }, 'event not sent; will retransmit');
    }
  }

  private onAck(payload: Buffer): void {
    let json: unknown;
    try {
      json = JSON.parse(payload.toString('utf8'));
    } catch {
      this.log.warn('ack is not JSON; ignored');
      return;
    }
    const r = AckSchema.safeParse(json);
    if (!r.success) {
      this.log.warn({ issues: r.error.issues.map((i) => i.path.join('.')) }, 'invalid ack; ignored');
      return;
    }
    const ack = r.data;
    const o = this.outstanding.get(ack.msgId);
    if (!o) {
      this.log.debug(
        { msgId: ack.msgId, status: ack.status },
        'ack for no outstanding event (late or duplicate)',
      );
      return;
    }
    this.outstanding.delete(ack.msgId);
    this.track(this.settleEvent(o, ack.status, ack.error));
  }

  private async settleEvent(o: OutstandingEvent, status: string, error: string | undefined): Promise<void> {
    try {
      if (status === 'rejected') {
        let event: JsonValue;
        try {
          event = JSON.parse(o.payload) as JsonValue;
        } catch {
          event = o.payload;
        }
        await this.deadletter('event', `rejected by the cloud: ${error ?? 'no reason given'}`, { event });
      }
      await this.spool.ackOne(STREAMS.events, o.seq);
      this.lastEventAckAt = this.clock.now();
      if (status === 'rejected') this.counters.eventsRejected++;
      else this.counters.eventsAcked++;
      this.log.debug({ msgId: o.msgId, status }, 'event settled');
    } catch (err) {
      // Still in the spool: it is sent again after a restart, and the cloud answers `duplicate`.
      this.log.error({ msgId: o.msgId, err: describe(err) }, 'cannot settle an acknowledged event');
    }
  }

  // ---------------------------------------------------------------- health

  /** The `reported` state of the health shadow. */
  healthReport(): Record<string, unknown> {
    const stats = this.spool.stats();
    const spool: Record<string, { depth: number; bytes: number; oldestAgeMs: number | null }> = {};
    let deadletter = 0;
    for (const s of stats.streams) {
      spool[s.name] = { depth: s.depth, bytes: s.bytes, oldestAgeMs: s.oldestUnackedAgeMs };
      if (s.name === STREAMS.deadletter) deadletter = s.depth;
    }
    return {
      spool,
      lastUploadAt: this.lastUploadAt,
      lastEventAckAt: this.lastEventAckAt,
      deadletter,
      outstandingEvents: this.outstanding.size,
      lastFrameUploadAt: this.lastFrameUploadAt,
      cameras: this.cameraHealth(),
      ...(this.logShipper ? { logs: this.logShipper.healthReport() } : {}),
    };
  }

  private async healthLoop(): Promise<void> {
    while (!this.stopping) {
      if (this.channel.connected) {
        try {
          await this.shadows.update('health', { state: { reported: this.healthReport() } });
          this.counters.healthReports++;
        } catch (err) {
          this.log.debug({ err: describe(err) }, 'health report not sent');
        }
      }
      await this.healthWake.sleep(this.config.health.intervalMs);
    }
  }

  // ---------------------------------------------------------------- lifecycle

  private onChannelState(state: ChannelState): void {
    this.log.info({ state }, 'IoT channel state');
    if (state !== 'connected') return;
    const now = this.clock.now();
    for (const o of this.outstanding.values()) o.nextAt = now;
    this.eventWake.kick();
    this.uploadWake.kick();
    this.healthWake.kick();
    this.framesWake.kick();
    this.logShipper?.kick();
  }

  private track(p: Promise<unknown>): void {
    this.tracked.add(p);
    void p.finally(() => this.tracked.delete(p));
  }

  /** Stops ingest and the loops, uploads what is left if connected, closes the spool; idempotent. */
  stop(): Promise<void> {
    this.stopped ??= this.doStop();
    return this.stopped;
  }

  private async doStop(): Promise<void> {
    this.stopping = true;
    await this.simulator?.stop();
    const broker = this.localBroker;
    if (broker) await broker.endAsync().catch(() => {});
    await Promise.allSettled(this.localSubs.map((u) => u()));
    await this.frames?.stop();
    await this.firmware?.stop();
    this.stopCtrl.abort();
    await Promise.allSettled(this.loops);
    this.offState?.();
    await this.unsubscribeAck?.().catch(() => {});
    await Promise.allSettled([...this.tracked]);
    if (this.channel.connected) {
      try {
        for (;;) {
          const r = await this.uploadRound(true);
          if (r.failed || !r.progress) break;
        }
      } catch (err) {
        this.log.warn({ err: describe(err) }, 'final upload failed; the records stay spooled');
      }
    }
    const left = this.spool.stats().streams.find((s) => s.name === STREAMS.telemetry)?.depth ?? 0;
    await this.saveAnomalyState();
    await this.logShipper?.stop();
    await this.spool.close();
    await this.ownedStore?.closeAsync();
    this.log.info({ spooledTelemetry: left, outstandingEvents: this.outstanding.size }, 'gateway stopped');
  }
}

/** An upload error that retrying will not cure (the key is refused or taken, access denied). */
async function isPermanentUploadError(err: unknown): Promise<boolean> {
  if (err instanceof InvalidObjectKeyError || err instanceof DuplicateKeyError) return true;
  if (!(err instanceof UploadFailedError)) return false;
  // Loaded on demand: a gateway without frame uploads does not load the S3 client for it.
  const { isRetryableUploadError } = await import('./uploader.js');
  return !isRetryableUploadError(err.cause);
}

/** The records of a batch's NDJSON text, one buffer each (views, not copies). */
function splitLines(ndjson: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = ndjson.indexOf(0x0a); i >= 0; i = ndjson.indexOf(0x0a, start)) {
    if (i > start) out.push(ndjson.subarray(start, i));
    start = i + 1;
  }
  if (start < ndjson.length) out.push(ndjson.subarray(start));
  return out;
}

/** Records in a telemetry entry (its metadata says how many, when more than one). */
function entryRecords(e: SpoolEntry): number {
  const m = e.metadata as { records?: unknown } | undefined;
  return typeof m?.records === 'number' && Number.isSafeInteger(m.records) && m.records > 0 ? m.records : 1;
}

function toBatchEntry(e: SpoolEntry): BatchEntry {
  return { seq: e.seq, ts: e.timestamp, json: e.bytes, records: entryRecords(e) };
}

/** The standalone ShadowClient: an update document published (QoS 1) on the shadow's update topic. */
export function mqttShadowClient(channel: IotChannel, thingName: string): ShadowClient {
  return {
    async update(shadowName, document) {
      await channel.publish(shadowTopics(thingName, shadowName).update, JSON.stringify(document), 1);
    },
  };
}
