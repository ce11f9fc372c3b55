/**
 * Anomaly detector benchmark: throughput of one detector (readings/s, median of the rounds) over a
 * synthetic series with injected spikes and level shifts (analytics/anomaly/synthetic.ts, a different
 * seed each round), the throughput of a DetectorBank spreading the same readings over 1000 series, and
 * precision/recall overall and per kind (spike window: the spike itself; level shift: 20 readings).
 *
 * Baseline, in the same run on the same series: the textbook detector, a z-score of each reading against
 * the running mean and variance of all readings before it (Welford), alarming beyond 4 sigma: its
 * throughput and its precision/recall, to show what the robust forecast and the CUSUM cost and buy.
 */
import { performance } from 'node:perf_hooks';
import {
  createDetector,
  type Detection,
  DetectorBank,
  type Evaluation,
  evaluate,
  generateSeries,
} from '../analytics/anomaly/index.js';
import { median, printTable } from './stats.js';

export interface AnomalyBenchOptions {
  /** Readings per round. */
  readings: number;
  rounds: number;
}

export interface AnomalyBenchResult {
  readings: number;
  rounds: {
    readingsPerSec: number;
    bankReadingsPerSec: number;
    baselineReadingsPerSec: number;
    evaluation: Evaluation;
    baselineEvaluation: Evaluation;
  }[];
  readingsPerSec: number;
  baselineReadingsPerSec: number;
  baseline: { precision: number; recall: number };
  bankReadingsPerSec: number;
  precision: number;
  recall: number;
  spike: { precision: number; recall: number };
  levelShift: { precision: number; recall: number };
}

const BANK_SERIES = 1000;
const BASELINE_SIGMAS = 4;
const BASELINE_WARMUP = 30;

/** The baseline: a running z-score (Welford's mean and variance), spikes only. */
function zScoreBaseline(values: Float64Array | number[]): Detection[] {
  const out: Detection[] = [];
  let n = 0;
  let mean = 0;
  let m2 = 0;
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!;
    if (n >= BASELINE_WARMUP) {
      const sd = Math.sqrt(m2 / (n - 1));
      if (sd > 0 && Math.abs(x - mean) / sd > BASELINE_SIGMAS) out.push({ index: i, kind: 'spike' });
    }
    n++;
    const d = x - mean;
    mean += d / n;
    m2 += d * (x - mean);
  }
  return out;
}

export async function benchAnomaly(
  opts: AnomalyBenchOptions,
  log: (s: string) => void,
): Promise<AnomalyBenchResult> {
  const readings = Math.max(opts.readings, 10_000);
  const rounds: AnomalyBenchResult['rounds'] = [];
  for (let round = 0; round < opts.rounds; round++) {
    const series = generateSeries({ seed: round + 1, length: readings });
    const { values, ts } = series;

    const detector = createDetector();
    const detections: Detection[] = [];
    const t0 = performance.now();
    for (let i = 0; i < values.length; i++) {
      const r = detector.update(values[i]!, ts[i]!);
      if (r.anomaly) detections.push({ index: i, kind: r.kind });
    }
    const singleMs = performance.now() - t0;

    const bank = new DetectorBank({ maxSeries: BANK_SERIES });
    const t1 = performance.now();
    for (let i = 0; i < values.length; i++)
      bank.observe(`device-${i % BANK_SERIES}`, 'temperature', values[i]!, ts[i]!);
    const bankMs = performance.now() - t1;

    const t2 = performance.now();
    const baselineDetections = zScoreBaseline(values);
    const baselineMs = performance.now() - t2;

    const tolerances = { spikeTolerance: 0, shiftTolerance: 20 };
    const evaluation = evaluate(series.anomalies, detections, tolerances);
    rounds.push({
      readingsPerSec: (values.length / singleMs) * 1000,
      bankReadingsPerSec: (values.length / bankMs) * 1000,
      baselineReadingsPerSec: (values.length / baselineMs) * 1000,
      evaluation,
      baselineEvaluation: evaluate(series.anomalies, baselineDetections, tolerances),
    });
    log(
      `anomaly round ${round + 1}/${opts.rounds}: ${Math.round((values.length / singleMs) * 1000)} readings/s, ` +
        `precision ${evaluation.precision.toFixed(3)}, recall ${evaluation.recall.toFixed(3)}`,
    );
    await new Promise((resolve) => setImmediate(resolve));
  }
  const sum = (
    f: (e: Evaluation) => { truePositives: number; falsePositives: number; falseNegatives: number },
    which: 'evaluation' | 'baselineEvaluation' = 'evaluation',
  ) =>
    rounds.reduce(
      (acc, r) => {
        const s = f(r[which]);
        return { tp: acc.tp + s.truePositives, fp: acc.fp + s.falsePositives, fn: acc.fn + s.falseNegatives };
      },
      { tp: 0, fp: 0, fn: 0 },
    );
  const ratio = (a: number, b: number) => (b === 0 ? 1 : a / b);
  const overall = sum((e) => e);
  const base = sum((e) => e, 'baselineEvaluation');
  const recallOf = (kind: 'spike' | 'level-shift') => {
    const found =
      rounds.reduce((n, r) => n + r.evaluation.byKind[kind].recall, 0) / Math.max(rounds.length, 1);
    const s = sum((e) => e.byKind[kind]);
    return { precision: ratio(s.tp, s.tp + s.fp), recall: found };
  };
  const result: AnomalyBenchResult = {
    readings,
    rounds,
    readingsPerSec: median(rounds.map((r) => r.readingsPerSec)),
    bankReadingsPerSec: median(rounds.map((r) => r.bankReadingsPerSec)),
    baselineReadingsPerSec: median(rounds.map((r) => r.baselineReadingsPerSec)),
    baseline: { precision: ratio(base.tp, base.tp + base.fp), recall: ratio(base.tp, base.tp + base.fn) },
    precision: ratio(overall.tp, overall.tp + overall.fp),
    recall: ratio(overall.tp, overall.tp + overall.fn),
    spike: recallOf('spike'),
    levelShift: recallOf('level-shift'),
  };
  printTable(
    `Anomaly detector (${readings} readings x ${opts.rounds} rounds; median throughput)`,
    ['measure', 'readings/s', 'precision', 'recall'],
    [
      ['one detector, all kinds', result.readingsPerSec, result.precision, result.recall],
      [`bank of ${BANK_SERIES} series`, result.bankReadingsPerSec, '', ''],
      ['spikes', '', result.spike.precision, result.spike.recall],
      ['level shifts', '', result.levelShift.precision, result.levelShift.recall],
      [
        `baseline: running z-score > ${BASELINE_SIGMAS} sigma`,
        result.baselineReadingsPerSec,
        result.baseline.precision,
        result.baseline.recall,
      ],
      [
        'ratio detector / baseline (readings/s)',
        (result.readingsPerSec / result.baselineReadingsPerSec).toFixed(2),
        '',
        '',
      ],
    ],
  );
  return result;
}
