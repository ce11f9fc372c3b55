/** Errors of the embedded local cloud. */
export class LocalCloudError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A configuration value or CLI flag is invalid; the message names the field. */
export class LocalConfigError extends LocalCloudError {}

/** A registry operation refers to something that does not exist. */
export class ResourceNotFoundError extends LocalCloudError {}

/** A registry operation conflicts with existing state (duplicate, still attached, ...). */
export class ResourceConflictError extends LocalCloudError {}

/** A request is malformed; the message names the field. */
export class InvalidRequestError extends LocalCloudError {}

/** State on disk cannot be read back. */
export class StateCorruptError extends LocalCloudError {}
