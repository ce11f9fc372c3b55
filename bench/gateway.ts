/**
 * Gateway ingest benchmark: records per second through ingest -> pseudonymize -> durable spool -> batch
 * (about 1 KB of JSON per record), the latency from ingest() to durable, and the gateway's peak RSS;
 * against appending the same records (the same bytes) to a file with one fsync per batch, in the same
 * run. Every round runs the pipeline and the baseline each in a fresh child process
 * (bench/gateway-child.ts), alternating which goes first, so that the RSS measured is the gateway's own
 * and machine noise hits both alike.
 *
 * The children run with the component's heap settings (edge-component/heap.ts: the node options of the
 * recipe's Run step, and the old generation's growth); every round also runs the pipeline once with
 * Node's default heap, to show what those settings cost and save.
 *
 * Targets (the issue): at least 20,000 records/s on the 2-core bench machine, peak RSS under 150 MB.
 * BENCH_GATEWAY_CPU_PROF=<dir> writes a V8 CPU profile of every pipeline child to <dir>.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { COMPONENT_NODE_OPTIONS } from '../edge-component/heap.js';
import { bundleScript, runScript } from './child.js';
import type { ChildRequest, ChildResult } from './gateway-child.js';
import { median } from './stats.js';

export interface GatewayBenchOptions {
  dataDir: string;
  records: number;
  rounds: number;
  /** ingest() calls in flight (default 512). */
  concurrency?: number;
  /** maxRecords of a batch, and records per fsync of the baseline (default 1000). */
  batchRecords?: number;
}

export interface GatewayBenchResult {
  records: number;
  rounds: number;
  concurrency: number;
  batchRecords: number;
  /** Mean bytes of one record's JSON. */
  recordBytes: number;
  /** Median of rounds. */
  pipelineRecordsPerSec: number;
  baselineRecordsPerSec: number;
  /** pipeline / baseline. */
  ratio: number;
  /** ingest() -> durable, median over rounds of each round's percentile. */
  latency: { p50Ms: number; p99Ms: number; maxMs: number };
  /** Baseline: record generated -> its batch written and fsynced, the same way. */
  baselineLatency: { p50Ms: number; p99Ms: number };
  /** Highest VmHWM of the pipeline children (peak RSS of the gateway process), MB. */
  peakRssMB: number;
  /** Highest process.memoryUsage().rss sampled during the pipeline runs, MB. */
  sampledPeakRssMB: number;
  /** Highest anonymous and file-backed (mapped: code, the lmdb map) parts of it, MB. */
  peakRssAnonMB: number;
  peakRssFileMB: number;
  /** Highest V8 heap (committed) and Buffer memory of the pipeline runs, MB. */
  peakHeapTotalMB: number;
  peakArrayBuffersMB: number;
  /** Peak RSS of the baseline children: the floor of a process that loads the same modules. */
  baselinePeakRssMB: number;
  /** The pipeline with Node's default heap settings: median records/s and p99, highest peak RSS. */
  nodeDefaultHeap: { recordsPerSec: number; p99Ms: number; peakRssMB: number };
  pseudonyms: number;
  targets: { recordsPerSec: number; rssMB: number; recordsPerSecMet: boolean; rssMet: boolean };
  runs: ChildResult[];
}

export const TARGET_RECORDS_PER_SEC = 20_000;
export const TARGET_RSS_MB = 150;

const CHILD = new URL('./gateway-child.ts', import.meta.url);

