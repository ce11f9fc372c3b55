/**
 * The data lake end to end: one gateway streams its telemetry (`telemetry.delivery: 'stream'`, one QoS 1
 * message per record on dt/{thing}/telemetry → rule edgefleet_telemetry → Firehose, partitioned by
 * thing, date and hour, GZIP), another uploads it in batches (raw/{thing}/telemetry/...); the
 * `telemetry` view of `lake query` sees both with the right counts, and nothing in the lake holds a raw
 * operator id.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import pino from 'pino';
import { LakeEngine } from '../../cloud/local/lake/index.js';
import { LOCAL_DATA_BUCKET } from '../../cloud/rules/resources.js';
import { loadGatewayConfig } from '../../edge-component/config.js';
import { type Gateway, STREAMS } from '../../edge-component/gateway.js';
import {
  eventually,
  localGatewayConfig,
  PSEUDONYMIZE_OPERATOR,
  removeDir,
  startTestCloud,
  type TestCloud,
} from '../helpers/cloud.js';
import { startStandaloneGateway } from '../helpers/gateway.js';

const STREAMING = 'gw-lake-stream';
const BATCHING = 'gw-lake-batch';
const RECORDS = 60;
const logger = pino({ level: 'silent' });
let tc: TestCloud;

beforeAll(async () => {
  // Objects within a second of the first record, instead of the deployed 60 s.
  tc = await startTestCloud(undefined, { telemetryBuffering: { intervalInSeconds: 1 } });
});

afterAll(async () => {
  await tc?.stop();
  if (tc) removeDir(tc.dataDir);
});

async function startGateway(thing: string, delivery: 'stream' | 'upload') {
  const dev = await tc.provision(thing);
  const file = join(dev.outDir, 'gw.json');
  writeFileSync(
    file,
    JSON.stringify(
      localGatewayConfig(tc.cloud, thing, {
        pseudonymization: PSEUDONYMIZE_OPERATOR,
        spool: { dir: 'spool' },
        batching: { maxRecords: 25, maxBytes: 65536, maxAgeMs: 200 },
        telemetry: { delivery },
      }),
    ),
  );
  const gw = await startStandaloneGateway(loadGatewayConfig(file), logger);
  await eventually(() => (gw.channel.connected ? true : undefined), `${thing} connected`);
  return gw;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)],
  );
}

it('telemetry streamed through the rule and Firehose, and uploaded in batches, is queryable with the right counts and no raw IDs', async () => {
  const streaming = await startGateway(STREAMING, 'stream');
  const batching = await startGateway(BATCHING, 'upload');
  try {
    for (let i = 0; i < RECORDS; i++) {
      for (const g of [streaming, batching]) {
        const r = await g.gateway.ingest({
          sensorId: `sensor-${i % 3}`,
          ts: Date.now(),
          seq: i,
          temperature: 20 + (i % 5),
          vibration: 0.1,
          operatorId: `OPERATOR-${1000 + (i % 7)}`,
        });
        expect(r).toMatchObject({ accepted: true });
      }
    }
    const depth = (g: Gateway) => g.spool.stats().streams.find((s) => s.name === STREAMS.telemetry)?.depth;
    await eventually(
      () => (depth(streaming.gateway) === 0 ? true : undefined),
      'streamed records acknowledged',
    );
    await eventually(() => (depth(batching.gateway) === 0 ? true : undefined), 'batches uploaded');
    expect(streaming.gateway.counters.streamedRecords).toBe(RECORDS);
    // Firehose delivers the streamed records within its 1 s buffering interval.
    await tc.cloud.rules.idle();
    const lake = join(tc.dataDir, 's3', LOCAL_DATA_BUCKET);
    const streamedFiles = await eventually(() => {
      const dir = join(lake, 'lake', 'telemetry', `thing=${STREAMING}`);
      let files: string[];
      try {
        files = filesUnder(dir);
      } catch {
        return undefined;
      }
      const lines = files.reduce(
        (n, f) => n + gunzipSync(readFileSync(f)).toString().split('\n').length - 1,
        0,
      );
      return lines === RECORDS ? files : undefined;
    }, 'Firehose objects with every streamed record');
    for (const f of streamedFiles) {
      expect(relative(lake, f)).toMatch(
        /^lake\/telemetry\/thing=gw-lake-stream\/dt=\d{4}-\d{2}-\d{2}\/hour=\d{2}\/edgefleet-telemetry-\d+-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-[0-9a-f-]+\.gz$/,
      );
    }

    const engine = await LakeEngine.open({ dataDir: tc.dataDir });
    try {
      const counts = await engine.query(
        'SELECT thing, count(*) AS records, count(ingest_ts) AS with_ingest_ts, count(DISTINCT operatorId) AS operators FROM telemetry GROUP BY thing ORDER BY thing',
      );
      expect(counts.rows).toEqual([
        [BATCHING, BigInt(RECORDS), 0n, 7n],
        [STREAMING, BigInt(RECORDS), BigInt(RECORDS), 7n],
      ]);
      const raw = await engine.query(
        "SELECT count(*) FROM telemetry WHERE operatorId NOT LIKE 'k1.%' OR operatorId IS NULL",
      );
      expect(raw.rows).toEqual([[0n]]);
      const seqs = await engine.query(
        `SELECT count(DISTINCT seq), min(seq), max(seq) FROM telemetry WHERE thing = '${STREAMING}'`,
      );
      expect(seqs.rows).toEqual([[BigInt(RECORDS), 0n, BigInt(RECORDS - 1)]]);
    } finally {
      engine.close();
    }
    // Nothing that left either gateway holds a raw operator id.
    for (const f of filesUnder(lake)) {
      const bytes = readFileSync(f);
      const text = f.endsWith('.gz') ? gunzipSync(bytes).toString() : bytes.toString();
      expect(text).not.toMatch(/OPERATOR-\d+/);
    }
  } finally {
    await streaming.stop();
    await batching.stop();
  }
});
