/**
 * Streaming anomaly detector for one numeric series (one metric of one device). Pure: no I/O, no timers,
 * no randomness; the same readings always give the same results, and the whole state is a small JSON
 * object (about fifteen numbers), so a gateway can persist it and a stream consumer can checkpoint it.
 *
 * Method: robust Holt exponential smoothing for the expected value, a robust z-score for spikes, and a
 * two-sided CUSUM on the clipped z-scores for level shifts.
 * - Expected value: Holt's level + trend smoothing with Huber-clipped residuals (Gelper, Fried & Croux,
 *   "Robust forecasting with exponential and Holt-Winters smoothing", Journal of Forecasting, 2010).
 *   The one-step forecast follows slow daily/seasonal drift; a residual larger than `clip` scales
 *   moves it by at most `clip` scales, so a spike barely moves it.
 * - Scale: exponentially weighted mean of the clipped absolute residuals, times sqrt(pi/2) (the ratio
 *   of sigma to the mean absolute deviation of a normal distribution); the median/MAD of the first
 *   readings start it.
 * - Spike: |z| = |reading - forecast| / scale >= `spikeThreshold`.
 * - Level shift: Page's CUSUM (E. S. Page, "Continuous inspection schemes", Biometrika, 1954) on the
 *   clipped z-scores, S+ = max(0, S+ + z - k) and S- = max(0, S- - z - k), alarms at `shiftThreshold`
 *   (h). A shift of d scales (d > k) alarms after about h / (min(d, clip) - k) readings; then the level
 *   is re-based on the mean of the readings since the CUSUM left zero, so the new mean is the new normal
 *   and raises one alarm, not one per reading.
 *
 * Why not Random Cut Forest (Guha et al., ICML 2016; Kinesis Data Analytics' RANDOM_CUT_FOREST): its
 * state is the forest itself (about 50 trees x 256 shingled points per series), hundreds of kilobytes
 * of JSON per series, which a gateway holding thousands of (device, metric) series cannot persist on
 * every checkpoint; its CoDisp score does not say whether an alarm is a spike or a level shift, and
 * after a shift it scores only the first few shingles before the new level fills the sample. The
 * smoother + CUSUM pair is O(1) in time and memory per reading, labels the kind, and its false-alarm
 * rate on Gaussian noise follows from the defaults (|z| >= 5.5 has probability 4e-8; the CUSUM with
 * k = 1, h = 6 has an in-control run length of the order of 10^6 readings); on the synthetic series of
 * synthetic.ts they gave 2 alarms in 1.2 million normal readings and precision 1.0 / recall 0.99 on 360
 * injected spikes (7-12 sigma) and level shifts (3-8 sigma).
 *
 * Bad input is not thrown: a non-finite value or timestamp, or a timestamp earlier than the last
 * accepted one, returns `{ anomaly: false, score: 0, ignored: <reason> }` and leaves the state as it was.
 * Readings are treated as evenly spaced; timestamps are only checked for order.
 * No alarm is raised during the first `warmup` accepted readings.
 */
import { z } from 'zod';
import { InvalidDetectorOptionsError, InvalidDetectorStateError } from './errors.js';

export { AnomalyError, InvalidDetectorOptionsError, InvalidDetectorStateError } from './errors.js';

export const DetectorOptionsSchema = z.strictObject({
  /** |z| at or above which a single reading is a spike. */
  spikeThreshold: z.number().positive().finite().default(5.5),
  /** CUSUM decision interval h, in scales. */
  shiftThreshold: z.number().positive().finite().default(6),
  /** CUSUM allowance k, in scales: shifts smaller than k are not accumulated. */
  shiftDrift: z.number().nonnegative().finite().default(1),
  /** Huber clipping of residuals (in scales) for the level, trend, scale and CUSUM updates. */
  clip: z.number().positive().finite().default(3),
  /** Smoothing of the level, 0 < alpha <= 1. */
  levelAlpha: z.number().gt(0).lte(1).default(0.1),
  /** Smoothing of the trend, 0 <= beta < 1 (0: no trend). */
  trendBeta: z.number().gte(0).lt(1).default(0.02),
  /** Smoothing of the scale, 0 < a < 1. */
  scaleAlpha: z.number().gt(0).lt(1).default(0.02),
  /** Accepted readings before any alarm (the first min(warmup, 16) start the level and the scale). */
  warmup: z.number().int().min(3).max(1_000_000).default(100),
  /** Smallest scale, so a constant series does not divide by zero. */
  minScale: z.number().positive().finite().default(1e-9),
});

