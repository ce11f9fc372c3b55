/**
 * The gateway configuration: one zod schema, one section per concern. Standalone runs load it from a
 * JSON file (`loadGatewayConfig`); relative file paths resolve against that file's directory. Errors name
 * the field (`credentials.refreshMarginSeconds: must be ...`).
 *
 * To extend it, add a section schema below and a member of `GatewayConfigSchema`; give every field a
 * default where one makes sense, so existing configuration files keep working. Unknown fields are
 * rejected, so that a misspelt setting does not silently fall back to its default.
 */
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import semver from 'semver';
import { z } from 'zod';
import { DetectorOptionsSchema } from '../analytics/anomaly/detector.js';
import {
  COMPONENT_LOG_SOURCE,
  GATEWAY_LOGS_STREAM,
  LOG_SOURCE_PATTERN,
  MAX_PUT_RECORDS,
  MAX_PUT_RECORDS_BYTES,
} from '../protocol/logs.js';
import { backoffSchema } from './backoff.js';
import { BatchLimitsSchema } from './batching.js';
import { GatewayConfigError } from './errors.js';
import { PseudonymizationConfigSchema } from './pseudonymize/config.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** `is required` for a missing field, `must be {what}` for a wrong type. */
function typeError(what: string) {
  return {
    error: (iss: { input?: unknown }) => (iss.input === undefined ? 'is required' : `must be ${what}`),
  };
}

function section<T extends z.core.$ZodLooseShape>(shape: T) {
  return z.strictObject(shape, typeError('an object'));
}

function int(min: number, max: number) {
  const range = `must be an integer from ${min} to ${max}`;
  return z.number(typeError('a number')).int(range).min(min, range).max(max, range);
}

const text = z.string(typeError('a string')).min(1, 'must not be empty');

/** AWS IoT thing names: 1-128 of `a-zA-Z0-9:_-`. */
export const THING_NAME_PATTERN = /^[a-zA-Z0-9:_-]{1,128}$/;

export const IotConfigSchema = section({
  /** The AWS IoT Core ATS data endpoint (or the local cloud's host). */
  host: text,
  port: int(1, 65535).default(8883),
  /** Device certificate, private key and the CA that signs the server certificate (PEM files). */
  certFile: text,
  keyFile: text,
  caFile: text,
  /** MQTT keep-alive; AWS IoT Core accepts 30 to 1200 seconds. */
  keepaliveSeconds: int(30, 1200).default(60),
  /** Time allowed for the TLS handshake and CONNACK. */
  connectTimeoutMs: int(1000, 600_000).default(30_000),
  /** Backoff between reconnection attempts. */
  reconnect: backoffSchema({ initialDelayMs: 1000, maxDelayMs: 60_000 }),
});

export const AwsConfigSchema = section({
  region: z
    .string(typeError('a string'))
    .regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must look like an AWS region, e.g. eu-central-1'),
  /** S3 endpoint URL, for the local cloud (`http://127.0.0.1:4566`); unset on AWS. */
  s3Endpoint: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).optional(),
  /** Path-style S3 URLs (the local cloud needs them). */
  forcePathStyle: z.boolean(typeError('true or false')).optional(),
  /** Kinesis endpoint URL (log shipping); unset: `s3Endpoint` (the local cloud serves both), or AWS's. */
  kinesisEndpoint: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).optional(),
});

export const StorageConfigSchema = section({
  bucket: z
    .string(typeError('a string'))
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid S3 bucket name'),
});

export const CredentialsConfigSchema = section({
  /**
   * `mqtt`: the temporary-token pattern (request over MQTT, the cloud vends STS credentials);
   * `tes`: the Greengrass token exchange service (AWS_CONTAINER_CREDENTIALS_FULL_URI).
   */
  source: z.enum(['mqtt', 'tes'], "must be 'mqtt' or 'tes'").default('mqtt'),
  /** Credentials are refreshed this long before they expire. */
  refreshMarginSeconds: int(0, 43_200).default(300),
  /** How long one request waits for its response. */
  requestTimeoutMs: int(100, 600_000).default(10_000),
  /** Requests per refresh before giving up (CredentialsUnavailableError). */
  maxAttempts: int(1, 100).default(5),
  backoff: backoffSchema({ initialDelayMs: 500, maxDelayMs: 30_000 }),
});

