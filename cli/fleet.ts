/**
 * `edgefleet fleet firmware keygen|publish|rollout|status`: the fleet operator's side of firmware updates
 * through the `firmware` named shadow, against the local cloud running on the data dir (`--local`, with
 * the account's root credentials) or AWS (`--aws`, the default credential chain).
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { DescribeEndpointCommand, IoTClient, IoTServiceException } from '@aws-sdk/client-iot';
import { IoTDataPlaneClient, IoTDataPlaneServiceException } from '@aws-sdk/client-iot-data-plane';
import { S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import type { Command } from 'commander';
import { z } from 'zod';
import { LOCAL_FIRMWARE_BUCKET } from '../cloud/rules/resources.js';
import { ManifestBodySchema } from '../protocol/firmware.js';
import { CliError } from './errors.js';
import { FleetError } from './fleet/errors.js';
import {
  generateSignerKey,
  keyIdOf,
  publishFirmware,
  signerKey,
  type TrustedKeys,
} from './fleet/firmware.js';
import {
  type FleetClients,
  firmwareStatus,
  type RolloutEvent,
  type RolloutResult,
  runRollout,
  type StatusRow,
  type ThingSelection,
} from './fleet/rollout.js';
import { parseFlags } from './options.js';
import { checkTarget, clientConfigFor, readFlagFile, type TargetFlags } from './target.js';

const TargetSchema = z.object({
  local: z.boolean().default(false),
  aws: z.boolean().default(false),
  dataDir: z.string().min(1).default('.edgefleet'),
  region: z.string().min(1).optional(),
  bucket: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name')
    .optional(),
});

const keyIdFlag = ManifestBodySchema.shape.keyId;
const thingList = z
  .string()
  .min(1, 'must name at least one thing')
  .transform((s) =>
    s
      .split(',')
      .map((t) => t.trim())
      .filter((t) => t !== ''),
  )
  .pipe(
    z
      .array(z.string().regex(/^[a-zA-Z0-9:_-]{1,128}$/, 'thing names must match [a-zA-Z0-9:_-]{1,128}'))
      .min(1, 'must name at least one thing'),
  );
const groupFlag = z.string().regex(/^[a-zA-Z0-9:_-]{1,128}$/, 'must match [a-zA-Z0-9:_-]{1,128}');

const KeygenFlags = z.object({ out: z.string().min(1, 'is required'), keyId: keyIdFlag.optional() });

const PublishFlags = TargetSchema.extend({
  file: z.string().min(1, 'is required'),
  version: ManifestBodySchema.shape.version,
  target: ManifestBodySchema.shape.target,
  key: z.string().min(1, 'is required'),
  keyId: keyIdFlag.optional(),
  expiresIn: z.coerce.number().positive('must be a positive number of days').max(3650).default(30),
});

const RolloutFlags = TargetSchema.extend({
  version: ManifestBodySchema.shape.version,
  target: ManifestBodySchema.shape.target,
  things: thingList.optional(),
  thingGroup: groupFlag.optional(),
  trust: z.string().min(1, 'is required (signer.json of `fleet firmware keygen`)'),
  maxConcurrency: z.coerce.number().int('must be an integer').min(1).max(1000).default(10),
  abortFailureRate: z.coerce.number().min(0, 'must be 0..1').max(1, 'must be 0..1').default(0.2),
  waveTimeout: z.coerce.number().positive('must be a positive number of seconds').default(600),
  urlExpires: z.coerce.number().int().min(1).max(604_800, 'must be at most 604800 (7 days)').default(3600),
  pollInterval: z.coerce.number().int().min(10).max(60_000).default(500),
  rolloutId: z
    .string()
    .regex(/^[A-Za-z0-9._:-]{1,128}$/)
    .optional(),
});

const StatusFlags = TargetSchema.extend({
  version: z.string().min(1).optional(),
  target: ManifestBodySchema.shape.target.optional(),
  things: thingList.optional(),
  thingGroup: groupFlag.optional(),
  format: z.enum(['table', 'json']).default('table'),
});

type Target = z.output<typeof TargetSchema>;

export interface FleetIo {
  out: Writable & { isTTY?: boolean };
  /** Clients to use instead of the ones the flags describe (tests). */
  clients?: FleetClients & { s3: S3Client };
}

