/** Errors of sensitive-ID pseudonymization (edge-component/pseudonymize). */
import { EdgeError } from '../errors.js';

/** Base class of every pseudonymization error. */
export class PseudonymizationError extends EdgeError {}

/** A configured JSON path is not valid; `position` is the 0-based offset of the problem in `path`. */
export class JsonPathError extends PseudonymizationError {
  constructor(
    message: string,
    readonly path: string,
    readonly position: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The pseudonymizer's configuration is invalid (a bad or duplicate field path); the message names the
 * field index (`fields[2]: ...`) and, for syntax errors, the position in the path.
 */
export class PseudonymizerConfigError extends PseudonymizationError {
  constructor(
    message: string,
    readonly fieldIndex: number,
    readonly position: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * A configured path matched a value that cannot be pseudonymized (an object, an array, a boolean, a
 * non-finite number, ...). `path` is the concrete location (`$.readings[2].patientId`).
 */
export class UnsupportedValueError extends PseudonymizationError {
  constructor(
    message: string,
    readonly path: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The record given to the pseudonymizer is not a JSON object. */
export class InvalidRecordError extends PseudonymizationError {}

/** The key file (or secret) cannot be read, has unsafe permissions, or its content is invalid. */
export class KeyFileError extends PseudonymizationError {
  constructor(
    message: string,
    /** The key file's path, or the secret source's name. */
    readonly source: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A key ring operation failed (unknown key version, rotation could not be persisted, ...). */
export class KeyRingError extends PseudonymizationError {}

/** The re-identification store cannot be opened, read or written. */
export class ReidentificationStoreError extends PseudonymizationError {
  constructor(
    message: string,
    readonly file: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
