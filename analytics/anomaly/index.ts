/** The streaming anomaly detector: per-series detector, keyed bank, synthetic series and evaluator. */
export {
  type BankResult,
  DetectorBank,
  type DetectorBankOptions,
  type DetectorBankState,
  type SeriesKey,
} from './bank.js';
export {
  type AnomalyKind,
  createDetector,
  Detector,
  type DetectorOptions,
  type DetectorOptionsInput,
  DetectorOptionsSchema,
  type DetectorResult,
  type DetectorState,
  DetectorStateSchema,
  parseDetectorOptions,
} from './detector.js';
export { AnomalyError, InvalidDetectorOptionsError, InvalidDetectorStateError } from './errors.js';
export {
  type Detection,
  type EvaluateOptions,
  type Evaluation,
  evaluate,
  gaussian,
  generateSeries,
  type InjectedAnomaly,
  type InjectedKind,
  mulberry32,
  type Score,
  type SyntheticOptions,
  type SyntheticSeries,
} from './synthetic.js';