/** Service and fleet errors become exit 1 with their message. */
async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof FleetError) throw new CliError(err.message, 1, { cause: err });
    if (
      err instanceof IoTServiceException ||
      err instanceof IoTDataPlaneServiceException ||
      err instanceof S3ServiceException
    ) {
      throw new CliError(`${err.name}: ${err.message}`, 1, { cause: err });
    }
    throw err;
  }
}

function bucketFor(flags: Target): string {
  if (flags.bucket) return flags.bucket;
  if (flags.local) return LOCAL_FIRMWARE_BUCKET;
  throw new CliError('invalid --bucket: is required with --aws (the stack output FirmwareBucketName)');
}

async function clientsFor(flags: Target): Promise<FleetClients & { s3: S3Client }> {
  checkTarget(flags as TargetFlags);
  const config = clientConfigFor(flags as TargetFlags);
  const iot = new IoTClient(config);
  let dataConfig = config;
  if (flags.aws) {
    // The data plane has an account-specific endpoint.
    const { endpointAddress } = await call(() =>
      iot.send(new DescribeEndpointCommand({ endpointType: 'iot:Data-ATS' })),
    );
    dataConfig = { ...config, endpoint: `https://${endpointAddress}` } as typeof config;
  }
  return {
    iot,
    iotData: new IoTDataPlaneClient(dataConfig),
    s3: new S3Client({ ...config, ...(flags.local ? { forcePathStyle: true } : {}) }),
  };
}

async function withClients<T>(
  flags: Target,
  io: FleetIo,
  fn: (c: FleetClients & { s3: S3Client }) => Promise<T>,
): Promise<T> {
  const clients = io.clients ?? (await clientsFor(flags));
  try {
    return await call(() => fn(clients));
  } finally {
    if (!io.clients) {
      clients.iot.destroy();
      clients.iotData.destroy();
      clients.s3.destroy();
    }
  }
}

/** `fleet firmware keygen --out DIR [--key-id ID]`: signer.key (0600), signer.pub, signer.json. */
export async function firmwareKeygen(raw: Record<string, unknown>, io: FleetIo = { out: process.stdout }) {
  const flags = parseFlags(KeygenFlags, raw);
  const keyFile = join(flags.out, 'signer.key');
  if (existsSync(keyFile)) throw new CliError(`${keyFile} exists; refusing to overwrite a signer key`, 1);
  const pair = generateSignerKey(flags.keyId);
  await mkdir(flags.out, { recursive: true });
  await writeFile(keyFile, pair.privateKeyPem, { mode: 0o600 });
  await chmod(keyFile, 0o600);
  await writeFile(join(flags.out, 'signer.pub'), pair.publicKeyPem);
  const trusted: TrustedKeys = { [pair.keyId]: pair.publicKeyPem };
  await writeFile(join(flags.out, 'signer.json'), `${JSON.stringify(trusted, null, 2)}\n`);
  io.out.write(
    [
      `created firmware signer key ${pair.keyId} (EC P-256)`,
      `  private key  ${keyFile} (0600; keep it offline)`,
      `  public key   ${join(flags.out, 'signer.pub')}`,
      `  trust        ${join(flags.out, 'signer.json')} ({keyId: public key PEM}, for gateways and rollouts)`,
      `key id: ${pair.keyId}`,
      '',
    ].join('\n'),
  );
}

/** `fleet firmware publish --file FW --version V --target T --key SIGNER.key (--local | --aws)`. */
export async function firmwarePublish(raw: Record<string, unknown>, io: FleetIo = { out: process.stdout }) {
  const flags = parseFlags(PublishFlags, raw);
  checkTarget(flags as TargetFlags);
  const bucket = bucketFor(flags);
  const key = await call(async () => signerKey(await readFlagFile(flags.key, '--key')));
  const keyId = flags.keyId ?? keyIdOf(key);
  if (!existsSync(flags.file)) throw new CliError(`invalid --file: ${flags.file} does not exist`);
  const published = await withClients(flags, io, (c) =>
    publishFirmware({
      s3: c.s3,
      bucket,
      file: flags.file,
      target: flags.target,
      version: flags.version,
      privateKey: key,
      keyId,
      expiresInDays: flags.expiresIn,
    }),
  );
  io.out.write(
    `published ${flags.target} ${flags.version} to s3://${bucket}/${published.manifestKey}\n${JSON.stringify(published.manifest, null, 2)}\n`,
  );
}