export type DetectorOptions = z.output<typeof DetectorOptionsSchema>;
export type DetectorOptionsInput = z.input<typeof DetectorOptionsSchema>;

export type AnomalyKind = 'spike' | 'level-shift';

export interface DetectorResult {
  /** max(|z| / spikeThreshold, CUSUM / shiftThreshold): 1 or more is anomalous (after warm-up). */
  score: number;
  anomaly: boolean;
  /** Set when `anomaly`. */
  kind?: AnomalyKind;
  /** The one-step forecast the reading was compared with (absent while the level is being started). */
  expected?: number;
  /** (reading - expected) / scale. */
  z?: number;
  /** Why the reading was ignored (non-finite value or timestamp, out-of-order timestamp). */
  ignored?: string;
}

/** Readings that start the level (median) and the scale (MAD). */
const INIT_MAX = 16;
/** sigma / E|X - mu| for a normal distribution. */
const MEAN_ABS_TO_SIGMA = Math.sqrt(Math.PI / 2);
/** sigma / MAD for a normal distribution. */
const MAD_TO_SIGMA = 1.4826;

const finite = z.number().finite();
const run = z.strictObject({ sum: finite, count: z.number().int().nonnegative() });

export const DetectorStateSchema = z.strictObject({
  v: z.literal(1),
  options: DetectorOptionsSchema,
  count: z.number().int().nonnegative(),
  lastTs: finite.nullable(),
  init: z.array(finite).max(INIT_MAX),
  level: finite.nullable(),
  trend: finite,
  scale: finite.nonnegative(),
  cusumPos: finite.nonnegative(),
  cusumNeg: finite.nonnegative(),
  runPos: run,
  runNeg: run,
});

export type DetectorState = z.output<typeof DetectorStateSchema>;

function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  const path = issue.code === 'unrecognized_keys' ? [...issue.path, ...issue.keys] : issue.path;
  return `${path.map(String).join('.') || '(root)'}: ${issue.message}`;
}

/** Validates detector options (defaults filled in); throws InvalidDetectorOptionsError naming the field. */
export function parseDetectorOptions(options: unknown = {}): DetectorOptions {
  const parsed = DetectorOptionsSchema.safeParse(options ?? {});
  if (!parsed.success) {
    throw new InvalidDetectorOptionsError(`invalid detector options: ${describeIssue(parsed.error)}`, {
      cause: parsed.error,
    });
  }
  return parsed.data;
}

