/**
 * The local S3 endpoint (signing name `s3`, REST-XML), on the local cloud's shared HTTP port.
 *
 * Addressing is path-style, `http://host:port/bucket/key`: point `@aws-sdk/client-s3` at the local
 * cloud with `forcePathStyle: true` (otherwise the SDK puts the bucket into the host name). Virtual-host
 * style also works where `bucket.localhost` resolves to the local cloud (a `Host: bucket.localhost:port`
 * header is read as the bucket).
 *
 * ```ts
 * new S3Client({ region, endpoint: 'http://127.0.0.1:4566', credentials, forcePathStyle: true });
 * ```
 *
 * Every request is authenticated by SigV4 (Authorization header or presigned URL, checked by the HTTP
 * endpoint; the body against `x-amz-content-sha256` here, as it streams), then authorized with the IAM
 * action S3 documents for the operation. Bodies are never held in memory: they stream to a temporary
 * file that is renamed into place. Errors are S3's XML error documents (no body for HEAD).
 */
import type { Authorizer } from '../authz.js';
import {
  AuthError,
  type ServiceError,
  type ServiceRequest,
  type ServiceResponse,
  type ServiceRoute,
} from '../http/server.js';
import { createBucket, deleteBucket, getBucketLocation, headBucket, listBuckets } from './buckets.js';
import { algorithmOfHeader } from './checksums.js';
import {
  hasQuery,
  header,
  hostId,
  partitionOf,
  responseHeaders,
  type S3Context,
  s3RequestId,
} from './context.js';
import { accessDenied, notImplemented, S3Error } from './errors.js';
import { listObjectsV1, listObjectsV2 } from './listing.js';
import {
  abortMultipartUpload,
  completeMultipartUpload,
  createMultipartUpload,
  listMultipartUploads,
  listParts,
  uploadPart,
  uploadPartCopy,
} from './multipart.js';
import type { S3Notifier } from './notifications.js';
import { ObjectStore } from './object-store.js';
import { copyObject, deleteObject, deleteObjects, getObject, putObject } from './objects.js';
import { xmlDocument } from './xml.js';

export interface S3RouteDeps {
  dataDir: string;
  /** Buckets created at start when missing. */
  buckets: readonly string[];
  authorizer: Authorizer;
  /** The region of the local cloud, and of every bucket in it. */
  region: string;
  /** Event notifications (configured from code; `?notification` over the wire is not implemented). */
  notifier?: S3Notifier;
}

/** Sub-resources of the S3 API this endpoint does not implement: answered with 501 NotImplemented. */
const UNSUPPORTED_SUBRESOURCES = [
  'accelerate',
  'acl',
  'analytics',
  'attributes',
  'cors',
  'encryption',
  'intelligent-tiering',
  'inventory',
  'legal-hold',
  'lifecycle',
  'logging',
  'metadataConfiguration',
  'metadataTable',
  'metrics',
  'notification',
  'object-lock',
  'ownershipControls',
  'policy',
  'policyStatus',
  'publicAccessBlock',
  'renameObject',
  'replication',
  'requestPayment',
  'restore',
  'retention',
  'select',
  'session',
  'tagging',
  'torrent',
  'versioning',
  'versions',
  'website',
];

function methodNotAllowed(method: string, resourceType: string): S3Error {
  return new S3Error(405, 'MethodNotAllowed', 'The specified method is not allowed against this resource.', {
    Method: method,
    ResourceType: resourceType,
  });
}

