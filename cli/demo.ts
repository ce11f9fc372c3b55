/**
 * The local end-to-end demo (`npm start`): starts the local cloud, provisions a gateway thing, connects
 * it over mutual TLS, runs a shadow round-trip between an operator (data-plane API) and the gateway
 * (MQTT), keeps the gateway publishing heartbeats for the chosen duration, uploads a batch and camera
 * frames, queries the lake, sends high-rate readings with a spike through Kinesis to the anomaly detection
 * function, and prints a summary.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import {
  GetThingShadowCommand,
  IoTDataPlaneClient,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { LocalCloud } from '../cloud/local/index.js';
import { formatTable, LakeEngine, type LakeResult } from '../cloud/local/lake/index.js';
import { provisionThing, readDeviceFiles } from '../cloud/local/provision.js';
import { ALERT_RULES_KEY } from '../cloud/rules/alerts.js';
import { LOCAL_RESULTS_BUCKET } from '../cloud/rules/resources.js';
import { MqttChannel } from '../edge-component/adapters/mqtt-channel.js';
import { batchId, batchKey } from '../edge-component/batching.js';
import { CameraConfigSchema } from '../edge-component/config.js';
import { mqttCredentialProvider } from '../edge-component/credentials.js';
import { FaceEngineDetector } from '../edge-component/frames/face-engine.js';
import { frameObjectKeys } from '../edge-component/frames/keys.js';
import { FramePipeline } from '../edge-component/frames/pipeline.js';
import { simulatedRecord } from '../edge-component/simulator.js';
import { S3Uploader } from '../edge-component/uploader.js';
import { shadowTopics, telemetryTopic, thingTopics } from '../protocol/topics.js';
import { CliError } from './errors.js';

export interface DemoOptions {
  dataDir: string;
  /** Seconds the gateway keeps running after setup; 0 runs until SIGINT/SIGTERM. */
  duration: number;
  logger: Logger;
  out: Writable;
}

export interface DemoSummary {
  thingName: string;
  shadowVersion: number;
  roundTripMs: number;
  heartbeats: number;
  /** Heartbeats the rule edgefleet_heartbeats republished to fleet/heartbeats. */
  routedHeartbeats: number;
  lifecycleEvents: number;
  /** Telemetry records published on dt/{thing}/telemetry (and acknowledged). */
  streamedRecords: number;
}

const THING = 'gateway-demo-1';
const require = createRequire(import.meta.url);

function waitFor<T>(
  client: MqttClient,
  topic: string,
  pred: (body: T) => boolean,
  timeoutMs: number,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('message', onMessage);
      reject(new CliError(`no message on ${topic} within ${timeoutMs} ms`, 1));
    }, timeoutMs);
    const onMessage = (t: string, payload: Buffer) => {
      if (t !== topic) return;
      const body = JSON.parse(payload.toString()) as T;
      if (!pred(body)) return;
      clearTimeout(timer);
      client.off('message', onMessage);
      resolve(body);
    };
    client.on('message', onMessage);
  });
}

/** Records of the batch the demo uploads with vended credentials. */
const BATCH_RECORDS = 100;
/** Sensors that stream a record each second while the gateway runs. */
const STREAM_SENSORS = 3;

/**
 * Waits until the lake's telemetry view holds `expected` records of the thing (Firehose delivers within
 * its buffering interval), then answers the analysts' query.
 */
