/**
 * Errors of the local Rekognition, answered in the JSON 1.1 protocol as Rekognition does: HTTP 400 with
 * `{"__type", "Code", "Message", "Logref"}` (the SDK takes the type from `__type` and the message from
 * `Message` or `message`).
 */
import { ServiceError } from '../http/server.js';

/** Base class of the Rekognition errors; `code` is the exception name the SDK maps to its class. */
export class RekognitionError extends ServiceError {
  constructor(code: string, message: string, status = 400) {
    super(status, code, message);
  }
}

export const invalidParameter = (message = 'Request has invalid parameters') =>
  new RekognitionError('InvalidParameterException', message);

export const resourceNotFound = (message: string) =>
  new RekognitionError('ResourceNotFoundException', message);

export const resourceAlreadyExists = (message: string) =>
  new RekognitionError('ResourceAlreadyExistsException', message);

export const invalidImageFormat = (message = 'Request has invalid image format') =>
  new RekognitionError('InvalidImageFormatException', message);

export const imageTooLarge = (message: string) => new RekognitionError('ImageTooLargeException', message);

export const invalidS3Object = (
  message = 'Unable to get object metadata from S3. Check object key, region and/or access permissions.',
) => new RekognitionError('InvalidS3ObjectException', message);

export const accessDenied = (message: string) => new RekognitionError('AccessDeniedException', message);

export const invalidPaginationToken = (message = 'Invalid pagination token') =>
  new RekognitionError('InvalidPaginationTokenException', message);
