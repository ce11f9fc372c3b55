/** Errors of log shipping. */
import { EdgeError } from '../errors.js';

/** Base class of the log shipper's errors. */
export class LogShippingError extends EdgeError {}

/** A followed file cannot be read (other than not existing, which is waited out). */
export class LogFileError extends LogShippingError {
  constructor(
    message: string,
    readonly path: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
