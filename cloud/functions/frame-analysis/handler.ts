/**
 * Frame analysis. S3 invokes the function (asynchronously) for every new object under `frames/` and
 * `frames-identify/` of the data bucket. For each frame image the function:
 *
 * 1. reads the gateway's sidecar (`{same name}.json`) if there is one;
 * 2. asks Rekognition about the image where it lies (`Image.S3Object`): DetectLabels and DetectFaces, and
 *    for identification frames (`frames-identify/`) SearchFacesByImage against the face collection;
 * 3. writes one result document to the results bucket, at a key derived from the frame's key only
 *    (`results/{thing}/{camera}/dt=YYYY-MM-DD/{frameId}.json`), so a redelivered event overwrites the
 *    same object with the same analysis;
 * 4. publishes a compact summary on `things/{thing}/analysis` (IoT data plane);
 * 5. evaluates the operators' alert rules (`config/alert-rules.json` in the results bucket, cached for a
 *    short time) and publishes every match to the alerts topic (SNS) with the attributes `site`,
 *    `severity` and `alertId` (deterministic per frame and rule, for consumers that deduplicate).
 *
 * Delivery is at least once: a failure in any step fails the invocation, and S3's asynchronous
 * invocation retries it; the result object is rewritten identically and alerts may repeat (same alertId).
 * Records that are not frames, and frames whose key does not follow the gateway's layout, are skipped
 * with a log line (a retry could not change them).
 */
import { createHash } from 'node:crypto';
import { IoTDataPlaneClient, PublishCommand as IotPublishCommand } from '@aws-sdk/client-iot-data-plane';
import {
  DetectFacesCommand,
  type DetectFacesCommandOutput,
  DetectLabelsCommand,
  type DetectLabelsCommandOutput,
  type Image,
  RekognitionClient,
  SearchFacesByImageCommand,
} from '@aws-sdk/client-rekognition';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SNSClient, PublishCommand as SnsPublishCommand } from '@aws-sdk/client-sns';
import type { Logger } from 'pino';
import {
  ALERT_RULES_KEY,
  type AlertMatch,
  type AlertRulesDocument,
  type DetectedLabel,
  evaluateAlertRules,
  type MatchedFace,
  parseAlertRulesDocument,
  siteOfThing,
} from '../../rules/alerts.js';
import { FRAME_ANALYSIS_FUNCTION_NAME, FRAME_ANALYSIS_ROLE_NAME } from '../../rules/resources.js';
import type { Handler } from '../index.js';
import { type FunctionDefinition, type FunctionRuntime, requireEnv } from '../runtime.js';
import {
  decodeEventKey,
  type FrameKey,
  isFrameObject,
  parseFrameKey,
  resultKey,
  S3EventRecordSchema,
  S3EventSchema,
  type Sidecar,
  SidecarSchema,
} from './frames.js';

/** DetectLabels' MinConfidence: labels below it are not returned. */
export const LABEL_MIN_CONFIDENCE = 50;
/** Most labels asked for per frame. */
const MAX_LABELS = 50;
/** SearchFacesByImage's FaceMatchThreshold. */
export const FACE_MATCH_THRESHOLD = 80;
/** Default lifetime of the cached alert rules, seconds (env ALERT_RULES_TTL_SECONDS). */
export const DEFAULT_ALERT_RULES_TTL_SECONDS = 30;
/** Labels in the MQTT summary (the result object has all of them). */
const SUMMARY_LABELS = 10;

export interface FaceSummary {
  confidence: number;
  boundingBox?: { width: number; height: number; left: number; top: number };
}

export interface FrameResult {
  thing: string;
  camera: string;
  site?: string;
  /** ISO 8601. */
  capturedAt: string;
  bucket: string;
  key: string;
  kind: FrameKey['kind'];
  masking?: Sidecar['masking'];
  labels: DetectedLabel[];
  faces: FaceSummary[];
  /** Face matches in the collection; present for identification frames only. */
  matches?: MatchedFace[];
  alerts: (AlertMatch & { alertId: string })[];
  /** Problems that did not stop the analysis (unsupported image, missing collection, bad sidecar). */
  warnings?: string[];
}

export type FrameOutcome =
  | { status: 'analysed'; key: string; resultKey: string; alerts: number }
  | { status: 'skipped'; key: string; reason: string };

export interface FrameAnalysisResult {
  frames: FrameOutcome[];
}

