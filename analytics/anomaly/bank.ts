/**
 * One detector per (device, metric), with a bound on the number of series: when a new series would
 * exceed `maxSeries`, the least recently observed one is evicted (its state is lost; if it comes back
 * it warms up again). Pure and JSON-serializable like the detectors it holds.
 */
import { z } from 'zod';
import {
  Detector,
  type DetectorOptionsInput,
  type DetectorResult,
  DetectorStateSchema,
  parseDetectorOptions,
} from './detector.js';
import { InvalidDetectorOptionsError, InvalidDetectorStateError } from './errors.js';

export interface DetectorBankOptions {
  /** Series kept at most (default 10 000). */
  maxSeries?: number;
  /** Options of every detector of the bank. */
  detector?: DetectorOptionsInput;
}

export interface SeriesKey {
  deviceId: string;
  metric: string;
}

export interface BankResult extends DetectorResult {
  /** The series evicted to make room for this one, if any. */
  evicted?: SeriesKey;
}

const BankStateSchema = z.strictObject({
  v: z.literal(1),
  maxSeries: z.number().int().positive(),
  evictions: z.number().int().nonnegative(),
  detector: z.unknown(),
  /** Least recently observed first. */
  series: z.array(
    z.strictObject({ deviceId: z.string().min(1), metric: z.string().min(1), state: z.unknown() }),
  ),
});

export type DetectorBankState = z.output<typeof BankStateSchema>;

const keyOf = (deviceId: string, metric: string) => `${deviceId}\u0000${metric}`;

export class DetectorBank {
  readonly maxSeries: number;
  private readonly detectorOptions: DetectorOptionsInput;
  /** Insertion order is recency order: a series is re-inserted on every observation. */
  private readonly series = new Map<string, { key: SeriesKey; detector: Detector }>();
  private evictionCount = 0;

  constructor(options: DetectorBankOptions = {}) {
    const max = options.maxSeries ?? 10_000;
    if (!Number.isInteger(max) || max < 1) {
      throw new InvalidDetectorOptionsError(`invalid bank options: maxSeries: must be a positive integer`);
    }
    this.maxSeries = max;
    this.detectorOptions = parseDetectorOptions(options.detector ?? {});
  }

  /** Restores a bank from `toJSON()` output; throws InvalidDetectorStateError naming the field. */
  static fromJSON(state: unknown): DetectorBank {
    const parsed = BankStateSchema.safeParse(state);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new InvalidDetectorStateError(
        `invalid bank state: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'}`,
        { cause: parsed.error },
      );
    }
    const s = parsed.data;
    const options = DetectorStateSchema.shape.options.safeParse(s.detector);
    if (!options.success) {
      throw new InvalidDetectorStateError('invalid bank state: detector: not valid detector options', {
        cause: options.error,
      });
    }
    const bank = new DetectorBank({ maxSeries: s.maxSeries, detector: options.data });
    bank.evictionCount = s.evictions;
    s.series.forEach((entry, i) => {
      try {
        const detector = Detector.fromJSON(entry.state);
        bank.series.set(keyOf(entry.deviceId, entry.metric), {
          key: { deviceId: entry.deviceId, metric: entry.metric },
          detector,
        });
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        throw new InvalidDetectorStateError(`invalid bank state: series.${i}.state: ${why}`, { cause: err });
      }
    });
    if (bank.series.size > bank.maxSeries) {
      throw new InvalidDetectorStateError('invalid bank state: series: more than maxSeries');
    }
    return bank;
  }

  get size(): number {
    return this.series.size;
  }

  /** Series evicted since the bank was created (carried over by toJSON/fromJSON). */
  get evictions(): number {
    return this.evictionCount;
  }

  has(deviceId: string, metric: string): boolean {
    return this.series.has(keyOf(deviceId, metric));
  }

  /** Scores a reading of one series, creating its detector (and evicting the least recent) if needed. */
  observe(deviceId: string, metric: string, value: number, ts: number): BankResult {
    if (typeof deviceId !== 'string' || deviceId.length === 0) {
      return { score: 0, anomaly: false, ignored: 'deviceId must be a non-empty string' };
    }
    if (typeof metric !== 'string' || metric.length === 0) {
      return { score: 0, anomaly: false, ignored: 'metric must be a non-empty string' };
    }
    const k = keyOf(deviceId, metric);
    let entry = this.series.get(k);
    let evicted: SeriesKey | undefined;
    if (entry) {
      this.series.delete(k);
    } else {
      // Bad input must not create a series or evict another one.
      if (!Number.isFinite(value) || !Number.isFinite(ts))
        return new Detector(this.detectorOptions).update(value, ts);
      entry = { key: { deviceId, metric }, detector: new Detector(this.detectorOptions) };
      if (this.series.size >= this.maxSeries) {
        const oldest = this.series.keys().next();
        if (!oldest.done) {
          evicted = this.series.get(oldest.value)!.key;
          this.series.delete(oldest.value);
          this.evictionCount++;
        }
      }
    }
    this.series.set(k, entry);
    const result: BankResult = entry.detector.update(value, ts);
    if (evicted) result.evicted = evicted;
    return result;
  }

  /** Forgets one series. */
  delete(deviceId: string, metric: string): boolean {
    return this.series.delete(keyOf(deviceId, metric));
  }

  toJSON(): DetectorBankState {
    return {
      v: 1,
      maxSeries: this.maxSeries,
      evictions: this.evictionCount,
      detector: { ...this.detectorOptions },
      series: [...this.series.values()].map((e) => ({ ...e.key, state: e.detector.toJSON() })),
    };
  }
}
