/**
 * The gateway as a Greengrass component, end to end: the component runs against the local nucleus
 * (eventstream RPC on a Unix socket, the unchanged IPC client of aws-iot-device-sdk-v2) whose IoT Core
 * connection is the core device's mutual-TLS session with the local cloud. Its configuration is the
 * recipe's DefaultConfiguration merged with a deployment's, its authorization the recipe's
 * accessControl, its pseudonymization key a SecretManager secret, its records come from another
 * component over local publish/subscribe, and its health shadow goes through the shadow manager. A
 * deployment that adds a `logs` section makes it ship its own log lines to the gateway log stream.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { GetThingShadowCommand, IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  ListShardsCommand,
} from '@aws-sdk/client-kinesis';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pino from 'pino';
import { parse } from 'yaml';
import { LocalNucleus, type NucleusComponent } from '../../cloud/local/greengrass/nucleus.js';
import { LOCAL_DATA_BUCKET } from '../../cloud/rules/resources.js';
import { GATEWAY_LOGS_STREAM } from '../../cloud/rules/streams.js';
import { ipcClientFor } from '../../edge-component/adapters/greengrass-ipc.js';
import { GatewayConfigError } from '../../edge-component/errors.js';
import { GreengrassComponent } from '../../edge-component/greengrass.js';
import { LogTee } from '../../edge-component/logs/tee.js';
import { KeyRing } from '../../edge-component/pseudonymize/keyring.js';
import { eventually, removeDir, startTestCloud, type TestCloud, tempDir } from '../helpers/cloud.js';

const CORE = 'gg-core-1';
const GATEWAY = 'com.edgefleet.Gateway';
const SENSOR = 'com.example.Sensor';
const SECRET_ARN =
  'arn:aws:secretsmanager:eu-central-1:123456789012:secret:edgefleet/pseudonymization-AbCdEf';
const logger = pino({ level: 'silent' });
/** The component's own logger: written nowhere, but on a LogTee, so that a `logs` section can ship it. */
const componentTee = new LogTee({ write: () => true });
const componentLogger = pino({ level: 'info' }, componentTee);

const recipe = parse(readFileSync(new URL('../../recipes/recipe.yaml', import.meta.url), 'utf8')) as {
  ComponentConfiguration: { DefaultConfiguration: Record<string, unknown> & { accessControl: never } };
};
const defaults = recipe.ComponentConfiguration.DefaultConfiguration;

const keyBytes = randomBytes(32);
const keyDocument = JSON.stringify({ active: 'k1', keys: { k1: keyBytes.toString('base64') } });

let tc: TestCloud;
let nucleus: LocalNucleus;
let dir: string;
let s3: S3Client;
let data: IoTDataPlaneClient;

/** The deployment's part of the configuration (merged over the recipe's defaults). */
function deployment(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ...defaults,
    aws: { region: tc.cloud.options.region, s3Endpoint: tc.cloud.endpoints.httpUrl, forcePathStyle: true },
    storage: { bucket: LOCAL_DATA_BUCKET },
    credentials: { source: 'mqtt', requestTimeoutMs: 5000, maxAttempts: 3 },
    pseudonymization: { fields: ['$.operatorId'], keySecretId: SECRET_ARN, mapFile: 'pseudonym-map.jsonl' },
    batching: { maxRecords: 5, maxBytes: 65536, maxAgeMs: 300 },
    events: { retransmitInitialMs: 500, retransmitMaxMs: 2000 },
    health: { intervalMs: 200 },
    ...extra,
  };
}

async function telemetry(): Promise<Record<string, unknown>[]> {
  const list = await s3.send(
    new ListObjectsV2Command({ Bucket: LOCAL_DATA_BUCKET, Prefix: `raw/${CORE}/telemetry/` }),
  );
  const out: Record<string, unknown>[] = [];
  for (const o of list.Contents ?? []) {
    const got = await s3.send(new GetObjectCommand({ Bucket: LOCAL_DATA_BUCKET, Key: o.Key! }));
    const text = gunzipSync(Buffer.from(await got.Body!.transformToByteArray())).toString('utf8');
    for (const line of text.split('\n')) if (line) out.push(JSON.parse(line) as Record<string, unknown>);
  }
  return out;
}

beforeAll(async () => {
  tc = await startTestCloud();
  const core = await tc.provision(CORE);
  s3 = new S3Client({ ...tc.cloud.sdkConfig(), forcePathStyle: true });
  data = new IoTDataPlaneClient(tc.cloud.sdkConfig());
  dir = tempDir('egc-');
  const components: NucleusComponent[] = [
    { name: GATEWAY, configuration: deployment(), accessControl: defaults.accessControl },
    {
      name: SENSOR,
      accessControl: {
        'aws.greengrass.ipc.pubsub': {
          [`${SENSOR}:pubsub:1`]: {
            operations: ['aws.greengrass#PublishToTopic'],
            resources: ['edgefleet/sensors/*'],
          },
        },
      },
    },
  ];
  nucleus = await LocalNucleus.start({
    socketPath: join(dir, 'ipc.socket'),
    thingName: CORE,
    components,
    iot: {
      host: tc.cloud.endpoints.host,
      port: tc.cloud.endpoints.mqttPort,
      cert: core.cert,
      key: core.key,
      ca: core.ca,
    },
    secrets: { [SECRET_ARN]: { secretString: keyDocument } },
    logger,
  });
  await eventually(() => (nucleus.iotConnected ? true : undefined), 'the nucleus to connect to IoT Core');
});

