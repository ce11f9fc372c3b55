/**
 * The gateway runtime with an in-memory IoT channel, a manual clock and a fake uploader: event
 * retransmission and acknowledgement, deadletter routing, batching and upload retries, offline
 * spooling and shutdown.
 */
import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from '@jest/globals';
import { ManualClock } from '../../edge-component/adapters/manual-clock.js';
import { MemoryIotChannel } from '../../edge-component/adapters/memory-channel.js';
import { type GatewayConfig, parseGatewayConfig } from '../../edge-component/config.js';
import { GatewayConfigError } from '../../edge-component/errors.js';
import { type BatchUploader, Gateway, InvalidEventError, STREAMS } from '../../edge-component/gateway.js';
import {
  KeyRing,
  MemoryReidentificationStore,
  Pseudonymizer,
} from '../../edge-component/pseudonymize/index.js';
import { Spool } from '../../edge-component/spool/index.js';
import type { UploadRequest, UploadResult } from '../../edge-component/uploader.js';
import { removeDir, tempDir } from '../helpers/cloud.js';

const THING = 'gw-unit';

function config(dir: string, extra: Record<string, unknown> = {}): GatewayConfig {
  return parseGatewayConfig({
    thingName: THING,
    aws: { region: 'eu-central-1' },
    storage: { bucket: 'data-bucket' },
    credentials: { source: 'tes' },
    spool: { dir },
    batching: { maxRecords: 3, maxBytes: 1024 * 1024, maxAgeMs: 10_000 },
    events: { retransmitInitialMs: 1000, retransmitMaxMs: 4000 },
    health: { intervalMs: 60_000 },
    upload: { backoff: { initialDelayMs: 500, maxDelayMs: 2000 } },
    ...extra,
  });
}

