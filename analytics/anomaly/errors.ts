/** Errors of the anomaly module (options and persisted state). */
export class AnomalyError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Detector or bank options failed validation; the message names the field. */
export class InvalidDetectorOptionsError extends AnomalyError {}

/** A persisted detector or bank state is not one this version can restore; the message names the field. */
export class InvalidDetectorStateError extends AnomalyError {}