export const UploadConfigSchema = section({
  /** Multipart part size; S3 allows 5 MiB to 5 GiB. Up to queueSize parts are held in memory. */
  partSizeBytes: int(5 * MiB, 5 * GiB).default(8 * MiB),
  /** Parts uploaded concurrently. */
  queueSize: int(1, 64).default(4),
  /** Objects up to this size go up in one PutObject, held in memory; larger ones in parts. */
  singlePutMaxBytes: int(0, 64 * MiB).default(8 * MiB),
  /** Attempts at a whole upload (each request is also retried by the SDK's own retry strategy). */
  maxAttempts: int(1, 100).default(3),
  backoff: backoffSchema({ initialDelayMs: 1000, maxDelayMs: 30_000 }),
});

/** Settings of one spool stream (see spool/spool.ts, after Greengrass's MessageStreamDefinition). */
function streamSettings(defaults: {
  maxSizeBytes: number;
  segmentSizeBytes: number;
  strategyOnFull: 'RejectNewData' | 'OverwriteOldestData';
  priority: 'critical' | 'bulk';
}) {
  return section({
    maxSizeBytes: int(1024, 1024 * GiB).default(defaults.maxSizeBytes),
    segmentSizeBytes: int(1024, 1024 * GiB).default(defaults.segmentSizeBytes),
    strategyOnFull: z
      .enum(['RejectNewData', 'OverwriteOldestData'], "must be 'RejectNewData' or 'OverwriteOldestData'")
      .default(defaults.strategyOnFull),
    priority: z.enum(['critical', 'bulk'], "must be 'critical' or 'bulk'").default(defaults.priority),
  })
    .refine((s) => s.segmentSizeBytes <= s.maxSizeBytes, {
      path: ['segmentSizeBytes'],
      message: 'must not be larger than maxSizeBytes',
    })
    .prefault({});
}

/** The gateway's durable spool: one directory, four streams. */
export const SpoolSectionSchema = section({
  /** Directory of the spool (created if missing); relative paths resolve against the configuration file. */
  dir: text.default('spool'),
  /** Bytes all streams together may hold; unset: no global limit. */
  maxTotalBytes: int(1024, 1024 * GiB).optional(),
  streams: section({
    telemetry: streamSettings({
      maxSizeBytes: 256 * MiB,
      segmentSizeBytes: 16 * MiB,
      strategyOnFull: 'RejectNewData',
      priority: 'critical',
    }),
    events: streamSettings({
      maxSizeBytes: 64 * MiB,
      segmentSizeBytes: 4 * MiB,
      strategyOnFull: 'RejectNewData',
      priority: 'critical',
    }),
    frames: streamSettings({
      maxSizeBytes: 1 * GiB,
      segmentSizeBytes: 16 * MiB,
      strategyOnFull: 'OverwriteOldestData',
      priority: 'bulk',
    }),
    /** Records and events that cannot be uploaded (malformed, failed pseudonymization, rejected); local only. */
    deadletter: streamSettings({
      maxSizeBytes: 64 * MiB,
      segmentSizeBytes: 4 * MiB,
      strategyOnFull: 'OverwriteOldestData',
      priority: 'bulk',
    }),
    /** Log lines waiting to be shipped (only opened with a `logs` section). */
    logs: streamSettings({
      maxSizeBytes: 64 * MiB,
      segmentSizeBytes: 4 * MiB,
      strategyOnFull: 'OverwriteOldestData',
      priority: 'bulk',
    }),
  }).prefault({}),
});

export const EventsConfigSchema = section({
  /** First retransmission of an unacknowledged event after this long; doubles up to retransmitMaxMs. */
  retransmitInitialMs: int(10, 3_600_000).default(5000),
  retransmitMaxMs: int(10, 86_400_000).default(300_000),
}).refine((e) => e.retransmitInitialMs <= e.retransmitMaxMs, {
  path: ['retransmitInitialMs'],
  message: 'must not exceed retransmitMaxMs',
});

export const SimulatorConfigSchema = section({
  /** One record per sensor every intervalMs. */
  intervalMs: int(10, 86_400_000).default(1000),
  sensors: int(1, 10_000).default(3),
});

export const LocalBrokerConfigSchema = section({
  /** A plain local MQTT broker that sensors publish to, e.g. mqtt://127.0.0.1:1883. */
  url: z.url({ protocol: /^(mqtt|mqtts|ws|wss|tcp)$/, error: 'must be an mqtt:// (or mqtts://, ws://) URL' }),
  topics: z.array(text, typeError('an array of topic filters')).min(1, 'must list at least one topic'),
});

