/**
 * Object operations: PutObject, GetObject, HeadObject, CopyObject, DeleteObject, DeleteObjects, as the
 * Amazon S3 API Reference describes each (headers, conditional requests, ranges, checksums).
 */
import { createHash } from 'node:crypto';
import type { ServiceResponse } from '../http/server.js';
import { type ReceivedBody, readSmallBody, receiveBody } from './body.js';
import { type ChecksumAlgorithm, checksumHeader, createDigest, parseAlgorithm } from './checksums.js';
import {
  authorize,
  bucketArn,
  emptyResponse,
  header,
  httpDate,
  isAllowed,
  isoDate,
  objectArn,
  queryParam,
  requireBucket,
  responseHeaders,
  type S3Context,
  utf8Header,
  xmlResponse,
} from './context.js';
import {
  accessDenied,
  invalidArgument,
  invalidRequest,
  malformedXml,
  noSuchBucket,
  noSuchKey,
  notImplemented,
  preconditionFailed,
  S3Error,
} from './errors.js';
import { bucketNameProblem, isFolderKey, keySegments } from './names.js';
import type { ContentHeaders, NewObjectMeta, ObjectMeta, StoredChecksum } from './object-store.js';
import { childText, parseXml, type XmlChildren } from './xml.js';

/** Largest object a single PUT may create (5 GiB). */
export const MAX_PUT_BYTES = 5 * 1024 ** 3;
/** Largest total size of user-defined metadata ("Working with object metadata"). */
const MAX_USER_METADATA_BYTES = 2 * 1024;
const STORAGE_CLASSES = new Set([
  'STANDARD',
  'REDUCED_REDUNDANCY',
  'STANDARD_IA',
  'ONEZONE_IA',
  'INTELLIGENT_TIERING',
  'GLACIER',
  'DEEP_ARCHIVE',
  'OUTPOSTS',
  'GLACIER_IR',
  'SNOW',
  'EXPRESS_ONEZONE',
]);

// -- request metadata -------------------------------------------------------------------------------

/** `x-amz-meta-*` headers (names lower-cased, prefix removed), within S3's 2 KB limit. */
export function userMetadata(ctx: S3Context): Record<string, string> {
  const out: Record<string, string> = {};
  let bytes = 0;
  for (const [name, value] of Object.entries(ctx.req.headers)) {
    if (!name.startsWith('x-amz-meta-') || value === undefined) continue;
    const v = Array.isArray(value) ? value.join(',') : value;
    const k = name.slice('x-amz-meta-'.length);
    out[k] = v;
    bytes += Buffer.byteLength(k) + Buffer.byteLength(v);
  }
  if (bytes > MAX_USER_METADATA_BYTES) {
    throw new S3Error(
      400,
      'MetadataTooLarge',
      'Your metadata headers exceed the maximum allowed metadata size.',
      {
        Size: String(bytes),
        MaxSizeAllowed: String(MAX_USER_METADATA_BYTES),
      },
    );
  }
  return out;
}

/** Content headers to store; `aws-chunked` is a transfer detail and is removed from Content-Encoding. */
export function contentHeaders(ctx: S3Context): ContentHeaders {
  const encoding = (header(ctx, 'content-encoding') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '' && s.toLowerCase() !== 'aws-chunked')
    .join(',');
  const pick = (name: string) => header(ctx, name);
  const out: ContentHeaders = {};
  const type = pick('content-type');
  if (type !== undefined) out.contentType = type;
  if (encoding !== '') out.contentEncoding = encoding;
  const disposition = pick('content-disposition');
  if (disposition !== undefined) out.contentDisposition = disposition;
  const language = pick('content-language');
  if (language !== undefined) out.contentLanguage = language;
  const cache = pick('cache-control');
  if (cache !== undefined) out.cacheControl = cache;
  const expires = pick('expires');
  if (expires !== undefined) out.expires = expires;
  return out;
}

export function storageClass(ctx: S3Context): string | undefined {
  const v = header(ctx, 'x-amz-storage-class');
  if (v === undefined) return undefined;
  if (!STORAGE_CLASSES.has(v)) {
    throw new S3Error(400, 'InvalidStorageClass', 'The storage class you specified is not valid', {
      StorageClassRequested: v,
    });
  }
  return v;
}

