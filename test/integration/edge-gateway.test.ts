/**
 * The gateway runtime end to end against the local cloud: mutual-TLS MQTT, temporary credentials vended
 * by the cloud's credential function, batches uploaded to the local S3, events acknowledged by the
 * cloud's event-ack function, the health named shadow, and an offline period that drains afterwards.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { GetThingShadowCommand, IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import pino from 'pino';
import { LOCAL_DATA_BUCKET } from '../../cloud/rules/resources.js';
import { mqttChannelFromConfig } from '../../edge-component/adapters/mqtt-channel.js';
import { type GatewayConfig, loadGatewayConfig } from '../../edge-component/config.js';
import { credentialProviderFromConfig } from '../../edge-component/credentials.js';
import { Gateway, STREAMS } from '../../edge-component/gateway.js';
import { S3Uploader } from '../../edge-component/uploader.js';
import {
  eventually,
  localGatewayConfig,
  PSEUDONYMIZE_OPERATOR,
  removeDir,
  startTestCloud,
  type TestCloud,
  type TestDevice,
} from '../helpers/cloud.js';

const THING = 'gw-runtime-1';
let tc: TestCloud;
let dev: TestDevice;
let s3: S3Client;
let data: IoTDataPlaneClient;
const logger = pino({ level: 'silent' });

beforeAll(async () => {
  tc = await startTestCloud();
  dev = await tc.provision(THING);
  s3 = new S3Client({ ...tc.cloud.sdkConfig(), forcePathStyle: true });
  data = new IoTDataPlaneClient(tc.cloud.sdkConfig());
});

afterAll(async () => {
  s3?.destroy();
  data?.destroy();
  await tc?.stop();
  if (tc) removeDir(tc.dataDir);
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

function writeConfig(name: string, port: number, extra: Record<string, unknown> = {}): GatewayConfig {
  const file = join(dev.outDir, name);
  writeFileSync(
    file,
    JSON.stringify(
      localGatewayConfig(tc.cloud, THING, {
        iot: { port, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } },
        credentials: { requestTimeoutMs: 5000, maxAttempts: 3 },
        upload: { maxAttempts: 2, backoff: { initialDelayMs: 100, maxDelayMs: 500 } },
        pseudonymization: PSEUDONYMIZE_OPERATOR,
        spool: { dir: 'spool' },
        batching: { maxRecords: 4, maxBytes: 65536, maxAgeMs: 300 },
        events: { retransmitInitialMs: 500, retransmitMaxMs: 2000 },
        health: { intervalMs: 200 },
        drain: { concurrency: 2 },
        ...extra,
      }),
    ),
  );
  return loadGatewayConfig(file);
}

async function startGateway(config: GatewayConfig) {
  const channel = mqttChannelFromConfig(config.iot!, THING, { logger });
  const credentials = credentialProviderFromConfig(config, { channel, logger });
  const uploader = S3Uploader.fromConfig(config, credentials, { logger });
  const gateway = await Gateway.start(config, { channel, uploader, logger });
  return {
    gateway,
    channel,
    async stop() {
      await gateway.stop();
      uploader.destroy();
      await credentials.close();
      await channel.close();
    },
  };
}

async function telemetryObjects(): Promise<Map<string, Record<string, unknown>[]>> {
  const out = new Map<string, Record<string, unknown>[]>();
  const list = await s3.send(
    new ListObjectsV2Command({ Bucket: LOCAL_DATA_BUCKET, Prefix: `raw/${THING}/telemetry/` }),
  );
  for (const o of list.Contents ?? []) {
    const got = await s3.send(new GetObjectCommand({ Bucket: LOCAL_DATA_BUCKET, Key: o.Key! }));
    const text = gunzipSync(Buffer.from(await got.Body!.transformToByteArray())).toString('utf8');
    out.set(
      o.Key!,
      text
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    );
  }
  return out;
}

const depth = (gw: Gateway, stream: string) => gw.spool.stats().streams.find((s) => s.name === stream)?.depth;

it('uploads pseudonymized batches, gets events acknowledged, deadletters bad records and reports health', async () => {
  const config = writeConfig('gw.json', tc.cloud.endpoints.mqttPort);
  const gw = await startGateway(config);
  try {
    const { gateway } = gw;
    for (let i = 1; i <= 5; i++) {
      expect(
        await gateway.ingest({ operatorId: `OPERATOR-${1000 + i}`, sensorId: 'line-1', i }),
      ).toMatchObject({
        accepted: true,
      });
    }
    expect(await gateway.ingest('{"operatorId": "OPERATOR-9999", ')).toMatchObject({ accepted: false });
    expect(depth(gateway, STREAMS.deadletter)).toBe(1);

    const { msgId } = await gateway.emitEvent('alarm', { code: 'OVERHEAT', temp: 91 });
    await eventually(
      () => (gateway.counters.eventsAcked === 1 && depth(gateway, STREAMS.events) === 0 ? true : undefined),
      'event acknowledged',
    );
    expect(gateway.lastEventAckAt).not.toBeNull();

    await eventually(
      () =>
        depth(gateway, STREAMS.telemetry) === 0 && gateway.counters.uploadedRecords === 5 ? true : undefined,
      'telemetry uploaded',
    );
    const objects = await telemetryObjects();
    const keys = [...objects.keys()].sort();
    expect(keys).toHaveLength(2);
    for (const k of keys) {
      expect(k).toMatch(
        new RegExp(
          `^raw/${THING}/telemetry/dt=\\d{4}-\\d{2}-\\d{2}/hour=\\d{2}/\\d{12}-\\d{12}\\.ndjson\\.gz$`,
        ),
      );
    }
    const records = keys.flatMap((k) => objects.get(k)!);
    expect(records.map((r) => r.i)).toEqual([1, 2, 3, 4, 5]);
    for (const r of records) {
      expect(r.sensorId).toBe('line-1');
      expect(r.operatorId).toMatch(/^k1\.[a-z2-7]{32}$/);
    }
    expect(JSON.stringify(records)).not.toMatch(/OPERATOR-/);

    const shadow = await eventually(async () => {
      const out = await data.send(new GetThingShadowCommand({ thingName: THING, shadowName: 'health' }));
      const doc = JSON.parse(Buffer.from(out.payload!).toString()) as {
        state: {
          reported: { lastUploadAt: number | null; lastEventAckAt: number | null } & Record<string, unknown>;
        };
      };
      const rep = doc.state.reported;
      const spool = rep.spool as { telemetry?: { depth?: number } } | undefined;
      return rep.lastEventAckAt !== null && spool?.telemetry?.depth === 0 ? rep : undefined;
    }, 'health shadow');
    expect(shadow).toMatchObject({
      spool: { telemetry: { depth: 0 }, events: { depth: 0 }, frames: { depth: 0 } },
      deadletter: 1,
      lastUploadAt: expect.any(Number),
      lastEventAckAt: expect.any(Number),
    });
    expect(msgId).toMatch(/^[0-9a-f-]{36}$/);
  } finally {
    await gw.stop();
  }
});

it('spools while it cannot connect and drains the backlog after a restart, losing nothing', async () => {
  const before = await telemetryObjects();
  const offline = writeConfig('gw-offline.json', await freePort());
  const first = await startGateway(offline);
  for (let i = 1; i <= 9; i++)
    await first.gateway.ingest({ operatorId: `OFFLINE-${i}`, phase: 'offline', i });
  await first.gateway.emitEvent('state-change', { state: 'offline' });
  expect(first.channel.connected).toBe(false);
  await first.stop();
  expect(first.gateway.counters.uploadedBatches).toBe(0);

  const online = writeConfig('gw-online.json', tc.cloud.endpoints.mqttPort);
  expect(online.spool.dir).toBe(offline.spool.dir);
  const second = await startGateway(online);
  try {
    const gw = second.gateway;
    expect(gw.outstandingEvents).toBe(1);
    await eventually(
      () =>
        depth(gw, STREAMS.telemetry) === 0 && depth(gw, STREAMS.events) === 0 && gw.counters.eventsAcked === 1
          ? true
          : undefined,
      'backlog drained',
    );
    const after = await telemetryObjects();
    const fresh = [...after.keys()].filter((k) => !before.has(k)).sort();
    const records = fresh.flatMap((k) => after.get(k)!);
    expect(records.map((r) => r.i)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(records.every((r) => r.phase === 'offline')).toBe(true);
    expect(JSON.stringify(records)).not.toMatch(/OFFLINE-/);
  } finally {
    await second.stop();
  }
});

it('`edgefleet gateway run` runs the simulator pipeline and stops cleanly on SIGTERM', async () => {
  writeConfig('gw-cli.json', tc.cloud.endpoints.mqttPort, {
    spool: { dir: 'spool-cli' },
    ingest: { simulator: { intervalMs: 50, sensors: 2 } },
    pseudonymization: undefined,
  });
  const before = new Set((await telemetryObjects()).keys());
  const child = spawn(
    process.execPath,
    [
      join(process.cwd(), 'bin', 'edgefleet.js'),
      'gateway',
      'run',
      '--config',
      join(dev.outDir, 'gw-cli.json'),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    await eventually(
      () => (out.includes('"gateway ready"') ? true : undefined),
      `readiness (stderr: ${err})`,
      30_000,
    );
    await eventually(async () => {
      const keys = [...(await telemetryObjects()).keys()].filter((k) => !before.has(k));
      return keys.length > 0 ? keys : undefined;
    }, 'a simulator batch in S3');
  } finally {
    child.kill('SIGTERM');
  }
  expect(await exited).toBe(0);
  const lines = out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg?: string });
  expect(lines.some((l) => l.msg === 'gateway stopped')).toBe(true);
  const records = [...(await telemetryObjects()).entries()]
    .filter(([k]) => !before.has(k))
    .flatMap(([, r]) => r);
  expect(records[0]).toMatchObject({ sensorId: expect.stringMatching(/^sensor-/) });
}, 60_000);