export const LocalPubSubConfigSchema = section({
  /** Greengrass local publish/subscribe topics (filters) on which sensor components publish records. */
  topics: z.array(text, typeError('an array of topic filters')).min(1, 'must list at least one topic'),
});

export const IngestConfigSchema = section({
  /** Generates sensor records (for demos and tests); absent: off. */
  simulator: SimulatorConfigSchema.optional(),
  /** Records arrive as JSON messages on a local MQTT broker; absent: off. */
  localBroker: LocalBrokerConfigSchema.optional(),
  /** Under Greengrass: records arrive on local publish/subscribe (IPC SubscribeToTopic); absent: off. */
  localPubSub: LocalPubSubConfigSchema.optional(),
});

/** AWS IoT Core's limit on a message payload: a streamed record must fit in one message. */
export const MAX_STREAM_RECORD_BYTES = 128 * 1024;

export const TelemetryConfigSchema = section({
  /**
   * How telemetry leaves the gateway: `upload` (gzip NDJSON batches straight to S3, the default) or
   * `stream` (one QoS 1 message per record on `dt/{thing}/telemetry`, which the IoT rule sends through
   * Firehose into the lake). Either way a record leaves the spool only once it is delivered.
   */
  delivery: z.enum(['upload', 'stream'], "must be 'upload' or 'stream'").default('upload'),
  /** While streaming: records published and not yet acknowledged (PUBACK) at once. */
  streamInFlight: int(1, 1000).default(100),
});

/**
 * Anomaly detection on live readings (analytics/anomaly, the same detector the cloud's stream consumer
 * runs): an alarm becomes an exactly-once `anomaly` event, spooled while offline.
 */
export const AnomalyConfigSchema = section({
  /** Numeric record fields to watch, e.g. `["temperature", "vibration"]`. */
  metrics: z
    .array(
      z
        .string(typeError('a string'))
        .regex(/^[A-Za-z0-9_]{1,64}$/, 'must be a field name (letters, digits, _)'),
      typeError('an array of field names'),
    )
    .min(1, 'must list at least one metric'),
  /** The record field naming the device a reading comes from. */
  deviceField: z
    .string(typeError('a string'))
    .regex(/^[A-Za-z0-9_]{1,64}$/, 'must be a field name (letters, digits, _)')
    .default('sensorId'),
  /** Series (device and metric) kept at most; the least recently seen is dropped first. */
  maxSeries: int(1, 1_000_000).default(10_000),
  /** Detector options (analytics/anomaly); defaults when absent. */
  detector: DetectorOptionsSchema.prefault({}),
});

export const HealthConfigSchema = section({
  /** How often the health named shadow is updated (while connected). */
  intervalMs: int(100, 86_400_000).default(60_000),
});

export const DrainConfigSchema = section({
  /** Batches uploaded at once while a backlog drains. */
  concurrency: int(1, 64).default(2),
});

/** A ratio of the frame's width or height, 0..1. */
const ratio = z
  .number(typeError('a number from 0 to 1'))
  .min(0, 'must be from 0 to 1')
  .max(1, 'must be from 0 to 1');

/** Camera ids appear in object keys and health reports: letters, digits, `_` and `-`. */
export const CAMERA_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

const FfmpegSourceSchema = section({
  type: z.literal('ffmpeg'),
  /** An RTSP or HTTP(S) stream (`rtsp://...`, `http://.../video.mjpg`). */
  url: z
    .url({ protocol: /^(rtsp|rtsps|http|https)$/, error: 'must be an rtsp:// or http(s):// URL' })
    .optional(),
  /** A V4L2 device (`/dev/video0`). */
  device: z
    .string(typeError('a string'))
    .regex(/^\/dev\/[A-Za-z0-9_./-]+$/, 'must be a device path such as /dev/video0')
    .optional(),
  /** An ffmpeg lavfi graph (`testsrc=size=640x480:rate=5`), read in real time: for tests and demos. */
  lavfi: text.optional(),
  /** Extra ffmpeg input options, placed before `-i` (e.g. `["-input_format", "mjpeg"]`). */
  inputArgs: z.array(text, typeError('an array of strings')).default([]),
  /** The ffmpeg executable (Debian: `apt-get install ffmpeg`). */
  ffmpegPath: text.default('ffmpeg'),
}).superRefine((s, ctx) => {
  const set = (['url', 'device', 'lavfi'] as const).filter((k) => s[k] !== undefined);
  if (set.length !== 1) {
    ctx.addIssue({
      code: 'custom',
      path: set.length === 0 ? ['url'] : [set[1]!],
      message:
        set.length === 0
          ? 'one of url, device or lavfi is required'
          : `only one of url, device or lavfi may be set`,
    });
  }
});