export async function benchGateway(
  opts: GatewayBenchOptions,
  log: (s: string) => void,
): Promise<GatewayBenchResult> {
  const concurrency = opts.concurrency ?? 512;
  const batchRecords = opts.batchRecords ?? 1000;
  const cpuProfDir = process.env.BENCH_GATEWAY_CPU_PROF
    ? resolve(process.env.BENCH_GATEWAY_CPU_PROF)
    : undefined;
  const script = await bundleScript(CHILD, 'gateway-child');
  const runs: ChildResult[] = [];
  const pipeline: ChildResult[] = [];
  const baseline: ChildResult[] = [];
  const nodeHeap: ChildResult[] = [];
  for (let round = 0; round < opts.rounds; round++) {
    const base = { records: opts.records, concurrency, batchRecords, seed: 1000 + round };
    const order: ChildRequest['mode'][] =
      round % 2 === 0 ? ['pipeline', 'baseline'] : ['baseline', 'pipeline'];
    for (const mode of order) {
      const dir = join(opts.dataDir, `round-${round}-${mode}`);
      mkdirSync(dir, { recursive: true });
      const profile = cpuProfDir && mode === 'pipeline' ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`] : [];
      const r = await runScript<ChildResult>(
        script,
        { ...base, mode, heap: 'component', dir } satisfies ChildRequest,
        [...COMPONENT_NODE_OPTIONS, ...profile],
      );
      runs.push(r);
      (mode === 'pipeline' ? pipeline : baseline).push(r);
      log(
        `  round ${round + 1} ${mode}: ${r.recordsPerSec.toFixed(0)} records/s, p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms, peak RSS ${r.peakRssMB.toFixed(1)} MB`,
      );
    }
    const dir = join(opts.dataDir, `round-${round}-node-heap`);
    mkdirSync(dir, { recursive: true });
    const r = await runScript<ChildResult>(script, {
      ...base,
      mode: 'pipeline',
      heap: 'node',
      dir,
    } satisfies ChildRequest);
    runs.push(r);
    nodeHeap.push(r);
    log(
      `  round ${round + 1} pipeline, Node's default heap: ${r.recordsPerSec.toFixed(0)} records/s, p99 ${r.p99Ms.toFixed(1)} ms, peak RSS ${r.peakRssMB.toFixed(1)} MB`,
    );
  }
  const pick = (rs: ChildResult[], f: (r: ChildResult) => number) => median(rs.map(f));
  const max = (rs: ChildResult[], f: (r: ChildResult) => number) => rs.reduce((a, r) => Math.max(a, f(r)), 0);
  const pipelineRecordsPerSec = pick(pipeline, (r) => r.recordsPerSec);
  const baselineRecordsPerSec = pick(baseline, (r) => r.recordsPerSec);
  const peakRssMB = max(pipeline, (r) => r.peakRssMB);
  const totalBytes = pipeline.reduce((a, r) => a + r.bytes, 0);
  const totalRecords = pipeline.reduce((a, r) => a + r.records, 0);
  return {
    records: opts.records,
    rounds: opts.rounds,
    concurrency,
    batchRecords,
    recordBytes: totalBytes / totalRecords,
    pipelineRecordsPerSec,
    baselineRecordsPerSec,
    ratio: pipelineRecordsPerSec / baselineRecordsPerSec,
    latency: {
      p50Ms: pick(pipeline, (r) => r.p50Ms),
      p99Ms: pick(pipeline, (r) => r.p99Ms),
      maxMs: max(pipeline, (r) => r.maxMs),
    },
    baselineLatency: { p50Ms: pick(baseline, (r) => r.p50Ms), p99Ms: pick(baseline, (r) => r.p99Ms) },
    peakRssMB,
    sampledPeakRssMB: max(pipeline, (r) => r.sampledPeakRssMB),
    peakRssAnonMB: max(pipeline, (r) => r.peakRssAnonMB),
    peakRssFileMB: max(pipeline, (r) => r.peakRssFileMB),
    peakHeapTotalMB: max(pipeline, (r) => r.peakHeapTotalMB),
    peakArrayBuffersMB: max(pipeline, (r) => r.peakArrayBuffersMB),
    baselinePeakRssMB: max(baseline, (r) => r.peakRssMB),
    nodeDefaultHeap: {
      recordsPerSec: pick(nodeHeap, (r) => r.recordsPerSec),
      p99Ms: pick(nodeHeap, (r) => r.p99Ms),
      peakRssMB: max(nodeHeap, (r) => r.peakRssMB),
    },
    pseudonyms: max(pipeline, (r) => r.pseudonyms),
    targets: {
      recordsPerSec: TARGET_RECORDS_PER_SEC,
      rssMB: TARGET_RSS_MB,
      recordsPerSecMet: pipelineRecordsPerSec >= TARGET_RECORDS_PER_SEC,
      rssMet: peakRssMB < TARGET_RSS_MB,
    },
    runs,
  };
}