function selectionOf(flags: {
  things?: string[] | undefined;
  thingGroup?: string | undefined;
}): ThingSelection {
  if (flags.things && flags.thingGroup)
    throw new CliError('invalid --things/--thing-group: give only one of them');
  if (flags.things) return { things: flags.things };
  if (flags.thingGroup) return { thingGroup: flags.thingGroup };
  return { all: true };
}

const BAR_WIDTH = 30;

/** Renders rollout events: one redrawn progress line on a terminal, plain lines otherwise. */
export function progressPrinter(out: Writable & { isTTY?: boolean }, total: number) {
  const tty = out.isTTY === true;
  let done = 0;
  let ok = 0;
  let bad = 0;
  let wave = '';
  const draw = () => {
    const filled = total === 0 ? 0 : Math.round((done / total) * BAR_WIDTH);
    out.write(
      `\r[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${done}/${total} done, ${ok} succeeded, ${bad} failed (wave ${wave})`,
    );
  };
  return (e: RolloutEvent) => {
    if (e.kind === 'wave-start') {
      wave = `${e.wave}/${e.waves}`;
      if (tty) draw();
      else out.write(`wave ${wave}: started for ${e.things.length} things\n`);
    } else if (e.kind === 'thing-done') {
      done += 1;
      if (e.outcome.status === 'succeeded') ok += 1;
      else bad += 1;
      if (tty) draw();
      else if (e.outcome.status === 'failed') out.write(`  ${e.thing}: failed (${e.outcome.reason})\n`);
    } else if (e.kind === 'wave-end') {
      const line = `wave ${e.wave}/${e.waves}: ${e.result.things.length} things, ${e.result.succeeded.length} succeeded, ${e.result.failed.length} failed`;
      out.write(tty ? `\r\x1b[2K${line}\n` : `${line}\n`);
    }
  };
}

/** `fleet firmware rollout --version V --target T (--things a,b | --thing-group G) --trust signer.json ...`. */
export async function firmwareRollout(
  raw: Record<string, unknown>,
  io: FleetIo = { out: process.stdout },
): Promise<RolloutResult> {
  const flags = parseFlags(RolloutFlags, raw);
  checkTarget(flags as TargetFlags);
  const selection = selectionOf(flags);
  if ('all' in selection) throw new CliError('invalid --things/--thing-group: give one of them');
  const bucket = bucketFor(flags);
  const trustText = await readFlagFile(flags.trust, '--trust');
  let trustRaw: unknown;
  try {
    trustRaw = JSON.parse(trustText);
  } catch {
    throw new CliError(`invalid --trust: ${flags.trust} is not JSON`);
  }
  const trust = z.record(keyIdFlag, z.string().includes('PUBLIC KEY')).safeParse(trustRaw);
  if (!trust.success) {
    throw new CliError(`invalid --trust: ${flags.trust} must map key ids to public keys in PEM`);
  }
  const result = await withClients(flags, io, async (c) => {
    let printer: ((e: RolloutEvent) => void) | undefined;
    return runRollout(
      {
        ...c,
        onProgress: (e) => {
          if (e.kind === 'wave-start' && !printer) {
            printer = progressPrinter(io.out, e.total);
          }
          printer?.(e);
        },
      },
      {
        bucket,
        target: flags.target,
        version: flags.version,
        selection,
        trustedKeys: trust.data,
        maxConcurrency: flags.maxConcurrency,
        abortFailureRate: flags.abortFailureRate,
        waveTimeoutMs: flags.waveTimeout * 1000,
        urlExpiresSeconds: flags.urlExpires,
        pollIntervalMs: flags.pollInterval,
        ...(flags.rolloutId !== undefined ? { rolloutId: flags.rolloutId } : {}),
      },
    );
  });
  const rate = (result.failureRate * 100).toFixed(1);
  if (result.aborted) {
    throw new CliError(
      `rollout ${result.rolloutId} stopped: failure rate ${rate}% is above ${(flags.abortFailureRate * 100).toFixed(1)}% (${result.failed} failed, ${result.succeeded} succeeded, ${result.notStarted.length} not started)`,
      1,
    );
  }
  io.out.write(
    `rollout ${result.rolloutId} of ${flags.target} ${flags.version} done: ${result.succeeded} succeeded, ${result.failed} failed (${rate}%)\n`,
  );
  return result;
}