const HttpSnapshotSourceSchema = section({
  type: z.literal('http-snapshot'),
  /** The camera's JPEG snapshot URL, polled `fps` times a second. */
  url: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }),
  /** HTTP basic authentication. */
  username: text.optional(),
  password: z.string(typeError('a string')).optional(),
  /** A poll that has not answered by then counts as failed. */
  timeoutMs: int(100, 600_000).default(10_000),
});

const DirectorySourceSchema = section({
  type: z.literal('directory'),
  /** Folder the camera pushes images to (FTP); relative paths resolve against the configuration file. */
  dir: text,
  /** A file is picked up once it has not changed for this long (the upload is complete). */
  settleMs: int(0, 3_600_000).default(1000),
  /** What happens to a file once read: removed (default), or left in place (and remembered while running). */
  afterRead: z.enum(['delete', 'keep'], "must be 'delete' or 'keep'").default('delete'),
});

const SyntheticSourceSchema = section({
  type: z.literal('synthetic'),
  /** `pattern`: a moving test pattern; `faces`: the face-api sample photos, in turn. */
  pattern: z.enum(['pattern', 'faces'], "must be 'pattern' or 'faces'").default('pattern'),
  width: int(16, 7680).default(640),
  height: int(16, 4320).default(480),
});

export const FrameSourceConfigSchema = z.discriminatedUnion(
  'type',
  [FfmpegSourceSchema, HttpSnapshotSourceSchema, DirectorySourceSchema, SyntheticSourceSchema],
  {
    error: (iss) =>
      (iss.code as string) === 'invalid_type'
        ? iss.input === undefined
          ? 'is required'
          : 'must be an object'
        : "must be 'ffmpeg', 'http-snapshot', 'directory' or 'synthetic'",
  },
);

const PointSchema = section({ x: ratio, y: ratio });

const RectSchema = section({ left: ratio, top: ratio, width: ratio, height: ratio }).superRefine((r, ctx) => {
  if (r.left + r.width > 1)
    ctx.addIssue({ code: 'custom', path: ['width'], message: 'left + width must not exceed 1' });
  if (r.top + r.height > 1)
    ctx.addIssue({ code: 'custom', path: ['height'], message: 'top + height must not exceed 1' });
});

/** A privacy zone, in ratios of the frame: a rectangle or a polygon. */
export const PrivacyZoneSchema = section({
  rect: RectSchema.optional(),
  polygon: z
    .array(PointSchema, typeError('an array of points'))
    .min(3, 'must have at least 3 points')
    .optional(),
}).superRefine((z, ctx) => {
  if ((z.rect === undefined) === (z.polygon === undefined)) {
    ctx.addIssue({ code: 'custom', path: ['rect'], message: 'exactly one of rect or polygon is required' });
  }
});

export const MaskingConfigSchema = section({
  /** Detect faces on the gateway and mask them. */
  faces: z.boolean(typeError('true or false')).default(true),
  style: z.enum(['blur', 'pixelate'], "must be 'blur' or 'pixelate'").default('blur'),
  zones: z.array(PrivacyZoneSchema, typeError('an array of zones')).default([]),
  /** Face detector: `tiny` (Tiny Face Detector, fast) or `ssd` (SSD MobileNet v1, slower, more accurate). */
  detector: z.enum(['tiny', 'ssd'], "must be 'tiny' or 'ssd'").default('tiny'),
  /** Detector score from which a region counts as a face (low: mask more). */
  minConfidence: ratio.default(0.3),
  /** Faces are detected on a copy whose longer side is at most this. */
  detectionMaxSide: int(128, 4096).default(640),
  /** Each face box grows by this ratio of its size on every side before it is masked. */
  padding: z
    .number(typeError('a number'))
    .min(0, 'must be from 0 to 1')
    .max(1, 'must be from 0 to 1')
    .default(0.25),
});