/** The alert rules document, read through a cache (errors are cached as well, for the same time). */
class AlertRulesSource {
  private cached?: { at: number; document?: AlertRulesDocument };

  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    private readonly ttlMs: number,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  async get(): Promise<AlertRulesDocument | undefined> {
    if (this.cached && this.now() - this.cached.at < this.ttlMs) return this.cached.document;
    const document = await this.load();
    this.cached = { at: this.now(), ...(document ? { document } : {}) };
    return document;
  }

  private async load(): Promise<AlertRulesDocument | undefined> {
    const where = `s3://${this.bucket}/${ALERT_RULES_KEY}`;
    let text: string;
    try {
      const out = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: ALERT_RULES_KEY }));
      text = (await out.Body?.transformToString('utf8')) ?? '';
    } catch (err) {
      const e = err as { name?: string; message?: string };
      this.log.error(
        { where, error: e.name, message: e.message },
        e.name === 'NoSuchKey' || e.name === 'AccessDenied'
          ? // Without s3:ListBucket, S3 answers a missing key with 403 AccessDenied.
            `alert rules document ${where} does not exist (or may not be read): no alerts are raised`
          : `alert rules document ${where} cannot be read: no alerts are raised`,
      );
      return undefined;
    }
    const parsed = parseAlertRulesDocument(text);
    if (!parsed.ok) {
      this.log.error(
        { where, field: parsed.error.split(':')[0], error: parsed.error },
        `alert rules document ${where} is invalid (${parsed.error}): no alerts are raised`,
      );
      return undefined;
    }
    return parsed.document;
  }
}

function errorName(err: unknown): string | undefined {
  return (err as { name?: string }).name;
}

function round(n: number | undefined): number {
  return Math.round((n ?? 0) * 100) / 100;
}

function box(b: { Width?: number; Height?: number; Left?: number; Top?: number } | undefined) {
  return b ? { width: b.Width ?? 0, height: b.Height ?? 0, left: b.Left ?? 0, top: b.Top ?? 0 } : undefined;
}

export function labelsOf(out: DetectLabelsCommandOutput): DetectedLabel[] {
  return (out.Labels ?? [])
    .filter((l) => l.Name !== undefined)
    .map((l) => ({
      name: l.Name!,
      confidence: round(l.Confidence),
      instances: (l.Instances ?? []).map((i) => ({
        confidence: round(i.Confidence),
        ...(i.BoundingBox ? { boundingBox: box(i.BoundingBox) } : {}),
      })),
    }));
}

export function facesOf(out: DetectFacesCommandOutput): FaceSummary[] {
  return (out.FaceDetails ?? []).map((f) => ({
    confidence: round(f.Confidence),
    ...(f.BoundingBox ? { boundingBox: box(f.BoundingBox) } : {}),
  }));
}

/** A stable id of one alert: the same frame and rule give the same id across retries. */
export function alertId(bucket: string, key: string, ruleId: string): string {
  return createHash('sha256').update(`${bucket}\n${key}\n${ruleId}`).digest('hex').slice(0, 32);
}

function capturedAtOf(frame: FrameKey, sidecar: Sidecar | undefined): string {
  const fromSidecar = sidecar?.capturedAt;
  if (fromSidecar !== undefined) {
    const t = new Date(fromSidecar);
    if (!Number.isNaN(t.getTime())) return t.toISOString();
  }
  return new Date(frame.capturedAtMs).toISOString();
}

