/**
 * Firmware rollouts through the `firmware` named shadow: resolve the target things, then in waves of at
 * most `maxConcurrency` things write `desired` (the signed manifest, a presigned download URL of the
 * artifact and the rollout id) and watch `reported.firmware` until each thing has succeeded on the
 * version, failed or rolled back, or the wave times out (a failure). After each wave the failure rate over
 * every thing done so far is compared with `abortFailureRate`; above it, the rollout stops and the
 * remaining things never get a desired document.
 *
 * Also the fleet's firmware status: each thing's `reported.firmware`.
 */
import { randomUUID } from 'node:crypto';
import {
  DescribeThingCommand,
  type IoTClient,
  paginateListThings,
  paginateListThingsInThingGroup,
  ResourceNotFoundException,
} from '@aws-sdk/client-iot';
import {
  GetThingShadowCommand,
  type IoTDataPlaneClient,
  ResourceNotFoundException as ShadowNotFoundException,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { Logger } from 'pino';
import { z } from 'zod';
import {
  FIRMWARE_SHADOW,
  type FirmwareDesired,
  FirmwareDesiredSchema,
  type FirmwareReport,
  FirmwareReportSchema,
  type Manifest,
} from '../../protocol/firmware.js';
import { RolloutError } from './errors.js';
import { parseS3Url, readManifest, type TrustedKeys } from './firmware.js';

export interface FleetClients {
  iot: IoTClient;
  iotData: IoTDataPlaneClient;
}

/** Which things: a list, a thing group, or (for status only) every thing. */
export type ThingSelection = { things: string[] } | { thingGroup: string } | { all: true };

/** The thing names of a selection; listed things must exist. */
export async function resolveThings(iot: IoTClient, selection: ThingSelection): Promise<string[]> {
  if ('things' in selection) {
    const names = [...new Set(selection.things)];
    for (const thingName of names) {
      try {
        await iot.send(new DescribeThingCommand({ thingName }));
      } catch (err) {
        if (err instanceof ResourceNotFoundException) {
          throw new RolloutError(`thing ${thingName} does not exist`, { cause: err });
        }
        throw err;
      }
    }
    return names;
  }
  const out: string[] = [];
  if ('thingGroup' in selection) {
    try {
      for await (const page of paginateListThingsInThingGroup(
        { client: iot, pageSize: 250 },
        { thingGroupName: selection.thingGroup },
      )) {
        out.push(...(page.things ?? []));
      }
    } catch (err) {
      if (err instanceof ResourceNotFoundException) {
        throw new RolloutError(`thing group ${selection.thingGroup} does not exist`, { cause: err });
      }
      throw err;
    }
    return out;
  }
  for await (const page of paginateListThings({ client: iot, pageSize: 250 }, {})) {
    for (const t of page.things ?? []) if (t.thingName) out.push(t.thingName);
  }
  return out.sort();
}

const ShadowDocSchema = z.object({
  state: z.object({ desired: z.unknown().optional(), reported: z.unknown().optional() }).partial().optional(),
  version: z.number().optional(),
});

export interface FirmwareShadow {
  desired?: FirmwareDesired;
  /** `reported.firmware`, when it is there and valid. */
  report?: FirmwareReport;
  /** Why `reported.firmware` was ignored, when it is there but not valid. */
  invalidReport?: string;
}

/** The firmware shadow of a thing (undefined when it has none). */
export async function readFirmwareShadow(
  iotData: IoTDataPlaneClient,
  thingName: string,
): Promise<FirmwareShadow | undefined> {
  let payload: Uint8Array | undefined;
  try {
    payload = (await iotData.send(new GetThingShadowCommand({ thingName, shadowName: FIRMWARE_SHADOW })))
      .payload;
  } catch (err) {
    if (err instanceof ShadowNotFoundException) return undefined;
    throw err;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(payload ?? new Uint8Array()).toString('utf8'));
  } catch {
    return { invalidReport: 'the firmware shadow is not JSON' };
  }
  const doc = ShadowDocSchema.safeParse(raw);
  if (!doc.success) return {};
  const out: FirmwareShadow = {};
  const desired = FirmwareDesiredSchema.safeParse(doc.data.state?.desired);
  if (desired.success) out.desired = desired.data;
  const reported = doc.data.state?.reported as { firmware?: unknown } | undefined;
  if (reported?.firmware !== undefined) {
    const r = FirmwareReportSchema.safeParse(reported.firmware);
    if (r.success) out.report = r.data;
    else
      out.invalidReport = `reported.firmware.${r.error.issues[0]?.path.join('.')}: ${r.error.issues[0]?.message}`;
  }
  return out;
}