export const CameraConfigSchema = section({
  id: z
    .string(typeError('a string'))
    .regex(CAMERA_ID_PATTERN, 'must be 1 to 64 characters of A-Z, a-z, 0-9, "_" and "-"'),
  source: FrameSourceConfigSchema,
  /** Frames per second taken from the source (fractions allowed: 0.2 is one every 5 s). */
  fps: z
    .number(typeError('a number'))
    .gt(0, 'must be greater than 0')
    .max(60, 'must be at most 60')
    .default(1),
  /** Frames are scaled down (never up) to fit maxWidth x maxHeight. */
  maxWidth: int(16, 7680).default(1920),
  maxHeight: int(16, 4320).default(1080),
  format: z.enum(['jpeg', 'webp'], "must be 'jpeg' or 'webp'").default('jpeg'),
  quality: int(1, 100).default(80),
  /**
   * A frame is kept only if the mean absolute difference of its grayscale thumbnail from the last kept
   * frame's is at least this (0..1 of full scale); 0 keeps every frame.
   */
  changeThreshold: ratio.default(0.02),
  /** No frame for this many frame intervals: the camera is `stalled` and its source restarted; 0: never. */
  stallAfterIntervals: int(0, 100_000).default(10),
  /** Backoff between restarts of a failed source (ffmpeg that exits, failing polls). */
  restartBackoff: backoffSchema({ initialDelayMs: 1000, maxDelayMs: 60_000 }),
  /** Face and privacy-zone masking; must not be set with `identification`. */
  masking: MaskingConfigSchema.optional(),
  /**
   * Identification (recognition of enrolled staff): frames are NOT masked and go to the restricted
   * `frames-identify/{thing}/{camera}/` prefix. Only when set to true explicitly.
   */
  identification: z.boolean(typeError('true or false')).default(false),
})
  .superRefine((c, ctx) => {
    if (c.identification && c.masking !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['masking'],
        message: 'must not be set when identification is true (frames are not masked)',
      });
    }
  })
  .transform((c) => ({ ...c, masking: c.masking ?? MaskingConfigSchema.parse({}) }));

export const CamerasConfigSchema = z
  .array(CameraConfigSchema, typeError('an array of cameras'))
  .default([])
  .superRefine((cams, ctx) => {
    const seen = new Set<string>();
    cams.forEach((c, i) => {
      if (seen.has(c.id))
        ctx.addIssue({ code: 'custom', path: [i, 'id'], message: `duplicate camera id '${c.id}'` });
      seen.add(c.id);
    });
  });

const argv = z.array(text, typeError('an array of strings')).min(1, 'must name the command to run');

function isPublicKeyPem(pem: string): boolean {
  try {
    createPublicKey(pem);
    return true;
  } catch {
    return false;
  }
}

/** A trusted manifest-signing key: its PEM text, or `{file}` (relative to the configuration file). */
const TrustedKeySchema = z.union(
  [z.string().refine(isPublicKeyPem, 'must be a PEM public key'), section({ file: text })],
  { error: 'must be a PEM public key or {file}' },
);

export const FirmwareConfigSchema = section({
  /** What this gateway installs; a manifest for another target is refused. */
  target: z
    .string(typeError('a string'))
    .regex(/^[A-Za-z0-9._-]{1,128}$/, 'must be 1 to 128 letters, digits, ".", "_" and "-"'),
  /** The version installed when the agent first starts (the initial anti-rollback floor). */
  currentVersion: z
    .string(typeError('a string'))
    .refine((v) => semver.valid(v) === v, 'must be a semantic version')
    .default('0.0.0'),
  /** State, downloads and staged versions; relative paths resolve against the configuration file. */
  dir: text.default('firmware'),
  /** Manifest-signing public keys by keyId. */
  trustedKeys: z
    .record(
      z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'must be a key id of letters, digits, ".", "_", ":", "-"'),
      TrustedKeySchema,
      typeError('an object of keyId: PEM'),
    )
    .refine((k) => Object.keys(k).length > 0, 'must name at least one key'),
  /** Artifacts larger than this are refused. */
  maxSizeBytes: int(1, 1024 * GiB).default(512 * MiB),
  /**
   * `link`: stage into `{dir}/versions/{version}/` and switch the `{dir}/current` symlink atomically;
   * `command`: run `command` with FIRMWARE_PATH and FIRMWARE_VERSION in its environment.
   */
  apply: z
    .discriminatedUnion(
      'mode',
      [
        section({ mode: z.literal('link') }),
        section({
          mode: z.literal('command'),
          command: argv,
          timeoutMs: int(100, 86_400_000).default(300_000),
        }),
      ],
      { error: "must be {mode: 'link'} or {mode: 'command', command: [...]}" },
    )
    .default({ mode: 'link' }),
  /** Run after applying; exit 0 passes, anything else (or the timeout) rolls back. */
  selfTest: section({ command: argv, timeoutMs: int(100, 86_400_000).default(60_000) }).optional(),
  download: section({
    /** One download attempt (request and body) must finish within this. */
    timeoutMs: int(100, 86_400_000).default(600_000),
    maxAttempts: int(1, 100).default(5),
    backoff: backoffSchema({ initialDelayMs: 1000, maxDelayMs: 60_000 }),
  }).prefault({}),
});

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Levels a shipped line may have at least. */
const SHIPPED_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

