/**
 * Errors of the local Amazon Kinesis Data Streams. Those answered on the wire follow Kinesis's JSON 1.1
 * form: HTTP 400 (500 for a service fault) with `{"__type": "<Exception>", "message": "..."}`; the SDK
 * maps `__type` to its exception class.
 */
import { ServiceError } from '../http/server.js';

/** Base class of the Kinesis errors; `code` is the exception name the SDK maps to its class. */
export class KinesisError extends ServiceError {
  constructor(code: string, message: string, options: { status?: number; cause?: unknown } = {}) {
    super(options.status ?? 400, code, message);
    if (options.cause !== undefined) this.cause = options.cause;
  }
}

/** The store under `{dataDir}/kinesis` cannot be opened, read or written. */
export class KinesisStorageError extends KinesisError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('InternalFailureException', message, { status: 500, ...options });
  }
}

/** A request member breaks a constraint of the API model (length, pattern, range). */
export class KinesisValidationError extends KinesisError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('ValidationException', message, options);
  }
}

export const invalidArgument = (message: string, cause?: unknown) =>
  new KinesisError('InvalidArgumentException', message, { cause });

export const resourceNotFound = (message: string) => new KinesisError('ResourceNotFoundException', message);

export const resourceInUse = (message: string) => new KinesisError('ResourceInUseException', message);

export const limitExceeded = (message: string) => new KinesisError('LimitExceededException', message);

export const accessDenied = (message: string) => new KinesisError('AccessDeniedException', message);

export const expiredIterator = (message: string) => new KinesisError('ExpiredIteratorException', message);

export const throughputExceeded = (message: string) =>
  new KinesisError('ProvisionedThroughputExceededException', message);

export const serializationError = (message: string) => new KinesisError('SerializationException', message);

export const unknownOperation = (message: string) => new KinesisError('UnknownOperationException', message);

export const serviceUnavailable = (message: string) =>
  new KinesisError('InternalFailureException', message, { status: 503 });
