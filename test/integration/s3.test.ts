/**
 * The local S3 endpoint through the unchanged AWS SDK (@aws-sdk/client-s3, @aws-sdk/lib-storage and
 * @aws-sdk/s3-request-presigner with their default settings; only endpoint, region, credentials and
 * `forcePathStyle: true`), and through hand-signed requests for what the SDK does not send. Page names
 * in comments are pages of the Amazon S3 API Reference unless marked otherwise.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Sha256 } from '@aws-crypto/sha256-js';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetBucketLocationCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListMultipartUploadsCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  type S3ServiceException,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { chunkSignature, deriveSigningKey, EMPTY_SHA256 } from '../../cloud/local/http/sigv4.js';
import { checksumOf } from '../../cloud/local/s3/checksums.js';
import { removeDir, startTestCloud, type TestCloud, tempDir } from '../helpers/cloud.js';

const BUCKET = 'edgefleet-data';
const MiB = 1024 * 1024;

let tc: TestCloud;
let s3: S3Client;

beforeAll(async () => {
  tc = await startTestCloud();
  s3 = new S3Client({ ...tc.cloud.sdkConfig(), forcePathStyle: true });
});

afterAll(async () => {
  s3?.destroy();
  await tc?.stop();
  if (tc) removeDir(tc.dataDir);
});

/** The error an SDK call fails with. */
async function failure(p: Promise<unknown>): Promise<S3ServiceException> {
  try {
    await p;
  } catch (err) {
    return err as S3ServiceException;
  }
  throw new Error('expected the call to fail');
}

function onDisk(bucket: string, key: string): Buffer {
  return readFileSync(join(tc.dataDir, 's3', bucket, ...key.split('/')));
}

function md5(data: Buffer): string {
  return createHash('md5').update(data).digest('hex');
}

/** Signs a request like the SDK does (SigV4, S3 style), with the given payload hash, and sends it. */
async function signedFetch(
  method: string,
  pathAndQuery: string,
  opts: {
    headers?: Record<string, string>;
    body?: Buffer;
    payloadHash: string;
    secretAccessKey?: string;
    signingDate?: Date;
  },
): Promise<Response> {
  const url = new URL(pathAndQuery, tc.cloud.endpoints.httpUrl);
  const { accessKeyId, secretAccessKey } = tc.cloud.sdkConfig().credentials;
  const signer = new SignatureV4({
    credentials: { accessKeyId, secretAccessKey: opts.secretAccessKey ?? secretAccessKey },
    region: tc.cloud.options.region,
    service: 's3',
    sha256: Sha256,
    uriEscapePath: false,
  });
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = v;
  const signed = await signer.sign(
    new HttpRequest({
      method,
      protocol: 'http:',
      hostname: url.hostname,
      port: Number(url.port),
      path: url.pathname,
      query,
      headers: { host: url.host, 'x-amz-content-sha256': opts.payloadHash, ...opts.headers },
    }),
    opts.signingDate ? { signingDate: opts.signingDate } : {},
  );
  const headers = { ...signed.headers };
  delete headers.host;
  return fetch(url, { method, headers, ...(opts.body ? { body: opts.body } : {}) });
}

function errorCode(xml: string): string | undefined {
  return /<Code>([^<]+)<\/Code>/.exec(xml)?.[1];
}

describe('buckets', () => {
  it('lists the buckets created from the options, creates, heads and deletes buckets', async () => {
    const list = await s3.send(new ListBucketsCommand({}));
    expect(list.Buckets?.map((b) => b.Name)).toContain(BUCKET);
    expect(list.Owner?.ID).toMatch(/^[0-9a-f]{64}$/);

    await s3.send(new CreateBucketCommand({ Bucket: 'scratch-bucket' }));
    // "CreateBucket": re-creating a bucket you own answers 200 in us-east-1.
    await s3.send(new CreateBucketCommand({ Bucket: 'scratch-bucket' }));
    const head = await s3.send(new HeadBucketCommand({ Bucket: 'scratch-bucket' }));
    expect(head.BucketRegion).toBe('us-east-1');
    const location = await s3.send(new GetBucketLocationCommand({ Bucket: 'scratch-bucket' }));
    expect(location.LocationConstraint ?? '').toBe('');

    await s3.send(new PutObjectCommand({ Bucket: 'scratch-bucket', Key: 'k', Body: 'v' }));
    const notEmpty = await failure(s3.send(new DeleteBucketCommand({ Bucket: 'scratch-bucket' })));
    expect(notEmpty.name).toBe('BucketNotEmpty');
    expect(notEmpty.$metadata.httpStatusCode).toBe(409);
    await s3.send(new DeleteObjectCommand({ Bucket: 'scratch-bucket', Key: 'k' }));
    await s3.send(new DeleteBucketCommand({ Bucket: 'scratch-bucket' }));
    const gone = await failure(s3.send(new HeadBucketCommand({ Bucket: 'scratch-bucket' })));
    expect(gone.$metadata.httpStatusCode).toBe(404);
  });

  it('answers NoSuchBucket and InvalidBucketName', async () => {
    const missing = await failure(s3.send(new GetObjectCommand({ Bucket: 'no-such-bucket', Key: 'k' })));
    expect(missing.name).toBe('NoSuchBucket');
    expect(missing.$metadata.httpStatusCode).toBe(404);
    const invalid = await failure(s3.send(new CreateBucketCommand({ Bucket: 'Invalid_Name' })));
    expect(invalid.name).toBe('InvalidBucketName');
    expect(invalid.$metadata.httpStatusCode).toBe(400);
  });
});