// -- conditions -------------------------------------------------------------------------------------

function etagList(value: string): string[] {
  return value.split(',').map((s) => s.trim().replace(/^W\//, '').replace(/^"|"$/g, ''));
}

function etagMatches(value: string, etag: string): boolean {
  const bare = etag.replace(/^"|"$/g, '');
  return etagList(value).some((e) => e === '*' || e === bare);
}

/** Seconds resolution, as HTTP dates have. */
function seconds(ms: number): number {
  return Math.floor(ms / 1000);
}

function parseHttpDate(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : t;
}

/**
 * If-Match / If-Unmodified-Since (412) and If-None-Match / If-Modified-Since (304) on GET and HEAD, with
 * the precedence the GetObject page gives them; returns 'not-modified' for a 304. With `prefix`
 * `x-amz-copy-source-` these are CopyObject's source conditions, where every failure is a 412.
 */
function readConditions(ctx: S3Context, meta: ObjectMeta, prefix = ''): 'ok' | 'not-modified' {
  const get = (name: string) => header(ctx, `${prefix}${name.toLowerCase()}`);
  const failed = (name: string) => preconditionFailed(`${prefix}${name}`);
  const ifMatch = get('If-Match');
  const ifNoneMatch = get('If-None-Match');
  const modifiedSince = parseHttpDate(get('If-Modified-Since'));
  const unmodifiedSince = parseHttpDate(get('If-Unmodified-Since'));
  if (ifMatch !== undefined) {
    if (!etagMatches(ifMatch, meta.etag)) throw failed('If-Match');
  } else if (unmodifiedSince !== undefined && seconds(meta.lastModified) > seconds(unmodifiedSince)) {
    throw failed('If-Unmodified-Since');
  }
  if (ifNoneMatch !== undefined) {
    if (etagMatches(ifNoneMatch, meta.etag)) {
      if (prefix) throw failed('If-None-Match');
      return 'not-modified';
    }
  } else if (modifiedSince !== undefined && seconds(meta.lastModified) <= seconds(modifiedSince)) {
    if (prefix) throw failed('If-Modified-Since');
    return 'not-modified';
  }
  return 'ok';
}

/**
 * Conditional writes ("How to prevent object overwrites with conditional writes"): `If-None-Match: *`
 * fails with 412 when the key exists; `If-Match: etag` fails with 412 when the ETag differs and 404
 * when there is no object. Checked before the body is read and again, atomically, when committing.
 */
export function writeCondition(ctx: S3Context): ((existing: ObjectMeta | undefined) => void) | undefined {
  const ifNoneMatch = header(ctx, 'if-none-match');
  const ifMatch = header(ctx, 'if-match');
  if (ifNoneMatch === undefined && ifMatch === undefined) return undefined;
  if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== '*') {
    throw notImplemented('If-None-Match on writes only supports *');
  }
  return (existing) => {
    if (ifNoneMatch !== undefined && existing) throw preconditionFailed('If-None-Match');
    if (ifMatch !== undefined) {
      if (!existing) throw noSuchKey(ctx.key);
      if (!etagMatches(ifMatch, existing.etag)) throw preconditionFailed('If-Match');
    }
  };
}

// -- responses --------------------------------------------------------------------------------------

export function checksumHeaders(c: StoredChecksum | undefined): Record<string, string> {
  return c ? { [checksumHeader(c.algorithm)]: c.value, 'x-amz-checksum-type': c.type } : {};
}

export function checksumElements(c: StoredChecksum | undefined): XmlChildren {
  if (!c) return [];
  const name = `Checksum${c.algorithm}`;
  return [
    [name, c.value],
    ['ChecksumType', c.type],
  ];
}

function objectHeaders(meta: ObjectMeta, withChecksum: boolean): Record<string, string> {
  const h: Record<string, string> = {
    'last-modified': httpDate(meta.lastModified),
    etag: meta.etag,
    'content-type': meta.contentType ?? 'binary/octet-stream',
    'accept-ranges': 'bytes',
  };
  if (meta.contentEncoding !== undefined) h['content-encoding'] = meta.contentEncoding;
  if (meta.contentDisposition !== undefined) h['content-disposition'] = meta.contentDisposition;
  if (meta.contentLanguage !== undefined) h['content-language'] = meta.contentLanguage;
  if (meta.cacheControl !== undefined) h['cache-control'] = meta.cacheControl;
  if (meta.expires !== undefined) h.expires = meta.expires;
  if (meta.storageClass !== undefined && meta.storageClass !== 'STANDARD')
    h['x-amz-storage-class'] = meta.storageClass;
  for (const [k, v] of Object.entries(meta.userMetadata)) h[`x-amz-meta-${k}`] = v;
  if (withChecksum) Object.assign(h, checksumHeaders(meta.checksum));
  return h;
}

/** `response-content-type` and friends override headers of a GetObject response. */
const RESPONSE_OVERRIDES: Record<string, string> = {
  'response-content-type': 'content-type',
  'response-content-language': 'content-language',
  'response-expires': 'expires',
  'response-cache-control': 'cache-control',
  'response-content-disposition': 'content-disposition',
  'response-content-encoding': 'content-encoding',
};

type Range = { start: number; end: number } | 'unsatisfiable' | undefined;

/**
 * `Range: bytes=a-b`, `bytes=a-`, `bytes=-n`. A header S3 cannot honour (several ranges, bad syntax) is
 * ignored and the whole object returned, as RFC 9110 allows; a range starting past the end is 416.
 */
export function parseRange(value: string | undefined, size: number): Range {
  if (value === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/.exec(value);
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const last = m[2] === '' ? undefined : Number(m[2]);
  if (last !== undefined && last < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end: Math.min(last ?? size - 1, size - 1) };
}

/** Whether the key could be stored (and so can exist); keys too long still fail with KeyTooLongError. */
function storableKey(key: string): boolean {
  try {
    keySegments(key);
    return true;
  } catch (err) {
    if (err instanceof S3Error && err.code === 'InvalidArgument') return false;
    throw err;
  }
}

/** NoSuchKey, or AccessDenied when the caller may not list the bucket (S3 hides which keys exist). */
function missingObject(ctx: S3Context, bucket: string): S3Error {
  return isAllowed(ctx, 's3:ListBucket', bucketArn(ctx, bucket)) ? noSuchKey(ctx.key) : accessDenied();
}

export async function getObject(ctx: S3Context, head: boolean): Promise<ServiceResponse> {
  const bucket = requireBucket(ctx).name;
  authorize(ctx, 's3:GetObject', objectArn(ctx, bucket, ctx.key));
  if (!storableKey(ctx.key)) throw missingObject(ctx, bucket);
  const opened = await ctx.store.open(bucket, ctx.key);
  if (!opened) throw missingObject(ctx, bucket);
  const { meta, handle } = opened;
  let handed = false;
  try {
    if (readConditions(ctx, meta) === 'not-modified') {
      return emptyResponse(ctx, 304, { etag: meta.etag, 'last-modified': httpDate(meta.lastModified) });
    }
    let range = parseRange(header(ctx, 'range'), meta.size);
    let partsCount: number | undefined;
    const partNumberRaw = queryParam(ctx, 'partNumber');
    if (partNumberRaw !== undefined) {
      const partNumber = Number(partNumberRaw);
      const sizes = meta.partSizes ?? [meta.size];
      if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10000) {
        throw invalidArgument(
          'Part number must be an integer between 1 and 10000, inclusive',
          'partNumber',
          partNumberRaw,
        );
      }
      if (partNumber > sizes.length) {
        throw new S3Error(416, 'InvalidPartNumber', 'The requested partnumber is not satisfiable', {
          PartNumberRequested: partNumberRaw,
          ActualPartCount: String(sizes.length),
        });
      }
      const start = sizes.slice(0, partNumber - 1).reduce((a, b) => a + b, 0);
      range = sizes[partNumber - 1] === 0 ? undefined : { start, end: start + sizes[partNumber - 1]! - 1 };
      partsCount = sizes.length;
    }
    if (range === 'unsatisfiable') {
      throw new S3Error(416, 'InvalidRange', 'The requested range is not satisfiable', {
        RangeRequested: header(ctx, 'range') ?? '',
        ActualObjectSize: String(meta.size),
      });
    }
    const checksumMode = (header(ctx, 'x-amz-checksum-mode') ?? '').toUpperCase() === 'ENABLED';
    // The stored checksum is of the whole object: not sent with a byte range or one part of several.
    const whole = range === undefined || (partsCount !== undefined && meta.partSizes === undefined);
    const headers = objectHeaders(meta, checksumMode && whole);
    if (partsCount !== undefined && meta.partSizes) headers['x-amz-mp-parts-count'] = String(partsCount);
    for (const [param, name] of Object.entries(RESPONSE_OVERRIDES)) {
      const v = queryParam(ctx, param);
      if (v !== undefined) headers[name] = v;
    }
    const length = range ? range.end - range.start + 1 : meta.size;
    headers['content-length'] = String(length);
    if (range) headers['content-range'] = `bytes ${range.start}-${range.end}/${meta.size}`;
    const status = range ? 206 : 200;
    if (head || !handle || length === 0) return emptyResponse(ctx, status, headers);
    handed = true;
    return {
      status,
      headers: responseHeaders(ctx.req.requestId, headers),
      body: handle.createReadStream(range ? { start: range.start, end: range.end } : {}),
    };
  } finally {
    if (!handed) await handle?.close();
  }
}

export async function putObject(ctx: S3Context): Promise<ServiceResponse> {
  const bucket = requireBucket(ctx).name;
  authorize(ctx, 's3:PutObject', objectArn(ctx, bucket, ctx.key));
  keySegments(ctx.key);
  const condition = writeCondition(ctx);
  if (condition) condition(await ctx.store.head(bucket, ctx.key));
  const meta: Omit<NewObjectMeta, 'etag' | 'checksum'> = {
    ...contentHeaders(ctx),
    userMetadata: userMetadata(ctx),
  };
  const sc = storageClass(ctx);
  if (sc !== undefined) meta.storageClass = sc;
  const body = await receiveBody(ctx.req, {
    compute: [],
    fallback: 'CRC64NVME',
    maxSize: MAX_PUT_BYTES,
    newTemp: () => ctx.store.newTemp(),
  });
  return commitBody(ctx, bucket, body, meta, condition);
}

async function commitBody(
  ctx: S3Context,
  bucket: string,
  body: ReceivedBody,
  meta: Omit<NewObjectMeta, 'etag' | 'checksum'>,
  condition: ((existing: ObjectMeta | undefined) => void) | undefined,
): Promise<ServiceResponse> {
  const algorithm: ChecksumAlgorithm = body.declared?.algorithm ?? 'CRC64NVME';
  const checksum: StoredChecksum = { algorithm, value: body.checksums[algorithm]!, type: 'FULL_OBJECT' };
  try {
    if (isFolderKey(ctx.key) && body.size > 0) {
      throw invalidArgument(
        `Object key '${ctx.key}' ends in '/', which the local S3 keeps as a directory: it can only be an empty folder marker`,
        'key',
        ctx.key,
      );
    }
    const stored = await ctx.store.commit(
      bucket,
      ctx.key,
      isFolderKey(ctx.key) ? undefined : body.temp,
      { ...meta, etag: `"${body.md5.toString('hex')}"`, checksum },
      condition,
    );
    ctx.objectCreated?.('ObjectCreated:Put', { bucket, key: ctx.key, size: stored.size, etag: stored.etag });
    return emptyResponse(ctx, 200, { etag: stored.etag, ...checksumHeaders(checksum) });
  } finally {
    await body.temp.discard();
  }
}

export async function deleteObject(ctx: S3Context): Promise<ServiceResponse> {
  const bucket = requireBucket(ctx).name;
  authorize(ctx, 's3:DeleteObject', objectArn(ctx, bucket, ctx.key));
  // A key that cannot be stored cannot exist: deleting it succeeds, as deleting any missing key does.
  if (!storableKey(ctx.key)) return emptyResponse(ctx, 204);
  const ifMatch = header(ctx, 'if-match');
  if (ifMatch !== undefined) {
    const existing = await ctx.store.head(bucket, ctx.key);
    if (existing && !etagMatches(ifMatch, existing.etag)) throw preconditionFailed('If-Match');
  }
  await ctx.store.delete(bucket, ctx.key);
  return emptyResponse(ctx, 204);
}

/** DeleteObjects (`POST /bucket?delete`): up to 1000 keys, each authorized as s3:DeleteObject. */
export async function deleteObjects(ctx: S3Context): Promise<ServiceResponse> {
  const bucket = requireBucket(ctx).name;
  const hasDigest =
    header(ctx, 'content-md5') !== undefined ||
    Object.keys(ctx.req.headers).some((h) => h.startsWith('x-amz-checksum-')) ||
    header(ctx, 'x-amz-trailer') !== undefined;
  if (!hasDigest) {
    throw invalidRequest('Missing required header for this request: Content-MD5 or x-amz-checksum-*');
  }
  const doc = parseXml((await readSmallBody(ctx.req, 2 * 1024 * 1024)).toString('utf8'));
  if (doc.name !== 'Delete') throw malformedXml();
  const quiet = (childText(doc, 'Quiet') ?? 'false').trim() === 'true';
  const objects = doc.children.filter((c) => c.name === 'Object');
  if (objects.length === 0 || objects.length > 1000) throw malformedXml();
  const results: XmlChildren = [];
  for (const o of objects) {
    const key = childText(o, 'Key');
    if (key === undefined) throw malformedXml();
    const versionId = childText(o, 'VersionId');
    const entry = (code: string, message: string): XmlChildren[number] => [
      'Error',
      [
        ['Key', key],
        versionId !== undefined && ['VersionId', versionId],
        ['Code', code],
        ['Message', message],
      ],
    ];
    if (!isAllowed(ctx, 's3:DeleteObject', objectArn(ctx, bucket, key))) {
      results.push(entry('AccessDenied', 'Access Denied'));
      continue;
    }
    if (!storableKey(key)) {
      if (!quiet) results.push(['Deleted', [['Key', key]]]);
      continue;
    }
    if (versionId !== undefined && versionId !== 'null') {
      results.push(entry('NoSuchVersion', 'The specified version does not exist.'));
      continue;
    }
    try {
      await ctx.store.delete(bucket, key);
      if (!quiet)
        results.push(['Deleted', [['Key', key], versionId !== undefined && ['VersionId', versionId]]]);
    } catch (err) {
      if (!(err instanceof S3Error)) throw err;
      results.push(entry(err.code, err.message));
    }
  }
  return xmlResponse(ctx, 'DeleteResult', results);
}

// -- copies -----------------------------------------------------------------------------------------

/** `x-amz-copy-source: bucket/key` (URL-encoded, optionally with a leading `/` and `?versionId=`). */
export function copySource(ctx: S3Context): { bucket: string; key: string } {
  const raw = utf8Header(header(ctx, 'x-amz-copy-source') ?? '');
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  if (q >= 0) {
    const version = new URLSearchParams(raw.slice(q + 1)).get('versionId');
    if (version !== null && version !== 'null') {
      throw invalidArgument('Invalid version id specified', 'x-amz-copy-source', raw);
    }
  }
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    decoded = path;
  }
  if (decoded.startsWith('/')) decoded = decoded.slice(1);
  const slash = decoded.indexOf('/');
  if (slash <= 0 || slash === decoded.length - 1) {
    throw invalidArgument('Invalid copy source object key', 'x-amz-copy-source', raw);
  }
  return { bucket: decoded.slice(0, slash), key: decoded.slice(slash + 1) };
}

