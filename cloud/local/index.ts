/**
 * The embedded local cloud: one MQTT/TLS endpoint (IoT Core) and one HTTP endpoint (all HTTP services,
 * routed by SigV4 credential scope), with all state in one data dir.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { createHandlerRegistry } from '../functions/index.js';
import { RULES } from '../rules/definitions.js';
import { DEVICE_POLICY_NAME, devicePolicyDocument } from '../rules/policies.js';
import { IotBroker, MAX_PAYLOAD_BYTES } from './broker.js';
import { type LocalCloudOptions, type LocalCloudOptionsInput, parseLocalCloudOptions } from './config.js';
import { CredentialStore } from './credentials.js';
import { LocalCloudError } from './errors.js';
import { iotControlRoute } from './http/iot.js';
import { iotDataRoute } from './http/iotdata.js';
import { HttpEndpoint } from './http/server.js';
import { type LocalPki, loadOrCreatePki } from './pki.js';
import { checkIotTopicLimits, isValidTopicName } from './policy.js';
import { Registry } from './registry.js';
import { RulesEngine } from './rules-engine.js';
import { ShadowService, shadowSqlServices } from './shadow/service.js';
import { readJsonFile, removeFile, writeJsonFile } from './store.js';

export interface LocalCloudEndpoints {
  host: string;
  mqttPort: number;
  httpPort: number;
  /** `mqtts://host:port` */
  mqttUrl: string;
  /** `http://host:port`, the endpoint for every AWS SDK client. */
  httpUrl: string;
}

interface RuntimeFile {
  pid: number;
  host: string;
  mqttPort: number;
  httpPort: number;
  startedAt: string;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Reads the runtime file of a local cloud running on this data dir, if one is. */
export function runningLocalCloud(dataDir: string): RuntimeFile | undefined {
  const rt = readJsonFile<RuntimeFile>(join(dataDir, 'runtime.json'));
  if (!rt || !isAlive(rt.pid) || rt.pid === process.pid) return undefined;
  return rt;
}

/** Ensures the registry holds the local root CA and the default device policy. */
export function seedRegistry(registry: Registry, pki: LocalPki, opts: LocalCloudOptions): void {
  registry.registerCaCertificate(pki.rootCa.certPem);
  registry.putPolicy(DEVICE_POLICY_NAME, devicePolicyDocument(opts.region, opts.accountId));
}

export class LocalCloud {
  private constructor(
    readonly options: LocalCloudOptions,
    readonly registry: Registry,
    readonly pki: LocalPki,
    readonly credentials: CredentialStore,
    readonly broker: IotBroker,
    readonly shadows: ShadowService,
    readonly http: HttpEndpoint,
    readonly endpoints: LocalCloudEndpoints,
    readonly logger: Logger,
    readonly rules: RulesEngine,
  ) {}

