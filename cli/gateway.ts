/** `edgefleet gateway ...`: the gateway's commands for standalone runs, driven by a JSON configuration. */
import { statSync } from 'node:fs';
import type { Writable } from 'node:stream';
import type { Command } from 'commander';
import pino from 'pino';
import { z } from 'zod';
import { KinesisDataStream } from '../edge-component/adapters/kinesis-log-stream.js';
import { mqttChannelFromConfig } from '../edge-component/adapters/mqtt-channel.js';
import { LOG_LEVELS, loadGatewayConfig } from '../edge-component/config.js';
import { credentialProviderFromConfig } from '../edge-component/credentials.js';
import {
  CredentialsUnavailableError,
  DuplicateKeyError,
  GatewayConfigError,
  InvalidObjectKeyError,
  UploadSourceError,
} from '../edge-component/errors.js';
import { Gateway } from '../edge-component/gateway.js';
import { tuneHeap } from '../edge-component/heap.js';
import { LogTee } from '../edge-component/logs/tee.js';
import type { IotChannel } from '../edge-component/ports.js';
import { FileReidentificationStore } from '../edge-component/pseudonymize/store.js';
import { assertThingObjectKey, S3Uploader, type UploadProgress } from '../edge-component/uploader.js';
import { CliError } from './errors.js';
import { parseFlags } from './options.js';

const UploadFlags = z.object({
  file: z.string().min(1, 'is required'),
  key: z.string().min(1, 'is required'),
  config: z.string().min(1, 'is required'),
  contentType: z.string().min(1).optional(),
  logLevel: z.enum(LOG_LEVELS).default('warn'),
});

/** Loads the gateway configuration; a bad one is a usage error (exit 2) naming the field. */
function loadConfig(path: string): ReturnType<typeof loadGatewayConfig> {
  try {
    return loadGatewayConfig(path);
  } catch (err) {
    if (err instanceof GatewayConfigError) throw new CliError(err.message, 2, { cause: err });
    throw err;
  }
}

const ReidentifyFlags = z.object({
  token: z.string().regex(/^k[0-9]+\.[a-z2-7]{32}$/, 'must look like k1.<32 base32 characters>'),
  config: z.string().min(1, 'is required'),
});

/**
 * `gateway reidentify TOKEN --config FILE`: looks a pseudonym up in the gateway's own map (it never
 * leaves the gateway) and prints the original value as JSON; an unknown token exits 1.
 */
export function gatewayReidentify(
  raw: Record<string, unknown>,
  io: { out: Writable; err: Writable } = { out: process.stdout, err: process.stderr },
): void {
  const flags = parseFlags(ReidentifyFlags, raw);
  const config = loadConfig(flags.config);
  if (!config.pseudonymization) {
    throw new CliError(`${flags.config} has no pseudonymization section: nothing was pseudonymized`, 2);
  }
  const store = FileReidentificationStore.open(config.pseudonymization.mapFile);
  try {
    const value = store.get(flags.token);
    if (value === undefined) throw new CliError(`unknown token ${flags.token}`, 1);
    io.out.write(`${JSON.stringify(value)}\n`);
  } finally {
    store.close();
  }
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

/** `gateway upload FILE --key KEY --config FILE`: one upload, as the gateway does it. */
export async function gatewayUpload(
  raw: Record<string, unknown>,
  io: { out: Writable; err: Writable } = { out: process.stdout, err: process.stderr },
): Promise<void> {
  const flags = parseFlags(UploadFlags, raw);
  const config = loadConfig(flags.config);
  let size: number;
  try {
    const st = statSync(flags.file);
    if (!st.isFile()) throw new CliError(`${flags.file} is not a regular file`, 2);
    size = st.size;
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`cannot read ${flags.file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 2, {
      cause: err,
    });
  }
  const logger = pino({ level: flags.logLevel }, pino.destination(2));
  const abort = new AbortController();
  const onSignal = () => abort.abort(new CliError('interrupted', 130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let channel: (IotChannel & { lastError?: Error }) | undefined;
  let uploader: S3Uploader | undefined;
  let provider: ReturnType<typeof credentialProviderFromConfig> | undefined;
  try {
    // Everything that can be checked locally is, before any connection.
    assertThingObjectKey(config.thingName, flags.key);
    if (config.credentials.source === 'mqtt' && config.iot) {
      channel = mqttChannelFromConfig(config.iot, config.thingName, { logger });
    }
    provider = credentialProviderFromConfig(config, { ...(channel ? { channel } : {}), logger });
    uploader = S3Uploader.fromConfig(config, provider, { logger });
    const showProgress = size > config.upload.singlePutMaxBytes;
    let lastShown = -1;
    const onProgress = (p: UploadProgress) => {
      if (!showProgress || p.sentBytes === lastShown) return;
      lastShown = p.sentBytes;
      const pct = p.totalBytes > 0 ? Math.floor((p.sentBytes / p.totalBytes) * 100) : 100;
      io.err.write(`uploading ${flags.key}: ${mib(p.sentBytes)} of ${mib(p.totalBytes)} (${pct}%)\n`);
    };
    const started = performance.now();
    const result = await uploader.upload({
      key: flags.key,
      source: { path: flags.file },
      ...(flags.contentType ? { contentType: flags.contentType } : {}),
      onProgress,
      signal: abort.signal,
    });
    const seconds = (performance.now() - started) / 1000;
    io.out.write(
      [
        result.alreadyUploaded
          ? `already uploaded: s3://${result.bucket}/${result.key} holds the same content`
          : `uploaded s3://${result.bucket}/${result.key}`,
        `  key      ${result.key}`,
        `  etag     ${result.etag ?? '(none)'}`,
        `  bytes    ${result.bytes}`,
        `  sha256   ${result.sha256}`,
        `  seconds  ${seconds.toFixed(2)}`,
        '',
      ].join('\n'),
    );
  } catch (err) {
    if (abort.signal.aborted) throw new CliError(`upload of ${flags.key} interrupted`, 130, { cause: err });
    if (
      err instanceof InvalidObjectKeyError ||
      err instanceof UploadSourceError ||
      err instanceof GatewayConfigError
    ) {
      throw new CliError(err.message, 2, { cause: err });
    }
    if (err instanceof CredentialsUnavailableError && err.reason === 'not-connected' && config.iot) {
      const why = channel?.lastError ? `: ${channel.lastError.message}` : '';
      throw new CliError(
        `${err.message}; cannot reach AWS IoT at ${config.iot.host}:${config.iot.port}${why}`,
        1,
        { cause: err },
      );
    }
    if (err instanceof DuplicateKeyError) throw new CliError(err.message, 1, { cause: err });
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    uploader?.destroy();
    await provider?.close();
    await channel?.close();
    logger.flush();
  }
}

