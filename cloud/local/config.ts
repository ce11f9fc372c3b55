import { resolve } from 'node:path';
import { z } from 'zod';
import { LOCAL_DATA_BUCKET } from '../rules/resources.js';
import { LocalConfigError } from './errors.js';

const port = z.number().int().min(0).max(65535);

/** Options of the embedded local cloud. Port 0 asks the OS for a free port. */
export const LocalCloudOptionsSchema = z.object({
  dataDir: z.string().min(1).default('.edgefleet'),
  host: z.string().min(1).default('127.0.0.1'),
  mqttPort: port.default(8883),
  httpPort: port.default(4566),
  region: z
    .string()
    .regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must look like an AWS region, e.g. us-east-1')
    .default('us-east-1'),
  accountId: z
    .string()
    .regex(/^\d{12}$/, 'must be 12 digits')
    .default('000000000000'),
  /** S3 buckets that exist from the start (created if missing). */
  buckets: z
    .array(z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid S3 bucket name'))
    .default([LOCAL_DATA_BUCKET]),
  /**
   * Buffering hints of the telemetry delivery stream, if not the deployed ones (64 MiB / 60 s), applied
   * when the stream is created in a new data dir: a demo or a test that wants its objects sooner sets
   * a short interval. The stream partitions dynamically, so Firehose's limits for that apply: no zero
   * buffering, at least 64 MiB.
   */
  telemetryBuffering: z
    .object({
      intervalInSeconds: z.number().int().min(1).max(900).optional(),
      sizeInMBs: z.number().int().min(64).max(128).optional(),
    })
    .strict()
    .optional(),
});

export type LocalCloudOptionsInput = z.input<typeof LocalCloudOptionsSchema>;
export type LocalCloudOptions = z.output<typeof LocalCloudOptionsSchema>;

/** Validates options and resolves the data dir to an absolute path; errors name the field. */
export function parseLocalCloudOptions(input: unknown): LocalCloudOptions {
  const parsed = LocalCloudOptionsSchema.safeParse(input ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new LocalConfigError(
      `invalid local cloud option ${issue.path.join('.') || '(root)'}: ${issue.message}`,
    );
  }
  return { ...parsed.data, dataDir: resolve(parsed.data.dataDir) };
}