afterAll(async () => {
  await nucleus?.stop();
  s3?.destroy();
  data?.destroy();
  await tc?.stop();
  if (tc) removeDir(tc.dataDir);
  if (dir) removeDir(dir);
});

function startComponent(workDir: string) {
  mkdirSync(workDir, { recursive: true });
  return GreengrassComponent.start({
    env: { ...nucleus.componentEnv(GATEWAY), AWS_REGION: tc.cloud.options.region },
    workDir,
    logger: componentLogger,
    logTap: componentTee,
    ipc: { reconnect: { initialDelayMs: 20, maxDelayMs: 200 } },
  });
}

describe('the gateway component under the local nucleus', () => {
  let component: GreengrassComponent;

  beforeAll(async () => {
    component = await startComponent(join(dir, 'work'));
  });

  afterAll(async () => {
    await component?.stop();
  });

  it('reads its configuration over IPC: the recipe defaults, the deployment and the core device', () => {
    const c = component.config!;
    expect(c.thingName).toBe(CORE);
    expect(c.ingest.localPubSub?.topics).toEqual(
      (defaults.ingest as { localPubSub: { topics: string[] } }).localPubSub.topics,
    );
    expect(c.spool.dir).toBe(join(dir, 'work', 'spool'));
    expect(c.pseudonymization?.keySecretId).toBe(SECRET_ARN);
  });

  it('ingests records another component publishes locally, pseudonymized with the key from SecretManager, into the lake', async () => {
    const sensor = ipcClientFor({
      socketPath: nucleus.componentEnv(SENSOR).AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT!,
      svcuid: nucleus.token(SENSOR),
    });
    await sensor.connect();
    try {
      for (let i = 0; i < 10; i++) {
        await sensor.publishToTopic({
          topic: 'edgefleet/sensors/temperature',
          publishMessage: {
            jsonMessage: { message: { sensor: 't1', n: i, operatorId: `op-${i % 3}`, value: 20 + i } },
          },
        });
      }
      // A binary message with a JSON object is a record too; a malformed one goes to the deadletter stream.
      await sensor.publishToTopic({
        topic: 'edgefleet/sensors/vibration',
        publishMessage: { binaryMessage: { message: Buffer.from(JSON.stringify({ sensor: 'v1', n: 10 })) } },
      });
      await sensor.publishToTopic({
        topic: 'edgefleet/sensors/vibration',
        publishMessage: { binaryMessage: { message: Buffer.from('{not json') } },
      });
    } finally {
      await sensor.close();
    }
    const records = await eventually(async () => {
      const r = await telemetry();
      return r.length >= 11 ? r : undefined;
    }, 'the records in the lake');
    expect(records).toHaveLength(11);
    expect(records.map((r) => r.n).sort((a, b) => Number(a) - Number(b))).toEqual([
      0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
    ]);
    const ring = KeyRing.fromKeys('k1', { k1: keyBytes });
    for (const r of records.filter((x) => x.sensor === 't1')) {
      expect(r.operatorId).toBe(ring.pseudonym(`op-${Number(r.n) % 3}`));
    }
    expect(JSON.stringify(records)).not.toMatch(/op-\d/);
    expect(component.gateway!.counters.deadlettered).toBe(1);
  });

  it('sends exactly-once events through the nucleus and gets their acknowledgements back', async () => {
    const gw = component.gateway!;
    const before = gw.counters.eventsAcked;
    await gw.emitEvent('alarm', { level: 'high', operatorId: 'op-7' });
    await eventually(() => (gw.counters.eventsAcked > before ? true : undefined), 'the event ack');
  });

  it('reports its health through the shadow manager, synced to the cloud shadow', async () => {
    const doc = await eventually(async () => {
      const r = await data.send(new GetThingShadowCommand({ thingName: CORE, shadowName: 'health' }));
      const doc = JSON.parse(Buffer.from(r.payload!).toString('utf8')) as {
        state: { reported: { spool?: { telemetry?: { depth: number } }; lastUploadAt?: number | null } };
      };
      return doc.state.reported.lastUploadAt ? doc : undefined;
    }, 'the health shadow with the last upload');
    expect(doc.state.reported.spool?.telemetry?.depth).toEqual(expect.any(Number));
  });

  it('rejects a deployment whose configuration is invalid, naming the field, and keeps running', async () => {
    const result = await nucleus.deploy(GATEWAY, deployment({ batching: { maxRecords: 'lots' } }));
    expect(result.status).toBe('REJECTED');
    expect(result.message).toMatch(/batching\.maxRecords: must be a number/);
    expect(component.config?.batching.maxRecords).toBe(5);
    expect(nucleus.getConfiguration(GATEWAY).batching).toEqual({
      maxRecords: 5,
      maxBytes: 65536,
      maxAgeMs: 300,
    });
  });

  it('applies a valid configuration change live, and data keeps flowing', async () => {
    const result = await nucleus.deploy(
      GATEWAY,
      deployment({ batching: { maxRecords: 2, maxBytes: 65536, maxAgeMs: 300 }, logLevel: 'warn' }),
    );
    expect(result.status).toBe('ACCEPTED');
    await eventually(
      () => (component.config?.batching.maxRecords === 2 ? true : undefined),
      'the new configuration',
    );
    expect(component.reconfigurations.applied).toBe(1);
    const before = (await telemetry()).length;
    nucleus.publishLocal('edgefleet/sensors/temperature', {
      json: { sensor: 't2', n: 100, operatorId: 'op-1' },
    });
    nucleus.publishLocal('edgefleet/sensors/temperature', {
      json: { sensor: 't2', n: 101, operatorId: 'op-2' },
    });
    await eventually(
      async () => ((await telemetry()).length >= before + 2 ? true : undefined),
      'records after the change',
    );
  });

  it('ships its own log lines to the gateway log stream once a deployment adds a logs section', async () => {
    const result = await nucleus.deploy(
      GATEWAY,
      deployment({ logs: { batch: { maxAgeMs: 50 }, backoff: { initialDelayMs: 20, maxDelayMs: 300 } } }),
    );
    expect(result.status).toBe('ACCEPTED');
    await eventually(() => (component.config?.logs ? true : undefined), 'the configuration with logs');
    const kinesis = new KinesisClient(tc.cloud.sdkConfig());
    try {
      const messages = async (): Promise<string[]> => {
        const out: string[] = [];
        const shards = (await kinesis.send(new ListShardsCommand({ StreamName: GATEWAY_LOGS_STREAM })))
          .Shards;
        for (const shard of shards ?? []) {
          const it = await kinesis.send(
            new GetShardIteratorCommand({
              StreamName: GATEWAY_LOGS_STREAM,
              ShardId: shard.ShardId,
              ShardIteratorType: 'TRIM_HORIZON',
            }),
          );
          const got = await kinesis.send(new GetRecordsCommand({ ShardIterator: it.ShardIterator }));
          for (const r of got.Records ?? []) {
            if (r.PartitionKey !== `${CORE}/gateway`) continue;
            out.push(String((JSON.parse(Buffer.from(r.Data!).toString('utf8')) as { msg?: string }).msg));
          }
        }
        return out;
      };
      const shipped = await eventually(async () => {
        const m = await messages();
        return m.includes('new configuration applied') ? m : undefined;
      }, "the component's lines in the stream");
      expect(shipped).toContain('gateway started');
    } finally {
      kinesis.destroy();
    }
  });
});

