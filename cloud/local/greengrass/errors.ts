/** Errors of the local Greengrass nucleus emulation. */
export class GreengrassLocalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * A modeled Greengrass IPC error: sent to the client as an ApplicationError whose `service-model-type`
 * header is `shape` (for example `aws.greengrass#UnauthorizedError`) and whose JSON body is
 * `{ message, ...fields }`.
 */
export class IpcModeledError extends GreengrassLocalError {
  constructor(
    readonly shape: string,
    message: string,
    readonly fields: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const unauthorizedError = (message: string) =>
  new IpcModeledError('aws.greengrass#UnauthorizedError', message);
export const resourceNotFoundError = (message: string, resourceType?: string, resourceName?: string) =>
  new IpcModeledError('aws.greengrass#ResourceNotFoundError', message, {
    ...(resourceType !== undefined ? { resourceType } : {}),
    ...(resourceName !== undefined ? { resourceName } : {}),
  });
export const invalidArgumentsError = (message: string) =>
  new IpcModeledError('aws.greengrass#InvalidArgumentsError', message);
export const serviceError = (message: string, cause?: unknown) =>
  new IpcModeledError('aws.greengrass#ServiceError', message, {}, { cause });
export const conflictError = (message: string) =>
  new IpcModeledError('aws.greengrass#ConflictError', message);
export const failedUpdateConditionCheckError = (message: string) =>
  new IpcModeledError('aws.greengrass#FailedUpdateConditionCheckError', message);

/** The IPC socket could not be opened. */
export class IpcServerStartError extends GreengrassLocalError {}