/** Opens the copy source, authorized as s3:GetObject and checked against the copy-source conditions. */
export async function openCopySource(ctx: S3Context) {
  const src = copySource(ctx);
  if (bucketNameProblem(src.bucket) !== undefined || !ctx.store.bucketInfo(src.bucket))
    throw noSuchBucket(src.bucket);
  authorize(ctx, 's3:GetObject', objectArn(ctx, src.bucket, src.key));
  const opened = storableKey(src.key) ? await ctx.store.open(src.bucket, src.key) : undefined;
  if (!opened) {
    throw isAllowed(ctx, 's3:ListBucket', bucketArn(ctx, src.bucket)) ? noSuchKey(src.key) : accessDenied();
  }
  try {
    readConditions(ctx, opened.meta, 'x-amz-copy-source-');
  } catch (err) {
    await opened.handle?.close();
    throw err;
  }
  return { ...src, ...opened };
}

/** Streams `length` bytes of an open source file into a temp file, computing MD5 and checksums. */
export async function copyBytes(
  ctx: S3Context,
  handle: import('node:fs/promises').FileHandle | undefined,
  start: number,
  length: number,
  algorithms: ChecksumAlgorithm[],
): Promise<ReceivedBody> {
  const temp = await ctx.store.newTemp();
  try {
    const md5 = createHash('md5');
    const digests = algorithms.map((a) => [a, createDigest(a)] as const);
    if (handle && length > 0) {
      for await (const chunk of handle.createReadStream({
        start,
        end: start + length - 1,
        autoClose: false,
      })) {
        const b = chunk as Buffer;
        md5.update(b);
        for (const [, d] of digests) d.update(b);
        await temp.write(b);
      }
    }
    await temp.finish();
    const checksums: ReceivedBody['checksums'] = {};
    for (const [a, d] of digests) checksums[a] = d.digest().toString('base64');
    return { temp, size: length, md5: md5.digest(), checksums };
  } catch (err) {
    await temp.discard();
    throw err;
  }
}