export interface RolloutOptions {
  bucket: string;
  target: string;
  version: string;
  selection: { things: string[] } | { thingGroup: string };
  /** Keys the manifest's signature must verify with. */
  trustedKeys: TrustedKeys;
  maxConcurrency: number;
  /** 0..1; the rollout stops when the failure rate over the things done so far is above it. */
  abortFailureRate: number;
  waveTimeoutMs: number;
  urlExpiresSeconds: number;
  pollIntervalMs?: number;
  rolloutId?: string;
}

export interface RolloutDeps extends FleetClients {
  s3: S3Client;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  logger?: Logger;
  onProgress?: (event: RolloutEvent) => void;
}

export type ThingOutcome =
  | { status: 'succeeded'; report: FirmwareReport }
  | { status: 'failed'; reason: string; report?: FirmwareReport };

export type RolloutEvent =
  | { kind: 'wave-start'; wave: number; waves: number; things: string[]; total: number }
  | { kind: 'report'; wave: number; thing: string; report: FirmwareReport }
  | { kind: 'thing-done'; wave: number; thing: string; outcome: ThingOutcome }
  | { kind: 'wave-end'; wave: number; waves: number; result: WaveResult; failureRate: number };

export interface WaveResult {
  things: string[];
  succeeded: string[];
  failed: string[];
}

export interface RolloutResult {
  rolloutId: string;
  manifest: Manifest;
  things: string[];
  waves: WaveResult[];
  outcomes: Record<string, ThingOutcome>;
  succeeded: number;
  failed: number;
  /** failed / done, over the things done so far. */
  failureRate: number;
  /** Whether the failure rate passed `abortFailureRate`. */
  aborted: boolean;
  /** Things that never got a desired document (after an abort). */
  notStarted: string[];
}

const RolloutOptionsSchema = z.object({
  maxConcurrency: z.number().int().min(1, 'maxConcurrency must be at least 1'),
  abortFailureRate: z
    .number()
    .min(0, 'abortFailureRate must be 0..1')
    .max(1, 'abortFailureRate must be 0..1'),
  waveTimeoutMs: z.number().positive('waveTimeoutMs must be positive'),
  urlExpiresSeconds: z
    .number()
    .int()
    .min(1, 'urlExpiresSeconds must be 1..604800')
    .max(604_800, 'urlExpiresSeconds must be 1..604800'),
  rolloutId: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[A-Za-z0-9._:-]+$/, 'rolloutId must be letters, digits, ".", "_", ":" and "-"')
    .optional(),
});

/** The outcome a report means for a rollout of `version`, or undefined while it is still in progress. */
export function outcomeOf(
  report: FirmwareReport,
  version: string,
  rolloutId: string,
): ThingOutcome | undefined {
  // A report of another rollout (or, without a rollout id, of another version) is stale.
  if (report.rolloutId !== undefined && report.rolloutId !== rolloutId) {
    return report.state === 'succeeded' && report.version === version
      ? { status: 'succeeded', report }
      : undefined;
  }
  if (report.state === 'succeeded' && report.version === version) return { status: 'succeeded', report };
  const forThis = report.rolloutId === rolloutId || report.targetVersion === version;
  if (forThis && (report.state === 'failed' || report.state === 'rolled_back')) {
    return { status: 'failed', reason: `${report.state}${report.error ? `: ${report.error}` : ''}`, report };
  }
  return undefined;
}

