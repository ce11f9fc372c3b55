/**
 * `npm run bench`: runs the benchmarks, prints tables, and writes JSON results to bench/results/.
 * Environment: BENCH_ROUNDS (default 5), BENCH_MESSAGES (per publisher per run, default 1000),
 * BENCH_SHADOW_UPDATES (default 300).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchBroker } from './broker.js';
import { printTable } from './stats.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const int = (name: string, def: number) => {
  const v = Number(process.env[name] ?? def);
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer`);
  return v;
};

const rounds = int('BENCH_ROUNDS', 5);
const messagesPerPublisher = int('BENCH_MESSAGES', 1000);
const shadowUpdates = int('BENCH_SHADOW_UPDATES', 300);
const dataDir = mkdtempSync(join(tmpdir(), 'edgefleet-bench-'));
const log = (s: string) => process.stderr.write(`${s}\n`);

log(
  `broker benchmark: ${rounds} rounds x ${messagesPerPublisher} messages per publisher, 10 publishers -> 10 subscribers, 256 B`,
);
try {
  const r = await benchBroker({ dataDir, rounds, messagesPerPublisher, shadowUpdates }, log);
  printTable(
    'Broker throughput over TLS (deliveries/s, median of rounds; baseline = plain aedes over TLS, no policy)',
    ['QoS', 'baseline msg/s', 'with IoT policies msg/s', 'ratio', 'target'],
    r.throughput.map((row) => [
      row.qos,
      row.baselineMsgsPerSec,
      row.policyMsgsPerSec,
      `${(row.ratio * 100).toFixed(1)}%`,
      '>= 80%',
    ]),
  );
  printTable(
    'Shadow update round-trip over MQTT (publish /update -> /update/accepted)',
    ['updates', 'p50 ms', 'p99 ms'],
    [[r.shadow.n, r.shadow.p50, r.shadow.p99]],
  );
  mkdirSync(join(process.cwd(), 'bench', 'results'), { recursive: true });
  const file = join(process.cwd(), 'bench', 'results', 'broker.json');
  writeFileSync(
    file,
    `${JSON.stringify({ date: new Date().toISOString(), node: process.version, cpus: cpus().length, rounds, messagesPerPublisher, ...r }, null, 2)}\n`,
  );
  log(`results written to ${file}`);
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
