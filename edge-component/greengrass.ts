/**
 * The gateway as a Greengrass component. Everything goes through the nucleus over IPC:
 * - configuration: the component configuration (the recipe's ComponentConfiguration merged with the
 *   deployment's), the same schema as the standalone JSON file, validated with zod. A deployment with
 *   an invalid configuration is rejected during its validation step (SendConfigurationValidityReport,
 *   the message naming the field); a change that arrives anyway and does not validate is logged, and the
 *   gateway keeps its last good configuration.
 * - live updates: a valid change restarts the gateway runtime in process with the new configuration
 *   (open batches are cut and spooled, nothing accepted is lost); the log level changes at once.
 * - IoT Core (events, acks, credential requests) through the nucleus's MQTT connection, the health
 *   shadow through the shadow manager, sensor records from local publish/subscribe, and the
 *   pseudonymization key from SecretManager (`pseudonymization.keySecretId`).
 */
import pino, { type Logger } from 'pino';
import {
  GreengrassConfigSource,
  GreengrassIotChannel,
  GreengrassIpc,
  type GreengrassIpcOptions,
  GreengrassLocalPubSub,
  GreengrassShadowClient,
  greengrassEnv,
  greengrassSecrets,
  type ValidityReport,
} from './adapters/greengrass-ipc.js';
import { KinesisDataStream } from './adapters/kinesis-log-stream.js';
import { type GatewayConfig, parseGatewayConfig } from './config.js';
import { credentialProviderFromConfig, type RefreshingCredentialProvider } from './credentials.js';
import { EdgeError, GatewayConfigError } from './errors.js';
import { Gateway } from './gateway.js';
import { type LogTap, LogTee } from './logs/tee.js';
import { S3Uploader } from './uploader.js';

export interface GreengrassComponentOptions {
  /**
   * Default: JSON lines on stdout (the nucleus writes them to the component's log file) at the
   * configuration's `logLevel`, through a LogTee (a `logs` section ships them too). An injected logger
   * keeps its own level.
   */
  logger?: Logger;
  /** The LogTee of an injected logger, if it has one (the component's own lines are shipped from it). */
  logTap?: LogTap;
  /** Default process.env: SVCUID, AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT, AWS_IOT_THING_NAME. */
  env?: NodeJS.ProcessEnv;
  /** Relative paths of the configuration resolve against it; default process.cwd() (the work folder). */
  workDir?: string;
  ipc?: GreengrassIpcOptions;
}

