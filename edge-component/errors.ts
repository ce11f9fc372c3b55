/** Errors of the edge component. */
export class EdgeError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The gateway configuration is invalid; the message names the field (`credentials.maxAttempts: ...`). */
export class GatewayConfigError extends EdgeError {
  constructor(
    message: string,
    /** Every problem found, each as `{ path: 'a.b', message }`. */
    readonly issues: readonly { path: string; message: string }[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A problem of an IoT channel (MQTT connection or Greengrass IPC). */
export class ChannelError extends EdgeError {}

/** The channel is not connected (or lost its connection before the operation finished). */
export class ChannelNotConnectedError extends ChannelError {}

/** The channel was closed by its owner. */
export class ChannelClosedError extends ChannelError {}

/** The broker refused a subscription (SUBACK failure code). */
export class SubscribeRefusedError extends ChannelError {}

/** Why one attempt at getting credentials failed. */
export type CredentialsFailureReason =
  /** No response within `credentials.requestTimeoutMs`. */
  | 'timeout'
  /** The cloud answered `{ requestId, error }`. */
  | 'error-response'
  /** The IoT channel was not connected (or the connection dropped during the request). */
  | 'not-connected'
  /** Publishing the request or subscribing to the response topic failed. */
  | 'channel-error'
  /** The Greengrass token exchange service could not be reached or answered badly. */
  | 'token-exchange-service'
  /** The provider was closed. */
  | 'closed';

/** One failed attempt at getting credentials; the cause of a {@link CredentialsUnavailableError}. */
export class CredentialsRequestError extends EdgeError {
  constructor(
    message: string,
    readonly reason: CredentialsFailureReason,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The gateway could not get AWS credentials: every attempt failed. `reason` is the last attempt's
 * (timeout, error response from the cloud, not connected, ...), and `cause` its error.
 */
export class CredentialsUnavailableError extends EdgeError {
  constructor(
    message: string,
    readonly reason: CredentialsFailureReason,
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A problem of an upload to S3. */
export class UploadError extends EdgeError {}

/** The object key is not under the thing's own prefixes (checked before any request). */
export class InvalidObjectKeyError extends UploadError {}

/** The source of an upload cannot be read. */
export class UploadSourceError extends UploadError {}

/**
 * The key already holds an object with different content: uploads never overwrite (`If-None-Match: *`),
 * so this upload did not happen.
 */
export class DuplicateKeyError extends UploadError {
  constructor(
    message: string,
    readonly key: string,
    /** What the existing object looks like, as far as S3 tells. */
    readonly existing: { size?: number; sha256?: string; etag?: string },
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The upload failed (after retries, where the error was worth retrying); `cause` is the last error. */
export class UploadFailedError extends UploadError {
  constructor(
    message: string,
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The upload was aborted through its AbortSignal. */
export class UploadAbortedError extends UploadError {}
