/**
 * Crash test of the whole gateway process: `edgefleet gateway run` ingests sensor records from a plain
 * local MQTT broker (aedes, QoS 1) and uploads them in batches to the local cloud's S3; the test kills it
 * with SIGKILL at random points during ingest, batching and upload, many cycles over the same spool,
 * then lets a last gateway drain and stop on SIGTERM. Every record whose PUBACK the gateway sent (it
 * sends it only once the record is durable) must be in the lake or the spool afterwards, and no record
 * may be in the lake twice.
 *
 * The gateway's PUBACKs are observed on the wire: the gateway reaches the broker through a TCP tap that
 * reads the MQTT frames in both directions (PUBLISH to the gateway: message id -> record id; PUBACK from
 * the gateway: that record is acknowledged). The sensor's own PUBACK comes from the broker and says
 * nothing about the gateway.
 *
 * The kill points are drawn from a seeded PRNG (the seed is printed; set GATEWAY_CRASH_SEED to replay
 * one) and are reached by waiting on events: the gateway's log lines ('gateway started', 'batch
 * uploaded', ...) and its PUBACKs.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import { LOCAL_DATA_BUCKET } from '../../cloud/rules/resources.js';
import { type GatewayConfig, loadGatewayConfig } from '../../edge-component/config.js';
import { STREAMS } from '../../edge-component/gateway.js';
import { Spool } from '../../edge-component/spool/index.js';
import {
  localGatewayConfig,
  PSEUDONYMIZE_OPERATOR,
  removeDir,
  startTestCloud,
  type TestCloud,
  type TestDevice,
} from '../helpers/cloud.js';

const THING = 'gw-crash-1';
const TOPIC = 'sensors/line-1';
const SEED = Number(process.env.GATEWAY_CRASH_SEED ?? randomInt(2 ** 31));
/** Kill cycles; GATEWAY_CRASH_CYCLES raises it for a longer soak run. */
const CYCLES = Number(process.env.GATEWAY_CRASH_CYCLES ?? 12);
/** Records published to the gateway but not yet acknowledged by it, at most. */
const WINDOW = 16;
/** Records published per cycle, at most (keeps the backlog the last gateway drains small). */
const CYCLE_CAP = 400;
const WAIT_MS = 20_000;

/** mulberry32: a small seeded PRNG, so that a failing run can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ------------------------------------------------------------------ MQTT frames on the wire

interface Frame {
  type: number;
  flags: number;
  body: Buffer;
}

/** Splits an MQTT 3.1.1 byte stream into control packets (fixed header, remaining length, body). */
class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: Frame[] = [];
    for (;;) {
      if (this.buf.length < 2) return out;
      let len = 0;
      let mul = 1;
      let pos = 1;
      for (;;) {
        const b = this.buf[pos];
        if (b === undefined) return out;
        len += (b & 0x7f) * mul;
        mul *= 128;
        pos++;
        if ((b & 0x80) === 0) break;
        if (pos > 4) throw new Error('malformed MQTT remaining length');
      }
      if (this.buf.length < pos + len) return out;
      const head = this.buf[0]!;
      out.push({ type: head >> 4, flags: head & 0x0f, body: this.buf.subarray(pos, pos + len) });
      this.buf = this.buf.subarray(pos + len);
    }
  }
}

const PUBLISH = 3;
const PUBACK = 4;

/**
 * A TCP tap in front of the broker for the gateway's connection: forwards bytes both ways and reports
 * the record id of every QoS 1 PUBLISH that the gateway acknowledged with a PUBACK.
 */
