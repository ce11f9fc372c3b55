/** Errors of the durable spool. */
import { EdgeError } from '../errors.js';

/** Base class of every spool error. */
export class SpoolError extends EdgeError {}

/** The spool configuration (or a call's options) is invalid; the message names the field. */
export class SpoolConfigError extends SpoolError {
  constructor(
    message: string,
    /** Every problem found, each as `{ path: 'streams.1.maxSizeBytes', message }`. */
    readonly issues: readonly { path: string; message: string }[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The stream is not configured. */
export class UnknownStreamError extends SpoolError {
  constructor(
    readonly stream: string,
    options?: { cause?: unknown },
  ) {
    super(`unknown spool stream '${stream}'`, options);
  }
}

/** Why an entry did not fit. */
export type SpoolFullReason =
  /** The entry alone is larger than the stream's `maxSizeBytes`. */
  | 'entry-too-large'
  /** The stream holds `maxSizeBytes` and its strategy is RejectNewData. */
  | 'stream-full'
  /** The spool as a whole (`maxTotalBytes`, less the room kept for critical streams) is full. */
  | 'total-full';

/** The entry was refused for lack of room: it was NOT stored. */
export class SpoolFullError extends SpoolError {
  constructor(
    message: string,
    readonly stream: string,
    readonly reason: SpoolFullReason,
    readonly sizes: {
      entryBytes: number;
      streamBytes: number;
      maxSizeBytes: number;
      totalBytes: number;
      maxTotalBytes?: number;
      /** Bytes kept free for critical streams (only for writes to bulk streams). */
      reservedBytes: number;
    },
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** An ack named a sequence number that was never issued. */
export class SpoolAckError extends SpoolError {}

/** The spool was closed. */
export class SpoolClosedError extends SpoolError {}

/**
 * The storage failed (a commit, a blob write). After a failed commit the spool refuses further work
 * (its in-memory view may be ahead of the disk); reopen it to resume from what is on disk.
 */
export class SpoolStorageError extends SpoolError {}