export async function copyObject(ctx: S3Context): Promise<ServiceResponse> {
  const bucket = requireBucket(ctx).name;
  authorize(ctx, 's3:PutObject', objectArn(ctx, bucket, ctx.key));
  keySegments(ctx.key);
  const directive = (header(ctx, 'x-amz-metadata-directive') ?? 'COPY').toUpperCase();
  if (directive !== 'COPY' && directive !== 'REPLACE') {
    throw invalidArgument('Unknown metadata directive.', 'x-amz-metadata-directive', directive);
  }
  const algorithmHeader = header(ctx, 'x-amz-checksum-algorithm');
  const requested = algorithmHeader !== undefined ? parseAlgorithm(algorithmHeader) : undefined;
  if (algorithmHeader !== undefined && !requested) {
    throw invalidRequest(`Checksum algorithm '${algorithmHeader}' is not supported.`);
  }
  const condition = writeCondition(ctx);
  const src = await openCopySource(ctx);
  try {
    const sc = storageClass(ctx);
    if (
      src.bucket === bucket &&
      src.key === ctx.key &&
      directive === 'COPY' &&
      sc === undefined &&
      requested === undefined
    ) {
      throw invalidRequest(
        "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
      );
    }
    if (condition) condition(await ctx.store.head(bucket, ctx.key));
    const algorithm: ChecksumAlgorithm = requested ?? src.meta.checksum?.algorithm ?? 'CRC64NVME';
    const body = await copyBytes(ctx, src.handle, 0, src.meta.size, [algorithm]);
    const source = src.meta;
    const meta: Omit<NewObjectMeta, 'etag' | 'checksum'> =
      directive === 'COPY'
        ? {
            ...pickContentHeaders(source),
            userMetadata: source.userMetadata,
            ...(source.storageClass !== undefined ? { storageClass: source.storageClass } : {}),
          }
        : { ...contentHeaders(ctx), userMetadata: userMetadata(ctx) };
    if (sc !== undefined) meta.storageClass = sc;
    const checksum: StoredChecksum = { algorithm, value: body.checksums[algorithm]!, type: 'FULL_OBJECT' };
    try {
      const stored = await ctx.store.commit(
        bucket,
        ctx.key,
        isFolderKey(ctx.key) ? undefined : body.temp,
        { ...meta, etag: `"${body.md5.toString('hex')}"`, checksum },
        condition,
      );
      ctx.objectCreated?.('ObjectCreated:Copy', {
        bucket,
        key: ctx.key,
        size: stored.size,
        etag: stored.etag,
      });
      return xmlResponse(ctx, 'CopyObjectResult', [
        ['LastModified', isoDate(stored.lastModified)],
        ['ETag', stored.etag],
        ...checksumElements(checksum),
      ]);
    } finally {
      await body.temp.discard();
    }
  } finally {
    await src.handle?.close();
  }
}

export function pickContentHeaders(m: ContentHeaders): ContentHeaders {
  const out: ContentHeaders = {};
  if (m.contentType !== undefined) out.contentType = m.contentType;
  if (m.contentEncoding !== undefined) out.contentEncoding = m.contentEncoding;
  if (m.contentDisposition !== undefined) out.contentDisposition = m.contentDisposition;
  if (m.contentLanguage !== undefined) out.contentLanguage = m.contentLanguage;
  if (m.cacheControl !== undefined) out.cacheControl = m.cacheControl;
  if (m.expires !== undefined) out.expires = m.expires;
  return out;
}