/** A source name made from a file name: characters outside LOG_SOURCE_PATTERN become `_`. */
export function defaultLogSource(path: string): string {
  const name = basename(path)
    .replace(/[^A-Za-z0-9._-]/g, '_')
    .slice(0, 64);
  return name.length > 0 ? name : 'file';
}

export const LogFileConfigSchema = section({
  /** The file to follow (like `tail -F`); relative paths resolve against the configuration file. */
  path: text,
  /** Names the file's lines in the stream (and their partition key); default: the file name. */
  source: z
    .string(typeError('a string'))
    .regex(LOG_SOURCE_PATTERN, 'must be 1 to 64 characters of A-Z, a-z, 0-9, ".", "_" and "-"')
    .optional(),
  /**
   * Where a file seen for the first time (no saved position) is read from: `beginning` ships what it
   * already holds, `end` only what is written from then on. Rotated and new files are read from the start.
   */
  startAt: z.enum(['beginning', 'end'], "must be 'beginning' or 'end'").default('beginning'),
}).transform((f) => ({ path: f.path, source: f.source ?? defaultLogSource(f.path), startAt: f.startAt }));

/**
 * Log shipping (edge-component/logs): the component's own log lines and followed files go through the
 * `logs` spool stream into a Kinesis data stream with PutRecords, signed with the gateway's temporary
 * credentials. Absent: no shipping.
 */
export const LogsConfigSchema = section({
  /** The Kinesis data stream (the vended session policy allows the default one). */
  streamName: z
    .string(typeError('a string'))
    .regex(/^[A-Za-z0-9_.-]{1,128}$/, 'must be a stream name: 1 to 128 of A-Z, a-z, 0-9, "_", "." and "-"')
    .default(GATEWAY_LOGS_STREAM),
  /** The component's own log lines (source `gateway`). */
  component: section({
    enabled: z.boolean(typeError('true or false')).default(true),
    /** Lines below this level are not shipped (nor are lines below `logLevel`, which are not written). */
    level: z.enum(SHIPPED_LEVELS, `must be one of ${SHIPPED_LEVELS.join(', ')}`).default('info'),
  }).prefault({}),
  /** Log files to follow. */
  files: z.array(LogFileConfigSchema, typeError('an array of files')).default([]),
  /**
   * One PutRecords call: at most maxRecords records and maxBytes bytes of data and partition keys (but
   * at least one record), sent once full or when its oldest line is maxAgeMs old.
   */
  batch: section({
    maxRecords: int(1, MAX_PUT_RECORDS).default(MAX_PUT_RECORDS),
    maxBytes: int(1024, MAX_PUT_RECORDS_BYTES).default(MAX_PUT_RECORDS_BYTES),
    maxAgeMs: int(0, 3_600_000).default(1000),
  }).prefault({}),
  /** How often the files are checked for new lines, rotation and truncation. */
  pollIntervalMs: int(10, 3_600_000).default(1000),
  /** Backoff after a failed PutRecords call, or one with failed records (jittered, doubling). */
  backoff: backoffSchema({ initialDelayMs: 100, maxDelayMs: 30_000 }),
}).superRefine((l, ctx) => {
  const seen = new Set<string>(l.component.enabled ? [COMPONENT_LOG_SOURCE] : []);
  l.files.forEach((f, i) => {
    if (seen.has(f.source)) {
      ctx.addIssue({
        code: 'custom',
        path: ['files', i, 'source'],
        message:
          f.source === COMPONENT_LOG_SOURCE && l.component.enabled
            ? `'${f.source}' names the component's own lines; set another source`
            : `duplicate source '${f.source}'; set a distinct source`,
      });
    }
    seen.add(f.source);
  });
});

