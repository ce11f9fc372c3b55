/**
 * Synthetic sensor series with known anomalies, and the evaluator that scores detections against them.
 * Everything is a function of the seed: the same options always give the same series.
 *
 * A series is Gaussian noise (sigma `noise`) around a baseline with a daily cycle and a slower seasonal
 * one, into which spikes (one reading `spikeSigma` noise sigmas off) and level shifts (the mean moves
 * by `shiftSigma` sigmas and stays) are injected at least `minGap` readings apart, none in the first
 * `quietStart` readings.
 *
 * Evaluation follows the window scoring of the Numenta Anomaly Benchmark (Lavin & Ahmad, "Evaluating
 * real-time anomaly detection algorithms", 2015): an anomaly at index i owns the window
 * [i, i + tolerance] (`spikeTolerance` for spikes, `shiftTolerance` for level shifts); the first
 * detection in a window detects that anomaly (one detection per anomaly), further detections in a
 * window are ignored, and detections outside every window are false positives.
 */

export type InjectedKind = 'spike' | 'level-shift';

export interface InjectedAnomaly {
  index: number;
  kind: InjectedKind;
  /** Signed size in noise sigmas. */
  magnitude: number;
}

export interface SyntheticOptions {
  seed: number;
  length: number;
  /** Spikes to inject (default length / 1000). */
  spikes?: number;
  /** Level shifts to inject (default length / 2000). */
  levelShifts?: number;
  baseline?: number;
  /** Noise sigma (default 1). */
  noise?: number;
  /** Readings per day (default 1440: one a minute). */
  dayLength?: number;
  /** Daily cycle amplitude in noise sigmas (default 4). */
  dailyAmplitude?: number;
  /** Seasonal cycle amplitude in noise sigmas (default 6), period 30 days. */
  seasonalAmplitude?: number;
  /** [min, max] spike size in sigmas (default [7, 12]). */
  spikeSigma?: [number, number];
  /** [min, max] level shift size in sigmas (default [3, 8]). */
  shiftSigma?: [number, number];
  /** Minimum distance between injected anomalies (default 200). */
  minGap?: number;
  /** Readings with no anomaly at the start (default 300). */
  quietStart?: number;
  /** Timestamp of the first reading and the interval, ms (default 2026-01-01T00:00:00Z, 60 000). */
  startTs?: number;
  intervalMs?: number;
}

export interface SyntheticSeries {
  values: number[];
  ts: number[];
  /** Injected anomalies in index order. */
  anomalies: InjectedAnomaly[];
}

