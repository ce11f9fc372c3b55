/**
 * The gateway over a bad network: a TCP proxy between the gateway and the local cloud's MQTT endpoint
 * cuts every connection again and again while records and events keep coming. Afterwards every record
 * is in the lake exactly once, and every event was stored by the cloud once and acknowledged once in
 * effect (the QoS 2 emulation: retransmissions until acked, duplicates absorbed by the conditional write).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
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
  removeDir,
  startTestCloud,
  type TestCloud,
  type TestDevice,
} from '../helpers/cloud.js';
import { TcpProxy } from '../helpers/proxy.js';

const THING = 'gw-network-1';
const PHASES = 6;
const RECORDS_PER_PHASE = 15;
const EVENTS_PER_PHASE = 3;
const logger = pino({ level: 'silent' });

let tc: TestCloud;
let dev: TestDevice;
let s3: S3Client;

async function listAll(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket: LOCAL_DATA_BUCKET, Prefix: prefix, ContinuationToken: token }),
    );
    for (const o of page.Contents ?? []) keys.push(o.Key!);
    token = page.NextContinuationToken;
  } while (token);
  return keys;
}

async function lakeRecords(): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (const key of await listAll(`raw/${THING}/telemetry/`)) {
    const got = await s3.send(new GetObjectCommand({ Bucket: LOCAL_DATA_BUCKET, Key: key }));
    const text = gunzipSync(Buffer.from(await got.Body!.transformToByteArray())).toString('utf8');
    for (const line of text.split('\n')) if (line) out.push(JSON.parse(line) as Record<string, unknown>);
  }
  return out;
}

beforeAll(async () => {
  tc = await startTestCloud();
  dev = await tc.provision(THING);
  s3 = new S3Client({ ...tc.cloud.sdkConfig(), forcePathStyle: true });
});

afterAll(async () => {
  s3?.destroy();
  await tc?.stop();
  if (tc) removeDir(tc.dataDir);
});

function writeConfig(port: number): GatewayConfig {
  const file = join(dev.outDir, 'gw-network.json');
  writeFileSync(
    file,
    JSON.stringify(
      localGatewayConfig(tc.cloud, THING, {
        iot: {
          host: '127.0.0.1',
          port,
          connectTimeoutMs: 2000,
          reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
        },
        credentials: {
          requestTimeoutMs: 1000,
          maxAttempts: 10,
          backoff: { initialDelayMs: 20, maxDelayMs: 200 },
        },
        upload: { maxAttempts: 2, backoff: { initialDelayMs: 50, maxDelayMs: 300 } },
        spool: { dir: 'spool-network' },
        batching: { maxRecords: 7, maxBytes: 65536, maxAgeMs: 200 },
        events: { retransmitInitialMs: 200, retransmitMaxMs: 1000 },
        health: { intervalMs: 60_000 },
      }),
    ),
  );
  return loadGatewayConfig(file);
}

it('loses no record and acknowledges every event once while the connection is cut again and again', async () => {
  const proxy = await TcpProxy.start(tc.cloud.endpoints.host, tc.cloud.endpoints.mqttPort);
  const config = writeConfig(proxy.port);
  const channel = mqttChannelFromConfig(config.iot!, THING, { logger });
  const credentials = credentialProviderFromConfig(config, { channel, logger });
  const uploader = S3Uploader.fromConfig(config, credentials, { logger });
  const gateway = await Gateway.start(config, { channel, uploader, logger });
  const depth = (stream: string) => gateway.spool.stats().streams.find((s) => s.name === stream)?.depth;
  const msgIds: string[] = [];
  try {
    for (let phase = 0; phase < PHASES; phase++) {
      await eventually(
        () => (channel.connected ? true : undefined),
        `reconnection before phase ${phase}`,
        20_000,
      );
      // Records and events of this phase go in while the link is up ...
      const work: Promise<unknown>[] = [];
      for (let i = 0; i < RECORDS_PER_PHASE; i++) {
        work.push(gateway.ingest({ id: `p${phase}-r${i}`, sensorId: 'line-1', value: i }));
      }
      for (let i = 0; i < EVENTS_PER_PHASE; i++) {
        work.push(gateway.emitEvent('alarm', { phase, i }).then((r) => msgIds.push(r.msgId)));
      }
      await Promise.all(work);
      // ... and the link is cut once traffic of this phase is on the wire (uploads, events, acks).
      const before = gateway.counters.eventPublishes;
      await eventually(
        () => (gateway.counters.eventPublishes > before || proxy.bytesSinceCut > 2000 ? true : undefined),
        `traffic in phase ${phase}`,
        20_000,
      );
      proxy.cutAll();
    }
    await eventually(
      () =>
        depth(STREAMS.events) === 0 &&
        depth(STREAMS.telemetry) === 0 &&
        gateway.counters.eventsAcked === PHASES * EVENTS_PER_PHASE
          ? true
          : undefined,
      'everything acknowledged and uploaded after the cuts',
      60_000,
    );
  } finally {
    await gateway.stop();
    uploader.destroy();
    await credentials.close();
    await channel.close();
    await proxy.stop();
  }
  expect(proxy.cuts).toBe(PHASES);

  const records = await lakeRecords();
  const ids = records.map((r) => String(r.id));
  expect(new Set(ids).size).toBe(ids.length);
  expect(ids.sort()).toEqual(
    Array.from({ length: PHASES }, (_, p) =>
      Array.from({ length: RECORDS_PER_PHASE }, (_, i) => `p${p}-r${i}`),
    )
      .flat()
      .sort(),
  );

  // The cloud stored each event once (its conditional write), whatever the retransmissions.
  const stored = await listAll(`events/${THING}/`);
  expect(stored).toHaveLength(PHASES * EVENTS_PER_PHASE);
  for (const msgId of msgIds) expect(stored.filter((k) => k.includes(msgId))).toHaveLength(1);
  expect(gateway.counters.eventsAcked).toBe(PHASES * EVENTS_PER_PHASE);
  expect(gateway.counters.eventsRejected).toBe(0);
});
