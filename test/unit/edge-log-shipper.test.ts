/**
 * The log shipper (edge-component/logs/shipper.ts) against a real spool and a scripted data stream:
 * the record format and partition key, the component's lines from the LogTee (not its own, nor those
 * below the level), files, batching limits, re-sending only the failed records of a call (before any
 * newer record), whole-call failures, the offline wait and the acks.
 */

import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import pino, { type Logger } from 'pino';
import { systemClock } from '../../edge-component/clock.js';
import { type LogsConfig, LogsConfigSchema } from '../../edge-component/config.js';
import { LogShipper, type LogShipperCounters } from '../../edge-component/logs/shipper.js';
import { LogTee } from '../../edge-component/logs/tee.js';
import type { DataStreamClient, StreamPutOutcome, StreamRecord } from '../../edge-component/ports.js';
import { Spool } from '../../edge-component/spool/index.js';
import { type LogRecord, LogRecordSchema } from '../../protocol/logs.js';
import { eventually, removeDir, tempDir } from '../helpers/cloud.js';

const THING = 'gw-logs-1';

type Behaviour = (records: readonly StreamRecord[]) => StreamPutOutcome[] | Error;

/** A data stream that records what it accepts, in order, and answers each call as scripted. */
class ScriptedStream implements DataStreamClient {
  readonly accepted: (LogRecord & { key: string })[] = [];
  readonly calls: { records: LogRecord[]; outcomes: StreamPutOutcome[] | 'error' }[] = [];
  /** Behaviours for the next calls, in order; then `otherwise`. */
  readonly script: Behaviour[] = [];
  otherwise: Behaviour = (rs) => rs.map(() => ({ ok: true }));
  private waiters: { pred: () => boolean; resolve: () => void }[] = [];

  async putRecords(records: readonly StreamRecord[]): Promise<StreamPutOutcome[]> {
    const parsed = records.map((r) =>
      LogRecordSchema.parse(JSON.parse(Buffer.from(r.data).toString('utf8'))),
    );
    const behave = this.script.shift() ?? this.otherwise;
    const result = behave(records);
    if (result instanceof Error) {
      this.calls.push({ records: parsed, outcomes: 'error' });
      this.notify();
      throw result;
    }
    this.calls.push({ records: parsed, outcomes: result });
    result.forEach((o, i) => {
      if (o.ok) this.accepted.push({ ...parsed[i]!, key: records[i]!.partitionKey });
    });
    this.notify();
    return result;
  }

  destroy(): void {}