export const GatewayConfigSchema = section({
  thingName: z
    .string(typeError('a string'))
    .regex(THING_NAME_PATTERN, 'must be 1 to 128 characters of a-z, A-Z, 0-9, ":", "_" and "-"'),
  logLevel: z.enum(LOG_LEVELS, `must be one of ${LOG_LEVELS.join(', ')}`).default('info'),
  /** Direct MQTT over mutual TLS (standalone runs); required when credentials.source is 'mqtt'. */
  iot: IotConfigSchema.optional(),
  aws: AwsConfigSchema,
  storage: StorageConfigSchema,
  credentials: CredentialsConfigSchema.prefault({}),
  upload: UploadConfigSchema.prefault({}),
  /** Sensitive-ID pseudonymization; absent: no field is pseudonymized. */
  pseudonymization: PseudonymizationConfigSchema.optional(),
  spool: SpoolSectionSchema.prefault({}),
  batching: BatchLimitsSchema.prefault({}),
  telemetry: TelemetryConfigSchema.prefault({}),
  /** Anomaly detection on live readings; absent: off. */
  anomaly: AnomalyConfigSchema.optional(),
  events: EventsConfigSchema.prefault({}),
  ingest: IngestConfigSchema.prefault({}),
  health: HealthConfigSchema.prefault({}),
  drain: DrainConfigSchema.prefault({}),
  /** Cameras whose frames are masked on the gateway and uploaded under frames/{thing}/{camera}/. */
  cameras: CamerasConfigSchema,
  /** The firmware agent (updates through the `firmware` named shadow); absent: no agent. */
  firmware: FirmwareConfigSchema.optional(),
  /** Log shipping to a Kinesis data stream; absent: off. */
  logs: LogsConfigSchema.optional(),
});

/** Where the gateway runs: standalone (its own MQTT connection) or as a Greengrass component. */
export type GatewayRuntime = 'standalone' | 'greengrass';

/** Checks that depend on the runtime. */
function runtimeIssues(c: z.output<typeof GatewayConfigSchema>, runtime: GatewayRuntime) {
  const out: { path: string; message: string }[] = [];
  if (runtime === 'standalone') {
    if (c.credentials.source === 'mqtt' && c.iot === undefined) {
      out.push({ path: 'iot', message: "is required when credentials.source is 'mqtt'" });
    }
    if (c.ingest.localPubSub) {
      out.push({
        path: 'ingest.localPubSub',
        message: 'needs Greengrass (use ingest.localBroker standalone)',
      });
    }
    if (c.pseudonymization?.keySecretId !== undefined) {
      out.push({
        path: 'pseudonymization.keySecretId',
        message: 'needs Greengrass SecretManager (use keyFile standalone)',
      });
    }
  } else if (c.iot !== undefined) {
    out.push({ path: 'iot', message: 'must not be set under Greengrass (the nucleus holds the connection)' });
  }
  return out;
}

export type GatewayConfigInput = z.input<typeof GatewayConfigSchema>;
export type GatewayConfig = z.output<typeof GatewayConfigSchema>;
export type IotConfig = z.output<typeof IotConfigSchema>;
export type AwsConfig = z.output<typeof AwsConfigSchema>;
export type CredentialsConfig = z.output<typeof CredentialsConfigSchema>;
export type UploadConfig = z.output<typeof UploadConfigSchema>;
export type SpoolSection = z.output<typeof SpoolSectionSchema>;
export type EventsConfig = z.output<typeof EventsConfigSchema>;
export type IngestConfig = z.output<typeof IngestConfigSchema>;
export type SimulatorConfig = z.output<typeof SimulatorConfigSchema>;
export type CameraConfig = z.output<typeof CameraConfigSchema>;
export type FrameSourceConfig = z.output<typeof FrameSourceConfigSchema>;
export type MaskingConfig = z.output<typeof MaskingConfigSchema>;
export type PrivacyZone = z.output<typeof PrivacyZoneSchema>;
export type FirmwareConfig = z.output<typeof FirmwareConfigSchema>;
export type LogsConfig = z.output<typeof LogsConfigSchema>;