interface Runtime {
  config: GatewayConfig;
  gateway: Gateway;
  channel: GreengrassIotChannel;
  provider: RefreshingCredentialProvider;
  uploader: S3Uploader;
  logStream: KinesisDataStream | undefined;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class GreengrassComponent {
  private runtime: Runtime | undefined;
  private lastGoodJson = '';
  private closeStreams: (() => Promise<void>)[] = [];
  /** Reconfigurations run one after the other. */
  private queue: Promise<void> = Promise.resolve();
  private stopping = false;
  /** Number of configuration changes applied, and refused (kept the last good one). */
  readonly reconfigurations = { applied: 0, refused: 0 };

  private constructor(
    private readonly ipc: GreengrassIpc,
    private readonly configSource: GreengrassConfigSource,
    private readonly thingName: string,
    private readonly workDir: string,
    private readonly region: string | undefined,
    private readonly log: Logger,
    /** The configuration's logLevel applies (the logger is the component's own). */
    private readonly levelFromConfig: boolean,
    private readonly logTap: LogTap | undefined,
  ) {}

  private applyLogLevel(config: GatewayConfig): void {
    if (this.levelFromConfig) this.log.level = config.logLevel;
  }

  /**
   * Connects to the nucleus, reads and validates the configuration, subscribes to configuration checks
   * and changes, and starts the gateway. Rejects (GatewayConfigError naming the field) when the
   * configuration is invalid at start: there is no last good one to keep.
   */
  static async start(opts: GreengrassComponentOptions = {}): Promise<GreengrassComponent> {
    const env = opts.env ?? process.env;
    const gg = greengrassEnv(env);
    if (!gg && !opts.ipc?.createClient) {
      throw new EdgeError(
        'not running under Greengrass (SVCUID and AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT are not set); ' +
          'standalone, run: npx edgefleet gateway run --config FILE',
      );
    }
    const thingName = gg?.thingName ?? env.AWS_IOT_THING_NAME;
    if (!thingName)
      throw new EdgeError('AWS_IOT_THING_NAME is not set: the nucleus sets it for every component');
    const tee = opts.logger === undefined ? new LogTee(pino.destination(1)) : undefined;
    const logger = opts.logger ?? pino({ level: 'info' }, tee);
    const ownLogger = opts.logger === undefined;
    const ipc = await GreengrassIpc.connect({ logger, env, ...opts.ipc });
    const component = new GreengrassComponent(
      ipc,
      new GreengrassConfigSource(ipc),
      thingName,
      opts.workDir ?? process.cwd(),
      env.AWS_REGION || env.AWS_DEFAULT_REGION || undefined,
      logger.child({ component: 'greengrass' }),
      ownLogger,
      tee ?? opts.logTap,
    );
    try {
      await component.init();
    } catch (err) {
      await component.stop().catch(() => {});
      throw err;
    }
    return component;
  }

  /** The configuration the gateway runs with. */
  get config(): GatewayConfig | undefined {
    return this.runtime?.config;
  }

  get gateway(): Gateway | undefined {
    return this.runtime?.gateway;
  }

  private parse(value: unknown): GatewayConfig {
    return parseGatewayConfig(value, {
      runtime: 'greengrass',
      coreThingName: this.thingName,
      ...(this.region ? { coreRegion: this.region } : {}),
      baseDir: this.workDir,
      source: 'the component configuration',
    });
  }

  private async init(): Promise<void> {
    const raw = await this.configSource.get();
    const config = this.parse(raw);
    this.applyLogLevel(config);
    this.closeStreams.push(await this.configSource.onValidate((c) => this.check(c)));
    this.closeStreams.push(await this.configSource.onUpdate(() => this.onChange()));
    this.runtime = await this.startRuntime(config);
    this.lastGoodJson = JSON.stringify(raw);
    this.log.info({ thing: this.thingName, spool: config.spool.dir }, 'gateway component started');
  }

  /** A deployment's configuration check. */
  private check(configuration: unknown): ValidityReport {
    try {
      this.parse(configuration);
      return { status: 'ACCEPTED' };
    } catch (err) {
      const message = describe(err);
      this.log.warn({ err: message }, 'deployment configuration rejected');
      return { status: 'REJECTED', message };
    }
  }

  private onChange(): void {
    this.queue = this.queue.then(() => this.reconfigure()).catch(() => {});
  }

  private async reconfigure(): Promise<void> {
    if (this.stopping) return;
    let raw: unknown;
    try {
      raw = await this.configSource.get();
    } catch (err) {
      this.log.error(
        { err: describe(err) },
        'cannot read the changed configuration; keeping the current one',
      );
      return;
    }
    const json = JSON.stringify(raw);
    if (json === this.lastGoodJson) return;
    let next: GatewayConfig;
    try {
      next = this.parse(raw);
    } catch (err) {
      this.reconfigurations.refused++;
      const issues = err instanceof GatewayConfigError ? err.issues : [];
      this.log.error(
        { err: describe(err), issues },
        'invalid configuration change; keeping the last good configuration',
      );
      return;
    }
    const previous = this.runtime;
    this.log.info('configuration changed; restarting the gateway runtime with it');
    if (previous) await this.stopRuntime(previous);
    this.runtime = undefined;
    if (this.stopping) return;
    try {
      this.applyLogLevel(next);
      this.runtime = await this.startRuntime(next);
      this.lastGoodJson = json;
      this.reconfigurations.applied++;
      this.log.info('new configuration applied');
    } catch (err) {
      this.reconfigurations.refused++;
      this.log.error(
        { err: describe(err) },
        'the gateway does not start with the new configuration; back to the last good one',
      );
      if (previous) {
        this.applyLogLevel(previous.config);
        this.runtime = await this.startRuntime(previous.config);
      }
    }
  }

  private async startRuntime(config: GatewayConfig): Promise<Runtime> {
    const logger = this.log;
    const channel = new GreengrassIotChannel(this.ipc);
    const provider = credentialProviderFromConfig(config, { channel, logger });
    const uploader = S3Uploader.fromConfig(config, provider, { logger });
    let logStream: KinesisDataStream | undefined;
    try {
      logStream = await KinesisDataStream.fromConfig(config, provider);
      const gateway = await Gateway.start(config, {
        channel,
        uploader,
        logger,
        shadows: new GreengrassShadowClient(this.ipc, config.thingName),
        localPubSub: new GreengrassLocalPubSub(this.ipc),
        secrets: greengrassSecrets(this.ipc),
        ...(this.logTap ? { logTap: this.logTap } : {}),
        ...(logStream ? { logStream } : {}),
      });
      return { config, gateway, channel, provider, uploader, logStream };
    } catch (err) {
      uploader.destroy();
      logStream?.destroy();
      await provider.close();
      await channel.close();
      throw err;
    }
  }

  private async stopRuntime(r: Runtime): Promise<void> {
    await r.gateway.stop();
    r.uploader.destroy();
    r.logStream?.destroy();
    await r.provider.close();
    await r.channel.close();
  }

  /** Stops the gateway (open batches are cut and spooled) and closes the IPC connection. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.queue;
    if (this.runtime) await this.stopRuntime(this.runtime);
    this.runtime = undefined;
    for (const close of this.closeStreams) await close();
    this.closeStreams = [];
    await this.ipc.close();
  }
}