class FakeUploader implements BatchUploader {
  readonly objects = new Map<string, Buffer>();
  readonly calls: string[] = [];
  failNext = 0;
  async upload(req: UploadRequest): Promise<UploadResult> {
    this.calls.push(req.key);
    if (this.failNext > 0) {
      this.failNext--;
      throw Object.assign(new Error('S3 unavailable'), { name: 'ServiceUnavailable' });
    }
    const data = Buffer.from((req.source as { data: Uint8Array }).data);
    this.objects.set(req.key, data);
    return {
      bucket: 'data-bucket',
      key: req.key,
      bytes: data.length,
      sha256: '',
      multipart: false,
      alreadyUploaded: false,
      attempts: 1,
    };
  }
  records(): Record<string, unknown>[] {
    return [...this.objects.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .flatMap(([, body]) =>
        gunzipSync(body)
          .toString('utf8')
          .split('\n')
          .filter((l) => l.length > 0)
          .map((l) => JSON.parse(l) as Record<string, unknown>),
      );
  }
}

/** Waits (on the event loop, not on a timer) until `cond` holds. */
async function until(cond: () => boolean, what = 'condition', timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (cond()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const dirs: string[] = [];
const gateways: Gateway[] = [];
afterEach(async () => {
  for (const g of gateways.splice(0)) await g.stop();
  for (const d of dirs.splice(0)) removeDir(d);
});

async function setup(
  opts: { connected?: boolean; extra?: Record<string, unknown>; pseudonymizer?: Pseudonymizer } = {},
) {
  const dir = tempDir('edgefleet-gw-unit-');
  dirs.push(dir);
  const clock = new ManualClock(Date.UTC(2026, 10, 23, 8, 0, 0));
  const channel = new MemoryIotChannel({ connected: opts.connected ?? true });
  const uploader = new FakeUploader();
  const cfg = config(dir, opts.extra);
  const gw = await Gateway.start(cfg, {
    channel,
    uploader,
    clock,
    ...(opts.pseudonymizer ? { pseudonymizer: opts.pseudonymizer } : {}),
  });
  gateways.push(gw);
  const events = () => channel.published.filter((m) => m.topic === `dt/${THING}/events`);
  const depth = (name: string) => gw.spool.stats().streams.find((s) => s.name === name)?.depth;
  return { dir, clock, channel, uploader, gw, cfg, events, depth };
}

describe('gateway configuration', () => {
  it('has defaults for every new section', () => {
    const c = config('/tmp/x');
    expect(c.spool.streams.telemetry).toMatchObject({
      strategyOnFull: 'RejectNewData',
      priority: 'critical',
    });
    expect(c.spool.streams.events).toMatchObject({ strategyOnFull: 'RejectNewData', priority: 'critical' });
    expect(c.spool.streams.frames).toMatchObject({ strategyOnFull: 'OverwriteOldestData', priority: 'bulk' });
    expect(c.drain.concurrency).toBe(2);
    expect(c.ingest).toEqual({});
  });

  it.each([
    [
      { spool: { dir: '/x', streams: { telemetry: { strategyOnFull: 'Drop' } } } },
      /spool\.streams\.telemetry\.strategyOnFull: must be/,
    ],
    [{ batching: { maxRecords: 0 } }, /batching\.maxRecords/],
    [
      { events: { retransmitInitialMs: 5000, retransmitMaxMs: 1000 } },
      /events\.retransmitInitialMs: must not exceed/,
    ],
    [
      { ingest: { simulator: { intervalMs: 100, sensorz: 3 } } },
      /ingest\.simulator\.sensorz: is not a known field/,
    ],
    [
      { ingest: { localBroker: { url: 'mqtt://127.0.0.1:1883', topics: [] } } },
      /ingest\.localBroker\.topics: must list/,
    ],
    [{ drain: { concurrency: 0 } }, /drain\.concurrency: must be an integer/],
    [{ health: { intervalMs: 'often' } }, /health\.intervalMs: must be a number/],
  ])('refuses %j naming the field', (extra, message) => {
    expect(() => config('/tmp/x', extra)).toThrow(GatewayConfigError);
    expect(() => config('/tmp/x', extra)).toThrow(message);
  });
});

describe('events', () => {
  it('retransmits with exponential backoff until acknowledged, then leaves the spool', async () => {
    const { gw, clock, channel, events, depth } = await setup();
    const { msgId } = await gw.emitEvent('alarm', { code: 'OVERHEAT' });
    await until(() => events().length === 1, 'first publish');
    const sent = JSON.parse(events()[0]!.payload.toString()) as Record<string, unknown>;
    expect(sent).toMatchObject({ msgId, type: 'alarm', data: { code: 'OVERHEAT' } });
    expect(events()[0]!.qos).toBe(1);
    expect(channel.filters).toContain(`things/${THING}/ack`);

    // 1000, then 2000, then 4000 (the cap), then 4000.
    for (const [step, count] of [
      [999, 1],
      [1, 2],
      [1999, 2],
      [1, 3],
      [4000, 4],
      [4000, 5],
    ] as const) {
      clock.advance(step);
      await until(() => events().length === count, `publish ${count}`);
      await new Promise((r) => setImmediate(r));
      expect(events()).toHaveLength(count);
    }
    expect(depth(STREAMS.events)).toBe(1);

    await channel.deliver(`things/${THING}/ack`, { msgId, status: 'accepted' });
    await until(() => depth(STREAMS.events) === 0 && gw.lastEventAckAt !== null, 'event acked in the spool');
    expect(gw.outstandingEvents).toBe(0);
    expect(gw.lastEventAckAt).toBe(clock.now());

    // A duplicate or late ack is harmless; nothing is sent any more.
    await channel.deliver(`things/${THING}/ack`, { msgId, status: 'duplicate' });
    await channel.deliver(`things/${THING}/ack`, { nonsense: true });
    await channel.deliver(`things/${THING}/ack`, 'not json');
    clock.advance(60_000);
    await new Promise((r) => setImmediate(r));
    expect(events()).toHaveLength(5);
    expect(depth(STREAMS.deadletter)).toBe(0);
    expect(channel.subscribeCalls).toBe(1);
  });

  it('moves a rejected event to deadletter', async () => {
    const { gw, channel, events, depth } = await setup();
    const { msgId } = await gw.emitEvent('state', { on: true });
    await until(() => events().length === 1, 'publish');
    await channel.deliver(`things/${THING}/ack`, { msgId, status: 'rejected', error: 'type: too long' });
    await until(() => gw.counters.eventsRejected === 1 && depth(STREAMS.events) === 0, 'deadletter');
    expect(depth(STREAMS.deadletter)).toBe(1);
    const [dl] = await gw.spool.read(STREAMS.deadletter, { maxEntries: 10, maxBytes: 1 << 20 });
    expect(JSON.parse(Buffer.from(dl!.bytes).toString())).toMatchObject({
      source: 'event',
      reason: 'rejected by the cloud: type: too long',
      event: { msgId, type: 'state' },
    });
    expect(gw.counters.eventsRejected).toBe(1);
  });

  it('refuses an invalid event type, naming the field', async () => {
    const { gw } = await setup();
    await expect(gw.emitEvent('', {})).rejects.toThrow(InvalidEventError);
    await expect(gw.emitEvent('', {})).rejects.toThrow(/type:/);
  });

  it('spools events while offline and sends them on reconnect; a restarted gateway resends unacked events', async () => {
    const { gw, channel, events, clock, dir, cfg, depth } = await setup({ connected: false });
    const a = await gw.emitEvent('alarm', { n: 1 });
    const b = await gw.emitEvent('alarm', { n: 2 });
    clock.advance(10_000);
    await new Promise((r) => setImmediate(r));
    expect(events()).toHaveLength(0);
    channel.setConnected(true);
    await until(() => events().length === 2, 'publish after reconnect');
    await channel.deliver(`things/${THING}/ack`, { msgId: a.msgId, status: 'accepted' });
    await until(() => depth(STREAMS.events) === 1, 'one acked');
    await gw.stop();

    const channel2 = new MemoryIotChannel();
    const gw2 = await Gateway.start(cfg, { channel: channel2, uploader: new FakeUploader(), clock });
    gateways.push(gw2);
    expect(gw2.outstandingEvents).toBe(1);
    await until(() => channel2.published.some((m) => m.topic === `dt/${THING}/events`), 'resend');
    const resent = channel2.published.find((m) => m.topic === `dt/${THING}/events`)!;
    expect(JSON.parse(resent.payload.toString())).toMatchObject({ msgId: b.msgId, data: { n: 2 } });
    expect(dir).toBe(cfg.spool.dir);
  });
});

describe('pseudonymization of events', () => {
  it('replaces configured IDs in event data before the event is spooled or published', async () => {
    const store = new MemoryReidentificationStore();
    const pseudonymizer = new Pseudonymizer({ fields: ['$.operatorId'], keys: KeyRing.generate(), store });
    const { gw, events } = await setup({ pseudonymizer });
    await gw.emitEvent('alarm', { operatorId: 'OP-4711', code: 'E1' });
    await until(() => events().length >= 1, 'event published');
    const sent = Buffer.from(events()[0]!.payload).toString();
    expect(sent).not.toContain('OP-4711');
    expect(JSON.parse(sent).data.operatorId).toMatch(/^k1\.[a-z2-7]{32}$/);
    await expect(gw.emitEvent('alarm', { operatorId: { nested: 1 } })).rejects.toThrow(
      /pseudonymization failed/,
    );
  });
});

describe('ingest and deadletter routing', () => {
  it('accepts JSON objects, deadletters malformed records and failed pseudonymization, never spooling raw IDs', async () => {
    const store = new MemoryReidentificationStore();
    const pseudonymizer = new Pseudonymizer({ fields: ['$.operatorId'], keys: KeyRing.generate(), store });
    const { gw, depth } = await setup({ pseudonymizer });
    expect(await gw.ingest({ operatorId: 'OP-4711', temp: 20 })).toMatchObject({ accepted: true, seq: 1 });
    expect(await gw.ingest(Buffer.from('{"operatorId":"OP-4712","temp":21}'))).toMatchObject({
      accepted: true,
      seq: 2,
    });
    expect(await gw.ingest('{"temp": 2')).toMatchObject({
      accepted: false,
      reason: expect.stringMatching(/^malformed JSON/),
    });
    expect(await gw.ingest('[1,2]')).toMatchObject({
      accepted: false,
      reason: 'a record must be a JSON object, got an array',
    });
    expect(await gw.ingest(42)).toMatchObject({ accepted: false, reason: expect.stringMatching(/a number/) });
    const bad = await gw.ingest({ operatorId: { nested: 'OP-9' }, temp: 1 });
    expect(bad).toMatchObject({
      accepted: false,
      reason: expect.stringMatching(/^pseudonymization failed: .*operatorId/),
    });
    expect(depth(STREAMS.telemetry)).toBe(2);
    expect(depth(STREAMS.deadletter)).toBe(4);
    expect(gw.counters).toMatchObject({ accepted: 2, deadlettered: 4 });

    const telemetry = await gw.spool.read(STREAMS.telemetry, { maxEntries: 10, maxBytes: 1 << 20 });
    const text = telemetry.map((e) => Buffer.from(e.bytes).toString()).join('\n');
    expect(text).not.toContain('OP-4711');
    expect(text).not.toContain('OP-4712');
    const first = JSON.parse(Buffer.from(telemetry[0]!.bytes).toString()) as { operatorId: string };
    expect(pseudonymizer.reidentify(first.operatorId)).toBe('OP-4711');

    const dl = await gw.spool.read(STREAMS.deadletter, { maxEntries: 10, maxBytes: 1 << 20 });
    expect(dl.map((e) => (JSON.parse(Buffer.from(e.bytes).toString()) as { source: string }).source)).toEqual(
      ['ingest', 'ingest', 'ingest', 'ingest'],
    );
  });

  it('stores a record received as JSON bytes as it was written, with every configured value pseudonymized', async () => {
    const store = new MemoryReidentificationStore();
    const pseudonymizer = new Pseudonymizer({
      fields: ['$.operatorId', '$.badge.id'],
      keys: KeyRing.generate(),
      store,
    });
    const { gw } = await setup({ pseudonymizer });
    // A repeated member, a name written with an escape, numbers as written, line breaks between tokens.
    const text =
      ' {"operatorId": "OP-1",\n "t": 20.50, "operator\\u0049d": "OP-2", "badge": {"id": 4711}, "n": 1e3}\r\n';
    expect(await gw.ingest(Buffer.from(text))).toMatchObject({ accepted: true });
    const [entry] = await gw.spool.read(STREAMS.telemetry, { maxEntries: 10, maxBytes: 1 << 20 });
    const line = Buffer.from(entry!.bytes).toString();
    expect(line).not.toMatch(/OP-1|OP-2|4711|\n|\r/);
    const token = /"operatorId": "(k1\.[a-z2-7]{32})"/.exec(line)?.[1];
    expect(pseudonymizer.reidentify(token!)).toBe('OP-1');
    expect(line).toMatch(
      /^\{"operatorId": "k1\.[a-z2-7]{32}", {2}"t": 20\.50, "operator\\u0049d": "k1\.[a-z2-7]{32}", "badge": \{"id": "k1\.[a-z2-7]{32}"\}, "n": 1e3\}$/,
    );
    expect(JSON.parse(line)).toMatchObject({ t: 20.5, n: 1000 });
  });
});

describe('telemetry uploads', () => {
  it('cuts batches by count and age, uploads them and acks the spool; retries a failed batch with the same key', async () => {
    const { gw, uploader, clock, depth } = await setup();
    uploader.failNext = 1;
    for (let i = 1; i <= 4; i++) await gw.ingest({ sensorId: 's1', i });
    // 3 records make a batch (maxRecords); the 4th waits for its age.
    clock.advance(0);
    await until(() => uploader.calls.length >= 1, 'first attempt');
    await until(() => gw.counters.uploadFailures === 1, 'failure');
    await until(() => clock.pendingDelays().includes(500), 'backoff sleep');
    clock.advance(500);
    await until(() => uploader.objects.size === 1, 'retried upload');
    expect(uploader.calls[0]).toBe(uploader.calls[1]);
    expect(uploader.calls[0]).toBe(
      `raw/${THING}/telemetry/dt=2026-11-23/hour=08/000000000001-000000000003.ndjson.gz`,
    );
    await until(() => depth(STREAMS.telemetry) === 1, 'acked');
    clock.advance(10_000);
    await until(() => uploader.objects.size === 2, 'age batch');
    await until(() => depth(STREAMS.telemetry) === 0, 'all acked');
    expect(uploader.records().map((r) => r.i)).toEqual([1, 2, 3, 4]);
    expect(gw.lastUploadAt).toBe(clock.now());
  });

  it('after a restart between an upload and its ack, the same records make the same batch (no duplicate under another key)', async () => {
    const { gw, uploader, clock, channel, cfg, dir } = await setup();
    // The first upload reaches S3, but its answer is lost (a timeout): the gateway does not ack.
    const lost = new Map<string, Buffer>();
    uploader.upload = async (req: UploadRequest) => {
      uploader.calls.push(req.key);
      lost.set(req.key, Buffer.from((req.source as { data: Uint8Array }).data));
      throw Object.assign(new Error('socket hang up'), { name: 'TimeoutError' });
    };
    await gw.ingest({ sensorId: 's1', i: 1 });
    await gw.ingest({ sensorId: 's1', i: 2 });
    await until(
      () => clock.pendingDelays().some((d) => d > 9000 && d <= 10_000),
      'the wait for the batch age',
    );
    clock.advance(10_000); // the 2 records close by age
    await until(() => uploader.calls.length >= 1, 'first attempt');
    const firstKey = uploader.calls[0]!;
    expect(firstKey).toMatch(/000000000001-000000000002\.ndjson\.gz$/);
    channel.setConnected(false); // the gateway stops (a crash would do the same) before any ack
    await gw.stop();
    gateways.splice(gateways.indexOf(gw), 1);

    const channel2 = new MemoryIotChannel({ connected: false });
    const uploader2 = new FakeUploader();
    uploader2.objects.set(firstKey, lost.get(firstKey)!);
    const gw2 = await Gateway.start(cfg, { channel: channel2, uploader: uploader2, clock });
    gateways.push(gw2);
    await gw2.ingest({ sensorId: 's1', i: 3 }); // a fresh cut would now be 1..3 under another key
    channel2.setConnected(true);
    await until(() => uploader2.calls.length >= 1, 'upload after restart');
    expect(uploader2.calls[0]).toBe(firstKey);
    expect(dir).toBeTruthy();
  });

  it('spools while offline, drains the backlog oldest first on reconnect, and stop() uploads the open batch', async () => {
    const { gw, uploader, channel, depth } = await setup({
      connected: false,
      extra: { drain: { concurrency: 3 } },
    });
    for (let i = 1; i <= 10; i++) await gw.ingest({ i });
    await new Promise((r) => setImmediate(r));
    expect(uploader.calls).toHaveLength(0);
    channel.setConnected(true);
    await until(() => uploader.objects.size === 3, 'three full batches');
    await until(() => depth(STREAMS.telemetry) === 1, 'acked');
    await gw.ingest({ i: 11 });
    await gw.stop();
    expect(uploader.objects.size).toBe(4);
    expect([...uploader.objects.keys()].pop()).toMatch(/000000000010-000000000011\.ndjson\.gz$/);
    expect(uploader.records().map((r) => r.i)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  });

  it('keeps records spooled across a stop while offline', async () => {
    const { gw, uploader, cfg } = await setup({ connected: false });
    await gw.ingest({ i: 1 });
    await gw.stop();
    expect(uploader.calls).toHaveLength(0);
    const spool = await Spool.open({
      dir: cfg.spool.dir,
      streams: Object.values(STREAMS).map((name) => ({ name, ...cfg.spool.streams[name] })),
    });
    expect(spool.stats().streams.find((s) => s.name === STREAMS.telemetry)?.depth).toBe(1);
    await spool.close();
  });
});

describe('streamed telemetry (telemetry.delivery stream)', () => {
  const streamed = (channel: MemoryIotChannel) =>
    channel.published
      .filter((m) => m.topic === `dt/${THING}/telemetry`)
      .map((m) => JSON.parse(m.payload.toString()) as Record<string, unknown>);

  it('publishes each record QoS 1 on dt/{thing}/telemetry at once, and acks the spool once all are acknowledged', async () => {
    const { gw, channel, uploader, depth } = await setup({ extra: { telemetry: { delivery: 'stream' } } });
    for (let i = 1; i <= 4; i++) await gw.ingest({ sensorId: 's1', i });
    // No waiting for a batch age: every spooled record goes out.
    await until(() => depth(STREAMS.telemetry) === 0, 'all acked');
    expect(streamed(channel).map((r) => r.i)).toEqual([1, 2, 3, 4]);
    expect(
      channel.published.filter((m) => m.topic === `dt/${THING}/telemetry`).every((m) => m.qos === 1),
    ).toBe(true);
    expect(uploader.calls).toHaveLength(0);
    expect(gw.counters.streamedRecords).toBe(4);
  });

  it('on a failed publish keeps the batch and later publishes only the records not acknowledged', async () => {
    const { gw, channel, clock, depth } = await setup({
      extra: { telemetry: { delivery: 'stream', streamInFlight: 1 } },
    });
    const publish = channel.publish.bind(channel);
    let calls = 0;
    channel.publish = async (topic, payload, qos) => {
      if (topic === `dt/${THING}/telemetry` && ++calls === 2) throw new Error('connection reset');
      return publish(topic, payload, qos);
    };
    for (let i = 1; i <= 3; i++) await gw.ingest({ i });
    await until(() => gw.counters.uploadFailures === 1, 'failure');
    expect(depth(STREAMS.telemetry)).toBeGreaterThan(0);
    await until(() => clock.pendingDelays().includes(500), 'backoff sleep');
    clock.advance(500);
    await until(() => depth(STREAMS.telemetry) === 0, 'all acked');
    // Record 1 was acknowledged before the failure and is not sent twice.
    expect(streamed(channel).map((r) => r.i)).toEqual([1, 2, 3]);
  });

  it('dead-letters a record too large for one AWS IoT message', async () => {
    const { gw, depth } = await setup({ extra: { telemetry: { delivery: 'stream' } } });
    const r = await gw.ingest({ blob: 'x'.repeat(128 * 1024) });
    expect(r).toMatchObject({ accepted: false, reason: expect.stringMatching(/too large to stream/) });
    expect(depth(STREAMS.deadletter)).toBe(1);
  });

  it('keeps streaming records spooled while offline and sends them on reconnect', async () => {
    const { gw, channel, depth } = await setup({
      connected: false,
      extra: { telemetry: { delivery: 'stream' } },
    });
    for (let i = 1; i <= 5; i++) await gw.ingest({ i });
    expect(streamed(channel)).toHaveLength(0);
    channel.setConnected(true);
    await until(() => depth(STREAMS.telemetry) === 0, 'drained');
    expect(streamed(channel).map((r) => r.i)).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('anomaly detection on live readings', () => {
  it('raises an anomaly event for a spike while offline, sends it on reconnect, and keeps the detectors across a restart', async () => {
    const extra = { anomaly: { metrics: ['temperature'], detector: { warmup: 50 } } };
    const { gw, channel, cfg, clock, events } = await setup({ connected: false, extra });
    // Normal readings: a little noise around 20 degrees.
    for (let i = 0; i < 200; i++) {
      await gw.ingest({ sensorId: 's1', ts: clock.now() + i, temperature: 20 + Math.sin(i) * 0.2 });
    }
    expect(gw.counters.anomalies).toBe(0);
    await gw.ingest({ sensorId: 's1', ts: clock.now() + 200, temperature: 35 });
    expect(gw.counters.anomalies).toBe(1);
    expect(events()).toHaveLength(0); // offline: spooled
    channel.setConnected(true);
    await until(() => events().length === 1, 'the anomaly event sent');
    const event = JSON.parse(events()[0]!.payload.toString()) as {
      type: string;
      data: Record<string, unknown>;
    };
    expect(event).toMatchObject({
      type: 'anomaly',
      data: { deviceId: 's1', metric: 'temperature', value: 35, kind: 'spike' },
    });
    expect(event.data.score).toBeGreaterThanOrEqual(1);
    // A restarted gateway goes on with the learned detectors (no new warm-up: a spike is flagged at once).
    await gw.stop();
    gateways.splice(gateways.indexOf(gw), 1);
    const gw2 = await Gateway.start(cfg, { channel, uploader: new FakeUploader(), clock });
    gateways.push(gw2);
    await gw2.ingest({ sensorId: 's1', ts: clock.now() + 300, temperature: 20.1 });
    await gw2.ingest({ sensorId: 's1', ts: clock.now() + 301, temperature: 5 });
    expect(gw2.counters.anomalies).toBe(1);
  });

  it('refuses detector options of the wrong type, naming the field', () => {
    expect(() =>
      config('/tmp/x', { anomaly: { metrics: ['temperature'], detector: { spikeThreshold: 'high' } } }),
    ).toThrow(/anomaly\.detector\.spikeThreshold/);
  });
});

describe('health', () => {
  it('publishes the health named shadow when connected', async () => {
    const { gw, channel } = await setup();
    await gw.ingest('garbage');
    const topic = `$aws/things/${THING}/shadow/name/health/update`;
    await until(() => channel.published.some((m) => m.topic === topic), 'health report');
    const doc = JSON.parse(channel.published.find((m) => m.topic === topic)!.payload.toString()) as {
      state: { reported: Record<string, unknown> };
    };
    expect(doc.state.reported).toMatchObject({
      spool: { telemetry: { depth: 0 }, events: { depth: 0 } },
      lastUploadAt: null,
      lastEventAckAt: null,
    });
  });
});
