/**
 * ListObjectsV2 and ListObjects (version 1): keys in UTF-8 binary order, `prefix`, `delimiter` with
 * CommonPrefixes, `max-keys` (at most 1000), `continuation-token`/`start-after` (V2), `marker` (V1),
 * `fetch-owner`, `encoding-type=url`.
 */
import type { ServiceResponse } from '../http/server.js';
import {
  accountOf,
  authorize,
  bucketArn,
  canonicalUserId,
  isoDate,
  queryParam,
  requireBucket,
  type S3Context,
  xmlResponse,
} from './context.js';
import { invalidArgument } from './errors.js';
import type { ObjectMeta, WalkOptions } from './object-store.js';
import type { XmlChildren } from './xml.js';

interface Page {
  contents: ObjectMeta[];
  prefixes: string[];
  truncated: boolean;
  /** The last key or common prefix returned. */
  last?: { value: string; isPrefix: boolean };
}

async function listPage(
  ctx: S3Context,
  bucket: string,
  opts: { prefix: string; delimiter?: string; maxKeys: number; after?: string; afterIsPrefix?: boolean },
): Promise<Page> {
  const page: Page = { contents: [], prefixes: [], truncated: false };
  if (opts.maxKeys === 0) return page;
  const walk: WalkOptions = {
    prefix: opts.prefix,
    ...(opts.after !== undefined ? { after: opts.after, afterIsPrefix: opts.afterIsPrefix ?? false } : {}),
  };
  let count = 0;
  for await (const key of ctx.store.walk(bucket, walk)) {
    let entry: { value: string; isPrefix: boolean } = { value: key, isPrefix: false };
    if (opts.delimiter) {
      const idx = key.indexOf(opts.delimiter, opts.prefix.length);
      if (idx >= 0) entry = { value: key.slice(0, idx + opts.delimiter.length), isPrefix: true };
    }
    let meta: ObjectMeta | undefined;
    if (!entry.isPrefix) {
      meta = await ctx.store.head(bucket, key);
      if (!meta) continue; // deleted meanwhile
    }
    if (count === opts.maxKeys) {
      page.truncated = true;
      break;
    }
    if (entry.isPrefix) {
      page.prefixes.push(entry.value);
      walk.skipPrefix = entry.value;
    } else page.contents.push(meta!);
    page.last = entry;
    count++;
  }
  return page;
}

/** `encoding-type=url`: keys and prefixes URL-encoded in the response. */
function encoder(ctx: S3Context): (s: string) => string {
  const type = queryParam(ctx, 'encoding-type');
  if (type === undefined) return (s) => s;
  if (type !== 'url')
    throw invalidArgument('Invalid Encoding Method specified in Request', 'encoding-type', type);
  return (s) => encodeURIComponent(s).replace(/%2F/g, '/').replace(/%20/g, '+');
}

function maxKeysOf(ctx: S3Context): number {
  const raw = queryParam(ctx, 'max-keys');
  if (raw === undefined) return 1000;
  if (!/^\d+$/.test(raw))
    throw invalidArgument('Provided max-keys not an integer or within integer range', 'max-keys', raw);
  return Math.min(Number(raw), 1000);
}

function contentsXml(page: Page, enc: (s: string) => string, owner: string | undefined): XmlChildren {
  return [
    ...page.contents.map((m): XmlChildren[number] => [
      'Contents',
      [
        ['Key', enc(m.key)],
        ['LastModified', isoDate(m.lastModified)],
        ['ETag', m.etag],
        m.checksum !== undefined && ['ChecksumAlgorithm', m.checksum.algorithm],
        m.checksum !== undefined && ['ChecksumType', m.checksum.type],
        ['Size', m.size],
        owner !== undefined && ['Owner', [['ID', owner]]],
        ['StorageClass', m.storageClass ?? 'STANDARD'],
      ],
    ]),
    ...page.prefixes.map((p): XmlChildren[number] => ['CommonPrefixes', [['Prefix', enc(p)]]]),
  ];
}

function listContext(prefix: string | undefined, delimiter: string | undefined, maxKeys: number) {
  return {
    ...(prefix !== undefined ? { 's3:prefix': prefix } : {}),
    ...(delimiter !== undefined ? { 's3:delimiter': delimiter } : {}),
    's3:max-keys': String(maxKeys),
  };
}