describe('objects', () => {
  it('round-trips bytes, metadata and content headers; the file on disk holds exactly the bytes', async () => {
    const body = randomBytes(70_000);
    const put = await s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: 'raw/gw-1/batch.ndjson.gz',
        Body: body,
        ContentType: 'application/x-ndjson',
        ContentEncoding: 'gzip',
        CacheControl: 'no-cache',
        ContentDisposition: 'attachment; filename="batch.ndjson.gz"',
        Metadata: { thing: 'gw-1', 'records-count': '42' },
      }),
    );
    // A single PUT's ETag is the quoted MD5 of the object.
    expect(put.ETag).toBe(`"${md5(body)}"`);
    expect(put.ChecksumCRC32).toBe(checksumOf('CRC32', body));

    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'raw/gw-1/batch.ndjson.gz' }));
    expect(Buffer.from(await got.Body!.transformToByteArray())).toEqual(body);
    expect(got).toMatchObject({
      ContentType: 'application/x-ndjson',
      ContentEncoding: 'gzip',
      CacheControl: 'no-cache',
      ContentDisposition: 'attachment; filename="batch.ndjson.gz"',
      ContentLength: body.length,
      ETag: put.ETag,
      Metadata: { thing: 'gw-1', 'records-count': '42' },
      // The SDK asks for checksums (x-amz-checksum-mode: ENABLED) and validated this one while reading.
      ChecksumCRC32: checksumOf('CRC32', body),
      ChecksumType: 'FULL_OBJECT',
    });
    expect(got.LastModified).toBeInstanceOf(Date);
    expect(onDisk(BUCKET, 'raw/gw-1/batch.ndjson.gz')).toEqual(body);

    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'raw/gw-1/batch.ndjson.gz' }));
    expect(head).toMatchObject({ ContentLength: body.length, ETag: put.ETag, Metadata: { thing: 'gw-1' } });
  });

  it('streams a body of unknown chunks (aws-chunked with a trailing CRC32)', async () => {
    const parts = [randomBytes(10_000), randomBytes(70_000), Buffer.from('tail')];
    const all = Buffer.concat(parts);
    const put = await s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: 'streamed',
        Body: Readable.from(parts),
        ContentLength: all.length,
      }),
    );
    expect(put.ETag).toBe(`"${md5(all)}"`);
    expect(onDisk(BUCKET, 'streamed')).toEqual(all);
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'streamed' }));
    expect(Buffer.from(await got.Body!.transformToByteArray())).toEqual(all);
    expect(got.ChecksumCRC32).toBe(checksumOf('CRC32', all));
  });

  it.each([
    ['spaces and unicode', 'dir with space/ü ñ 日本.txt'],
    ['plus and equals', 'dt=2026-01-01/hour=00/a+b=c.json'],
    ['characters the SDK escapes', "it's (1)*!~.txt"],
    ['a percent sign', '100%/done.txt'],
  ])('keys with %s are signed and stored as they are named', async (_, key) => {
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: key }));
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    expect(await got.Body!.transformToString()).toBe(key);
    expect(onDisk(BUCKET, key).toString()).toBe(key);
    const list = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: key }));
    expect(list.Contents?.map((c) => c.Key)).toEqual([key]);
  });

  it('answers NoSuchKey (404, and a bodiless 404 for HEAD) and deletes idempotently', async () => {
    const get = await failure(s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'missing/key' })));
    expect(get.name).toBe('NoSuchKey');
    expect(get.$metadata.httpStatusCode).toBe(404);
    const head = await failure(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'missing/key' })));
    expect(head.name).toBe('NotFound');
    expect(head.$metadata.httpStatusCode).toBe(404);

    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'to-delete/x', Body: 'x' }));
    const del = await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'to-delete/x' }));
    expect(del.$metadata.httpStatusCode).toBe(204);
    expect(existsSync(join(tc.dataDir, 's3', BUCKET, 'to-delete'))).toBe(false);
    // "DeleteObject": deleting a key that does not exist succeeds too.
    const again = await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'to-delete/x' }));
    expect(again.$metadata.httpStatusCode).toBe(204);
  });

  it('deletes many objects at once (DeleteObjects)', async () => {
    for (const k of ['batch/1', 'batch/2', 'batch/3']) {
      await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: k, Body: k }));
    }
    const result = await s3.send(
      new DeleteObjectsCommand({
        Bucket: BUCKET,
        Delete: { Objects: [{ Key: 'batch/1' }, { Key: 'batch/2' }, { Key: 'batch/missing' }] },
      }),
    );
    expect(result.Deleted?.map((d) => d.Key).sort()).toEqual(['batch/1', 'batch/2', 'batch/missing']);
    expect(result.Errors ?? []).toEqual([]);
    const left = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'batch/' }));
    expect(left.Contents?.map((c) => c.Key)).toEqual(['batch/3']);
  });

  it('refuses keys that would escape the bucket directory or clash with a directory', async () => {
    const dotdot = await failure(
      s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'a/../../escape', Body: 'x' })),
    );
    expect(dotdot.name).toBe('InvalidArgument');
    expect(dotdot.$metadata.httpStatusCode).toBe(400);
    expect(existsSync(join(tc.dataDir, 'escape'))).toBe(false);

    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'clash', Body: 'file' }));
    const clash = await failure(
      s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'clash/inner', Body: 'x' })),
    );
    expect(clash.name).toBe('InvalidArgument');
    expect(clash.message).toMatch(/conflicts with 'clash'/);
  });

  it('does not implement the sub-resources it does not serve (501)', async () => {
    const err = await failure(s3.send(new GetObjectTaggingCommand({ Bucket: BUCKET, Key: 'clash' })));
    expect(err.name).toBe('NotImplemented');
    expect(err.$metadata.httpStatusCode).toBe(501);
  });
});

