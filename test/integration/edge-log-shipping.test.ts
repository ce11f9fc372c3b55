/**
 * Gateway log shipping against the local cloud: a standalone gateway with a `logs` section puts its own
 * log lines and a followed file's lines into the gateway log stream with PutRecords, signed with the
 * credentials it is vended over MQTT (the session policy allows that stream). Read back with
 * GetShardIterator/GetRecords: every line once, in order per source. With the Kinesis endpoint
 * unreachable (a TCP proxy that refuses connections) the lines spool and arrive once it is back; on a
 * one-shard stream flooded beyond 1,000 records/s, PutRecords fails records and every line still
 * arrives once, in order per source.
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CreateStreamCommand,
  DeleteStreamCommand,
  GetRecordsCommand,
  type GetRecordsCommandOutput,
  GetShardIteratorCommand,
  KinesisClient,
  ListShardsCommand,
  PutRecordsCommand,
} from '@aws-sdk/client-kinesis';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import pino, { type Logger } from 'pino';
import { GATEWAY_LOGS_STREAM } from '../../cloud/rules/streams.js';
import { type GatewayConfig, loadGatewayConfig } from '../../edge-component/config.js';
import { LOGS_STREAM } from '../../edge-component/gateway.js';
import { LogTee } from '../../edge-component/logs/tee.js';
import { type LogRecord, LogRecordSchema } from '../../protocol/logs.js';
import {
  eventually,
  localGatewayConfig,
  removeDir,
  startTestCloud,
  type TestCloud,
  type TestDevice,
} from '../helpers/cloud.js';
import { type StandaloneGateway, startStandaloneGateway } from '../helpers/gateway.js';
import { TcpProxy } from '../helpers/proxy.js';

let tc: TestCloud;
let kc: KinesisClient;

beforeAll(async () => {
  tc = await startTestCloud();
  kc = new KinesisClient(tc.cloud.sdkConfig());
});

afterAll(async () => {
  kc?.destroy();
  await tc?.stop();
  if (tc) removeDir(tc.dataDir);
});

interface Shipped {
  shard: string;
  key: string;
  record: LogRecord;
}

/** Every record of `thing` in the stream, in each shard's order. */
async function shipped(thing: string): Promise<Shipped[]> {
  const out: Shipped[] = [];
  const shards = (await kc.send(new ListShardsCommand({ StreamName: GATEWAY_LOGS_STREAM }))).Shards ?? [];
  for (const shard of shards) {
    const start = await kc.send(
      new GetShardIteratorCommand({
        StreamName: GATEWAY_LOGS_STREAM,
        ShardId: shard.ShardId,
        ShardIteratorType: 'TRIM_HORIZON',
      }),
    );
    let it = start.ShardIterator;
    while (it) {
      const r: GetRecordsCommandOutput = await kc.send(
        new GetRecordsCommand({ ShardIterator: it, Limit: 10_000 }),
      );
      for (const rec of r.Records ?? []) {
        if (!rec.PartitionKey?.startsWith(`${thing}/`)) continue;
        const record = LogRecordSchema.parse(JSON.parse(Buffer.from(rec.Data!).toString('utf8')));
        out.push({ shard: shard.ShardId!, key: rec.PartitionKey, record });
      }
      it = r.NextShardIterator;
      if ((r.Records ?? []).length === 0 || r.MillisBehindLatest === 0) break;
    }
  }
  return out;
}

/** The records of one source, in stream order. */
const ofSource = (all: Shipped[], source: string) => all.filter((s) => s.record.source === source);

/** Whether records come in the order of (seq, n). */
function inOrder(records: LogRecord[]): boolean {
  for (let i = 1; i < records.length; i++) {
    const a = records[i - 1]!;
    const b = records[i]!;
    if (b.seq < a.seq || (b.seq === a.seq && b.n <= a.n)) return false;
  }
  return true;
}

/** No record twice (the same seq and n of a source). */
function noDuplicates(all: Shipped[]): void {
  const ids = all.map((s) => `${s.record.source}#${s.record.seq}.${s.record.n}`);
  expect(new Set(ids).size).toBe(ids.length);
}

async function provisionGateway(
  thing: string,
  logs: Record<string, unknown>,
  aws: Record<string, unknown> = {},
): Promise<{ dev: TestDevice; config: GatewayConfig; logFile: string }> {
  const dev = await tc.provision(thing);
  const file = join(dev.outDir, 'gateway.json');
  writeFileSync(
    file,
    JSON.stringify(
      localGatewayConfig(tc.cloud, thing, {
        iot: { reconnect: { initialDelayMs: 50, maxDelayMs: 500 } },
        aws,
        credentials: {
          requestTimeoutMs: 5000,
          maxAttempts: 5,
          backoff: { initialDelayMs: 50, maxDelayMs: 500 },
        },
        health: { intervalMs: 60_000 },
        logs: {
          files: [{ path: 'app.log' }],
          batch: { maxAgeMs: 50 },
          pollIntervalMs: 20,
          backoff: { initialDelayMs: 20, maxDelayMs: 300 },
          ...logs,
        },
      }),
    ),
  );
  const logFile = join(dev.outDir, 'app.log');
  writeFileSync(logFile, '');
  return { dev, config: loadGatewayConfig(file), logFile };
}