async function queryLake(
  dataDir: string,
  since: number,
  expected: number,
  timeoutMs: number,
): Promise<LakeResult> {
  // Only this run's records (a data dir that is used again holds earlier runs' too).
  const where = `thing = '${THING}' AND ts >= ${since}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const engine = await LakeEngine.open({ dataDir });
    try {
      const count = await engine.query(`SELECT count(*) FROM telemetry WHERE ${where}`);
      if (Number(count.rows[0]?.[0] ?? 0) >= expected || Date.now() > deadline) {
        return await engine.query(
          `SELECT thing, CASE WHEN ingest_ts IS NULL THEN 'batch upload' ELSE 'stream (Firehose)' END AS path, count(*) AS records, round(avg(temperature), 2) AS avg_temperature FROM telemetry WHERE ${where} GROUP BY ALL ORDER BY path`,
        );
      }
    } finally {
      engine.close();
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

const SITE = 'plant-a';
const CAMERA = 'dock-3';
const LOBBY = 'lobby';

/**
 * The camera step: a sample photo with faces goes through the gateway's frame pipeline (faces found and
 * blurred on the gateway), the masked frame and its sidecar are uploaded with the vended credentials,
 * and the cloud's frame-analysis function (triggered by the upload) publishes its analysis and, by the
 * alert rule stored as data, an alert.
 */
async function maskAndUploadFrame(cloud: LocalCloud, uploader: S3Uploader, logger: Logger) {
  const s3 = new S3Client({ ...cloud.sdkConfig(), forcePathStyle: true });
  const rules = {
    things: { [THING]: SITE },
    rules: [
      {
        id: 'person-at-dock',
        site: SITE,
        camera: CAMERA,
        label: 'Person',
        minConfidence: 80,
        severity: 'warning',
      },
    ],
  };
  try {
    await s3.send(
      new PutObjectCommand({
        Bucket: LOCAL_RESULTS_BUCKET,
        Key: ALERT_RULES_KEY,
        Body: JSON.stringify(rules),
        ContentType: 'application/json',
      }),
    );
  } finally {
    s3.destroy();
  }
  const photo = await readFile(require.resolve('@vladmandic/face-api/demo/sample1.jpg'));
  const detector = new FaceEngineDetector();
  // The same photo from two cameras: `lobby` masks faces (the cloud sees blurred faces only); `dock-3`
  // is explicitly an identification camera (unmasked, to frames-identify/), watched by the alert rule.
  const masked = await frameThroughCamera(cloud, LOBBY, false, photo, detector, uploader, logger);
  const maskedAnalysis = await masked.analysis;
  const identified = await frameThroughCamera(cloud, CAMERA, true, photo, detector, uploader, logger);
  const raised = await identified.alert!;
  await identified.analysis;
  return {
    key: masked.key,
    faces: masked.faces,
    analysis: maskedAnalysis,
    identifyKey: identified.key,
    alert: raised,
  };
}

async function frameThroughCamera(
  cloud: LocalCloud,
  id: string,
  identification: boolean,
  photo: Buffer,
  detector: FaceEngineDetector,
  uploader: S3Uploader,
  logger: Logger,
) {
  const kept: Uint8Array[] = [];
  const camera = CameraConfigSchema.parse({
    id,
    source: { type: 'synthetic', pattern: 'faces' },
    changeThreshold: 0,
    ...(identification ? { identification: true } : { masking: { detector: 'ssd' } }),
  });
  const pipeline = new FramePipeline(camera, {
    thing: THING,
    detector,
    sink: {
      async appendFile(_stream, bytes) {
        kept.push(bytes);
        return { seq: kept.length, dropped: [] };
      },
    },
    logger,
  });
  const outcome = await pipeline.process({ camera: id, bytes: photo, capturedAt: Date.now() });
  if (outcome.result !== 'kept') {
    const why = outcome.result === 'rejected' ? outcome.error.message : 'skipped';
    throw new CliError(`the demo frame of camera ${id} was not kept: ${why}`, 1);
  }
  const { key, sidecarKey } = frameObjectKeys(outcome.metadata, outcome.seq);
  const analysis = waitOnBroker(cloud, `things/${THING}/analysis`, (m) => m.key === key, 120_000);
  // Only the identification camera's frame is expected to raise an alert (the rule watches dock-3).
  const alert = identification ? waitOnBroker(cloud, `alerts/${SITE}`, () => true, 120_000) : undefined;
  analysis.catch(() => {});
  alert?.catch(() => {});
  await uploader.upload({ key, source: { data: kept[0]! }, contentType: 'image/jpeg' });
  await uploader.upload({
    key: sidecarKey,
    source: { data: Buffer.from(JSON.stringify({ ...outcome.metadata, key })) },
    contentType: 'application/json',
  });
  return { key, faces: outcome.metadata.faces, analysis, alert };
}

/** The next message on `topic` in the local broker, parsed as JSON. */
function waitOnBroker(
  cloud: LocalCloud,
  topic: string,
  pred: (body: Record<string, unknown>) => boolean,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new CliError(`no message on ${topic} within ${timeoutMs} ms`, 1));
    }, timeoutMs);
    const off = cloud.broker.subscribe(topic, (_t, payload) => {
      const body = JSON.parse(payload.toString()) as Record<string, unknown>;
      if (!pred(body)) return;
      clearTimeout(timer);
      off();
      resolve(body);
    });
  });
}

/** Normal readings before the spike: the detector's warm-up and enough history to judge by. */
const HR_READINGS = 120;
const HR_SPIKE = 45;

/**
 * High-rate telemetry: the device publishes readings of one sensor on dt/{thing}/telemetry-hr, the
 * last one a spike; the rule puts them into Kinesis, the event source mapping hands them to the anomaly
 * detection function, which publishes the alert on alerts/{site}.
 */
async function highRateAnomaly(cloud: LocalCloud, device: MqttClient): Promise<Record<string, unknown>> {
  const base = Date.now();
  const alert = waitOnBroker(
    cloud,
    `alerts/${SITE}`,
    (b) => b.thing === THING && b.metric === 'temperature' && b.ts === base + HR_READINGS * 100,
    30_000,
  );
  for (let i = 0; i <= HR_READINGS; i++) {
    const temperature = i === HR_READINGS ? HR_SPIKE : 21 + 0.3 * Math.sin(i * 1.7) + 0.2 * Math.cos(i * 0.9);
    await device.publishAsync(
      `dt/${THING}/telemetry-hr`,
      JSON.stringify({ sensorId: 'spindle-1', ts: base + i * 100, temperature, site: SITE }),
      { qos: 1 },
    );
  }
  return alert;
}

/** Connects as the gateway through the edge component, gets credentials over MQTT, uploads one object. */
async function uploadWithVendedCredentials(
  cloud: LocalCloud,
  files: Awaited<ReturnType<typeof readDeviceFiles>>,
  logger: Logger,
) {
  const channel = new MqttChannel({
    host: cloud.endpoints.host,
    port: cloud.endpoints.mqttPort,
    cert: files.cert,
    key: files.key,
    ca: files.ca,
    clientId: THING,
    logger: logger.child({ component: 'gateway' }),
  });
  const credentials = mqttCredentialProvider({ channel, thingName: THING, logger });
  try {
    const started = performance.now();
    const grant = await credentials();
    const credentialsMs = performance.now() - started;
    const uploader = new S3Uploader({
      thingName: THING,
      bucket: cloud.options.buckets[0]!,
      region: cloud.options.region,
      s3Endpoint: cloud.endpoints.httpUrl,
      forcePathStyle: true,
      credentials,
      logger,
    });
    // A batch as the gateway makes them: gzip NDJSON under raw/{thing}/telemetry/, in the lake's layout.
    const now = Date.now();
    const records = Array.from({ length: BATCH_RECORDS }, (_, i) =>
      JSON.stringify(simulatedRecord((i % 3) + 1, i, now + i)),
    );
    // Sequence numbers from the clock: each run of the demo writes a batch of its own (uploads never
    // overwrite an object with other content).
    const key = batchKey(THING, 'telemetry', now, batchId(now, now + BATCH_RECORDS - 1));
    const result = await uploader.upload({
      key,
      source: { data: gzipSync(`${records.join('\n')}\n`) },
      contentType: 'application/gzip',
    });
    const frame = await maskAndUploadFrame(cloud, uploader, logger);
    return {
      bucket: result.bucket,
      key: result.key,
      bytes: result.bytes,
      credentialsMs,
      expiration: grant.expiration.toISOString(),
      frame,
    };
  } finally {
    await credentials.close();
    await channel.close();
  }
}

export async function runDemo(opts: DemoOptions): Promise<DemoSummary> {
  const say = (line: string) => opts.out.write(`${line}\n`);
  const demoStart = Date.now();
  // Firehose delivers the streamed telemetry after 1 s of buffering instead of the deployed 60 s.
  const cloud = await LocalCloud.start(
    { dataDir: opts.dataDir, mqttPort: 0, httpPort: 0, telemetryBuffering: { intervalInSeconds: 1 } },
    opts.logger,
  );
  let device: MqttClient | undefined;
  try {
    say(
      `[1/9] local cloud up        MQTT ${cloud.endpoints.mqttUrl}  HTTP ${cloud.endpoints.httpUrl}  data ${cloud.options.dataDir}`,
    );

    const deviceDir = join(cloud.options.dataDir, 'devices', THING);
    const reuse =
      existsSync(join(deviceDir, 'device.crt')) &&
      cloud.registry.findThing(THING) !== undefined &&
      cloud.registry.listThingPrincipals(THING).length > 0;
    if (!reuse) await provisionThing({ thingName: THING, outDir: deviceDir }, cloud);
    const files = await readDeviceFiles(deviceDir);
    say(
      `[2/9] gateway provisioned   thing ${THING}${reuse ? ' (existing certificate)' : ' (new key and certificate from the local CA)'}`,
    );

    let lifecycleEvents = 0;
    cloud.broker.subscribe('$aws/events/presence/+/+', () => {
      lifecycleEvents += 1;
    });
    // The rule edgefleet_heartbeats republishes every gateway heartbeat to fleet/heartbeats.
    let routedHeartbeats = 0;
    cloud.broker.subscribe('fleet/heartbeats', () => {
      routedHeartbeats += 1;
    });
    const connect = (clientId: string) =>
      mqtt.connectAsync(cloud.endpoints.mqttUrl, {
        clientId,
        cert: files.cert,
        key: files.key,
        ca: files.ca,
        protocolVersion: 4,
        reconnectPeriod: 0,
        connectTimeout: 10_000,
      });
    device = await connect(THING);
    say(`[3/9] gateway connected     client id ${THING}, mutual TLS verified against root-ca.crt`);

    const t = shadowTopics(THING);
    await device.subscribeAsync([t.updateAccepted, t.updateDelta, t.getAccepted], { qos: 1 });
    const started = performance.now();
    const reported = waitFor<{ version: number }>(device, t.updateAccepted, () => true, 10_000);
    await device.publishAsync(
      t.update,
      JSON.stringify({ state: { reported: { firmware: '1.0.0', mode: 'idle' } }, clientToken: 'boot' }),
      { qos: 1 },
    );
    await reported;

    // The operator sets a desired mode through the data-plane API, as a cloud function would.
    const data = new IoTDataPlaneClient(cloud.sdkConfig());
    const delta = waitFor<{ state: { mode?: string } }>(
      device,
      t.updateDelta,
      (d) => d.state.mode === 'run',
      10_000,
    );
    await data.send(
      new UpdateThingShadowCommand({
        thingName: THING,
        payload: Buffer.from(JSON.stringify({ state: { desired: { mode: 'run' } } })),
      }),
    );
    const got = await delta;
    const synced = waitFor<{ version: number }>(device, t.updateAccepted, () => true, 10_000);
    await device.publishAsync(t.update, JSON.stringify({ state: { reported: { mode: got.state.mode } } }), {
      qos: 1,
    });
    await synced;
    const shadow = JSON.parse(
      Buffer.from(
        (await data.send(new GetThingShadowCommand({ thingName: THING }))).payload ?? [],
      ).toString(),
    ) as { version: number; state: { delta?: unknown } };
    const roundTripMs = performance.now() - started;
    if (shadow.state.delta !== undefined)
      throw new CliError('shadow still has a delta after the gateway reported', 1);
    data.destroy();
    say(
      `[4/9] shadow round-trip     desired mode=run -> delta -> reported; in sync at version ${shadow.version} (${roundTripMs.toFixed(0)} ms)`,
    );

    let heartbeats = 0;
    let streamed = 0;
    let ticks = 0;
    // Each second: a heartbeat, and one record per sensor streamed on dt/{thing}/telemetry (the rule
    // edgefleet_telemetry puts each into Firehose, which writes the lake).
    const tick = () => {
      const seq = ticks++;
      const sends = [
        device
          ?.publishAsync(
            `${thingTopics(THING).telemetryRoot}/heartbeat`,
            JSON.stringify({ ts: Date.now(), seq }),
            { qos: 1 },
          )
          .then(() => {
            heartbeats += 1;
          }),
        ...Array.from({ length: STREAM_SENSORS }, (_, k) =>
          device
            ?.publishAsync(telemetryTopic(THING), JSON.stringify(simulatedRecord(k + 1, seq, Date.now())), {
              qos: 1,
            })
            .then(() => {
              streamed += 1;
            }),
        ),
      ];
      return Promise.all(sends).catch(() => {});
    };
    await tick();
    const timer = setInterval(tick, 1000);
    let onSignal = () => {};
    const stopped = new Promise<void>((resolve) => {
      onSignal = () => resolve();
      if (opts.duration > 0) setTimeout(resolve, opts.duration * 1000);
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
    });
    say(
      opts.duration === 0
        ? `[5/9] gateway running       a heartbeat and ${STREAM_SENSORS} telemetry records every second, routed by IoT rules; Ctrl-C to stop`
        : `[5/9] gateway running       a heartbeat and ${STREAM_SENSORS} telemetry records every second for ${opts.duration} s, routed by IoT rules`,
    );
    await stopped;
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    clearInterval(timer);
    await device.endAsync();
    device = undefined;

    // The gateway asks for temporary credentials over MQTT and uploads a batch with them.
    const upload = await uploadWithVendedCredentials(cloud, files, opts.logger);
    say(
      `[6/9] batch uploaded        s3://${upload.bucket}/${upload.key} (${upload.bytes} B) with credentials vended over MQTT in ${upload.credentialsMs.toFixed(0)} ms, valid until ${upload.expiration}`,
    );
    const summary: DemoSummary = {
      thingName: THING,
      shadowVersion: shadow.version,
      roundTripMs,
      heartbeats,
      routedHeartbeats,
      lifecycleEvents,
      streamedRecords: streamed,
    };
    const f = upload.frame;
    const seen = (f.analysis.faces as number | undefined) ?? 0;
    const alertBody = JSON.parse(String(f.alert.Message ?? '{}')) as { ruleId?: string };
    say(
      `[7/9] camera frames         ${f.faces} faces blurred on the gateway before upload (the cloud saw ${seen}); the identification camera ${CAMERA} raised alert ${alertBody.ruleId ?? '?'} on alerts/${SITE}`,
    );
    const lake = await queryLake(cloud.options.dataDir, demoStart, streamed + BATCH_RECORDS, 20_000);
    say(
      `[8/9] lake query            ${streamed} records streamed through the rule and Firehose, ${BATCH_RECORDS} uploaded in a batch:`,
    );
    for (const line of formatTable(lake).trimEnd().split('\n')) say(`      ${line}`);
    device = await connect(THING);
    const anomaly = await highRateAnomaly(cloud, device);
    await device.endAsync();
    device = undefined;
    say(
      `[9/9] anomaly detected      ${HR_READINGS + 1} readings through the rule, Kinesis and the event source mapping; alert on alerts/${SITE}: ${anomaly.metric} ${anomaly.value} (expected ${Number(anomaly.expected).toFixed(1)}, score ${Number(anomaly.score).toFixed(1)}, ${anomaly.kind})`,
    );
    say('');
    say('summary');
    say(`  thing                 ${summary.thingName}`);
    say(`  shadow version        ${summary.shadowVersion}`);
    say(`  shadow round-trip     ${summary.roundTripMs.toFixed(1)} ms`);
    say(
      `  heartbeats published  ${summary.heartbeats} (rule edgefleet_heartbeats routed ${summary.routedHeartbeats} to fleet/heartbeats)`,
    );
    say(`  lifecycle events      ${summary.lifecycleEvents}`);
    say(`  uploaded              s3://${upload.bucket}/${upload.key}`);
    say(`  masked frame          s3://${upload.bucket}/${f.key}`);
    say(`  identification frame  s3://${upload.bucket}/${f.identifyKey}`);
    say('demo finished: OK');
    return summary;
  } finally {
    await device?.endAsync(true).catch(() => {});
    await cloud.stop();
  }
}