describe('ranges and conditional reads ("GetObject")', () => {
  const data = Buffer.from('0123456789abcdefghij');

  beforeAll(async () => {
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'ranged', Body: data }));
  });

  it.each([
    ['bytes=0-4', '01234', 'bytes 0-4/20'],
    ['bytes=15-', 'fghij', 'bytes 15-19/20'],
    ['bytes=-3', 'hij', 'bytes 17-19/20'],
    ['bytes=18-100', 'ij', 'bytes 18-19/20'],
  ])('Range %s → 206 with Content-Range', async (range, expected, contentRange) => {
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'ranged', Range: range }));
    expect(got.$metadata.httpStatusCode).toBe(206);
    expect(got.ContentRange).toBe(contentRange);
    expect(await got.Body!.transformToString()).toBe(expected);
  });

  it('a range past the end is 416 InvalidRange; several ranges return the whole object', async () => {
    const err = await failure(
      s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'ranged', Range: 'bytes=20-' })),
    );
    expect(err.name).toBe('InvalidRange');
    expect(err.$metadata.httpStatusCode).toBe(416);
    const multi = await s3.send(
      new GetObjectCommand({ Bucket: BUCKET, Key: 'ranged', Range: 'bytes=0-1,4-5' }),
    );
    expect(multi.$metadata.httpStatusCode).toBe(200);
    expect(await multi.Body!.transformToString()).toBe(data.toString());
  });

  it('If-Match / If-None-Match / If-Modified-Since answer 412 and 304', async () => {
    const { ETag, LastModified } = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'ranged' }));
    const ok = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'ranged', IfMatch: ETag }));
    expect(ok.$metadata.httpStatusCode).toBe(200);
    await ok.Body?.transformToString();
    const failed = await failure(
      s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'ranged', IfMatch: '"0000"' })),
    );
    expect(failed.$metadata.httpStatusCode).toBe(412);
    expect(failed.name).toBe('PreconditionFailed');
    const notModified = await failure(
      s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'ranged', IfNoneMatch: ETag })),
    );
    expect(notModified.$metadata.httpStatusCode).toBe(304);
    const since = await failure(
      s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'ranged', IfModifiedSince: LastModified })),
    );
    expect(since.$metadata.httpStatusCode).toBe(304);
    const headFailed = await failure(
      s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'ranged', IfMatch: '"x"' })),
    );
    expect(headFailed.$metadata.httpStatusCode).toBe(412);
  });
});

describe('conditional writes ("How to prevent object overwrites with conditional writes", S3 User Guide)', () => {
  it('If-None-Match: * writes only when the key does not exist', async () => {
    const first = await s3.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: 'once', Body: 'first', IfNoneMatch: '*' }),
    );
    expect(first.ETag).toBeDefined();
    const second = await failure(
      s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'once', Body: 'second', IfNoneMatch: '*' })),
    );
    expect(second.name).toBe('PreconditionFailed');
    expect(second.$metadata.httpStatusCode).toBe(412);
    expect(onDisk(BUCKET, 'once').toString()).toBe('first');
  });

  it('If-Match writes only over the named version; concurrent If-None-Match writes: exactly one wins', async () => {
    const v1 = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cas', Body: 'v1' }));
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cas', Body: 'v2', IfMatch: v1.ETag }));
    const stale = await failure(
      s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cas', Body: 'v3', IfMatch: v1.ETag })),
    );
    expect(stale.$metadata.httpStatusCode).toBe(412);
    const absent = await failure(
      s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cas-absent', Body: 'x', IfMatch: v1.ETag })),
    );
    expect(absent.name).toBe('NoSuchKey');

    const results = await Promise.allSettled(
      Array.from({ length: 5 }, (_, i) =>
        s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'race', Body: `writer ${i}`, IfNoneMatch: '*' })),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((r) => r.status === 'rejected')) {
      expect(((r as PromiseRejectedResult).reason as S3ServiceException).$metadata.httpStatusCode).toBe(412);
    }
  });
});