/** A root logger on a LogTee (as `gateway run` makes it), writing nowhere else. */
function teeLogger(): { logger: Logger; tee: LogTee } {
  const tee = new LogTee({ write: () => true });
  return { logger: pino({ level: 'info' }, tee), tee };
}

const lines = (prefix: string, from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => `${prefix} ${from + i}`);

it('ships its own log lines and a followed file, each line once and in order per source', async () => {
  const thing = 'gw-logs-ship';
  const { config, logFile } = await provisionGateway(thing, {});
  const { logger, tee } = teeLogger();
  const gw: StandaloneGateway = await startStandaloneGateway(config, logger, { logTap: tee });
  try {
    const fileLines = lines('file line', 0, 300);
    for (let i = 0; i < 300; i += 100) appendFileSync(logFile, `${fileLines.slice(i, i + 100).join('\n')}\n`);
    // A last line without its newline is not shipped until the newline comes.
    appendFileSync(logFile, 'partial');
    for (let i = 0; i < 50; i++) logger.info({ i }, `marker ${i}`);
    const all = await eventually(
      async () => {
        const got = await shipped(thing);
        const markers = ofSource(got, 'gateway').filter((s) => s.record.msg?.startsWith('marker '));
        return ofSource(got, 'app.log').length >= 300 && markers.length >= 50 ? got : undefined;
      },
      'the file lines and the markers in the stream',
      30_000,
    );
    const file = ofSource(all, 'app.log');
    expect(file.map((s) => s.record.line)).toEqual(fileLines);
    appendFileSync(logFile, ' now complete\n');
    await eventually(
      async () => (ofSource(await shipped(thing), 'app.log').length === 301 ? true : undefined),
      'the completed line',
    );
    const after = await shipped(thing);
    expect(ofSource(after, 'app.log').map((s) => s.record.line)[300]).toBe('partial now complete');
    const component = ofSource(after, 'gateway');
    expect(component.filter((s) => s.record.msg?.startsWith('marker ')).map((s) => s.record.msg)).toEqual(
      lines('marker', 0, 50),
    );
    // The gateway's own lines (its logger's) are there, with their level and fields.
    expect(component.find((s) => s.record.msg === 'gateway started')?.record).toMatchObject({
      thing,
      level: 'info',
      data: { component: 'gateway', thing },
    });
    // Never the shipper's own lines.
    expect(component.filter((s) => s.record.data?.component === 'log-shipper')).toEqual([]);
    for (const source of ['app.log', 'gateway']) {
      const records = ofSource(after, source);
      expect(inOrder(records.map((s) => s.record))).toBe(true);
      // One partition key per source: one shard.
      expect(new Set(records.map((s) => s.key))).toEqual(new Set([`${thing}/${source}`]));
      expect(new Set(records.map((s) => s.shard)).size).toBe(1);
    }
    noDuplicates(after);
    expect(gw.gateway.counters.logRecordsShipped).toBeGreaterThanOrEqual(351);
    expect(gw.gateway.healthReport().logs).toMatchObject({
      failedCalls: 0,
      droppedLines: 0,
      droppedEntries: 0,
    });
  } finally {
    await gw.stop();
  }
});

