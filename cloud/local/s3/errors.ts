/**
 * S3's errors: each answers with the code and HTTP status the "Error responses" page of the Amazon S3
 * API Reference lists, in S3's XML error document (`<Error><Code/><Message/>...<RequestId/><HostId/>`).
 */
import { ServiceError } from '../http/server.js';

/** An S3 error; `fields` become extra elements of the error document (e.g. `Key`, `BucketName`). */
export class S3Error extends ServiceError {
  constructor(
    status: number,
    code: string,
    message: string,
    readonly fields: Record<string, string> = {},
  ) {
    super(status, code, message);
  }
}

export const noSuchBucket = (bucket: string) =>
  new S3Error(404, 'NoSuchBucket', 'The specified bucket does not exist', { BucketName: bucket });

export const noSuchKey = (key: string) =>
  new S3Error(404, 'NoSuchKey', 'The specified key does not exist.', { Key: key });

export const noSuchUpload = (uploadId: string) =>
  new S3Error(
    404,
    'NoSuchUpload',
    'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
    { UploadId: uploadId },
  );

export const invalidArgument = (message: string, name?: string, value?: string) =>
  new S3Error(400, 'InvalidArgument', message, {
    ...(name !== undefined ? { ArgumentName: name } : {}),
    ...(value !== undefined ? { ArgumentValue: value } : {}),
  });

export const invalidRequest = (message: string) => new S3Error(400, 'InvalidRequest', message);

export const malformedXml = () =>
  new S3Error(
    400,
    'MalformedXML',
    'The XML you provided was not well-formed or did not validate against our published schema',
  );

export const preconditionFailed = (condition: string) =>
  new S3Error(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', {
    Condition: condition,
  });

export const badDigest = (what: string) =>
  new S3Error(400, 'BadDigest', `The ${what} you specified did not match the calculated checksum.`);

export const notImplemented = (what: string) =>
  new S3Error(
    501,
    'NotImplemented',
    `A header or query you provided implies functionality that is not implemented: ${what}`,
  );

export const accessDenied = (message = 'Access Denied', fields: Record<string, string> = {}) =>
  new S3Error(403, 'AccessDenied', message, fields);