describe('listing ("ListObjectsV2")', () => {
  const keys = ['list/a.txt', 'list/b/1', 'list/b/2', 'list/c/1', 'list/d', 'list/e/x/y'];

  beforeAll(async () => {
    for (const k of keys) await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: k, Body: k }));
  });

  it('lists in key order under a prefix', async () => {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'list/' }));
    expect(r.Contents?.map((c) => c.Key)).toEqual(keys);
    expect(r.KeyCount).toBe(keys.length);
    expect(r.IsTruncated).toBe(false);
    expect(r.Contents?.[0]).toMatchObject({
      Size: 10,
      StorageClass: 'STANDARD',
      ETag: `"${md5(Buffer.from('list/a.txt'))}"`,
    });
  });

  it('groups by delimiter into CommonPrefixes', async () => {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'list/', Delimiter: '/' }));
    expect(r.Contents?.map((c) => c.Key)).toEqual(['list/a.txt', 'list/d']);
    expect(r.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['list/b/', 'list/c/', 'list/e/']);
  });

  it('pages with max-keys and continuation tokens, keys and prefixes alike', async () => {
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const r = await s3.send(
        new ListObjectsV2Command({
          Bucket: BUCKET,
          Prefix: 'list/',
          Delimiter: '/',
          MaxKeys: 2,
          ContinuationToken: token,
        }),
      );
      pages++;
      seen.push(...(r.Contents ?? []).map((c) => c.Key!), ...(r.CommonPrefixes ?? []).map((p) => p.Prefix!));
      expect(r.KeyCount).toBeLessThanOrEqual(2);
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    expect(pages).toBe(3);
    expect(seen.sort()).toEqual(['list/a.txt', 'list/b/', 'list/c/', 'list/d', 'list/e/']);
  });

  it('starts after a key, and encodes keys when asked (encoding-type=url)', async () => {
    const r = await s3.send(
      new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'list/', StartAfter: 'list/b/2' }),
    );
    expect(r.Contents?.map((c) => c.Key)).toEqual(['list/c/1', 'list/d', 'list/e/x/y']);
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'enc/a b', Body: 'x' }));
    const e = await s3.send(
      new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'enc/', EncodingType: 'url' }),
    );
    expect(e.Contents?.map((c) => decodeURIComponent(c.Key!.replace(/\+/g, ' ')))).toEqual(['enc/a b']);
  });

  it('ListObjects (version 1) with marker', async () => {
    const r = await s3.send(
      new ListObjectsCommand({ Bucket: BUCKET, Prefix: 'list/', Marker: 'list/c/1', MaxKeys: 1 }),
    );
    expect(r.Contents?.map((c) => c.Key)).toEqual(['list/d']);
    expect(r.IsTruncated).toBe(true);
  });
});

describe('copies ("CopyObject")', () => {
  it('copies metadata (COPY) or replaces it (REPLACE)', async () => {
    await s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: 'src/a b+c',
        Body: 'source',
        ContentType: 'text/plain',
        Metadata: { m: '1' },
      }),
    );
    const copied = await s3.send(
      new CopyObjectCommand({ Bucket: BUCKET, Key: 'dst/copy', CopySource: `${BUCKET}/src/a%20b%2Bc` }),
    );
    expect(copied.CopyObjectResult?.ETag).toBe(`"${md5(Buffer.from('source'))}"`);
    const c = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'dst/copy' }));
    expect(c).toMatchObject({ ContentType: 'text/plain', Metadata: { m: '1' } });

    await s3.send(
      new CopyObjectCommand({
        Bucket: BUCKET,
        Key: 'dst/replaced',
        CopySource: `${BUCKET}/src/a%20b%2Bc`,
        MetadataDirective: 'REPLACE',
        ContentType: 'application/json',
        Metadata: { other: '2' },
      }),
    );
    const r = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'dst/replaced' }));
    expect(r).toMatchObject({ ContentType: 'application/json', Metadata: { other: '2' } });
    expect(onDisk(BUCKET, 'dst/replaced').toString()).toBe('source');
  });

  it('refuses to copy an object onto itself unchanged, and checks source conditions', async () => {
    const self = await failure(
      s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: 'dst/copy', CopySource: `${BUCKET}/dst/copy` })),
    );
    expect(self.name).toBe('InvalidRequest');
    const cond = await failure(
      s3.send(
        new CopyObjectCommand({
          Bucket: BUCKET,
          Key: 'dst/x',
          CopySource: `${BUCKET}/dst/copy`,
          CopySourceIfMatch: '"nope"',
        }),
      ),
    );
    expect(cond.$metadata.httpStatusCode).toBe(412);
    const missing = await failure(
      s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: 'dst/x', CopySource: `${BUCKET}/nothing` })),
    );
    expect(missing.name).toBe('NoSuchKey');
  });
});