  static async start(
    input: LocalCloudOptionsInput = {},
    logger: Logger = pino({ level: 'silent' }),
  ): Promise<LocalCloud> {
    const opts = parseLocalCloudOptions(input);
    mkdirSync(opts.dataDir, { recursive: true });
    const other = runningLocalCloud(opts.dataDir);
    if (other) {
      throw new LocalCloudError(
        `a local cloud (pid ${other.pid}) is already running on ${opts.dataDir} (mqtt ${other.mqttPort}, http ${other.httpPort})`,
      );
    }
    const pki = await loadOrCreatePki(opts.dataDir, [opts.host]);
    const registry = new Registry(opts.dataDir, { region: opts.region, accountId: opts.accountId });
    seedRegistry(registry, pki, opts);
    const credentials = new CredentialStore(opts.dataDir, opts.accountId);
    const broker = await IotBroker.create({
      registry,
      region: opts.region,
      accountId: opts.accountId,
      logger: logger.child({ component: 'broker' }),
      tls: {
        certPem: pki.server.certPem,
        keyPem: pki.server.keyPem,
        caPems: () =>
          registry
            .listCaCertificates()
            .filter((c) => c.status === 'ACTIVE')
            .map((c) => c.certificatePem),
      },
    });
    const shadows = new ShadowService(
      opts.dataDir,
      (topic, payload) => broker.publish(topic, payload, 0),
      logger.child({ component: 'shadow' }),
    );
    broker.subscribe('$aws/things/+/shadow/#', (topic, payload) => {
      shadows
        .handleMqtt(topic, payload)
        .catch((err) => logger.error({ err, topic }, 'shadow request failed'));
    });
    // The project's IoT rules, subscribed before any client can connect. Their AWS SDK clients are
    // created on first use, when the HTTP endpoint (port 0 = free port) is known.
    let sdk: (() => ReturnType<LocalCloud['sdkConfig']>) | undefined;
    const rules = RulesEngine.start({
      broker,
      rules: RULES,
      handlers: createHandlerRegistry(),
      aws: () => {
        if (!sdk) throw new LocalCloudError('the local cloud HTTP endpoint is not listening yet');
        return sdk();
      },
      region: opts.region,
      accountId: opts.accountId,
      logger: logger.child({ component: 'rules' }),
      services: shadowSqlServices(shadows),
    });
    const http = new HttpEndpoint({
      credentials,
      logger: logger.child({ component: 'http' }),
      health: () => ({ status: 'running', services: ['iot-core', 'iot', 'iotdata'], region: opts.region }),
    });
    http.register(
      iotControlRoute({
        registry,
        pki,
        region: opts.region,
        accountId: opts.accountId,
        endpointHost: opts.host === '0.0.0.0' ? '127.0.0.1' : opts.host,
      }),
    );
    http.register(
      iotDataRoute({
        shadows,
        publish: (topic, payload, qos, retain) => broker.publish(topic, payload, qos, retain),
        validateTopic: (topic) => {
          if (!isValidTopicName(topic)) return `invalid topic '${topic}'`;
          const limit = checkIotTopicLimits(topic);
          return limit.ok ? undefined : limit.message;
        },
        maxPayloadBytes: MAX_PAYLOAD_BYTES,
      }),
    );
    let mqttPort: number;
    let httpPort: number;
    try {
      mqttPort = await broker.listen(opts.mqttPort, opts.host);
      httpPort = await http.listen(opts.httpPort, opts.host);
    } catch (err) {
      await rules.stop().catch(() => {});
      await broker.close().catch(() => {});
      await http.close().catch(() => {});
      throw new LocalCloudError(
        `cannot listen on ${opts.host} (mqtt ${opts.mqttPort}, http ${opts.httpPort})`,
        { cause: err },
      );
    }
    const host = opts.host === '0.0.0.0' ? '127.0.0.1' : opts.host;
    const endpoints: LocalCloudEndpoints = {
      host,
      mqttPort,
      httpPort,
      mqttUrl: `mqtts://${host}:${mqttPort}`,
      httpUrl: `http://${host}:${httpPort}`,
    };
    writeJsonFile(join(opts.dataDir, 'runtime.json'), {
      pid: process.pid,
      host,
      mqttPort,
      httpPort,
      startedAt: new Date().toISOString(),
    } satisfies RuntimeFile);
    const cloud = new LocalCloud(
      opts,
      registry,
      pki,
      credentials,
      broker,
      shadows,
      http,
      endpoints,
      logger,
      rules,
    );
    sdk = () => cloud.sdkConfig();
    logger.info({ endpoints }, 'local cloud started');
    return cloud;
  }

  /** Settings for any AWS SDK v3 client that should talk to this local cloud. */
  sdkConfig() {
    return {
      region: this.options.region,
      endpoint: this.endpoints.httpUrl,
      credentials: {
        accessKeyId: this.credentials.root.accessKeyId,
        secretAccessKey: this.credentials.root.secretAccessKey,
      },
    };
  }

  async stop(): Promise<void> {
    // Rules first: their in-flight actions still publish through the broker.
    await this.rules.stop();
    await this.broker.close();
    await this.http.close();
    const rt = readJsonFile<RuntimeFile>(join(this.options.dataDir, 'runtime.json'));
    if (rt?.pid === process.pid) removeFile(join(this.options.dataDir, 'runtime.json'));
    this.logger.info('local cloud stopped');
  }
}