/** Runs a rollout to completion (or abort) and returns what happened. */
export async function runRollout(deps: RolloutDeps, options: RolloutOptions): Promise<RolloutResult> {
  const checked = RolloutOptionsSchema.safeParse(options);
  if (!checked.success) throw new RolloutError(checked.error.issues[0]?.message ?? 'invalid rollout options');
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const poll = options.pollIntervalMs ?? 500;
  const rolloutId =
    options.rolloutId ?? `rollout-${options.target}-${options.version}-${randomUUID().slice(0, 8)}`;
  const log = deps.logger?.child({ rolloutId });

  const manifest = await readManifest(
    deps.s3,
    options.bucket,
    options.target,
    options.version,
    options.trustedKeys,
    new Date(now()),
  );
  const things = await resolveThings(deps.iot, options.selection);
  if (things.length === 0) throw new RolloutError('the rollout has no things to update');
  const artifact = parseS3Url(manifest.url);

  const waves: string[][] = [];
  for (let i = 0; i < things.length; i += options.maxConcurrency) {
    waves.push(things.slice(i, i + options.maxConcurrency));
  }
  const outcomes: Record<string, ThingOutcome> = {};
  const results: WaveResult[] = [];
  let done = 0;
  let failed = 0;
  let aborted = false;
  let next = 0;

  for (const [index, wave] of waves.entries()) {
    next = index + 1;
    const n = index + 1;
    deps.onProgress?.({
      kind: 'wave-start',
      wave: n,
      waves: waves.length,
      things: wave,
      total: things.length,
    });
    log?.info({ wave: n, things: wave }, 'starting wave');
    const pending = new Set(wave);
    const finish = (thing: string, outcome: ThingOutcome) => {
      if (!pending.delete(thing)) return;
      outcomes[thing] = outcome;
      deps.onProgress?.({ kind: 'thing-done', wave: n, thing, outcome });
    };

    // One presigned URL per wave, so a long rollout never hands out an expired one.
    const downloadUrl = await getSignedUrl(
      deps.s3,
      new GetObjectCommand({ Bucket: artifact.bucket, Key: artifact.key }),
      { expiresIn: options.urlExpiresSeconds },
    );
    const desired: FirmwareDesired = FirmwareDesiredSchema.parse({ manifest, downloadUrl, rolloutId });
    const payload = Buffer.from(JSON.stringify({ state: { desired } }));
    await Promise.all(
      wave.map(async (thingName) => {
        try {
          await deps.iotData.send(
            new UpdateThingShadowCommand({ thingName, shadowName: FIRMWARE_SHADOW, payload }),
          );
        } catch (err) {
          log?.warn({ err, thingName }, 'cannot write the desired firmware');
          finish(thingName, {
            status: 'failed',
            reason: `UpdateThingShadow failed: ${(err as Error).message}`,
          });
        }
      }),
    );

    const deadline = now() + options.waveTimeoutMs;
    const lastState = new Map<string, string>();
    while (pending.size > 0) {
      await Promise.all(
        [...pending].map(async (thingName) => {
          let shadow: FirmwareShadow | undefined;
          try {
            shadow = await readFirmwareShadow(deps.iotData, thingName);
          } catch (err) {
            log?.warn({ err, thingName }, 'cannot read the firmware shadow');
            return;
          }
          const report = shadow?.report;
          if (!report) return;
          const key = JSON.stringify(report);
          if (lastState.get(thingName) !== key) {
            lastState.set(thingName, key);
            deps.onProgress?.({ kind: 'report', wave: n, thing: thingName, report });
          }
          const outcome = outcomeOf(report, options.version, rolloutId);
          if (outcome) finish(thingName, outcome);
        }),
      );
      if (pending.size === 0) break;
      if (now() >= deadline) {
        for (const thingName of [...pending]) {
          finish(thingName, {
            status: 'failed',
            reason: `no final report within ${Math.round(options.waveTimeoutMs / 1000)} s`,
          });
        }
        break;
      }
      await sleep(poll);
    }

    const result: WaveResult = {
      things: wave,
      succeeded: wave.filter((t) => outcomes[t]?.status === 'succeeded'),
      failed: wave.filter((t) => outcomes[t]?.status === 'failed'),
    };
    results.push(result);
    done += wave.length;
    failed += result.failed.length;
    const failureRate = failed / done;
    deps.onProgress?.({ kind: 'wave-end', wave: n, waves: waves.length, result, failureRate });
    log?.info(
      { wave: n, succeeded: result.succeeded.length, failed: result.failed.length, failureRate },
      'wave done',
    );
    if (failureRate > options.abortFailureRate) {
      aborted = true;
      log?.warn(
        { failureRate, abortFailureRate: options.abortFailureRate },
        'failure rate too high; rollout stopped',
      );
      break;
    }
  }

  return {
    rolloutId,
    manifest,
    things,
    waves: results,
    outcomes,
    succeeded: done - failed,
    failed,
    failureRate: done === 0 ? 0 : failed / done,
    aborted,
    notStarted: waves.slice(next).flat(),
  };
}

export interface StatusRow {
  thing: string;
  version?: string;
  state?: string;
  targetVersion?: string;
  progress?: number;
  error?: string;
  previousVersion?: string;
  updatedAt?: string;
}

/** Each thing's `reported.firmware` (fields absent where the thing has not reported). */
export async function firmwareStatus(
  clients: FleetClients,
  selection: ThingSelection,
  filter: { version?: string | undefined; target?: string | undefined } = {},
): Promise<StatusRow[]> {
  const things = await resolveThings(clients.iot, selection);
  const rows: StatusRow[] = [];
  for (const thing of things) {
    const shadow = await readFirmwareShadow(clients.iotData, thing);
    const r = shadow?.report;
    if (filter.target !== undefined && shadow?.desired?.manifest.target !== filter.target) continue;
    if (filter.version !== undefined && r?.version !== filter.version && r?.targetVersion !== filter.version)
      continue;
    rows.push({
      thing,
      ...(r
        ? {
            version: r.version,
            state: r.state,
            ...(r.targetVersion !== undefined ? { targetVersion: r.targetVersion } : {}),
            ...(r.progress !== undefined ? { progress: r.progress } : {}),
            ...(r.error !== undefined ? { error: r.error } : {}),
            ...(r.previousVersion !== undefined ? { previousVersion: r.previousVersion } : {}),
            ...(r.updatedAt !== undefined ? { updatedAt: r.updatedAt } : {}),
          }
        : shadow?.invalidReport
          ? { error: shadow.invalidReport }
          : {}),
    });
  }
  return rows;
}