describe('starting', () => {
  it('refuses an invalid configuration at start with the field named', async () => {
    const broken = await LocalNucleus.start({
      socketPath: join(dir, 'bad.socket'),
      thingName: CORE,
      components: [{ name: GATEWAY, configuration: { ...deployment(), spool: { dir: 42 } } }],
      logger,
    });
    try {
      const err = await GreengrassComponent.start({
        env: broken.componentEnv(GATEWAY),
        workDir: join(dir, 'bad-work'),
        logger,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GatewayConfigError);
      expect((err as Error).message).toMatch(/spool\.dir: must be a string/);
    } finally {
      await broken.stop();
    }
  });

  it('says how to run standalone when there is no nucleus', async () => {
    await expect(GreengrassComponent.start({ env: {}, logger })).rejects.toThrow(/gateway run --config/);
  });

  it("the recipe's Run step entry point starts the component and stops cleanly on SIGTERM", async () => {
    const workDir = join(dir, 'main-work');
    mkdirSync(workDir, { recursive: true });
    // Back to the default log level, so that the start and stop lines are logged.
    expect((await nucleus.deploy(GATEWAY, deployment())).status).toBe('ACCEPTED');
    const env = { ...process.env, ...nucleus.componentEnv(GATEWAY), AWS_REGION: tc.cloud.options.region };
    const bin = new URL('../../bin/run-ts.js', import.meta.url).pathname;
    const main = new URL('../../edge-component/main.ts', import.meta.url).pathname;
    // The main component above has stopped its gateway; this one has its own work folder.
    const child = spawn(process.execPath, [bin, main], {
      cwd: workDir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString('utf8');
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d.toString('utf8');
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await eventually(
      () => (out.includes('gateway component started') ? true : undefined),
      'the component to start',
      20_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; its output: ${out}`);
    });
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toContain('gateway component stopped');
  });
});