const RunFlags = z.object({
  config: z.string().min(1, 'is required'),
  duration: z.coerce
    .number('must be a number of seconds')
    .min(0, 'must not be negative')
    .max(31_536_000, 'must be at most a year')
    .optional(),
  logLevel: z.enum(LOG_LEVELS).optional(),
});

/**
 * `gateway run --config FILE [--duration SECONDS]`: runs the gateway (direct MQTT over mTLS, temporary
 * credentials, S3 uploads) until SIGINT/SIGTERM or the duration ends, then stops it cleanly. Logs JSON
 * lines on stdout (through a LogTee, so that a `logs` section can ship them too).
 */
export async function gatewayRun(
  raw: Record<string, unknown>,
  io: { out: Writable } = { out: process.stdout },
): Promise<void> {
  const flags = parseFlags(RunFlags, raw);
  const config = loadConfig(flags.config);
  if (!config.iot) {
    throw new CliError(`${flags.config}: iot is required for gateway run (direct MQTT over mutual TLS)`, 2);
  }
  const tee = new LogTee(io.out);
  const logger = pino({ level: flags.logLevel ?? config.logLevel }, tee);
  let stopRequested: (reason: string) => void = () => {};
  const stopSignal = new Promise<string>((resolve) => {
    stopRequested = resolve;
  });
  const onSigint = () => stopRequested('SIGINT');
  const onSigterm = () => stopRequested('SIGTERM');
  process.once('SIGINT', onSigint);
  process.once('SIGTERM', onSigterm);
  let channel: IotChannel | undefined;
  let provider: ReturnType<typeof credentialProviderFromConfig> | undefined;
  let uploader: S3Uploader | undefined;
  let logStream: KinesisDataStream | undefined;
  let gateway: Gateway | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    try {
      channel = mqttChannelFromConfig(config.iot, config.thingName, { logger });
    } catch (err) {
      if (err instanceof GatewayConfigError) throw new CliError(err.message, 2, { cause: err });
      throw err;
    }
    provider = credentialProviderFromConfig(config, { channel, logger });
    uploader = S3Uploader.fromConfig(config, provider, { logger });
    logStream = await KinesisDataStream.fromConfig(config, provider);
    tuneHeap();
    gateway = await Gateway.start(config, {
      channel,
      uploader,
      logger,
      logTap: tee,
      ...(logStream ? { logStream } : {}),
    });
    if (flags.duration !== undefined && flags.duration > 0) {
      timer = setTimeout(() => stopRequested('duration'), flags.duration * 1000);
    }
    logger.info(
      { thing: config.thingName, spool: config.spool.dir, durationSeconds: flags.duration ?? null },
      'gateway ready',
    );
    const reason = await stopSignal;
    logger.info({ reason }, 'stopping');
  } finally {
    if (timer) clearTimeout(timer);
    await gateway?.stop();
    uploader?.destroy();
    logStream?.destroy();
    await provider?.close();
    await channel?.close();
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigterm);
    logger.flush();
  }
}

/** Adds the `gateway` command group. */
export function registerGatewayCommands(program: Command): void {
  const gateway = program
    .command('gateway')
    .description('the edge gateway, standalone (configured by a JSON file)');
  gateway
    .command('upload')
    .description('upload a file to the data bucket with temporary credentials requested over MQTT')
    .argument('<file>', 'the file to upload')
    .requiredOption('--key <key>', 'object key, under raw/{thing}/ or frames/{thing}/')
    .requiredOption('--config <file>', 'gateway configuration (JSON)')
    .option('--content-type <type>', 'Content-Type of the object')
    .option('--log-level <level>', 'log level (JSON logs on stderr)', 'warn')
    .action((file: string, o: Record<string, unknown>) => gatewayUpload({ ...o, file }));
  gateway
    .command('run')
    .description('run the gateway: ingest, spool, batch uploads, events and health, until SIGINT/SIGTERM')
    .requiredOption('--config <file>', 'gateway configuration (JSON)')
    .option('--duration <seconds>', 'stop after this many seconds (default: run until a signal)')
    .option('--log-level <level>', "log level (default: the configuration's logLevel)")
    .action((o: Record<string, unknown>) => gatewayRun(o));
  gateway
    .command('reidentify')
    .description(
      "look a pseudonym up in the gateway's own re-identification map and print the original value",
    )
    .argument('<token>', 'a pseudonym, e.g. k1.abcdefghijklmnopqrstuvwxyz234567')
    .requiredOption('--config <file>', 'gateway configuration (JSON) with a pseudonymization section')
    .action((token: string, o: Record<string, unknown>) => gatewayReidentify({ ...o, token }));
}