describe('multipart uploads', () => {
  it('lib-storage uploads 12 MB in parts; the ETag is the MD5 of the part MD5s, -N', async () => {
    const body = randomBytes(12 * MiB);
    const result = await new Upload({
      client: s3,
      params: { Bucket: BUCKET, Key: 'frames/gw-1/big.bin', Body: body },
    }).done();
    const partSize = 5 * MiB;
    const partMd5s = [0, 1, 2].map((i) =>
      createHash('md5')
        .update(body.subarray(i * partSize, (i + 1) * partSize))
        .digest(),
    );
    expect(result.ETag).toBe(`"${createHash('md5').update(Buffer.concat(partMd5s)).digest('hex')}-3"`);
    expect(onDisk(BUCKET, 'frames/gw-1/big.bin').equals(body)).toBe(true);

    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'frames/gw-1/big.bin' }));
    expect(got.ContentLength).toBe(body.length);
    expect(got.ChecksumType).toBe('COMPOSITE');
    expect(got.ChecksumCRC32).toMatch(/-3$/);
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(body)).toBe(true);

    // GetObject ?partNumber= returns one part.
    const part2 = await s3.send(
      new GetObjectCommand({ Bucket: BUCKET, Key: 'frames/gw-1/big.bin', PartNumber: 2 }),
    );
    expect(part2.PartsCount).toBe(3);
    expect(
      Buffer.from(await part2.Body!.transformToByteArray()).equals(body.subarray(partSize, 2 * partSize)),
    ).toBe(true);
  });

  it('lib-storage uploads 64 KB in a single PUT', async () => {
    const body = randomBytes(64 * 1024);
    const result = await new Upload({
      client: s3,
      params: { Bucket: BUCKET, Key: 'raw/gw-1/small.bin', Body: body },
    }).done();
    expect(result.ETag).toBe(`"${md5(body)}"`);
    expect(onDisk(BUCKET, 'raw/gw-1/small.bin').equals(body)).toBe(true);
  });

  it('creates, uploads, lists, copies a part and completes by hand; checks order, sizes and ETags', async () => {
    const key = 'mpu/manual';
    const { UploadId } = await s3.send(
      new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key, Metadata: { via: 'mpu' } }),
    );
    const p1 = randomBytes(5 * MiB);
    const p3 = Buffer.from('the end');
    const r1 = await s3.send(
      new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: 1, Body: p1 }),
    );
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'mpu/source', Body: randomBytes(6 * MiB) }));
    const r2 = await s3.send(
      new UploadPartCopyCommand({
        Bucket: BUCKET,
        Key: key,
        UploadId,
        PartNumber: 2,
        CopySource: `${BUCKET}/mpu/source`,
        CopySourceRange: `bytes=0-${5 * MiB - 1}`,
      }),
    );
    const r3 = await s3.send(
      new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: 3, Body: p3 }),
    );

    const parts = await s3.send(new ListPartsCommand({ Bucket: BUCKET, Key: key, UploadId }));
    expect(parts.Parts?.map((p) => [p.PartNumber, p.Size])).toEqual([
      [1, 5 * MiB],
      [2, 5 * MiB],
      [3, p3.length],
    ]);
    const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: 'mpu/' }));
    expect(uploads.Uploads?.map((u) => u.UploadId)).toContain(UploadId);

    const complete = (parts: { PartNumber: number; ETag?: string }[], extra: { IfNoneMatch?: string } = {}) =>
      s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: BUCKET,
          Key: key,
          UploadId,
          MultipartUpload: { Parts: parts },
          ...extra,
        }),
      );
    const outOfOrder = await failure(
      complete([
        { PartNumber: 2, ETag: r2.CopyPartResult?.ETag },
        { PartNumber: 1, ETag: r1.ETag },
      ]),
    );
    expect(outOfOrder.name).toBe('InvalidPartOrder');
    const wrongEtag = await failure(
      complete([{ PartNumber: 1, ETag: '"00000000000000000000000000000000"' }]),
    );
    expect(wrongEtag.name).toBe('InvalidPart');
    const missingPart = await failure(complete([{ PartNumber: 7, ETag: r1.ETag }]));
    expect(missingPart.name).toBe('InvalidPart');

    // "Conditional writes": If-None-Match: * on CompleteMultipartUpload when the key exists.
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: 'already here' }));
    const all = [
      { PartNumber: 1, ETag: r1.ETag },
      { PartNumber: 2, ETag: r2.CopyPartResult?.ETag },
      { PartNumber: 3, ETag: r3.ETag },
    ];
    const exists = await failure(complete(all, { IfNoneMatch: '*' }));
    expect(exists.$metadata.httpStatusCode).toBe(412);
    expect(onDisk(BUCKET, key).toString()).toBe('already here');

    const done = await complete(all);
    const source = onDisk(BUCKET, 'mpu/source');
    const expected = Buffer.concat([p1, source.subarray(0, 5 * MiB), p3]);
    const etag = createHash('md5')
      .update(
        Buffer.concat([p1, source.subarray(0, 5 * MiB), p3].map((b) => createHash('md5').update(b).digest())),
      )
      .digest('hex');
    expect(done.ETag).toBe(`"${etag}-3"`);
    expect(onDisk(BUCKET, key).equals(expected)).toBe(true);
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
    expect(head).toMatchObject({ ContentLength: expected.length, Metadata: { via: 'mpu' }, ETag: done.ETag });
    // Created without a checksum algorithm: S3's default, a full-object CRC64NVME, which the SDK validates.
    const whole = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    expect(whole.ChecksumCRC64NVME).toBe(checksumOf('CRC64NVME', expected));
    expect(Buffer.from(await whole.Body!.transformToByteArray()).equals(expected)).toBe(true);
    const part3 = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, PartNumber: 3 }));
    expect(part3.ChecksumCRC64NVME).toBeUndefined();
    expect(await part3.Body!.transformToString()).toBe('the end');

    // The upload is gone once completed.
    const again = await failure(complete(all));
    expect(again.name).toBe('NoSuchUpload');
    expect(again.$metadata.httpStatusCode).toBe(404);
  });

  it('refuses parts smaller than 5 MiB other than the last (EntityTooSmall)', async () => {
    const key = 'mpu/small';
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
    const a = await s3.send(
      new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: 1, Body: 'small' }),
    );
    const b = await s3.send(
      new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: 2, Body: 'parts' }),
    );
    const err = await failure(
      s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: BUCKET,
          Key: key,
          UploadId,
          MultipartUpload: {
            Parts: [
              { PartNumber: 1, ETag: a.ETag },
              { PartNumber: 2, ETag: b.ETag },
            ],
          },
        }),
      ),
    );
    expect(err.name).toBe('EntityTooSmall');
    expect(err.$metadata.httpStatusCode).toBe(400);
    await s3.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId }));
    const gone = await failure(s3.send(new ListPartsCommand({ Bucket: BUCKET, Key: key, UploadId })));
    expect(gone.name).toBe('NoSuchUpload');
  });

  it('a CRC32C upload gets a COMPOSITE checksum of its parts', async () => {
    const key = 'mpu/crc32c';
    const { UploadId, ChecksumAlgorithm } = await s3.send(
      new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key, ChecksumAlgorithm: 'CRC32C' }),
    );
    expect(ChecksumAlgorithm).toBe('CRC32C');
    const body = randomBytes(5 * MiB + 10);
    const parts = [body.subarray(0, 5 * MiB), body.subarray(5 * MiB)];
    const done: { PartNumber: number; ETag?: string; ChecksumCRC32C?: string }[] = [];
    for (const [i, p] of parts.entries()) {
      const r = await s3.send(
        new UploadPartCommand({
          Bucket: BUCKET,
          Key: key,
          UploadId,
          PartNumber: i + 1,
          Body: p,
          ChecksumAlgorithm: 'CRC32C',
        }),
      );
      expect(r.ChecksumCRC32C).toBe(checksumOf('CRC32C', p));
      done.push({ PartNumber: i + 1, ETag: r.ETag, ChecksumCRC32C: r.ChecksumCRC32C });
    }
    const result = await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: BUCKET,
        Key: key,
        UploadId,
        MultipartUpload: { Parts: done },
      }),
    );
    const composite = checksumOf(
      'CRC32C',
      Buffer.concat(parts.map((p) => Buffer.from(checksumOf('CRC32C', p), 'base64'))),
    );
    expect(result.ChecksumCRC32C).toBe(`${composite}-2`);
    expect(result.ChecksumType).toBe('COMPOSITE');
  });
});