function encodeToken(last: { value: string; isPrefix: boolean }): string {
  return Buffer.from(JSON.stringify({ a: last.value, p: last.isPrefix })).toString('base64url');
}

function decodeToken(token: string): { after: string; afterIsPrefix: boolean } {
  try {
    const v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { a?: unknown; p?: unknown };
    if (typeof v.a === 'string' && typeof v.p === 'boolean') return { after: v.a, afterIsPrefix: v.p };
  } catch {
    // reported below
  }
  throw invalidArgument('The continuation token provided is incorrect', 'continuation-token', token);
}

export async function listObjectsV2(ctx: S3Context): Promise<ServiceResponse> {
  const bucket = requireBucket(ctx).name;
  const prefixParam = queryParam(ctx, 'prefix');
  const delimiterParam = queryParam(ctx, 'delimiter');
  const maxKeys = maxKeysOf(ctx);
  authorize(ctx, 's3:ListBucket', bucketArn(ctx, bucket), listContext(prefixParam, delimiterParam, maxKeys));
  const enc = encoder(ctx);
  const prefix = prefixParam ?? '';
  const delimiter = delimiterParam === '' ? undefined : delimiterParam;
  const token = queryParam(ctx, 'continuation-token');
  const startAfter = queryParam(ctx, 'start-after');
  const resume =
    token !== undefined
      ? decodeToken(token)
      : startAfter
        ? { after: startAfter, afterIsPrefix: false }
        : undefined;
  const page = await listPage(ctx, bucket, {
    prefix,
    ...(delimiter !== undefined ? { delimiter } : {}),
    maxKeys,
    ...(resume ?? {}),
  });
  const owner = queryParam(ctx, 'fetch-owner') === 'true' ? canonicalUserId(accountOf(ctx)) : undefined;
  return xmlResponse(ctx, 'ListBucketResult', [
    ['Name', bucket],
    ['Prefix', enc(prefix)],
    delimiter !== undefined && ['Delimiter', enc(delimiter)],
    ['MaxKeys', maxKeys],
    queryParam(ctx, 'encoding-type') !== undefined && ['EncodingType', 'url'],
    ['KeyCount', page.contents.length + page.prefixes.length],
    ['IsTruncated', page.truncated],
    token !== undefined && ['ContinuationToken', token],
    page.truncated && page.last !== undefined && ['NextContinuationToken', encodeToken(page.last)],
    startAfter !== undefined && ['StartAfter', enc(startAfter)],
    ...contentsXml(page, enc, owner),
  ]);
}

export async function listObjectsV1(ctx: S3Context): Promise<ServiceResponse> {
  const bucket = requireBucket(ctx).name;
  const prefixParam = queryParam(ctx, 'prefix');
  const delimiterParam = queryParam(ctx, 'delimiter');
  const maxKeys = maxKeysOf(ctx);
  authorize(ctx, 's3:ListBucket', bucketArn(ctx, bucket), listContext(prefixParam, delimiterParam, maxKeys));
  const enc = encoder(ctx);
  const prefix = prefixParam ?? '';
  const delimiter = delimiterParam === '' ? undefined : delimiterParam;
  const marker = queryParam(ctx, 'marker');
  // A marker that is a common prefix (the NextMarker of a page ending in one) resumes after it.
  const page = await listPage(ctx, bucket, {
    prefix,
    ...(delimiter !== undefined ? { delimiter } : {}),
    maxKeys,
    ...(marker
      ? {
          after: marker,
          afterIsPrefix: delimiter !== undefined && marker.endsWith(delimiter) && marker.startsWith(prefix),
        }
      : {}),
  });
  const owner = canonicalUserId(accountOf(ctx));
  return xmlResponse(ctx, 'ListBucketResult', [
    ['Name', bucket],
    ['Prefix', enc(prefix)],
    ['Marker', enc(marker ?? '')],
    page.truncated &&
      delimiter !== undefined &&
      page.last !== undefined && ['NextMarker', enc(page.last.value)],
    delimiter !== undefined && ['Delimiter', enc(delimiter)],
    ['MaxKeys', maxKeys],
    queryParam(ctx, 'encoding-type') !== undefined && ['EncodingType', 'url'],
    ['IsTruncated', page.truncated],
    ...contentsXml(page, enc, owner),
  ]);
}
