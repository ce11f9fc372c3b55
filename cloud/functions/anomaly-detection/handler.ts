/**
 * Streaming anomaly detection on high-rate telemetry. The function is the target of an event source
 * mapping on the `edgefleet-telemetry-hr` stream (fed by the `edgefleet_telemetry_hr` rule, partitioned
 * by thing). Each record is one reading `{thing, sensorId, ts, temperature, vibration, site?}`; every
 * metric of every (thing/sensor) series is scored by a DetectorBank, and each anomaly is published as
 * `{thing, deviceId, metric, value, ts, score, kind, expected}` on `alerts/{site}` (the record's site,
 * else `unknown`).
 *
 * The bank lives in the handler's closure, so it is kept across invocations of one execution
 * environment only: a cold start (a new environment, a deployment, a scale-out) starts every series
 * again with its warm-up, during which no alarm is raised. Records of one thing always come from the
 * same shard, in order, which is what the detectors need.
 *
 * Malformed records are logged and skipped (retrying them cannot help). A failed publish is reported
 * through ReportBatchItemFailures: the record and those after it are delivered again, so the readings
 * after it are not scored before they come back (the failed record itself has been scored, and its
 * second delivery is ignored by the detector as an out-of-order or repeated timestamp where it is one).
 */
import { IoTDataPlaneClient, PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { z } from 'zod';
import { DetectorBank } from '../../../analytics/anomaly/index.js';
import {
  ALERTS_TOPIC_PREFIX,
  ANOMALY_DETECTION_FUNCTION_NAME,
  ANOMALY_DETECTION_ROLE_NAME,
} from '../../rules/resources.js';
import type { Handler } from '../index.js';
import type { FunctionDefinition, FunctionRuntime } from '../runtime.js';

const KinesisEventSchema = z.object({
  Records: z.array(
    z.object({
      kinesis: z.object({ sequenceNumber: z.string().min(1), data: z.string() }),
      eventID: z.string().optional(),
    }),
  ),
});

const name = z.string().regex(/^[a-zA-Z0-9:_-]{1,128}$/, 'must be 1 to 128 of a-z A-Z 0-9 : _ -');

export const ReadingSchema = z.object({
  thing: name,
  sensorId: name,
  /** Milliseconds since the epoch, or an ISO 8601 date. */
  ts: z.union([z.number().finite(), z.string().datetime({ offset: true })]),
  temperature: z.number().finite().optional(),
  vibration: z.number().finite().optional(),
  site: z
    .string()
    .regex(/^[^/+#]{1,128}$/, 'must be 1 to 128 characters without / + #')
    .optional(),
});

export type Reading = z.output<typeof ReadingSchema>;

export const METRICS = ['temperature', 'vibration'] as const;

export interface AnomalyAlert {
  thing: string;
  deviceId: string;
  metric: (typeof METRICS)[number];
  value: number;
  ts: number;
  score: number;
  kind: string | undefined;
  expected: number | undefined;
}

export interface AnomalyDetectionResult {
  batchItemFailures: { itemIdentifier: string }[];
}

export const UNKNOWN_SITE = 'unknown';

export function createAnomalyDetectionHandler(runtime: FunctionRuntime): Handler {
  const iotEndpoint = runtime.env.IOT_DATA_ENDPOINT;
  const iot = new IoTDataPlaneClient({
    region: runtime.region,
    ...runtime.clientConfig,
    ...(iotEndpoint ? { endpoint: iotEndpoint } : {}),
  });
  const warmup = Number(runtime.env.ANOMALY_WARMUP ?? '');
  const bank = new DetectorBank(Number.isInteger(warmup) && warmup >= 3 ? { detector: { warmup } } : {});
  const log = runtime.logger;

  return async (input): Promise<AnomalyDetectionResult> => {
    const event = KinesisEventSchema.safeParse(input);
    if (!event.success) {
      const issue = event.error.issues[0];
      log.warn({ field: issue?.path.join('.'), error: issue?.message }, 'not a Kinesis event; ignored');
      return { batchItemFailures: [] };
    }
    let alerts = 0;
    for (const record of event.data.Records) {
      const seq = record.kinesis.sequenceNumber;
      let reading: Reading;
      try {
        const parsed = ReadingSchema.safeParse(
          JSON.parse(Buffer.from(record.kinesis.data, 'base64').toString('utf8')),
        );
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          log.warn(
            { sequenceNumber: seq, field: issue?.path.join('.'), error: issue?.message },
            'malformed reading skipped',
          );
          continue;
        }
        reading = parsed.data;
      } catch (err) {
        log.warn({ sequenceNumber: seq, err }, 'record is not JSON; skipped');
        continue;
      }
      const ts = typeof reading.ts === 'number' ? reading.ts : Date.parse(reading.ts);
      const deviceId = `${reading.thing}/${reading.sensorId}`;
      const topic = `${ALERTS_TOPIC_PREFIX}${reading.site ?? UNKNOWN_SITE}`;
      for (const metric of METRICS) {
        const value = reading[metric];
        if (value === undefined) continue;
        const r = bank.observe(deviceId, metric, value, ts);
        if (!r.anomaly) continue;
        const alert: AnomalyAlert = {
          thing: reading.thing,
          deviceId,
          metric,
          value,
          ts,
          score: r.score,
          kind: r.kind,
          expected: r.expected,
        };
        try {
          await iot.send(new PublishCommand({ topic, qos: 1, payload: Buffer.from(JSON.stringify(alert)) }));
          alerts++;
        } catch (err) {
          log.error({ err, sequenceNumber: seq, topic }, 'alert not published; record reported as failed');
          return { batchItemFailures: [{ itemIdentifier: seq }] };
        }
      }
    }
    if (alerts > 0) log.info({ records: event.data.Records.length, alerts }, 'anomalies published');
    return { batchItemFailures: [] };
  };
}

export const anomalyDetection: FunctionDefinition = {
  name: ANOMALY_DETECTION_FUNCTION_NAME,
  roleName: ANOMALY_DETECTION_ROLE_NAME,
  environment: ['IOT_DATA_ENDPOINT', 'ANOMALY_WARMUP'],
  create: createAnomalyDetectionHandler,
};
