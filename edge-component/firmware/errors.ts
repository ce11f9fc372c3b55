/** Errors of the firmware agent. */
import { EdgeError } from '../errors.js';

/** A problem of a firmware update. */
export class FirmwareError extends EdgeError {}

/** The desired document or its manifest was refused before anything was downloaded. */
export class FirmwareRejectedError extends FirmwareError {}

/**
 * The artifact could not be downloaded. `retryable`: a transport problem (connection lost, 5xx,
 * timeout) that a later attempt may cure, as opposed to a refusal (4xx) or a size violation.
 */
export class FirmwareDownloadError extends FirmwareError {
  constructor(
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The downloaded artifact's SHA-256 is not the manifest's. */
export class FirmwareHashMismatchError extends FirmwareError {}

/** Applying the update (switching the link or running the apply command) failed. */
export class FirmwareApplyError extends FirmwareError {}

/** The self-test failed or timed out. */
export class FirmwareSelfTestError extends FirmwareError {}

/** The agent's state file cannot be read or written. */
export class FirmwareStateError extends FirmwareError {}

/** The agent was stopped while an update was running; the persisted state says where it was. */
export class FirmwareAgentStoppedError extends FirmwareError {}
