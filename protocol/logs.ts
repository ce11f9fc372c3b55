/**
 * Gateway log records in the Kinesis data stream `edgefleet-gateway-logs`, shared by the gateway's log
 * shipper (edge-component/logs) and the cloud (cloud/rules/streams.ts re-exports the stream name).
 *
 * One record is one log line, as JSON:
 * - `thing`, `source`: the gateway and where the line comes from (`gateway` for the component's own
 *   log, otherwise the configured file's source name);
 * - `seq`, `n`: the spool entry the line was stored in on the gateway and its index there. Together they
 *   grow strictly per source (and never repeat on one gateway), so a consumer can drop the duplicates
 *   that at-least-once delivery allows and put lines back in order;
 * - `ts`: ms since the epoch: the log call's time (component), or when the line was read (files);
 * - component lines: `level` (pino's label), `msg`, and `data` (the line's other fields);
 * - file lines: `line` (the text, without its newline); `cut: true` when a longer line was split here
 *   to fit a record and goes on in the next record of the same source.
 *
 * The partition key is `{thing}/{source}`: all lines of one source land on one shard, where Kinesis
 * keeps them in the order they were accepted.
 */
import { z } from 'zod';

/** The stream gateways ship their logs to. */
export const GATEWAY_LOGS_STREAM = 'edgefleet-gateway-logs';

/** The source name of the component's own log lines. */
export const COMPONENT_LOG_SOURCE = 'gateway';

/** Source names: 1-64 of `A-Z a-z 0-9 . _ -` (part of the partition key). */
export const LOG_SOURCE_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

/** Kinesis's limit on one record: data plus partition key, bytes. */
export const MAX_KINESIS_RECORD_BYTES = 1024 * 1024;

/** Kinesis's limits on one PutRecords request. */
export const MAX_PUT_RECORDS = 500;
export const MAX_PUT_RECORDS_BYTES = 5 * 1024 * 1024;

/** The partition key of a source's records. */
export function logPartitionKey(thingName: string, source: string): string {
  return `${thingName}/${source}`;
}

export const LogRecordSchema = z.object({
  thing: z.string().min(1),
  source: z.string().regex(LOG_SOURCE_PATTERN),
  seq: z.number().int().positive(),
  n: z.number().int().nonnegative(),
  ts: z.number().int(),
  level: z.string().optional(),
  msg: z.string().optional(),
  data: z.record(z.string(), z.unknown()).optional(),
  line: z.string().optional(),
  cut: z.literal(true).optional(),
});

export type LogRecord = z.output<typeof LogRecordSchema>;