it('spools the lines while the Kinesis endpoint is unreachable and ships them all once it is back', async () => {
  const thing = 'gw-logs-offline';
  const proxy = await TcpProxy.start(tc.cloud.endpoints.host, tc.cloud.endpoints.httpPort);
  const { config, logFile } = await provisionGateway(thing, {}, { kinesisEndpoint: proxy.url });
  const { logger, tee } = teeLogger();
  const gw = await startStandaloneGateway(config, logger, { logTap: tee });
  const health = () => gw.gateway.healthReport().logs as { failedCalls: number };
  const spooled = () => gw.gateway.spool.stats().streams.find((s) => s.name === LOGS_STREAM)!.depth;
  try {
    appendFileSync(logFile, `${lines('before', 0, 20).join('\n')}\n`);
    await eventually(
      async () => (ofSource(await shipped(thing), 'app.log').length === 20 ? true : undefined),
      'the lines before the outage',
    );
    proxy.down();
    const failedBefore = health().failedCalls;
    appendFileSync(logFile, `${lines('during', 0, 150).join('\n')}\n`);
    for (let i = 0; i < 30; i++) logger.warn({ i }, `offline ${i}`);
    await eventually(
      () => (health().failedCalls > failedBefore + 1 && spooled() > 0 ? true : undefined),
      'failed calls while the lines wait in the spool',
      30_000,
    );
    const during = await shipped(thing);
    expect(ofSource(during, 'app.log').map((s) => s.record.line)).toEqual(lines('before', 0, 20));
    proxy.up();
    const all = await eventually(
      async () => {
        const got = await shipped(thing);
        const offline = ofSource(got, 'gateway').filter((s) => s.record.msg?.startsWith('offline '));
        return ofSource(got, 'app.log').length >= 170 && offline.length >= 30 ? got : undefined;
      },
      'every line after the outage',
      30_000,
    );
    expect(ofSource(all, 'app.log').map((s) => s.record.line)).toEqual([
      ...lines('before', 0, 20),
      ...lines('during', 0, 150),
    ]);
    const offline = ofSource(all, 'gateway').filter((s) => s.record.msg?.startsWith('offline '));
    expect(offline.map((s) => s.record.msg)).toEqual(lines('offline', 0, 30));
    expect(offline.every((s) => s.record.level === 'warn')).toBe(true);
    for (const source of ['app.log', 'gateway'])
      expect(inOrder(ofSource(all, source).map((s) => s.record))).toBe(true);
    noDuplicates(all);
  } finally {
    await gw.stop();
    await proxy.stop();
  }
});

it('delivers every line once, in order per source, through a one-shard stream flooded beyond its quota', async () => {
  // The stream again, with one shard (1,000 records per second).
  await kc.send(new DeleteStreamCommand({ StreamName: GATEWAY_LOGS_STREAM }));
  await kc.send(new CreateStreamCommand({ StreamName: GATEWAY_LOGS_STREAM, ShardCount: 1 }));
  const thing = 'gw-logs-flood';
  const { config, logFile } = await provisionGateway(thing, {
    // Calls of 300 records: a second's quota of 1,000 ends within a call, which then fails in part.
    batch: { maxRecords: 300, maxAgeMs: 20 },
  });
  const { logger, tee } = teeLogger();
  const gw = await startStandaloneGateway(config, logger, { logTap: tee });
  // Another producer on the same shard, while the gateway starts shipping.
  const filler = (async () => {
    const record = { Data: Buffer.from('filler'), PartitionKey: 'filler' };
    for (let i = 0; i < 10; i++) {
      await kc.send(
        new PutRecordsCommand({
          StreamName: GATEWAY_LOGS_STREAM,
          Records: Array.from({ length: 200 }, () => record),
        }),
      );
    }
  })();
  const total = 3000;
  const fileLines = lines('flood', 0, total);
  try {
    for (let i = 0; i < total; i += 500)
      appendFileSync(logFile, `${fileLines.slice(i, i + 500).join('\n')}\n`);
    for (let i = 0; i < 300; i++) logger.info({ i }, `busy ${i}`);
    await eventually(
      () =>
        gw.gateway.spool.stats().streams.find((s) => s.name === LOGS_STREAM)!.depth === 0 &&
        gw.gateway.counters.logRecordsShipped >= total + 300
          ? true
          : undefined,
      'every line shipped',
      60_000,
    );
  } finally {
    await filler;
  }
  try {
    const all = await eventually(
      async () => {
        const got = await shipped(thing);
        const busy = ofSource(got, 'gateway').filter((s) => s.record.msg?.startsWith('busy '));
        return ofSource(got, 'app.log').length >= total && busy.length >= 300 ? got : undefined;
      },
      'every line in the stream',
      30_000,
    );
    // PutRecords did fail records (the quota), and only those were sent again.
    expect(gw.gateway.counters.logRecordsRetried).toBeGreaterThan(0);
    noDuplicates(all);
    // Kinesis may accept a record after a failed one of the same shard within one call; the shipper
    // counts that (the retried record then lands after it, and seq/n give the order back). Otherwise
    // the stream holds each source in order.
    const reordered = (gw.gateway.healthReport().logs as { reordered: number }).reordered;
    const bySeq = (records: LogRecord[]) => [...records].sort((a, b) => a.seq - b.seq || a.n - b.n);
    const file = ofSource(all, 'app.log').map((s) => s.record);
    const busy = ofSource(all, 'gateway')
      .map((s) => s.record)
      .filter((r) => r.msg?.startsWith('busy '));
    for (const records of [file, busy]) if (reordered === 0) expect(inOrder(records)).toBe(true);
    expect(bySeq(file).map((r) => r.line)).toEqual(fileLines);
    expect(bySeq(busy).map((r) => r.msg)).toEqual(lines('busy', 0, 300));
  } finally {
    await gw.stop();
  }
});
