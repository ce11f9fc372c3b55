/**
 * Kinesis data streams shared by the rules, the CDK app and the local cloud.
 *
 * High-rate telemetry (`dt/{thing}/telemetry-hr`, within the device policy's `dt/{thing}/*`) goes through
 * a rule into a stream partitioned by thing, so one thing's readings stay in order on one shard; the
 * anomaly detection function consumes it through an event source mapping.
 *
 * Gateway logs: each gateway's log shipper puts its log lines (protocol/logs.ts) into their own stream
 * with PutRecords, using the same temporary credentials as its uploads.
 */
import { GATEWAY_LOGS_STREAM } from '../../protocol/logs.js';

/** The high-rate telemetry stream. */
export const TELEMETRY_HR_STREAM = 'edgefleet-telemetry-hr';
/** Its shard count (the local cloud creates it with this many; the CDK app provisions as many). */
export const TELEMETRY_HR_SHARDS = 4;
/** The topics high-rate telemetry is published on. */
export const TELEMETRY_HR_FILTER = 'dt/+/telemetry-hr';

/** Settings of the event source mapping from the stream to the anomaly detection function. */
export const TELEMETRY_HR_MAPPING = Object.freeze({
  batchSize: 100,
  /** MaximumBatchingWindowInSeconds 0: a batch is sent as soon as records are there. */
  windowSeconds: 0,
  startingPosition: 'LATEST' as const,
  retries: 2,
  bisect: true,
  reportBatchItemFailures: true,
});

/** The stream of the gateways' log lines (the name lives in protocol/logs.ts, shared with the gateway). */
export { GATEWAY_LOGS_STREAM };
/** Its shard count (the local cloud creates it with this many; the CDK app provisions as many). */
export const GATEWAY_LOGS_SHARDS = 2;

/** The ARN of a stream. */
export function kinesisStreamArn(name: string, region: string, account: string, partition = 'aws'): string {
  return `arn:${partition}:kinesis:${region}:${account}:stream/${name}`;
}