/** `a.b: message` for each issue; unknown fields are named by their own path. */
export function describeIssues(error: z.ZodError): { path: string; message: string }[] {
  const out: { path: string; message: string }[] = [];
  for (const issue of error.issues) {
    const base = issue.path.map(String);
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys)
        out.push({ path: [...base, key].join('.'), message: 'is not a known field' });
    } else {
      out.push({ path: base.join('.'), message: issue.message });
    }
  }
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export interface ParseOptions {
  /** Relative file paths (spool.dir, iot.certFile/keyFile/caFile, pseudonymization files) resolve against it. */
  baseDir?: string;
  /** Names the configuration in errors (a file path, or "component configuration"). */
  source?: string;
  /** Default 'standalone'. */
  runtime?: GatewayRuntime;
  /**
   * Greengrass: the core device's thing name (AWS_IOT_THING_NAME). It is the default of `thingName`,
   * and a different `thingName` is refused (the component's IPC permissions are for this thing).
   */
  coreThingName?: string;
  /** Greengrass: the core device's region (AWS_REGION), the default of `aws.region`. */
  coreRegion?: string;
}

/**
 * Validates a configuration object. Under Greengrass (`runtime: 'greengrass'`), the component
 * configuration's `accessControl` key (the nucleus's, not the gateway's) is ignored, `thingName` and
 * `aws.region` default to the core device's, and `iot` must be absent.
 */
export function parseGatewayConfig(input: unknown, opts: ParseOptions = {}): GatewayConfig {
  const runtime = opts.runtime ?? 'standalone';
  let value = input;
  if (runtime === 'greengrass' && typeof input === 'object' && input !== null && !Array.isArray(input)) {
    const { accessControl: _ignored, ...rest } = input as Record<string, unknown>;
    if (rest.thingName === undefined && opts.coreThingName) rest.thingName = opts.coreThingName;
    if (
      opts.coreRegion &&
      (rest.aws === undefined || (isObject(rest.aws) && rest.aws.region === undefined))
    ) {
      rest.aws = { ...(isObject(rest.aws) ? rest.aws : {}), region: opts.coreRegion };
    }
    value = rest;
  }
  const r = GatewayConfigSchema.safeParse(value);
  const where = opts.source ? ` in ${opts.source}` : '';
  const fail = (issues: { path: string; message: string }[]) =>
    new GatewayConfigError(
      `invalid gateway configuration${where}: ${issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ')}`,
      issues,
    );
  if (!r.success) throw fail(describeIssues(r.error));
  const config = r.data;
  const more = runtimeIssues(config, runtime);
  if (runtime === 'greengrass' && opts.coreThingName && config.thingName !== opts.coreThingName) {
    more.push({ path: 'thingName', message: `must be the core device's thing name ${opts.coreThingName}` });
  }
  if (more.length > 0) throw fail(more);
  const base = opts.baseDir;
  if (base !== undefined && config.pseudonymization) {
    const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
    const { keyFile } = config.pseudonymization;
    config.pseudonymization = {
      ...config.pseudonymization,
      ...(keyFile !== undefined ? { keyFile: abs(keyFile) } : {}),
      mapFile: abs(config.pseudonymization.mapFile),
    };
  }
  if (base !== undefined && !isAbsolute(config.spool.dir)) {
    config.spool = { ...config.spool, dir: resolve(base, config.spool.dir) };
  }
  if (base !== undefined) {
    config.cameras = config.cameras.map((c) =>
      c.source.type === 'directory' && !isAbsolute(c.source.dir)
        ? { ...c, source: { ...c.source, dir: resolve(base, c.source.dir) } }
        : c,
    );
  }
  if (base !== undefined && config.firmware) {
    const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
    const fw = config.firmware;
    config.firmware = {
      ...fw,
      dir: abs(fw.dir),
      trustedKeys: Object.fromEntries(
        Object.entries(fw.trustedKeys).map(([id, k]) => [
          id,
          typeof k === 'string' ? k : { file: abs(k.file) },
        ]),
      ),
    };
  }
  if (base !== undefined && config.logs) {
    const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
    config.logs = { ...config.logs, files: config.logs.files.map((f) => ({ ...f, path: abs(f.path) })) };
  }
  if (base !== undefined && config.iot) {
    const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
    config.iot = {
      ...config.iot,
      certFile: abs(config.iot.certFile),
      keyFile: abs(config.iot.keyFile),
      caFile: abs(config.iot.caFile),
    };
  }
  return config;
}

/** Reads and validates a JSON configuration file; relative paths in it resolve against its directory. */
export function loadGatewayConfig(path: string): GatewayConfig {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new GatewayConfigError(`cannot read gateway configuration ${file}${code ? ` (${code})` : ''}`, [], {
      cause: err,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new GatewayConfigError(
      `gateway configuration ${file} is not valid JSON: ${(err as Error).message}`,
      [],
      {
        cause: err,
      },
    );
  }
  return parseGatewayConfig(json, { baseDir: dirname(file), source: file });
}