  private notify(): void {
    for (const w of [...this.waiters]) {
      if (w.pred()) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  }

  /** Resolves once `pred` holds after a call (or now). */
  until(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w = {
        pred,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`timed out waiting for ${what} (${this.accepted.length} accepted)`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  of(source: string): (LogRecord & { key: string })[] {
    return this.accepted.filter((r) => r.source === source);
  }
}

const throttled = (code = 'ProvisionedThroughputExceededException'): StreamPutOutcome => ({
  ok: false,
  code,
  message: 'Rate exceeded for shard shardId-000000000000',
});

/** Like a shard that takes `n` more records this second: the rest of the call fails. */
const acceptFirst =
  (n: number): Behaviour =>
  (rs) =>
    rs.map((_, i) => (i < n ? { ok: true } : throttled()));

let dir: string;
let spool: Spool;
let shipper: LogShipper | undefined;
let output: Record<string, unknown>[];
let tee: LogTee;
let logger: Logger;
let counters: LogShipperCounters;

beforeEach(async () => {
  dir = tempDir('edgefleet-shipper-');
  spool = await Spool.open({
    dir: join(dir, 'spool'),
    streams: [{ name: 'logs', strategyOnFull: 'OverwriteOldestData', priority: 'bulk' }],
  });
  output = [];
  tee = new LogTee({
    write(s: string) {
      output.push(JSON.parse(s) as Record<string, unknown>);
      return true;
    },
  });
  logger = pino({ level: 'debug' }, tee);
  counters = { logRecordsShipped: 0, logBytesShipped: 0, logRecordsRetried: 0 };
});

afterEach(async () => {
  await shipper?.stop();
  shipper = undefined;
  await spool.close();
  removeDir(dir);
});

function config(over: Record<string, unknown> = {}): LogsConfig {
  return LogsConfigSchema.parse({
    batch: { maxAgeMs: 0 },
    pollIntervalMs: 10,
    backoff: { initialDelayMs: 1, maxDelayMs: 5 },
    ...over,
  });
}

/** A shipper of one new, empty file (not the component's own lines) with these batch limits. */
function shipOneFile(name: string, batch: Record<string, number>): { file: string; stream: ScriptedStream } {
  const file = join(dir, name);
  writeFileSync(file, '');
  const stream = new ScriptedStream();
  start(stream, config({ component: { enabled: false }, files: [{ path: file }], batch }));
  return { file, stream };
}

function start(client: ScriptedStream, cfg: LogsConfig, opts: { online?: () => boolean } = {}): LogShipper {
  shipper = LogShipper.start({
    config: cfg,
    thingName: THING,
    spool,
    stream: 'logs',
    client,
    tap: tee,
    clock: systemClock,
    logger,
    counters,
    ...(opts.online ? { online: opts.online } : {}),
  });
  return shipper;
}

const depth = () => spool.stats().streams.find((s) => s.name === 'logs')!.depth;

/** Whether each source's records came in the order of (seq, n), without repeats. */
function inOrder(records: LogRecord[]): boolean {
  for (let i = 1; i < records.length; i++) {
    const a = records[i - 1]!;
    const b = records[i]!;
    if (b.seq < a.seq || (b.seq === a.seq && b.n <= a.n)) return false;
  }
  return true;
}

describe('LogShipper', () => {
  it("ships the component's lines (from before it started too) and a file's lines as records, then acks them", async () => {
    const file = join(dir, 'app.log');
    writeFileSync(file, 'file line 1\nfile line 2\n');
    logger.info({ phase: 'early' }, 'logged before the shipper started');
    const stream = new ScriptedStream();
    start(stream, config({ files: [{ path: file }] }));
    logger.info({ answer: 42, component: 'gateway' }, 'hello');
    logger.debug('below the shipped level');
    logger.child({ component: 'log-shipper' }).warn('the shipper itself');
    appendFileSync(file, 'file line 3\n');
    await stream.until(
      () => stream.of('app.log').length === 3 && stream.of('gateway').some((r) => r.msg === 'hello'),
      'the lines',
    );
    const hello = stream.of('gateway').find((r) => r.msg === 'hello')!;
    expect(hello).toMatchObject({
      thing: THING,
      source: 'gateway',
      level: 'info',
      msg: 'hello',
      data: { answer: 42, component: 'gateway' },
      key: `${THING}/gateway`,
    });
    expect(typeof hello.ts).toBe('number');
    expect(stream.of('gateway').map((r) => r.msg)).toContain('logged before the shipper started');
    expect(stream.of('gateway').map((r) => r.msg)).not.toContain('below the shipped level');
    expect(stream.accepted.map((r) => r.msg)).not.toContain('the shipper itself');
    // ... though it was written out.
    expect(output.map((o) => o.msg)).toContain('the shipper itself');
    expect(stream.of('app.log').map((r) => [r.line, r.key, r.thing])).toEqual([
      ['file line 1', `${THING}/app.log`, THING],
      ['file line 2', `${THING}/app.log`, THING],
      ['file line 3', `${THING}/app.log`, THING],
    ]);
    expect(inOrder(stream.of('app.log'))).toBe(true);
    await eventually(() => (depth() === 0 ? true : undefined), 'the spool entries acked');
    expect(counters.logRecordsShipped).toBe(stream.accepted.length);
    expect(counters.logBytesShipped).toBeGreaterThan(0);
  });

  it('re-sends only the failed records, ahead of newer ones: every line once, in order per source', async () => {
    const file = join(dir, 'busy.log');
    const lines = Array.from({ length: 120 }, (_, i) => `busy ${i}`);
    writeFileSync(file, '');
    const stream = new ScriptedStream();
    // A shard that takes 7 records per call for a while: the rest of each call fails.
    for (let i = 0; i < 12; i++) stream.script.push(acceptFirst(7));
    start(stream, config({ files: [{ path: file }], batch: { maxRecords: 20, maxAgeMs: 0 } }));
    appendFileSync(file, `${lines.join('\n')}\n`);
    for (let i = 0; i < 40; i++) logger.info({ i }, `component ${i}`);
    await stream.until(
      () =>
        stream.of('busy.log').length === 120 &&
        stream.of('gateway').filter((r) => r.msg?.startsWith('component')).length === 40,
      'every line',
    );
    expect(stream.of('busy.log').map((r) => r.line)).toEqual(lines);
    expect(
      stream
        .of('gateway')
        .filter((r) => r.msg?.startsWith('component'))
        .map((r) => r.msg),
    ).toEqual(Array.from({ length: 40 }, (_, i) => `component ${i}`));
    for (const source of ['busy.log', 'gateway']) expect(inOrder(stream.of(source))).toBe(true);
    // Only the failed records went again, each at the head of the next call.
    const failedCalls = stream.calls.filter((c) => c.outcomes !== 'error' && c.outcomes.some((o) => !o.ok));
    expect(failedCalls.length).toBeGreaterThan(0);
    for (let i = 0; i + 1 < stream.calls.length; i++) {
      const call = stream.calls[i]!;
      if (call.outcomes === 'error') continue;
      const failed = call.records.filter((_, j) => !(call.outcomes as StreamPutOutcome[])[j]!.ok);
      const next = stream.calls[i + 1]!.records.slice(0, failed.length);
      expect(next.map((r) => [r.seq, r.n])).toEqual(failed.map((r) => [r.seq, r.n]));
    }
    const failedTotal = stream.calls.reduce(
      (n, c) => n + (c.outcomes === 'error' ? 0 : c.outcomes.filter((o) => !o.ok).length),
      0,
    );
    expect(counters.logRecordsRetried).toBe(failedTotal);
    expect(shipper!.healthReport()).toMatchObject({ reordered: 0, retriedRecords: failedTotal });
    await eventually(() => (depth() === 0 ? true : undefined), 'the spool entries acked');
  });

  it('counts a record that failed before an accepted one of its source, and still delivers each once', async () => {
    const stream = new ScriptedStream();
    // InternalFailure of one record in the middle of a call.
    stream.script.push((rs) => rs.map((_, i) => (i === 1 ? throttled('InternalFailure') : { ok: true })));
    start(stream, config({ batch: { maxRecords: 4, maxAgeMs: 0 } }));
    for (let i = 0; i < 4; i++) logger.warn(`w${i}`);
    await stream.until(
      () => stream.of('gateway').filter((r) => /^w\d$/.test(r.msg ?? '')).length === 4,
      'w0-w3',
    );
    const got = stream.of('gateway').filter((r) => /^w\d$/.test(r.msg ?? ''));
    expect(got.map((r) => r.msg)).toEqual(['w0', 'w2', 'w3', 'w1']);
    // seq and n give the order back.
    expect([...got].sort((a, b) => a.seq - b.seq || a.n - b.n).map((r) => r.msg)).toEqual([
      'w0',
      'w1',
      'w2',
      'w3',
    ]);
    expect(shipper!.healthReport().reordered).toBeGreaterThan(0);
  });

  it('retries whole-call failures with backoff, logs access denied as an error once, and never ships its own lines', async () => {
    const stream = new ScriptedStream();
    const denied = Object.assign(new Error('User is not authorized to perform: kinesis:PutRecords'), {
      name: 'AccessDeniedException',
    });
    for (let i = 0; i < 6; i++) stream.script.push(() => denied);
    stream.script.push(() => Object.assign(new Error('socket hang up'), { name: 'TimeoutError' }));
    start(stream, config());
    logger.info('one line');
    await stream.until(() => stream.calls.filter((c) => c.outcomes === 'error').length >= 6, 'the refusals');
    // The shipper's failures add no lines to ship (its own are not shipped).
    const entries = spool.stats().streams.find((s) => s.name === 'logs')!.nextSeq;
    await stream.until(
      () => stream.of('gateway').some((r) => r.msg === 'one line'),
      'the line after the refusals',
    );
    expect(spool.stats().streams.find((s) => s.name === 'logs')!.nextSeq).toBe(entries);
    const errors = output.filter((o) => o.component === 'log-shipper' && o.level === 50);
    expect(errors).toHaveLength(1);
    expect(String(errors[0]!.msg)).toMatch(/kinesis:PutRecords/);
    expect(stream.accepted.filter((r) => r.data?.component === 'log-shipper')).toEqual([]);
    expect(stream.of('gateway').filter((r) => r.msg === 'one line')).toHaveLength(1);
    expect(shipper!.healthReport().failedCalls).toBe(7);
  });

  it('sends nothing while offline; the spooled lines go once it is back', async () => {
    let online = false;
    const stream = new ScriptedStream();
    const s = start(stream, config(), { online: () => online });
    for (let i = 0; i < 5; i++) logger.info(`offline ${i}`);
    await eventually(() => (depth() > 0 ? true : undefined), 'the lines spooled');
    expect(stream.calls).toEqual([]);
    online = true;
    s.kick();
    await stream.until(
      () => stream.of('gateway').filter((r) => r.msg?.startsWith('offline')).length === 5,
      'the spooled lines',
    );
    expect(
      stream
        .of('gateway')
        .filter((r) => r.msg?.startsWith('offline'))
        .map((r) => r.msg),
    ).toEqual(Array.from({ length: 5 }, (_, i) => `offline ${i}`));
  });

  it('when its spool stream overflows offline, drops the oldest lines, reports the drop and ships the rest in order', async () => {
    await spool.close();
    spool = await Spool.open(
      {
        dir: join(dir, 'spool-small'),
        streams: [
          {
            name: 'logs',
            maxSizeBytes: 8192,
            segmentSizeBytes: 1024,
            strategyOnFull: 'OverwriteOldestData',
            priority: 'bulk',
          },
        ],
      },
      // The spool logs through the same tee: its report of a drop is a line to ship too.
      { logger },
    );
    let online = false;
    const stream = new ScriptedStream();
    const s = start(stream, config(), { online: () => online });
    const first = spool.stats().streams[0]!.nextSeq;
    for (let i = 0; i < 300; i++) {
      logger.info(`line ${i}`);
      // One spool entry per line: the next line comes in another event-loop turn.
      await new Promise((resolve) => setImmediate(resolve));
    }
    await eventually(
      () => (spool.stats().streams[0]!.nextSeq >= first + 300 ? true : undefined),
      'every line spooled',
    );
    expect(s.healthReport().droppedEntries).toBeGreaterThan(0);
    online = true;
    s.kick();
    await stream.until(() => stream.of('gateway').some((r) => r.msg === 'line 299'), 'the newest line');
    const kept = stream
      .of('gateway')
      .filter((r) => r.msg?.startsWith('line '))
      .map((r) => Number(r.msg!.slice(5)));
    // A run of the newest lines, in order; the oldest are gone.
    expect(kept[0]).toBeGreaterThan(0);
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => kept[0]! + i));
    expect(kept[kept.length - 1]).toBe(299);
    const drop = stream
      .of('gateway')
      .find((r) => r.msg?.startsWith('spool full: dropped the oldest segment'));
    expect(drop?.data).toMatchObject({ component: 'spool', stream: 'logs' });
    expect(drop?.data?.fromSeq).toEqual(expect.any(Number));
  });

  it('sends a call once it holds maxRecords, and waits for a batch to fill or age', async () => {
    const { file, stream } = shipOneFile('batch.log', { maxRecords: 5, maxAgeMs: 3_600_000 });
    appendFileSync(file, Array.from({ length: 12 }, (_, i) => `line ${i}\n`).join(''));
    await stream.until(() => stream.accepted.length >= 10, 'two batches');
    await shipper!.stop();
    expect(stream.calls.map((c) => c.records.length)).toEqual([5, 5]);
    // The last 2 wait for the batch to fill or age; their entry stays spooled (and all 12 lines go again
    // after a restart: at least once).
    expect(stream.accepted.map((r) => r.line)).toEqual(Array.from({ length: 10 }, (_, i) => `line ${i}`));
    expect(depth()).toBe(1);
  });

  it('keeps each call within maxBytes of data and partition keys', async () => {
    const { file, stream } = shipOneFile('bytes.log', { maxBytes: 1024, maxAgeMs: 3_600_000 });
    // Records of about 300 bytes: 3 to a call.
    appendFileSync(file, Array.from({ length: 9 }, (_, i) => `${i} ${'x'.repeat(200)}\n`).join(''));
    await stream.until(() => stream.accepted.length >= 6, 'two calls');
    await shipper!.stop();
    const key = `${THING}/bytes.log`;
    for (const c of stream.calls) {
      const bytes = c.records.reduce((n, r) => n + Buffer.byteLength(JSON.stringify(r)) + key.length, 0);
      expect(bytes).toBeLessThanOrEqual(1024);
    }
    expect(stream.calls.map((c) => c.records.length)).toEqual([3, 3]);
  });
});
