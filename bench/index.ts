/**
 * `npm run bench`: runs the benchmarks, prints tables, and writes JSON results to bench/results/.
 * Environment: BENCH_ROUNDS (default 5), BENCH_MESSAGES (per publisher per run, default 1000),
 * BENCH_SHADOW_UPDATES (default 300), BENCH_UPLOADS (objects per size, default 20; 32 MB objects: a
 * fifth of it), BENCH_CREDENTIALS (credential round trips, default 100), BENCH_ONLY (broker | uploads).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchBroker } from './broker.js';
import { printTable } from './stats.js';
import { benchUploads } from './uploads.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const int = (name: string, def: number) => {
  const v = Number(process.env[name] ?? def);
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer`);
  return v;
};

const rounds = int('BENCH_ROUNDS', 5);
const messagesPerPublisher = int('BENCH_MESSAGES', 1000);
const shadowUpdates = int('BENCH_SHADOW_UPDATES', 300);
const uploadsPerSize = int('BENCH_UPLOADS', 20);
const credentialRequests = int('BENCH_CREDENTIALS', 100);
const only = process.env.BENCH_ONLY;
if (only !== undefined && only !== 'broker' && only !== 'uploads') {
  throw new Error('BENCH_ONLY must be broker or uploads');
}
const dataDir = mkdtempSync(join(tmpdir(), 'edgefleet-bench-'));
const log = (s: string) => process.stderr.write(`${s}\n`);
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: cpus().length,
};
const pct = (ratio: number) => `${(ratio * 100).toFixed(1)}%`;

try {
  if (only === undefined || only === 'broker') {
    log(
      `broker benchmark: ${rounds} rounds x ${messagesPerPublisher} messages per publisher, 10 -> 10 clients, 256 B`,
    );
    const r = await benchBroker(
      { dataDir: join(dataDir, 'broker'), rounds, messagesPerPublisher, shadowUpdates },
      log,
    );
    printTable(
      'Broker throughput over TLS (deliveries/s, median of rounds; baseline = plain aedes over TLS, no policy)',
      ['QoS', 'baseline msg/s', 'with IoT policies msg/s', 'ratio', 'target'],
      r.throughput.map((row) => [
        row.qos,
        row.baselineMsgsPerSec,
        row.policyMsgsPerSec,
        pct(row.ratio),
        '>= 80%',
      ]),
    );
    printTable(
      'Shadow update round-trip over MQTT (publish /update -> /update/accepted)',
      ['updates', 'p50 ms', 'p99 ms'],
      [[r.shadow.n, r.shadow.p50, r.shadow.p99]],
    );
    results.broker = { rounds, messagesPerPublisher, ...r };
  }
  if (only === undefined || only === 'uploads') {
    const counts = {
      small: uploadsPerSize,
      medium: uploadsPerSize,
      large: Math.max(2, Math.round(uploadsPerSize / 5)),
    };
    log(
      `upload benchmark: ${counts.small} x 64 KB, ${counts.medium} x 1 MB, ${counts.large} x 32 MB; ${credentialRequests} credential round trips`,
    );
    const u = await benchUploads({ dataDir: join(dataDir, 'uploads'), counts, credentialRequests }, log);
    printTable(
      'Edge uploader into the local S3 vs fs.writeFile + fsync (MB/s, median per object)',
      ['size', 'objects', 'uploader MB/s', 'writeFile+fsync MB/s', 'ratio'],
      u.uploads.map((r) => [r.label, r.count, r.uploaderMBps, r.fsMBps, pct(r.ratio)]),
    );
    printTable(
      'Credential round trip over MQTT (request -> rule -> vending function -> STS -> response)',
      ['requests', 'p50 ms', 'p99 ms'],
      [[u.credentials.n, u.credentials.p50, u.credentials.p99]],
    );
    results.uploads = u;
  }
  mkdirSync(join(process.cwd(), 'bench', 'results'), { recursive: true });
  const file = join(process.cwd(), 'bench', 'results', 'bench.json');
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  log(`results written to ${file}`);
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