describe('authentication', () => {
  it('a wrong secret is SignatureDoesNotMatch; an unknown key is InvalidAccessKeyId', async () => {
    const { credentials, ...rest } = tc.cloud.sdkConfig();
    const wrong = new S3Client({
      ...rest,
      forcePathStyle: true,
      credentials: { ...credentials, secretAccessKey: 'x'.repeat(40) },
    });
    const e1 = await failure(wrong.send(new ListObjectsV2Command({ Bucket: BUCKET })));
    expect(e1.name).toBe('SignatureDoesNotMatch');
    expect(e1.$metadata.httpStatusCode).toBe(403);
    wrong.destroy();
    const unknown = new S3Client({
      ...rest,
      forcePathStyle: true,
      credentials: { accessKeyId: 'AKIAUNKNOWNUNKNOWN00', secretAccessKey: 'x'.repeat(40) },
    });
    const e2 = await failure(unknown.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'once' })));
    expect(e2.name).toBe('InvalidAccessKeyId');
    expect(e2.$metadata.httpStatusCode).toBe(403);
    unknown.destroy();
  });

  it('a signature made for another region is AuthorizationHeaderMalformed', async () => {
    const other = new S3Client({ ...tc.cloud.sdkConfig(), region: 'eu-west-1', forcePathStyle: true });
    const err = await failure(other.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'once' })));
    expect(err.name).toBe('AuthorizationHeaderMalformed');
    other.destroy();
  });

  it('credentials without a policy allowing the action are AccessDenied', async () => {
    tc.cloud.credentials.add({
      accessKeyId: 'AKIANOBODYNOBODY2345',
      secretAccessKey: 'nobody-secret-nobody-secret',
      principalArn: 'arn:aws:iam::000000000000:user/nobody',
    });
    const nobody = new S3Client({
      ...tc.cloud.sdkConfig(),
      forcePathStyle: true,
      credentials: { accessKeyId: 'AKIANOBODYNOBODY2345', secretAccessKey: 'nobody-secret-nobody-secret' },
    });
    const err = await failure(
      nobody.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'denied', Body: 'x' })),
    );
    expect(err.name).toBe('AccessDenied');
    expect(err.$metadata.httpStatusCode).toBe(403);
    expect(existsSync(join(tc.dataDir, 's3', BUCKET, 'denied'))).toBe(false);
    nobody.destroy();
  });

  it('session credentials: an expired token is ExpiredToken, a wrong one InvalidToken (400)', async () => {
    const session = {
      secretAccessKey: 'session-secret-session-secret',
      principalArn: 'arn:aws:sts::000000000000:assumed-role/edgefleet-gateway-upload/gw-1',
    };
    tc.cloud.credentials.add({
      ...session,
      accessKeyId: 'ASIAEXPIREDEXPIRED23',
      sessionToken: 'expired-session-token',
      expiration: new Date(Date.now() - 60_000).toISOString(),
    });
    tc.cloud.credentials.add({
      ...session,
      accessKeyId: 'ASIAVALIDVALIDVALID2',
      sessionToken: 'the-real-session-token',
      expiration: new Date(Date.now() + 3_600_000).toISOString(),
    });
    const client = (accessKeyId: string, sessionToken: string) =>
      new S3Client({
        ...tc.cloud.sdkConfig(),
        forcePathStyle: true,
        credentials: { accessKeyId, secretAccessKey: session.secretAccessKey, sessionToken },
      });
    const expired = client('ASIAEXPIREDEXPIRED23', 'expired-session-token');
    const e1 = await failure(expired.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'once' })));
    expect(e1.name).toBe('ExpiredToken');
    expect(e1.$metadata.httpStatusCode).toBe(400);
    expect(e1.message).toBe('The provided token has expired.');
    expired.destroy();
    const wrongToken = client('ASIAVALIDVALIDVALID2', 'not-the-token');
    const e2 = await failure(wrongToken.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'once' })));
    expect(e2.name).toBe('InvalidToken');
    expect(e2.$metadata.httpStatusCode).toBe(400);
    wrongToken.destroy();
  });

  it('a request signed more than 15 minutes off the server clock is RequestTimeTooSkewed', async () => {
    const res = await signedFetch('GET', `/${BUCKET}/once`, {
      payloadHash: EMPTY_SHA256,
      signingDate: new Date(Date.now() - 20 * 60_000),
    });
    expect(res.status).toBe(403);
    expect(errorCode(await res.text())).toBe('RequestTimeTooSkewed');
  });

  it('a body that does not match its x-amz-content-sha256 is XAmzContentSHA256Mismatch', async () => {
    const signedFor = Buffer.from('the body that was signed');
    const res = await signedFetch('PUT', `/${BUCKET}/tampered`, {
      payloadHash: createHash('sha256').update(signedFor).digest('hex'),
      body: Buffer.from('a different body arrived'),
    });
    const text = await res.text();
    expect(res.status).toBe(400);
    expect(errorCode(text)).toBe('XAmzContentSHA256Mismatch');
    expect(existsSync(join(tc.dataDir, 's3', BUCKET, 'tampered'))).toBe(false);
  });

  it('a wrong Content-MD5 or CRC32 is BadDigest', async () => {
    const md5Err = await failure(
      s3.send(
        new PutObjectCommand({
          Bucket: BUCKET,
          Key: 'digest',
          Body: 'abc',
          ContentMD5: createHash('md5').update('xyz').digest('base64'),
        }),
      ),
    );
    expect(md5Err.name).toBe('BadDigest');
    const crcErr = await failure(
      s3.send(
        new PutObjectCommand({
          Bucket: BUCKET,
          Key: 'digest',
          Body: 'abc',
          ChecksumCRC32: checksumOf('CRC32', Buffer.from('xyz')),
        }),
      ),
    );
    expect(crcErr.name).toBe('BadDigest');
    expect(existsSync(join(tc.dataDir, 's3', BUCKET, 'digest'))).toBe(false);
  });

  it('accepts signed chunks (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) and refuses a tampered chunk', async () => {
    const data = randomBytes(20_000);
    const chunks = [data.subarray(0, 9000), data.subarray(9000)];
    const amzDate = new Date()
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d{3}/, '');
    const { accessKeyId, secretAccessKey } = tc.cloud.sdkConfig().credentials;
    const url = new URL(`/${BUCKET}/signed-chunks`, tc.cloud.endpoints.httpUrl);
    const signer = new SignatureV4({
      credentials: { accessKeyId, secretAccessKey },
      region: 'us-east-1',
      service: 's3',
      sha256: Sha256,
      uriEscapePath: false,
    });
    const send = async (tamper: boolean) => {
      const headers = {
        host: url.host,
        'content-encoding': 'aws-chunked',
        'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
        'x-amz-decoded-content-length': String(data.length),
      };
      const signed = await signer.sign(
        new HttpRequest({
          method: 'PUT',
          protocol: 'http:',
          hostname: url.hostname,
          port: Number(url.port),
          path: url.pathname,
          headers,
        }),
        {
          signingDate: new Date(
            Date.parse(
              `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`,
            ),
          ),
        },
      );
      const seed = /Signature=([0-9a-f]{64})/.exec(String(signed.headers.authorization))![1]!;
      const scope = { accessKeyId, date: amzDate.slice(0, 8), region: 'us-east-1', service: 's3' };
      const key = deriveSigningKey(secretAccessKey, scope);
      let previous = seed;
      const parts: Buffer[] = [];
      for (const c of [...chunks, Buffer.alloc(0)]) {
        const sig = chunkSignature(
          key,
          amzDate,
          scope,
          previous,
          c.length ? createHash('sha256').update(c).digest('hex') : EMPTY_SHA256,
        );
        previous = sig;
        const payload = tamper && c.length ? Buffer.from(c).fill(1, 0, 1) : c;
        parts.push(
          Buffer.from(`${c.length.toString(16)};chunk-signature=${sig}\r\n`),
          payload,
          Buffer.from('\r\n'),
        );
      }
      const h = { ...signed.headers };
      delete h.host;
      return fetch(url, { method: 'PUT', headers: h, body: Buffer.concat(parts) });
    };
    const ok = await send(false);
    expect(ok.status).toBe(200);
    expect(onDisk(BUCKET, 'signed-chunks').equals(data)).toBe(true);
    const bad = await send(true);
    expect(bad.status).toBe(403);
    expect(errorCode(await bad.text())).toBe('SignatureDoesNotMatch');
    expect(onDisk(BUCKET, 'signed-chunks').equals(data)).toBe(true);
  });
});

