/**
 * Errors of the local Amazon Data Firehose. Those answered on the wire follow Firehose's JSON 1.1 form:
 * HTTP 400 (500 for a service fault) with `{"__type": "<Exception>", "message": "..."}`; the SDK maps
 * `__type` to its exception class.
 */
import { ServiceError } from '../http/server.js';

/** Base class of the Firehose errors; `code` is the exception name the SDK maps to its class. */
export class FirehoseError extends ServiceError {
  constructor(code: string, message: string, options: { status?: number; cause?: unknown } = {}) {
    super(options.status ?? 400, code, message);
    if (options.cause !== undefined) this.cause = options.cause;
  }
}

/** The journal under `{dataDir}/firehose` cannot be opened, read or written. */
export class FirehoseStorageError extends FirehoseError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('ServiceUnavailableException', message, { status: 500, ...options });
  }
}

/** An object could not be written to the destination bucket (logged; the delivery is retried). */
export class FirehoseDeliveryError extends FirehoseError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('DeliveryFailedException', message, { status: 500, ...options });
  }
}

export const invalidArgument = (message: string, cause?: unknown) =>
  new FirehoseError('InvalidArgumentException', message, { cause });

export const resourceNotFound = (message: string) => new FirehoseError('ResourceNotFoundException', message);

export const resourceInUse = (message: string) => new FirehoseError('ResourceInUseException', message);

export const accessDenied = (message: string) => new FirehoseError('AccessDeniedException', message);

export const serviceUnavailable = (message: string) =>
  new FirehoseError('ServiceUnavailableException', message, { status: 503 });

export const serializationError = (message: string) => new FirehoseError('SerializationException', message);

export const unknownOperation = (message: string) => new FirehoseError('UnknownOperationException', message);

/**
 * Why one record cannot go to its partition: `code` and `message` become the error record's `errorCode`
 * and `errorMessage` (never answered on the wire).
 */
export class RecordProcessingError extends FirehoseError {}
