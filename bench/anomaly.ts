/**
 * Anomaly detector benchmark: throughput of one detector (readings/s, median of the rounds) over a
 * synthetic series with injected spikes and level shifts (analytics/anomaly/synthetic.ts, a different
 * seed each round), the throughput of a DetectorBank spreading the same readings over 1000 series, and
 * precision/recall overall and per kind (spike window: the spike itself; level shift: 20 readings).
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
  rounds: { readingsPerSec: number; bankReadingsPerSec: number; evaluation: Evaluation }[];
  readingsPerSec: number;
  bankReadingsPerSec: number;
  precision: number;
  recall: number;
  spike: { precision: number; recall: number };
  levelShift: { precision: number; recall: number };
}

const BANK_SERIES = 1000;

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

    const evaluation = evaluate(series.anomalies, detections, { spikeTolerance: 0, shiftTolerance: 20 });
    rounds.push({
      readingsPerSec: (values.length / singleMs) * 1000,
      bankReadingsPerSec: (values.length / bankMs) * 1000,
      evaluation,
    });
    log(
      `anomaly round ${round + 1}/${opts.rounds}: ${Math.round((values.length / singleMs) * 1000)} readings/s, ` +
        `precision ${evaluation.precision.toFixed(3)}, recall ${evaluation.recall.toFixed(3)}`,
    );
    await new Promise((resolve) => setImmediate(resolve));
  }
  const sum = (
    f: (e: Evaluation) => { truePositives: number; falsePositives: number; falseNegatives: number },
  ) =>
    rounds.reduce(
      (acc, r) => {
        const s = f(r.evaluation);
        return { tp: acc.tp + s.truePositives, fp: acc.fp + s.falsePositives, fn: acc.fn + s.falseNegatives };
      },
      { tp: 0, fp: 0, fn: 0 },
    );
  const ratio = (a: number, b: number) => (b === 0 ? 1 : a / b);
  const overall = sum((e) => e);
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
    ],
  );
  return result;
}