describe('presigned URLs ("Authenticating Requests: Using Query Parameters")', () => {
  it('GET and PUT work with plain fetch', async () => {
    const putUrl = await getSignedUrl(
      s3,
      new PutObjectCommand({ Bucket: BUCKET, Key: 'presigned/upload.bin' }),
      { expiresIn: 300 },
    );
    const body = randomBytes(3000);
    const put = await fetch(putUrl, { method: 'PUT', body });
    expect(put.status).toBe(200);
    expect(put.headers.get('etag')).toBe(`"${md5(body)}"`);
    expect(onDisk(BUCKET, 'presigned/upload.bin').equals(body)).toBe(true);

    const getUrl = await getSignedUrl(
      s3,
      new GetObjectCommand({ Bucket: BUCKET, Key: 'presigned/upload.bin' }),
      { expiresIn: 300 },
    );
    const get = await fetch(getUrl);
    expect(get.status).toBe(200);
    expect(Buffer.from(await get.arrayBuffer()).equals(body)).toBe(true);
    // The presigner puts x-amz-checksum-mode=ENABLED into the URL; S3 reads hoisted x-amz-* parameters as headers.
    expect(get.headers.get('x-amz-checksum-crc64nvme')).toBe(checksumOf('CRC64NVME', body));
    // Objects uploaded without a checksum get S3's default CRC64NVME, which the SDK can validate.
    const viaSdk = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'presigned/upload.bin' }));
    expect(viaSdk.ChecksumCRC64NVME).toBe(checksumOf('CRC64NVME', body));
    await viaSdk.Body?.transformToByteArray();
  });

  it('metadata given to the presigner travels in the URL and is stored', async () => {
    const url = await getSignedUrl(
      s3,
      new PutObjectCommand({ Bucket: BUCKET, Key: 'presigned/meta.txt', Metadata: { source: 'presigned' } }),
      { expiresIn: 300 },
    );
    expect(url).toContain('x-amz-meta-source=presigned');
    expect((await fetch(url, { method: 'PUT', body: 'with metadata' })).status).toBe(200);
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'presigned/meta.txt' }));
    expect(head.Metadata).toEqual({ source: 'presigned' });
  });

  it('an expired URL is AccessDenied "Request has expired"; a tampered one SignatureDoesNotMatch', async () => {
    const expired = await getSignedUrl(
      s3,
      new GetObjectCommand({ Bucket: BUCKET, Key: 'presigned/upload.bin' }),
      {
        expiresIn: 1,
        signingDate: new Date(Date.now() - 60_000),
      },
    );
    const res = await fetch(expired);
    const text = await res.text();
    expect(res.status).toBe(403);
    expect(errorCode(text)).toBe('AccessDenied');
    expect(text).toContain('Request has expired');

    const good = await getSignedUrl(
      s3,
      new GetObjectCommand({ Bucket: BUCKET, Key: 'presigned/upload.bin' }),
      { expiresIn: 60 },
    );
    const other = await fetch(good.replace('presigned/upload.bin', 'presigned/other.bin'));
    expect(other.status).toBe(403);
    expect(errorCode(await other.text())).toBe('SignatureDoesNotMatch');
  });
});