/** Bucket and key from a virtual-host style Host header or from the path. */
export function requestTarget(host: string, rawPath: string): { bucket?: string; key: string } {
  const hostname = host.replace(/:\d+$/, '').toLowerCase();
  const vhost = /^(.+)\.localhost$/.exec(hostname);
  if (vhost) return { bucket: vhost[1]!, key: decodeURIComponent(rawPath.replace(/^\//, '')) };
  const path = rawPath.replace(/^\//, '');
  if (path === '') return { key: '' };
  const slash = path.indexOf('/');
  if (slash < 0) return { bucket: decodeURIComponent(path), key: '' };
  return { bucket: decodeURIComponent(path.slice(0, slash)), key: decodeURIComponent(path.slice(slash + 1)) };
}

async function dispatch(ctx: S3Context): Promise<ServiceResponse> {
  const method = ctx.req.method;
  if (ctx.bucket === undefined) {
    if (method === 'GET') return listBuckets(ctx);
    throw methodNotAllowed(method, 'SERVICE');
  }
  const unsupported = UNSUPPORTED_SUBRESOURCES.find((s) => hasQuery(ctx, s));
  if (unsupported) throw notImplemented(`the ?${unsupported} sub-resource`);
  if (ctx.key === '') {
    switch (method) {
      case 'GET':
        if (hasQuery(ctx, 'uploads')) return listMultipartUploads(ctx);
        if (hasQuery(ctx, 'location')) return getBucketLocation(ctx);
        if (ctx.req.query['list-type'] === '2') return listObjectsV2(ctx);
        return listObjectsV1(ctx);
      case 'HEAD':
        return headBucket(ctx);
      case 'PUT':
        return createBucket(ctx);
      case 'DELETE':
        return deleteBucket(ctx);
      case 'POST':
        if (hasQuery(ctx, 'delete')) return deleteObjects(ctx);
        throw methodNotAllowed(method, 'BUCKET');
      default:
        throw methodNotAllowed(method, 'BUCKET');
    }
  }
  const copy = header(ctx, 'x-amz-copy-source') !== undefined;
  switch (method) {
    case 'GET':
      if (hasQuery(ctx, 'uploadId')) return listParts(ctx);
      return getObject(ctx, false);
    case 'HEAD':
      return getObject(ctx, true);
    case 'PUT':
      if (hasQuery(ctx, 'uploadId') || hasQuery(ctx, 'partNumber'))
        return copy ? uploadPartCopy(ctx) : uploadPart(ctx);
      return copy ? copyObject(ctx) : putObject(ctx);
    case 'DELETE':
      if (hasQuery(ctx, 'uploadId')) return abortMultipartUpload(ctx);
      return deleteObject(ctx);
    case 'POST':
      if (hasQuery(ctx, 'uploads')) return createMultipartUpload(ctx);
      if (hasQuery(ctx, 'uploadId')) return completeMultipartUpload(ctx);
      throw methodNotAllowed(method, 'OBJECT');
    default:
      throw methodNotAllowed(method, 'OBJECT');
  }
}

/** The S3 error for an authentication failure ("Error responses" in the S3 API Reference). */
function authFailure(err: AuthError): S3Error {
  const d = err.details;
  switch (err.failure) {
    case 'unknownAccessKey':
      return new S3Error(
        403,
        'InvalidAccessKeyId',
        'The AWS Access Key Id you provided does not exist in our records.',
        d,
      );
    case 'invalidToken':
      return new S3Error(400, 'InvalidToken', 'The provided token is malformed or otherwise invalid.', d);
    case 'expiredToken':
      return new S3Error(400, 'ExpiredToken', 'The provided token has expired.', d);
    case 'signatureMismatch':
      return new S3Error(
        403,
        'SignatureDoesNotMatch',
        'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
        d,
      );
    case 'requestTimeTooSkewed':
      return new S3Error(
        403,
        'RequestTimeTooSkewed',
        'The difference between the request time and the current time is too large.',
        d,
      );
    case 'presignedExpired':
      return accessDenied('Request has expired', d);
    case 'presignedNotYetValid':
      return accessDenied('Request is not valid yet', d);
    case 'missingDate':
      return accessDenied('AWS authentication requires a valid Date or x-amz-date header', d);
    case 'missingContentSha256':
      return new S3Error(
        400,
        'InvalidRequest',
        'Missing required header for this request: x-amz-content-sha256',
        d,
      );
    case 'missing':
      return accessDenied('Access Denied', d);
    case 'malformed':
      return err.mode === 'query'
        ? new S3Error(400, 'AuthorizationQueryParametersError', err.message, d)
        : new S3Error(
            400,
            'AuthorizationHeaderMalformed',
            `The authorization header is malformed; ${err.message}`,
            d,
          );
  }
}

function toS3Error(err: ServiceError): S3Error {
  if (err instanceof S3Error) return err;
  if (err instanceof AuthError) return authFailure(err);
  if (err.code === 'InvalidRequestException' && err.message === 'malformed URI') {
    return new S3Error(400, 'InvalidURI', "Couldn't parse the specified URI.");
  }
  if (err.status >= 500)
    return new S3Error(500, 'InternalError', 'We encountered an internal error. Please try again.');
  return new S3Error(err.status, err.code, err.message);
}

/** S3's error document; HEAD responses carry only the status and headers. */
export function s3ErrorResponse(
  err: ServiceError,
  req: { method: string; requestId: string },
): ServiceResponse {
  const e = toS3Error(err);
  const headers = responseHeaders(req.requestId, { 'content-type': 'application/xml' });
  if (e.code === 'InvalidRange' && e.fields.ActualObjectSize !== undefined) {
    headers['content-range'] = `bytes */${e.fields.ActualObjectSize}`;
  }
  if (req.method === 'HEAD') return { status: e.status, headers };
  return {
    status: e.status,
    headers,
    body: xmlDocument(
      'Error',
      [
        ['Code', e.code],
        ['Message', e.message],
        ...Object.entries(e.fields).map(([k, v]): [string, string] => [k, v]),
        ['RequestId', s3RequestId(req.requestId)],
        ['HostId', hostId(req.requestId)],
      ],
      false,
    ),
  };
}

/** Query parameters of a presigned URL that are its SigV4 authentication, not hoisted headers. */
const QUERY_AUTH_PARAMS = new Set([
  'x-amz-algorithm',
  'x-amz-credential',
  'x-amz-date',
  'x-amz-expires',
  'x-amz-signedheaders',
  'x-amz-signature',
  'x-amz-security-token',
  'x-amz-content-sha256',
]);

/**
 * A presigned URL carries the request's `x-amz-*` headers as query parameters (the SDK's presigner
 * hoists them: `x-amz-meta-*`, `x-amz-checksum-mode`, `x-amz-storage-class`, ...); S3 reads them as
 * headers. Checksum values are left out (presigned URLs do not support them, see body.ts).
 */
function withHoistedHeaders(req: ServiceRequest): ServiceRequest {
  const headers = { ...req.headers };
  for (const [name, value] of Object.entries(req.query)) {
    const lower = name.toLowerCase();
    if (!lower.startsWith('x-amz-') || QUERY_AUTH_PARAMS.has(lower)) continue;
    if (lower === 'x-amz-sdk-checksum-algorithm' || algorithmOfHeader(lower)) continue;
    if (headers[lower] === undefined) headers[lower] = Array.isArray(value) ? value.join(',') : value;
  }
  return { ...req, headers };
}

export function s3Route(deps: S3RouteDeps): ServiceRoute {
  const store = new ObjectStore(deps.dataDir);
  for (const b of deps.buckets) store.createBucket(b, deps.region);
  const partition = partitionOf(deps.region);
  return {
    signingName: 's3',
    protocol: 'restXml',
    uriEscapePath: false,
    streamingBody: true,
    errorResponse: s3ErrorResponse,
    async handle(req) {
      if (req.region !== deps.region) {
        const d = { Region: deps.region };
        throw req.auth.mode === 'query'
          ? new S3Error(
              400,
              'AuthorizationQueryParametersError',
              `Error parsing the X-Amz-Credential parameter; the region '${req.region}' is wrong; expecting '${deps.region}'`,
              d,
            )
          : new S3Error(
              400,
              'AuthorizationHeaderMalformed',
              `The authorization header is malformed; the region '${req.region}' is wrong; expecting '${deps.region}'`,
              d,
            );
      }
      const target = requestTarget(req.headers.host ?? '', req.rawPath);
      const ctx: S3Context = {
        req: req.auth.mode === 'query' ? withHoistedHeaders(req) : req,
        store,
        authorizer: deps.authorizer,
        region: deps.region,
        partition,
        ...(target.bucket !== undefined ? { bucket: target.bucket } : {}),
        key: target.key,
      };
      const notifier = deps.notifier;
      if (notifier) {
        const caller = req.caller;
        const principalId = `AWS:${caller.session ? `${caller.session.roleId}:${caller.session.sessionName}` : caller.accessKeyId}`;
        ctx.objectCreated = (eventName, object) =>
          notifier.objectCreated({
            eventName,
            ...object,
            principalId,
            sourceIp: req.headers['x-forwarded-for']?.toString().split(',')[0]?.trim() || '127.0.0.1',
            requestId: s3RequestId(req.requestId),
            hostId: hostId(req.requestId),
            time: Date.now(),
          });
      }
      return dispatch(ctx);
    },
  };
}