/** mulberry32: a small, fast, seedable 32-bit PRNG; returns a generator of floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal samples from a uniform generator (Box-Muller). */
export function gaussian(rand: () => number): () => number {
  return () => {
    const u = 1 - rand();
    const v = rand();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

export function generateSeries(options: SyntheticOptions): SyntheticSeries {
  const {
    seed,
    length,
    baseline = 20,
    noise = 1,
    dayLength = 1440,
    dailyAmplitude = 4,
    seasonalAmplitude = 6,
    spikeSigma = [7, 12],
    shiftSigma = [3, 8],
    minGap = 200,
    quietStart = 300,
    startTs = Date.UTC(2026, 0, 1),
    intervalMs = 60_000,
  } = options;
  const spikes = options.spikes ?? Math.floor(length / 1000);
  const levelShifts = options.levelShifts ?? Math.floor(length / 2000);
  if (!Number.isInteger(length) || length < 1) throw new RangeError(`length must be a positive integer`);
  const rand = mulberry32(seed);
  const normal = gaussian(rand);

  // Positions: evenly spread slots with jitter, so anomalies never crowd each other.
  const total = spikes + levelShifts;
  const room = length - quietStart - minGap;
  if (total > 0 && room < total * minGap) {
    throw new RangeError(`${total} anomalies do not fit ${length} readings with minGap ${minGap}`);
  }
  const slot = total > 0 ? room / total : 0;
  const kinds: InjectedKind[] = [
    ...Array.from({ length: spikes }, () => 'spike' as const),
    ...Array.from({ length: levelShifts }, () => 'level-shift' as const),
  ];
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
  }
  const between = (r: [number, number]) => r[0] + rand() * (r[1] - r[0]);
  const sign = () => (rand() < 0.5 ? -1 : 1);
  const anomalies: InjectedAnomaly[] = kinds.map((kind, k) => ({
    index: quietStart + Math.floor(k * slot + rand() * (slot - minGap)),
    kind,
    magnitude: sign() * between(kind === 'spike' ? spikeSigma : shiftSigma),
  }));

  const values: number[] = new Array(length);
  const ts: number[] = new Array(length);
  const phase = rand() * 2 * Math.PI;
  let offset = 0;
  let next = 0;
  for (let i = 0; i < length; i++) {
    let spike = 0;
    const a = anomalies[next];
    if (a && a.index === i) {
      if (a.kind === 'spike') spike = a.magnitude * noise;
      else offset += a.magnitude * noise;
      next++;
    }
    const daily = dailyAmplitude * Math.sin((2 * Math.PI * i) / dayLength + phase);
    const seasonal = seasonalAmplitude * Math.sin((2 * Math.PI * i) / (30 * dayLength) + phase / 2);
    values[i] = baseline + offset + spike + noise * (daily + seasonal + normal());
    ts[i] = startTs + i * intervalMs;
  }
  return { values, ts, anomalies };
}

export interface Detection {
  index: number;
  kind?: InjectedKind;
}

export interface Score {
  /** Anomalies detected / detections that detected one. */
  truePositives: number;
  /** Detections outside every anomaly window. */
  falsePositives: number;
  /** Anomalies not detected. */
  falseNegatives: number;
  /** Detections in a window that another detection had already claimed (not counted either way). */
  duplicates: number;
  precision: number;
  recall: number;
}

export interface Evaluation extends Score {
  /** Recall per injected kind; precision per kind counts the detections labelled with that kind. */
  byKind: Record<InjectedKind, Score>;
}

export interface EvaluateOptions {
  /** Readings after a spike that still count (default 0: the spike itself). */
  spikeTolerance?: number;
  /** Readings after a level shift's start that still count (default 20). */
  shiftTolerance?: number;
}

const ratio = (a: number, b: number) => (b === 0 ? 1 : a / b);

function score(tp: number, fp: number, fn: number, dup: number, detectedOfKind = tp): Score {
  return {
    truePositives: tp,
    falsePositives: fp,
    falseNegatives: fn,
    duplicates: dup,
    precision: ratio(tp, tp + fp),
    recall: ratio(detectedOfKind, detectedOfKind + fn),
  };
}

/** Scores detections against injected anomalies (window rules in the header). */
export function evaluate(
  anomalies: readonly InjectedAnomaly[],
  detections: readonly Detection[],
  options: EvaluateOptions = {},
): Evaluation {
  const { spikeTolerance = 0, shiftTolerance = 20 } = options;
  const windows = anomalies.map((a) => ({
    anomaly: a,
    end: a.index + (a.kind === 'spike' ? spikeTolerance : shiftTolerance),
    detected: false,
  }));
  const kinds: InjectedKind[] = ['spike', 'level-shift'];
  const labelled = { spike: { inWindow: 0, outside: 0 }, 'level-shift': { inWindow: 0, outside: 0 } };
  let tp = 0;
  let fp = 0;
  let dup = 0;
  for (const d of detections) {
    // The earliest-starting window holding the detection that is still open, else any holding it.
    const holding = windows.filter((w) => d.index >= w.anomaly.index && d.index <= w.end);
    const open = holding.find((w) => !w.detected);
    if (open) {
      open.detected = true;
      tp++;
    } else if (holding.length > 0) {
      dup++;
    } else {
      fp++;
    }
    if (d.kind) {
      if (holding.length > 0) labelled[d.kind].inWindow++;
      else labelled[d.kind].outside++;
    }
  }
  const fn = windows.filter((w) => !w.detected).length;
  const byKind = Object.fromEntries(
    kinds.map((k) => {
      const ws = windows.filter((w) => w.anomaly.kind === k);
      const found = ws.filter((w) => w.detected).length;
      const s = score(labelled[k].inWindow, labelled[k].outside, ws.length - found, 0, found);
      return [k, s];
    }),
  ) as Record<InjectedKind, Score>;
  return { ...score(tp, fp, fn, dup), byKind };
}