describe('persistence', () => {
  it('objects, metadata and multipart uploads survive a restart', async () => {
    const dir = tempDir();
    try {
      let cloud = await startTestCloud(dir);
      let client = new S3Client({ ...cloud.cloud.sdkConfig(), forcePathStyle: true });
      await client.send(
        new PutObjectCommand({ Bucket: BUCKET, Key: 'kept', Body: 'still here', Metadata: { a: 'b' } }),
      );
      const { UploadId } = await client.send(
        new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'pending' }),
      );
      client.destroy();
      await cloud.stop();

      cloud = await startTestCloud(dir);
      client = new S3Client({ ...cloud.cloud.sdkConfig(), forcePathStyle: true });
      const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'kept' }));
      expect(await got.Body!.transformToString()).toBe('still here');
      expect(got.Metadata).toEqual({ a: 'b' });
      const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
      expect(uploads.Uploads?.map((u) => u.UploadId)).toEqual([UploadId]);
      await client.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: 'pending', UploadId }));
      const none = await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
      expect(none.Uploads ?? []).toEqual([]);
      const aborted = await failure(
        client.send(
          new UploadPartCommand({ Bucket: BUCKET, Key: 'pending', UploadId, PartNumber: 1, Body: 'x' }),
        ),
      );
      expect(aborted.name).toBe('NoSuchUpload');
      client.destroy();
      await cloud.stop();
    } finally {
      removeDir(dir);
    }
  });
});