const COLUMNS: (keyof StatusRow)[] = [
  'thing',
  'version',
  'state',
  'targetVersion',
  'progress',
  'error',
  'previousVersion',
  'updatedAt',
];

export function statusTable(rows: StatusRow[]): string {
  const cells = [COLUMNS.map(String), ...rows.map((r) => COLUMNS.map((c) => String(r[c] ?? '-')))];
  const widths = COLUMNS.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  return `${cells
    .map((row) =>
      row
        .map((v, i) => v.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')}\n`;
}

/** `fleet firmware status [--version V] [--target T] [--things a,b | --thing-group G] [--format table|json]`. */
export async function firmwareStatusCommand(
  raw: Record<string, unknown>,
  io: FleetIo = { out: process.stdout },
) {
  const flags = parseFlags(StatusFlags, raw);
  checkTarget(flags as TargetFlags);
  const selection = selectionOf(flags);
  const rows = await withClients(flags, io, (c) =>
    firmwareStatus(c, selection, { version: flags.version, target: flags.target }),
  );
  io.out.write(flags.format === 'json' ? `${JSON.stringify(rows, null, 2)}\n` : statusTable(rows));
}

export function registerFleetCommands(program: Command): void {
  const fleet = program.command('fleet').description('fleet operations: firmware updates through shadows');
  const firmware = fleet
    .command('firmware')
    .description('signed firmware, rollouts through the firmware shadow');
  const target = (c: Command) =>
    c
      .option('--local', 'the local cloud running on --data-dir', false)
      .option('--aws', 'AWS with the default credential chain', false)
      .option(
        '--bucket <name>',
        `firmware bucket (local cloud: ${LOCAL_FIRMWARE_BUCKET}; AWS: FirmwareBucketName)`,
      )
      .option('--data-dir <dir>', 'state directory of the running local cloud', '.edgefleet')
      .option('--region <region>', 'AWS region (local cloud: us-east-1)');
  firmware
    .command('keygen')
    .description('create an EC P-256 firmware signer key pair (signer.key, signer.pub, signer.json)')
    .requiredOption('--out <dir>', 'directory for the key files')
    .option('--key-id <id>', 'key id (default: first 16 hex of the SHA-256 of the public key DER)')
    .action((o: Record<string, unknown>) => firmwareKeygen(o));
  target(firmware.command('publish'))
    .description('upload a firmware artifact and its signed manifest; a version is published once')
    .requiredOption('--file <file>', 'the firmware image')
    .requiredOption('--version <semver>', 'firmware version')
    .requiredOption('--target <target>', 'what the firmware is for, e.g. gateway')
    .requiredOption('--key <file>', 'signer.key of `fleet firmware keygen`')
    .option('--key-id <id>', 'key id (default: derived from the key)')
    .option('--expires-in <days>', 'days the manifest stays valid', '30')
    .action((o: Record<string, unknown>) => firmwarePublish(o));
  target(firmware.command('rollout'))
    .description(
      'write the signed manifest into the firmware shadow of things, in waves; exit 1 when aborted',
    )
    .requiredOption('--version <semver>', 'firmware version (published)')
    .requiredOption('--target <target>', 'firmware target')
    .requiredOption('--trust <file>', 'signer.json: the keys the manifest must verify with')
    .option('--things <names>', 'comma-separated thing names')
    .option('--thing-group <name>', 'every thing of a thing group')
    .option('--max-concurrency <n>', 'things per wave', '10')
    .option('--abort-failure-rate <r>', 'stop when the failure rate so far is above r (0..1)', '0.2')
    .option('--wave-timeout <seconds>', 'a thing without a final report by then has failed', '600')
    .option('--url-expires <seconds>', 'validity of the presigned download URL', '3600')
    .option('--poll-interval <ms>', 'how often the shadows are read', '500')
    .option('--rollout-id <id>', 'rollout id (default: generated)')
    .action(async (o: Record<string, unknown>) => {
      await firmwareRollout(o);
    });
  target(firmware.command('status'))
    .description("each thing's reported firmware (all things unless --things or --thing-group)")
    .option('--version <semver>', 'only things running or installing this version')
    .option('--target <target>', 'only things whose desired firmware is for this target')
    .option('--things <names>', 'comma-separated thing names')
    .option('--thing-group <name>', 'every thing of a thing group')
    .option('--format <format>', 'table or json', 'table')
    .action((o: Record<string, unknown>) => firmwareStatusCommand(o));
}