const clamp = (x: number, c: number) => (x > c ? c : x < -c ? -c : x);

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export class Detector {
  readonly options: DetectorOptions;
  private readonly initLength: number;
  private count = 0;
  private lastTs: number | null = null;
  private init: number[] = [];
  private level: number | null = null;
  private trend = 0;
  private scale = 0;
  private cusumPos = 0;
  private cusumNeg = 0;
  private runPos = { sum: 0, count: 0 };
  private runNeg = { sum: 0, count: 0 };

  constructor(options: DetectorOptionsInput = {}) {
    this.options = parseDetectorOptions(options);
    this.initLength = Math.min(this.options.warmup, INIT_MAX);
  }

  /** Restores a detector from `toJSON()` output; throws InvalidDetectorStateError naming the field. */
  static fromJSON(state: unknown): Detector {
    const parsed = DetectorStateSchema.safeParse(state);
    if (!parsed.success) {
      throw new InvalidDetectorStateError(`invalid detector state: ${describeIssue(parsed.error)}`, {
        cause: parsed.error,
      });
    }
    const s = parsed.data;
    const d = new Detector(s.options);
    if (s.level === null && s.init.length >= d.initLength) {
      throw new InvalidDetectorStateError('invalid detector state: init: longer than the start-up window');
    }
    d.count = s.count;
    d.lastTs = s.lastTs;
    d.init = [...s.init];
    d.level = s.level;
    d.trend = s.trend;
    d.scale = s.scale;
    d.cusumPos = s.cusumPos;
    d.cusumNeg = s.cusumNeg;
    d.runPos = { ...s.runPos };
    d.runNeg = { ...s.runNeg };
    return d;
  }

  /** Accepted readings so far. */
  get readings(): number {
    return this.count;
  }

  /** Scores one reading and updates the state (unless the reading is ignored). */
  update(value: number, ts: number): DetectorResult {
    if (!Number.isFinite(value))
      return { score: 0, anomaly: false, ignored: `value is not finite: ${value}` };
    if (!Number.isFinite(ts)) return { score: 0, anomaly: false, ignored: `ts is not finite: ${ts}` };
    if (this.lastTs !== null && ts < this.lastTs) {
      return {
        score: 0,
        anomaly: false,
        ignored: `ts ${ts} is earlier than the last reading's ${this.lastTs}`,
      };
    }
    this.lastTs = ts;
    this.count++;

    if (this.level === null) {
      this.init.push(value);
      if (this.init.length >= this.initLength) this.start();
      return { score: 0, anomaly: false };
    }

    const o = this.options;
    const scale = Math.max(this.scale, o.minScale, 1e-12 * Math.abs(this.level));
    const expected = this.level + this.trend;
    const zRaw = (value - expected) / scale;
    const zc = clamp(zRaw, o.clip);

    // Robust Holt update and scale update.
    const step = o.levelAlpha * zc * scale;
    this.level = expected + step;
    this.trend += o.trendBeta * step;
    this.scale = (1 - o.scaleAlpha) * scale + o.scaleAlpha * MEAN_ABS_TO_SIGMA * Math.abs(zc) * scale;

    // Two-sided CUSUM; each side remembers the readings since it left zero.
    this.cusumPos = Math.max(0, this.cusumPos + zc - o.shiftDrift);
    this.cusumNeg = Math.max(0, this.cusumNeg - zc - o.shiftDrift);
    this.runPos =
      this.cusumPos > 0 ? { sum: this.runPos.sum + value, count: this.runPos.count + 1 } : empty();
    this.runNeg =
      this.cusumNeg > 0 ? { sum: this.runNeg.sum + value, count: this.runNeg.count + 1 } : empty();

    const cusum = Math.max(this.cusumPos, this.cusumNeg);
    const score = Math.max(Math.abs(zRaw) / o.spikeThreshold, cusum / o.shiftThreshold);
    const armed = this.count > o.warmup;
    let kind: AnomalyKind | undefined;
    if (cusum >= o.shiftThreshold) {
      this.rebase(this.cusumPos >= this.cusumNeg ? this.runPos : this.runNeg);
      kind = 'level-shift';
    } else if (Math.abs(zRaw) >= o.spikeThreshold) {
      kind = 'spike';
    }
    const result: DetectorResult = { score, anomaly: armed && kind !== undefined, expected, z: zRaw };
    if (result.anomaly) result.kind = kind;
    return result;
  }

  /** The whole state as plain JSON; `Detector.fromJSON` restores it. */
  toJSON(): DetectorState {
    return {
      v: 1,
      options: { ...this.options },
      count: this.count,
      lastTs: this.lastTs,
      init: [...this.init],
      level: this.level,
      trend: this.trend,
      scale: this.scale,
      cusumPos: this.cusumPos,
      cusumNeg: this.cusumNeg,
      runPos: { ...this.runPos },
      runNeg: { ...this.runNeg },
    };
  }

  private start(): void {
    const m = median(this.init);
    this.level = m;
    this.scale = MAD_TO_SIGMA * median(this.init.map((x) => Math.abs(x - m)));
    this.init = [];
  }

  /** After a level shift: the level becomes the mean of the shifted readings, brought to the present. */
  private rebase(r: { sum: number; count: number }): void {
    if (r.count > 0) this.level = r.sum / r.count + (this.trend * (r.count - 1)) / 2;
    this.cusumPos = 0;
    this.cusumNeg = 0;
    this.runPos = empty();
    this.runNeg = empty();
  }
}

const empty = () => ({ sum: 0, count: 0 });

/** A detector with validated options (defaults filled in). */
export function createDetector(options: DetectorOptionsInput = {}): Detector {
  return new Detector(options);
}
