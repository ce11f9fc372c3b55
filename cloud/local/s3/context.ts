/** What every S3 operation works with: the parsed request, the store, authorization and responses. */
import { createHash } from 'node:crypto';
import type { Authorizer } from '../authz.js';
import type { ServiceRequest, ServiceResponse } from '../http/server.js';
import { accessDenied, noSuchBucket } from './errors.js';
import { bucketNameProblem } from './names.js';
import type { BucketInfo, ObjectStore } from './object-store.js';
import { type XmlChildren, xmlDocument } from './xml.js';

export interface S3Context {
  req: ServiceRequest;
  store: ObjectStore;
  authorizer: Authorizer;
  /** The region the local cloud (and every bucket in it) is in. */
  region: string;
  /** `aws`, `aws-cn` or `aws-us-gov`, from the region. */
  partition: string;
  /** Bucket of the request, if any (path-style or virtual-host style). */
  bucket?: string;
  /** Decoded object key; '' for bucket-level requests. */
  key: string;
  /** Told about every object the request creates (event notifications; delivered after the response). */
  objectCreated?: (
    eventName: 'ObjectCreated:Put' | 'ObjectCreated:Copy' | 'ObjectCreated:CompleteMultipartUpload',
    object: { bucket: string; key: string; size: number; etag: string },
  ) => void;
}

export function partitionOf(region: string): string {
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  return 'aws';
}

export function bucketArn(ctx: S3Context, bucket: string): string {
  return `arn:${ctx.partition}:s3:::${bucket}`;
}

export function objectArn(ctx: S3Context, bucket: string, key: string): string {
  return `arn:${ctx.partition}:s3:::${bucket}/${key}`;
}

/** Condition keys S3 sets on every request ("Amazon S3 condition key examples"). */
function baseContext(ctx: S3Context): Record<string, string> {
  return {
    's3:authType': ctx.req.auth.mode === 'query' ? 'REST-QUERY-STRING' : 'REST-HEADER',
    's3:signatureversion': 'AWS4-HMAC-SHA256',
  };
}

/** Whether the caller may perform `action` on `resource`. */
export function isAllowed(
  ctx: S3Context,
  action: string,
  resource: string,
  context: Record<string, string> = {},
): boolean {
  return ctx.authorizer.authorize(ctx.req.caller, {
    action,
    resource,
    context: { ...baseContext(ctx), ...context },
  }).allowed;
}

/** Throws `AccessDenied` unless the caller may perform `action` on `resource`. */
export function authorize(
  ctx: S3Context,
  action: string,
  resource: string,
  context: Record<string, string> = {},
): void {
  const decision = ctx.authorizer.authorize(ctx.req.caller, {
    action,
    resource,
    context: { ...baseContext(ctx), ...context },
  });
  if (!decision.allowed) {
    throw accessDenied(
      `User: ${ctx.req.caller.principalArn} is not authorized to perform: ${action} on resource: "${resource}" (${decision.reason})`,
    );
  }
}

/** The bucket of the request, which must exist. */
export function requireBucket(ctx: S3Context): BucketInfo {
  const bucket = ctx.bucket;
  if (bucket === undefined || bucketNameProblem(bucket) !== undefined) throw noSuchBucket(bucket ?? '');
  const info = ctx.store.bucketInfo(bucket);
  if (!info) throw noSuchBucket(bucket);
  return info;
}

/** S3-style request ids: 16 upper-case hex digits. */
export function s3RequestId(requestId: string): string {
  return requestId.replace(/-/g, '').slice(0, 16).toUpperCase();
}

export function hostId(requestId: string): string {
  return createHash('sha256').update(requestId).digest('base64');
}

export function responseHeaders(
  requestId: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  const id = s3RequestId(requestId);
  // x-amzn-requestid (set by the HTTP endpoint for every service) carries the same id as S3's own header.
  return { 'x-amz-request-id': id, 'x-amzn-requestid': id, 'x-amz-id-2': hostId(requestId), ...extra };
}

export function xmlResponse(
  ctx: S3Context,
  root: string,
  children: XmlChildren,
  extraHeaders: Record<string, string> = {},
  status = 200,
): ServiceResponse {
  return {
    status,
    headers: responseHeaders(ctx.req.requestId, { 'content-type': 'application/xml', ...extraHeaders }),
    body: xmlDocument(root, children),
  };
}

export function emptyResponse(
  ctx: S3Context,
  status: number,
  headers: Record<string, string> = {},
): ServiceResponse {
  return { status, headers: responseHeaders(ctx.req.requestId, headers) };
}

export function header(ctx: S3Context, name: string): string | undefined {
  const v = ctx.req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

export function queryParam(ctx: S3Context, name: string): string | undefined {
  const v = ctx.req.query[name];
  return Array.isArray(v) ? v[0] : v;
}

export function hasQuery(ctx: S3Context, name: string): boolean {
  return Object.hasOwn(ctx.req.query, name);
}

export function httpDate(ms: number): string {
  return new Date(ms).toUTCString();
}

export function isoDate(ms: number): string {
  return new Date(ms).toISOString();
}

/** The account id of the caller, from its principal ARN. */
export function accountOf(ctx: S3Context): string {
  return ctx.req.caller.principalArn.split(':')[4] ?? '';
}

/** A stable canonical user id for the account (S3 identifies owners by a 64-hex canonical id). */
export function canonicalUserId(account: string): string {
  return createHash('sha256').update(`edgefleet-local-canonical-user:${account}`).digest('hex');
}

/**
 * Header values arrive as latin1 strings. A copy source should be percent-encoded ASCII; raw UTF-8 bytes
 * are read as UTF-8, and if they are not valid UTF-8 (Node.js clients send each character of a header
 * value as one latin1 byte) the latin1 reading is kept.
 */
export function utf8Header(value: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: checking for bytes above ASCII
  if (!/[^\x00-\x7f]/.test(value)) return value;
  const utf8 = Buffer.from(value, 'latin1').toString('utf8');
  return utf8.includes('\ufffd') ? value : utf8;
}