export function createFrameAnalysisHandler(runtime: FunctionRuntime): Handler {
  const resultsBucket = requireEnv(runtime, 'RESULTS_BUCKET');
  const topicArn = requireEnv(runtime, 'ALERT_TOPIC_ARN');
  const collectionId = runtime.env.FACE_COLLECTION_ID;
  const ttlSeconds = Number(runtime.env.ALERT_RULES_TTL_SECONDS ?? DEFAULT_ALERT_RULES_TTL_SECONDS);
  const base = { region: runtime.region, ...runtime.clientConfig };
  const s3 = new S3Client({
    ...base,
    ...(runtime.env.S3_FORCE_PATH_STYLE === 'true' ? { forcePathStyle: true } : {}),
  });
  const rekognition = new RekognitionClient(base);
  const sns = new SNSClient(base);
  const iotEndpoint = runtime.env.IOT_DATA_ENDPOINT;
  const iot = new IoTDataPlaneClient({ ...base, ...(iotEndpoint ? { endpoint: iotEndpoint } : {}) });
  const log = runtime.logger;
  const rules = new AlertRulesSource(
    s3,
    resultsBucket,
    Number.isFinite(ttlSeconds) && ttlSeconds >= 0
      ? ttlSeconds * 1000
      : DEFAULT_ALERT_RULES_TTL_SECONDS * 1000,
    log,
  );

  async function readSidecar(
    bucket: string,
    frame: FrameKey,
    warnings: string[],
  ): Promise<Sidecar | undefined> {
    let text: string;
    try {
      const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: frame.sidecarKey }));
      text = (await out.Body?.transformToString('utf8')) ?? '';
    } catch (err) {
      if (errorName(err) === 'NoSuchKey' || errorName(err) === 'AccessDenied') return undefined;
      throw err;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      warnings.push(`sidecar ${frame.sidecarKey} is not JSON`);
      return undefined;
    }
    const parsed = SidecarSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      warnings.push(`sidecar ${frame.sidecarKey}: ${issue.path.join('.') || '(document)'}: ${issue.message}`);
      return undefined;
    }
    const s = parsed.data;
    if (s.thing !== frame.thing || s.camera !== frame.camera) {
      warnings.push(
        `sidecar names thing '${s.thing}' camera '${s.camera}'; the key's thing and camera are used`,
      );
    }
    return s;
  }

  async function search(image: Image, warnings: string[]): Promise<MatchedFace[]> {
    if (!collectionId) {
      warnings.push('FACE_COLLECTION_ID is not set: identification frame not searched');
      return [];
    }
    try {
      const out = await rekognition.send(
        new SearchFacesByImageCommand({
          CollectionId: collectionId,
          Image: image,
          FaceMatchThreshold: FACE_MATCH_THRESHOLD,
          MaxFaces: 5,
        }),
      );
      return (out.FaceMatches ?? []).map((m) => ({
        similarity: round(m.Similarity),
        ...(m.Face?.FaceId ? { faceId: m.Face.FaceId } : {}),
        ...(m.Face?.ExternalImageId ? { externalImageId: m.Face.ExternalImageId } : {}),
      }));
    } catch (err) {
      // No face in the image: SearchFacesByImage answers InvalidParameterException.
      if (errorName(err) === 'InvalidParameterException') return [];
      if (errorName(err) === 'ResourceNotFoundException') {
        warnings.push(`face collection '${collectionId}' does not exist`);
        return [];
      }
      throw err;
    }
  }

  async function analyse(bucket: string, key: string, frame: FrameKey): Promise<FrameOutcome> {
    const warnings: string[] = [];
    const sidecar = await readSidecar(bucket, frame, warnings);
    const image: Image = { S3Object: { Bucket: bucket, Name: key } };
    let labels: DetectedLabel[] = [];
    let faces: FaceSummary[] = [];
    let matches: MatchedFace[] | undefined;
    try {
      const [l, f] = await Promise.all([
        rekognition.send(
          new DetectLabelsCommand({
            Image: image,
            MinConfidence: LABEL_MIN_CONFIDENCE,
            MaxLabels: MAX_LABELS,
          }),
        ),
        rekognition.send(new DetectFacesCommand({ Image: image, Attributes: ['DEFAULT'] })),
      ]);
      labels = labelsOf(l);
      faces = facesOf(f);
      if (frame.kind === 'frames-identify') matches = await search(image, warnings);
    } catch (err) {
      // Images Rekognition cannot read (e.g. WebP: it reads JPEG and PNG) are recorded, not retried.
      const name = errorName(err);
      if (name !== 'InvalidImageFormatException' && name !== 'ImageTooLargeException') throw err;
      warnings.push(`Rekognition refused the image: ${name}: ${(err as Error).message}`);
    }
    const capturedAt = capturedAtOf(frame, sidecar);
    const document = await rules.get();
    const site = document ? siteOfThing(document, frame.thing) : undefined;
    const alerts = document
      ? evaluateAlertRules(document.rules, {
          thing: frame.thing,
          camera: frame.camera,
          ...(site !== undefined ? { site } : {}),
          capturedAt,
          labels,
          faceCount: faces.length,
          ...(matches !== undefined ? { matchedFaces: matches } : {}),
        }).map((a) => ({ ...a, alertId: alertId(bucket, key, a.ruleId) }))
      : [];
    const result: FrameResult = {
      thing: frame.thing,
      camera: frame.camera,
      ...(site !== undefined ? { site } : {}),
      capturedAt,
      bucket,
      key,
      kind: frame.kind,
      ...(sidecar?.masking ? { masking: sidecar.masking } : {}),
      labels,
      faces,
      ...(matches !== undefined ? { matches } : {}),
      alerts,
      ...(warnings.length > 0 ? { warnings } : {}),
    };
    const outKey = resultKey(frame);
    await s3.send(
      new PutObjectCommand({
        Bucket: resultsBucket,
        Key: outKey,
        Body: JSON.stringify(result),
        ContentType: 'application/json',
      }),
    );
    const summary = {
      thing: frame.thing,
      camera: frame.camera,
      capturedAt,
      key,
      resultKey: outKey,
      labels: labels.slice(0, SUMMARY_LABELS).map((l) => ({ name: l.name, confidence: l.confidence })),
      faces: faces.length,
      ...(matches !== undefined
        ? { matches: matches.map((m) => ({ externalImageId: m.externalImageId, similarity: m.similarity })) }
        : {}),
      alerts: alerts.map((a) => ({ ruleId: a.ruleId, severity: a.severity, alertId: a.alertId })),
    };
    await iot.send(
      new IotPublishCommand({
        topic: `things/${frame.thing}/analysis`,
        qos: 1,
        payload: Buffer.from(JSON.stringify(summary)),
      }),
    );
    for (const alert of alerts) {
      await sns.send(
        new SnsPublishCommand({
          TopicArn: topicArn,
          Subject: `edgefleet ${alert.severity}: ${alert.label} on ${alert.thing}/${alert.camera}`.slice(
            0,
            99,
          ),
          Message: JSON.stringify({ ...alert, key, resultKey: outKey }),
          MessageAttributes: {
            site: { DataType: 'String', StringValue: alert.site },
            severity: { DataType: 'String', StringValue: alert.severity },
            alertId: { DataType: 'String', StringValue: alert.alertId },
          },
        }),
      );
    }
    log.info(
      { key, resultKey: outKey, labels: labels.length, faces: faces.length, alerts: alerts.length, warnings },
      'frame analysed',
    );
    return { status: 'analysed', key, resultKey: outKey, alerts: alerts.length };
  }

  return async (input): Promise<FrameAnalysisResult> => {
    const event = S3EventSchema.safeParse(input);
    if (!event.success) {
      log.warn({ error: event.error.issues[0]?.message }, 'not an S3 event notification: ignored');
      return { frames: [] };
    }
    const frames: FrameOutcome[] = [];
    for (const [i, raw] of event.data.Records.entries()) {
      const record = S3EventRecordSchema.safeParse(raw);
      if (!record.success) {
        const issue = record.error.issues[0]!;
        log.warn(
          { record: i, field: issue.path.join('.'), error: issue.message },
          'not an S3 record: skipped',
        );
        continue;
      }
      const r = record.data;
      let key: string;
      try {
        key = decodeEventKey(r.s3.object.key);
      } catch {
        log.warn({ key: r.s3.object.key }, 'object key is not URL-encoded: skipped');
        continue;
      }
      const skip = (reason: string) => {
        log.info({ key, reason }, 'record skipped');
        frames.push({ status: 'skipped', key, reason });
      };
      if (!r.eventName.startsWith('ObjectCreated:')) {
        skip(`event ${r.eventName} is not an object creation`);
        continue;
      }
      if (!isFrameObject(key)) {
        skip('not a frame image (frames/ or frames-identify/, .jpg/.jpeg/.webp)');
        continue;
      }
      const frame = parseFrameKey(key);
      if (!frame) {
        skip(
          'key does not follow {prefix}/{thing}/{camera}/dt=YYYY-MM-DD/hour=HH/{capturedAtMs}-{seq}.{ext}',
        );
        continue;
      }
      frames.push(await analyse(r.s3.bucket.name, key, frame));
    }
    return { frames };
  };
}

export const frameAnalysis: FunctionDefinition = {
  name: FRAME_ANALYSIS_FUNCTION_NAME,
  roleName: FRAME_ANALYSIS_ROLE_NAME,
  environment: [
    'RESULTS_BUCKET',
    'ALERT_TOPIC_ARN',
    'FACE_COLLECTION_ID',
    'ALERT_RULES_TTL_SECONDS',
    'IOT_DATA_ENDPOINT',
    'S3_FORCE_PATH_STYLE',
  ],
  create: createFrameAnalysisHandler,
};