async function startTap(brokerPort: number, onAck: (id: string) => void, onProblem: (what: string) => void) {
  const sockets = new Set<Socket>();
  const server: Server = createServer((down) => {
    const up = connect(brokerPort, '127.0.0.1');
    sockets.add(down);
    sockets.add(up);
    const toGateway = new FrameReader();
    const fromGateway = new FrameReader();
    const inflight = new Map<number, string>();
    const close = () => {
      down.destroy();
      up.destroy();
      sockets.delete(down);
      sockets.delete(up);
    };
    down.on('error', close).on('close', close);
    up.on('error', close).on('close', close);
    up.on('data', (chunk: Buffer) => {
      for (const f of toGateway.push(chunk)) {
        if (f.type !== PUBLISH || ((f.flags >> 1) & 3) === 0) continue;
        const topicLen = f.body.readUInt16BE(0);
        const msgId = f.body.readUInt16BE(2 + topicLen);
        const payload = f.body.subarray(4 + topicLen).toString('utf8');
        inflight.set(msgId, (JSON.parse(payload) as { id: string }).id);
      }
      down.write(chunk);
    });
    down.on('data', (chunk: Buffer) => {
      for (const f of fromGateway.push(chunk)) {
        if (f.type !== PUBACK) continue;
        const msgId = f.body.readUInt16BE(0);
        const id = inflight.get(msgId);
        if (id === undefined) {
          onProblem(`PUBACK for unknown message id ${msgId}`);
          continue;
        }
        inflight.delete(msgId);
        onAck(id);
      }
      up.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ------------------------------------------------------------------ the gateway child process

interface LogLine {
  msg?: string;
  [k: string]: unknown;
}

/** `edgefleet gateway run` as a child; its JSON log lines can be waited on. */
class GatewayChild {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  stderr = '';
  exitCode: number | null | undefined;
  exitSignal: NodeJS.Signals | null | undefined;
  readonly exited: Promise<void>;
  private buf = '';
  private waiters = new Set<() => void>();

  constructor(configFile: string) {
    this.child = spawn(
      process.execPath,
      [
        join(process.cwd(), 'bin', 'edgefleet.js'),
        'gateway',
        'run',
        '--config',
        configFile,
        '--log-level',
        'info',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child.stdout!.on('data', (d: Buffer) => {
      this.buf += d.toString();
      let nl = this.buf.indexOf('\n');
      while (nl >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        if (line.startsWith('{')) this.lines.push(JSON.parse(line) as LogLine);
        nl = this.buf.indexOf('\n');
      }
      this.notify();
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        this.notify();
        resolve();
      }),
    );
  }

  get alive(): boolean {
    return this.exitCode === undefined;
  }

  /** Log lines with this message. */
  count(msg: string): number {
    return this.lines.filter((l) => l.msg === msg).length;
  }

  notify(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolves once `cond()` holds (checked on every log line and on `notify()`), or rejects after `timeoutMs`. */
  until(cond: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (cond()) {
          done();
          resolve();
        } else if (!this.alive) {
          done();
          reject(
            new Error(`gateway exited (${this.exitCode ?? this.exitSignal}) before ${what}: ${this.tail()}`),
          );
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${this.tail()}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
    });
  }

  tail(): string {
    const last = this.lines
      .slice(-5)
      .map((l) => JSON.stringify(l))
      .join('\n');
    return `last log lines:\n${last}\nstderr: ${this.stderr.slice(-2000)}`;
  }

  async kill(signal: NodeJS.Signals): Promise<void> {
    if (this.alive) this.child.kill(signal);
    await this.exited;
  }
}

/** Uploads that found their key taken with the same content: a batch re-cut after a crash. */
function alreadyUploaded(gw: GatewayChild): number {
  return gw.lines.filter((l) => l.msg === 'batch uploaded' && l.alreadyUploaded === true).length;
}

// ------------------------------------------------------------------ setup

let tc: TestCloud;
let dev: TestDevice;
let s3: S3Client;
let broker: Aedes;
let brokerServer: Server;
let tap: Awaited<ReturnType<typeof startTap>> | undefined;
let sensor: MqttClient | undefined;
let current: GatewayChild | undefined;
let configFile: string;
let config: GatewayConfig;

/** Every record id the gateway acknowledged; the per-cycle listener (for kill points) is swapped in. */
const acked = new Set<string>();
const published = new Set<string>();
/** What the tap saw that should not happen (a PUBACK for no PUBLISH, a record acknowledged twice). */
const wireProblems: string[] = [];
let onGatewayAck: () => void = () => {};

beforeAll(async () => {
  tc = await startTestCloud();
  dev = await tc.provision(THING);
  s3 = new S3Client({ ...tc.cloud.sdkConfig(), forcePathStyle: true });
  broker = await Aedes.createBroker();
  brokerServer = createServer(broker.handle);
  await new Promise<void>((resolve) => brokerServer.listen(0, '127.0.0.1', resolve));
  const brokerPort = (brokerServer.address() as { port: number }).port;
  tap = await startTap(
    brokerPort,
    (id) => {
      if (acked.has(id)) wireProblems.push(`record ${id} acknowledged twice`);
      acked.add(id);
      onGatewayAck();
    },
    (what) => wireProblems.push(what),
  );
  sensor = await mqtt.connectAsync(`mqtt://127.0.0.1:${brokerPort}`, {
    clientId: 'sensor-line-1',
    reconnectPeriod: 0,
  });
  configFile = join(dev.outDir, 'gw-crash.json');
  writeFileSync(
    configFile,
    JSON.stringify(
      localGatewayConfig(tc.cloud, THING, {
        iot: { reconnect: { initialDelayMs: 50, maxDelayMs: 500 } },
        credentials: { requestTimeoutMs: 5000, maxAttempts: 3 },
        upload: { maxAttempts: 2, backoff: { initialDelayMs: 100, maxDelayMs: 500 } },
        pseudonymization: PSEUDONYMIZE_OPERATOR,
        spool: { dir: 'spool-crash' },
        batching: { maxRecords: 20, maxBytes: 65536, maxAgeMs: 200 },
        health: { intervalMs: 1000 },
        drain: { concurrency: 2 },
        ingest: { localBroker: { url: `mqtt://127.0.0.1:${tap.port}`, topics: ['sensors/#'] } },
      }),
    ),
  );
  config = loadGatewayConfig(configFile);
}, 30_000);

afterAll(async () => {
  await current?.kill('SIGKILL');
  await sensor?.endAsync(true).catch(() => {});
  await tap?.close();
  if (broker) await new Promise<void>((resolve) => broker.close(() => resolve()));
  if (brokerServer) await new Promise<void>((resolve) => brokerServer.close(() => resolve()));
  s3?.destroy();
  await tc?.stop();
  if (tc) removeDir(tc.dataDir);
});

// ------------------------------------------------------------------ the sensor

/**
 * Publishes records with unique ids, at most WINDOW of them not yet acknowledged by the gateway, until
 * stopped or CYCLE_CAP records are out; each gateway PUBACK lets the next one go.
 */
function startSensor(cycle: number) {
  let sent = 0;
  let ackedInCycle = 0;
  let running = true;
  const fill = () => {
    while (running && sent < CYCLE_CAP && sent - ackedInCycle < WINDOW) {
      sent++;
      const id = `c${cycle}-r${sent}`;
      published.add(id);
      const record = { id, sensorId: 'line-1', operatorId: `OP-${sent % 7}`, temp: 20 + (sent % 10) / 10 };
      sensor!.publish(TOPIC, JSON.stringify(record), { qos: 1 });
    }
  };
  onGatewayAck = () => {
    ackedInCycle++;
    fill();
    current?.notify();
  };
  fill();
  return {
    get acked() {
      return ackedInCycle;
    },
    get exhausted() {
      return sent >= CYCLE_CAP;
    },
    stop() {
      running = false;
      onGatewayAck = () => {};
    },
  };
}

// ------------------------------------------------------------------ the lake and the spool

const lakeObjects = new Map<string, string[]>();

/** Reads the telemetry objects not read yet (objects are written once: If-None-Match). */
async function refreshLake(): Promise<void> {
  let token: string | undefined;
  do {
    const list = await s3.send(
      new ListObjectsV2Command({
        Bucket: LOCAL_DATA_BUCKET,
        Prefix: `raw/${THING}/telemetry/`,
        ...(token ? { ContinuationToken: token } : {}),
      }),
    );
    for (const o of list.Contents ?? []) {
      if (lakeObjects.has(o.Key!)) continue;
      const got = await s3.send(new GetObjectCommand({ Bucket: LOCAL_DATA_BUCKET, Key: o.Key! }));
      const text = gunzipSync(Buffer.from(await got.Body!.transformToByteArray())).toString('utf8');
      const ids = text
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => (JSON.parse(l) as { id: string }).id);
      lakeObjects.set(o.Key!, ids);
    }
    token = list.IsTruncated ? list.NextContinuationToken : undefined;
  } while (token);
}

function lakeIds(): Map<string, number> {
  const n = new Map<string, number>();
  for (const ids of lakeObjects.values()) for (const id of ids) n.set(id, (n.get(id) ?? 0) + 1);
  return n;
}

/** The record ids in the spool's telemetry stream (an entry holds one or more NDJSON lines). */
async function spoolIds(): Promise<string[]> {
  const s = config.spool;
  const spool = await Spool.open({
    dir: s.dir,
    streams: Object.values(STREAMS).map((name) => ({ name, ...s.streams[name] })),
  });
  try {
    const entries = await spool.read(STREAMS.telemetry, { maxEntries: 1_000_000, maxBytes: 1e12 });
    return entries.flatMap((e) =>
      Buffer.from(e.bytes)
        .toString('utf8')
        .split('\n')
        .map((l) => (JSON.parse(l) as { id: string }).id),
    );
  } finally {
    await spool.close();
  }
}

// ------------------------------------------------------------------ the test

type Mode = 'boot' | 'ingest' | 'upload';

/**
 * The kill cycles, the drain and the checks; appends what happened to `history` (printed on failure).
 */
async function crashAndCheck(
  rand: () => number,
  pick: (lo: number, hi: number) => number,
  history: string[],
) {
  let uploadsBeforeKill = 0;
  for (let cycle = 1; cycle <= CYCLES; cycle++) {
    const r = rand();
    const mode: Mode = r < 0.2 ? 'boot' : r < 0.6 ? 'ingest' : 'upload';
    const gw = new GatewayChild(configFile);
    current = gw;
    let what = '';
    let sensorRun: ReturnType<typeof startSensor> | undefined;
    try {
      if (mode === 'boot') {
        const points = [
          'gateway started',
          'MQTT connected',
          'subscribed to the local broker',
          'batch uploaded',
        ];
        let at = points[pick(0, points.length - 1)]!;
        if (at === 'batch uploaded') {
          // An upload comes only when earlier cycles left acknowledged records behind.
          await refreshLake();
          const inLake = lakeIds();
          if (![...acked].some((id) => !inLake.has(id))) at = 'MQTT connected';
        }
        what = `at the first '${at}'`;
        await gw.until(() => gw.count(at) > 0, what);
      } else {
        await gw.until(() => gw.count('subscribed to the local broker') > 0, 'the local broker subscription');
        sensorRun = startSensor(cycle);
        const s = sensorRun;
        if (mode === 'ingest') {
          const k = pick(1, 150);
          what = `after ${k} acknowledged records`;
          await gw.until(() => s.acked >= k || s.exhausted, what);
        } else {
          const n = pick(1, 6);
          const extra = pick(0, 3);
          what = `after 'batch uploaded' #${n} and ${extra} more acknowledged records`;
          await gw.until(() => gw.count('batch uploaded') >= n, `'batch uploaded' #${n}`);
          const base = s.acked;
          await gw.until(() => s.acked >= base + extra || s.exhausted, `${extra} more acknowledged records`);
        }
      }
    } finally {
      await gw.kill('SIGKILL');
      sensorRun?.stop();
    }
    uploadsBeforeKill += gw.count('batch uploaded');
    history.push(
      `cycle ${cycle}: ${mode}, killed ${what}; acked ${sensorRun?.acked ?? 0} this cycle, ` +
        `${gw.count('batch uploaded')} batches uploaded (${alreadyUploaded(gw)} found already uploaded)`,
    );
    expect(gw.exitSignal).toBe('SIGKILL');
  }

  // The last gateway drains the backlog and stops on SIGTERM.
  const last = new GatewayChild(configFile);
  current = last;
  let missingFromLake: string[] = [];
  try {
    await last.until(() => last.count('gateway ready') > 0, 'the last gateway ready');
    const deadline = Date.now() + 30_000;
    for (;;) {
      await refreshLake();
      const inLake = lakeIds();
      missingFromLake = [...acked].filter((id) => !inLake.has(id));
      if (missingFromLake.length === 0 || Date.now() > deadline) break;
      // Wait for the next upload; if none comes within 2 s (nothing left to upload), look again.
      const n = last.count('batch uploaded');
      await last.until(() => last.count('batch uploaded') > n, 'the next upload', 2000).catch(() => {});
    }
  } finally {
    await last.kill('SIGTERM');
  }
  const stopped = last.lines.find((l) => l.msg === 'gateway stopped');
  await refreshLake();
  const inLake = lakeIds();
  const inSpool = await spoolIds();
  const spoolSet = new Set(inSpool);

  const duplicates = [...inLake].filter(([, n]) => n > 1).map(([id, n]) => `${id} x${n}`);
  const spoolDuplicates = inSpool.filter((id, i) => inSpool.indexOf(id) !== i);
  const lost = [...acked].filter((id) => !inLake.has(id) && !spoolSet.has(id));
  const inBoth = inSpool.filter((id) => inLake.has(id));
  const unknown = [...inLake.keys(), ...inSpool].filter((id) => !published.has(id));
  history.push(
    `final: exit ${last.exitCode ?? last.exitSignal}, ${last.count('batch uploaded')} batches uploaded ` +
      `(${alreadyUploaded(last)} found already uploaded), ` +
      `stopped: ${JSON.stringify(stopped)}`,
    `published ${published.size}, acknowledged ${acked.size}, in the lake ${inLake.size} ` +
      `(${lakeObjects.size} objects), in the spool ${inSpool.length}`,
    `not in the lake after draining: ${missingFromLake.slice(0, 20).join(', ')}`,
  );
  if (process.env.GATEWAY_CRASH_VERBOSE) console.log(history.join('\n'));
  expect(wireProblems).toEqual([]);
  expect({ duplicates, spoolDuplicates, lost, inBoth, unknown }).toEqual({
    duplicates: [],
    spoolDuplicates: [],
    lost: [],
    inBoth: [],
    unknown: [],
  });
  // The drain completed: everything acknowledged is in the lake, nothing is left behind.
  expect(missingFromLake).toEqual([]);
  expect(last.exitCode).toBe(0);
  expect(stopped).toMatchObject({ spooledTelemetry: 0 });
  // The run exercised what it is meant to: acknowledged records and kills around uploads.
  expect(acked.size).toBeGreaterThan(0);
  expect(uploadsBeforeKill).toBeGreaterThan(0);
}

it(
  'loses no acknowledged record and duplicates none when the gateway is SIGKILLed at random points',
  async () => {
    console.log(`edge-gateway-crash: seed ${SEED} (replay with GATEWAY_CRASH_SEED=${SEED})`);
    const rand = prng(SEED);
    const pick = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
    const history: string[] = [`seed ${SEED}`];
    try {
      await crashAndCheck(rand, pick, history);
    } catch (err) {
      console.error(`edge-gateway-crash failed:\n${history.join('\n')}`);
      throw err;
    }
  },
  60_000 + CYCLES * 10_000,
);
