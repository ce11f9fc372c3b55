/**
 * The S3 uploader against an in-memory S3 behind the SDK client's HTTP handler (the SDK still
 * serializes, signs, checksums and retries every request as it does against S3): key checks, single
 * PUTs, multipart uploads through lib-storage, If-None-Match idempotency, retries, and credentials that
 * are resolved for every request so that an upload outliving its credentials continues with new ones.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { type HttpRequest, HttpResponse } from '@smithy/protocol-http';
import pino from 'pino';
import { MemoryIotChannel } from '../../edge-component/adapters/memory-channel.js';
import { systemClock } from '../../edge-component/clock.js';
import { mqttCredentialProvider } from '../../edge-component/credentials.js';
import {
  CredentialsUnavailableError,
  DuplicateKeyError,
  InvalidObjectKeyError,
  UploadAbortedError,
  UploadFailedError,
} from '../../edge-component/errors.js';
import type { Clock } from '../../edge-component/ports.js';
import {
  isRetryableUploadError,
  S3Uploader,
  type UploadProgress,
  type UploadSettings,
} from '../../edge-component/uploader.js';
import { credentialsTopics } from '../../protocol/credentials.js';
import { removeDir, tempDir } from '../helpers/cloud.js';

const THING = 'gw-1';
const BUCKET = 'edgefleet-data';
const MiB = 1024 * 1024;

const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    b[i] = x >>> 16;
  }
  return b;
}

type Op =
  | 'PutObject'
  | 'HeadObject'
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload';

interface Seen {
  op: Op;
  key: string;
  accessKeyId: string | undefined;
  headers: Record<string, string>;
}

interface StoredObject {
  body: Buffer;
  etag: string;
  metadata: Record<string, string>;
}

/** Enough of S3's REST API for the uploader, in memory, with injectable failures. */
class FakeS3 {
  readonly objects = new Map<string, StoredObject>();
  readonly uploads = new Map<
    string,
    { key: string; metadata: Record<string, string>; parts: Map<number, Buffer> }
  >();
  readonly seen: Seen[] = [];
  /** Returns an error to answer a request with, or undefined to serve it. */
  fail: (s: Seen) => { status: number; code: string } | undefined = () => undefined;
  /** Serves the request but loses the response (answers 500), as when a connection breaks. */
  loseResponse: (s: Seen) => boolean = () => false;
  private nextId = 1;

  readonly handler = {
    handle: async (request: HttpRequest) => ({ response: await this.serve(request) }),
    updateHttpClientConfig: () => {},
    httpHandlerConfigs: () => ({}),
    destroy: () => {},
  };

  private static async body(request: HttpRequest): Promise<Buffer> {
    const b: unknown = request.body;
    if (b === undefined || b === null) return Buffer.alloc(0);
    if (typeof b === 'string' || b instanceof Uint8Array) return Buffer.from(b);
    const chunks: Buffer[] = [];
    for await (const c of b as AsyncIterable<Uint8Array | string>) chunks.push(Buffer.from(c));
    return Buffer.concat(chunks);
  }

  private static reply(status: number, headers: Record<string, string> = {}, body = ''): HttpResponse {
    return new HttpResponse({ statusCode: status, headers, body: Readable.from([Buffer.from(body)]) });
  }

  private static error(status: number, code: string): HttpResponse {
    return FakeS3.reply(
      status,
      { 'content-type': 'application/xml' },
      `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${code} (fake)</Message><RequestId>fake</RequestId></Error>`,
    );
  }

  private async serve(request: HttpRequest): Promise<HttpResponse> {
    const { response, seen } = await this.route(request);
    return seen && response.statusCode < 300 && this.loseResponse(seen)
      ? FakeS3.error(500, 'InternalError')
      : response;
  }

  private async route(request: HttpRequest): Promise<{ response: HttpResponse; seen?: Seen }> {
    const seen: { value?: Seen } = {};
    const response = await this.dispatch(request, seen);
    return { response, ...(seen.value ? { seen: seen.value } : {}) };
  }

  private async dispatch(request: HttpRequest, out: { value?: Seen }): Promise<HttpResponse> {
    const headers = Object.fromEntries(Object.entries(request.headers).map(([k, v]) => [k.toLowerCase(), v]));
    const [, bucket, ...rest] = request.path.split('/');
    expect(bucket).toBe(BUCKET);
    const key = rest.map(decodeURIComponent).join('/');
    const q = request.query as Record<string, string | undefined>;
    const op: Op =
      request.method === 'HEAD'
        ? 'HeadObject'
        : request.method === 'DELETE'
          ? 'AbortMultipartUpload'
          : request.method === 'POST' && 'uploads' in q
            ? 'CreateMultipartUpload'
            : request.method === 'POST'
              ? 'CompleteMultipartUpload'
              : q.uploadId !== undefined
                ? 'UploadPart'
                : 'PutObject';
    const accessKeyId = /Credential=([^/]+)\//.exec(headers.authorization ?? '')?.[1];
    const seen: Seen = { op, key, accessKeyId, headers };
    this.seen.push(seen);
    out.value = seen;
    const body = await FakeS3.body(request);
    const injected = this.fail(seen);
    if (injected) return FakeS3.error(injected.status, injected.code);
    const metadata = Object.fromEntries(
      Object.entries(headers)
        .filter(([k]) => k.startsWith('x-amz-meta-'))
        .map(([k, v]) => [k.slice('x-amz-meta-'.length), v]),
    );
    switch (op) {
      case 'HeadObject': {
        const o = this.objects.get(key);
        if (!o) return FakeS3.reply(404);
        return FakeS3.reply(200, {
          'content-length': String(o.body.length),
          etag: o.etag,
          ...Object.fromEntries(Object.entries(o.metadata).map(([k, v]) => [`x-amz-meta-${k}`, v])),
        });
      }
      case 'PutObject': {
        if (headers['if-none-match'] === '*' && this.objects.has(key))
          return FakeS3.error(412, 'PreconditionFailed');
        const etag = `"${md5(body)}"`;
        this.objects.set(key, { body, etag, metadata });
        return FakeS3.reply(200, { etag });
      }
      case 'CreateMultipartUpload': {
        const id = `upload-${this.nextId++}`;
        this.uploads.set(id, { key, metadata, parts: new Map() });
        return FakeS3.reply(
          200,
          { 'content-type': 'application/xml' },
          `<InitiateMultipartUploadResult><Bucket>${BUCKET}</Bucket><Key>${key}</Key><UploadId>${id}</UploadId></InitiateMultipartUploadResult>`,
        );
      }
      case 'UploadPart': {
        const u = this.uploads.get(q.uploadId!);
        if (!u) return FakeS3.error(404, 'NoSuchUpload');
        u.parts.set(Number(q.partNumber), body);
        return FakeS3.reply(200, { etag: `"${md5(body)}"` });
      }
      case 'CompleteMultipartUpload': {
        const u = this.uploads.get(q.uploadId!);
        if (!u) return FakeS3.error(404, 'NoSuchUpload');
        if (headers['if-none-match'] === '*' && this.objects.has(key))
          return FakeS3.error(412, 'PreconditionFailed');
        const numbers = [...body.toString().matchAll(/<PartNumber>(\d+)<\/PartNumber>/g)].map((m) =>
          Number(m[1]),
        );
        const parts = numbers.map((n) => u.parts.get(n)!);
        const whole = Buffer.concat(parts);
        const etag = `"${md5(Buffer.concat(parts.map((p) => createHash('md5').update(p).digest())))}-${parts.length}"`;
        this.objects.set(key, { body: whole, etag, metadata: u.metadata });
        this.uploads.delete(q.uploadId!);
        return FakeS3.reply(
          200,
          { 'content-type': 'application/xml' },
          `<CompleteMultipartUploadResult><Bucket>${BUCKET}</Bucket><Key>${key}</Key><ETag>${etag.replace(/"/g, '&quot;')}</ETag></CompleteMultipartUploadResult>`,
        );
      }
      case 'AbortMultipartUpload':
        this.uploads.delete(q.uploadId!);
        return FakeS3.reply(204);
    }
  }

  ops(): Op[] {
    return this.seen.map((s) => s.op);
  }
}

/** Loses the response to the first request of `op`. */
function loseFirst(op: Op): (s: Seen) => boolean {
  let lost = false;
  return (s) => {
    if (s.op !== op || lost) return false;
    lost = true;
    return true;
  };
}

/** Sleeps return at once (recording the delay), so retry backoff costs no time. */
function instantClock(): Clock & { delays: number[] } {
  const delays: number[] = [];
  return {
    delays,
    now: () => Date.now(),
    sleep: async (ms, signal) => {
      if (signal?.aborted) throw signal.reason;
      delays.push(ms);
    },
  };
}

const staticCredentials = Object.assign(
  async () => ({
    accessKeyId: 'ASIASTATIC',
    secretAccessKey: 'secret',
    sessionToken: 'token',
    expiration: new Date(Date.now() + 3600_000),
  }),
  { memoized: true as const },
);

function uploader(
  s3: FakeS3,
  opts: { settings?: Partial<UploadSettings>; credentials?: typeof staticCredentials; clock?: Clock } = {},
) {
  return new S3Uploader({
    thingName: THING,
    bucket: BUCKET,
    region: 'us-east-1',
    s3Endpoint: 'http://127.0.0.1:4566',
    forcePathStyle: true,
    settings: { partSizeBytes: 5 * MiB, singlePutMaxBytes: 1 * MiB, queueSize: 2, ...opts.settings },
    credentials: opts.credentials ?? staticCredentials,
    clock: opts.clock ?? instantClock(),
    random: () => 0.5,
    logger: pino({ level: 'silent' }),
    requestHandler: s3.handler,
  });
}

let dir: string;
beforeAll(() => {
  dir = tempDir('edgefleet-uploader-');
});
afterAll(() => removeDir(dir));

describe('S3Uploader', () => {
  test('rejects keys outside the thing prefixes before any request or credentials', async () => {
    const s3 = new FakeS3();
    let calls = 0;
    const credentials = Object.assign(
      async () => {
        calls++;
        return staticCredentials();
      },
      { memoized: true as const },
    );
    const u = uploader(s3, { credentials });
    for (const key of ['raw/gw-2/x.bin', 'frames/other/x.jpg', 'lake/x', 'raw/gw-1/', 'raw/gw-1/../gw-2/x']) {
      await expect(u.upload({ key, source: { data: bytes(10) } })).rejects.toBeInstanceOf(
        InvalidObjectKeyError,
      );
    }
    await expect(u.upload({ key: 'raw/gw-2/x.bin', source: { data: bytes(10) } })).rejects.toThrow(
      "object key 'raw/gw-2/x.bin' must start with 'raw/gw-1/' or 'frames/gw-1/': thing gw-1 may only write under its own prefixes",
    );
    expect(s3.seen).toEqual([]);
    expect(calls).toBe(0);
  });

  test('a small object goes up in one PutObject with If-None-Match and its SHA-256 in metadata', async () => {
    const s3 = new FakeS3();
    const data = bytes(1000);
    const progress: UploadProgress[] = [];
    const r = await uploader(s3).upload({
      key: 'raw/gw-1/small.bin',
      source: { data },
      contentType: 'application/octet-stream',
      metadata: { batch: '7' },
      onProgress: (p) => progress.push(p),
    });
    expect(r).toEqual({
      bucket: BUCKET,
      key: 'raw/gw-1/small.bin',
      etag: `"${md5(data)}"`,
      bytes: 1000,
      sha256: sha256(data),
      multipart: false,
      alreadyUploaded: false,
      attempts: 1,
    });
    expect(s3.ops()).toEqual(['PutObject']);
    expect(s3.seen[0]?.headers).toMatchObject({
      'if-none-match': '*',
      'x-amz-meta-sha256': sha256(data),
      'x-amz-meta-batch': '7',
      'content-type': 'application/octet-stream',
    });
    expect(s3.objects.get('raw/gw-1/small.bin')?.body.equals(data)).toBe(true);
    expect(progress.at(-1)).toEqual({ sentBytes: 1000, totalBytes: 1000 });
  });

  test('a large file goes up in parts through lib-storage, with If-None-Match on CompleteMultipartUpload', async () => {
    const s3 = new FakeS3();
    const data = bytes(12 * MiB + 123, 2);
    const file = join(dir, 'large.bin');
    writeFileSync(file, data);
    const progress: UploadProgress[] = [];
    const r = await uploader(s3).upload({
      key: 'frames/gw-1/large.bin',
      source: { path: file },
      onProgress: (p) => progress.push(p),
    });
    expect(r).toMatchObject({
      multipart: true,
      alreadyUploaded: false,
      bytes: data.length,
      sha256: sha256(data),
    });
    expect(r.etag).toMatch(/-3"$/);
    expect(s3.ops().sort()).toEqual(
      ['CompleteMultipartUpload', 'CreateMultipartUpload', 'UploadPart', 'UploadPart', 'UploadPart'].sort(),
    );
    expect(s3.seen.find((s) => s.op === 'CompleteMultipartUpload')?.headers['if-none-match']).toBe('*');
    expect(s3.seen.find((s) => s.op === 'CreateMultipartUpload')?.headers['x-amz-meta-sha256']).toBe(
      sha256(data),
    );
    const stored = s3.objects.get('frames/gw-1/large.bin');
    expect(stored?.body.equals(data)).toBe(true);
    expect(stored?.metadata.sha256).toBe(sha256(data));
    const sent = progress.map((p) => p.sentBytes);
    expect(sent).toEqual([...sent].sort((a, b) => a - b));
    expect(progress.at(-1)).toEqual({ sentBytes: data.length, totalBytes: data.length });
  });

  test('the same content under an existing key counts as already uploaded; other content is a DuplicateKeyError', async () => {
    for (const size of [1000, 6 * MiB]) {
      const s3 = new FakeS3();
      const u = uploader(s3);
      const key = `raw/gw-1/dup-${size}.bin`;
      const data = bytes(size, 3);
      const first = await u.upload({ key, source: { data } });
      expect(first.alreadyUploaded).toBe(false);
      const again = await u.upload({ key, source: { data } });
      expect(again).toMatchObject({
        alreadyUploaded: true,
        etag: first.etag,
        bytes: size,
        sha256: sha256(data),
      });
      const other = bytes(size, 4);
      const err = (await u
        .upload({ key, source: { data: other } })
        .catch((e: unknown) => e)) as DuplicateKeyError;
      expect(err).toBeInstanceOf(DuplicateKeyError);
      expect(err.message).toContain(`s3://${BUCKET}/${key} already exists with different content`);
      expect(err.existing).toEqual({ size, sha256: sha256(data), etag: first.etag });
      expect(s3.objects.get(key)?.body.equals(data)).toBe(true);
      // A refused multipart upload is aborted, not left behind.
      expect(s3.uploads.size).toBe(0);
    }
  });

  test('an object without the sha256 metadata is recognised by the MD5 ETag of a single PUT', async () => {
    const s3 = new FakeS3();
    const data = bytes(500, 5);
    s3.objects.set('raw/gw-1/legacy.bin', { body: data, etag: `"${md5(data)}"`, metadata: {} });
    const r = await uploader(s3).upload({ key: 'raw/gw-1/legacy.bin', source: { data } });
    expect(r.alreadyUploaded).toBe(true);
    await expect(
      uploader(s3).upload({ key: 'raw/gw-1/legacy.bin', source: { data: bytes(500, 6) } }),
    ).rejects.toBeInstanceOf(DuplicateKeyError);
  });

  test.each([
    [{ $metadata: { httpStatusCode: 503 }, name: 'SlowDown' }, true],
    [{ $metadata: { httpStatusCode: 500 }, name: 'InternalError' }, true],
    [{ $metadata: { httpStatusCode: 429 }, name: 'TooManyRequests' }, true],
    [{ $metadata: { httpStatusCode: 409 }, name: 'ConditionalRequestConflict' }, true],
    [{ $metadata: { httpStatusCode: 400 }, name: 'ExpiredToken' }, true],
    [{ $metadata: { httpStatusCode: 400 }, name: 'RequestTimeout' }, true],
    [Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), true],
    [Object.assign(new Error('timeout'), { name: 'TimeoutError' }), true],
    [{ $metadata: { httpStatusCode: 403 }, name: 'AccessDenied' }, false],
    [{ $metadata: { httpStatusCode: 400 }, name: 'InvalidArgument' }, false],
    [{ $metadata: { httpStatusCode: 404 }, name: 'NoSuchBucket' }, false],
    [new Error('bug'), false],
  ])('isRetryableUploadError(%j) is %s', (err, expected) => {
    expect(isRetryableUploadError(err)).toBe(expected);
  });

  test('retries 5xx with backoff after the SDK exhausted its own retries', async () => {
    const s3 = new FakeS3();
    let failures = 4;
    s3.fail = (s) =>
      s.op === 'PutObject' && failures-- > 0 ? { status: 500, code: 'InternalError' } : undefined;
    const clock = instantClock();
    const r = await uploader(s3, { clock }).upload({
      key: 'raw/gw-1/busy.bin',
      source: { data: bytes(100) },
    });
    expect(r.attempts).toBe(2);
    // The SDK made 3 attempts (its default), the uploader another after one backoff delay.
    expect(s3.ops()).toEqual(['PutObject', 'PutObject', 'PutObject', 'PutObject', 'PutObject']);
    expect(clock.delays).toEqual([500]);
  });

  test('a retry after a lost response finds the object in place and succeeds (single PUT)', async () => {
    const s3 = new FakeS3();
    s3.loseResponse = loseFirst('PutObject');
    const data = bytes(100, 8);
    const r = await uploader(s3).upload({ key: 'raw/gw-1/landed.bin', source: { data } });
    // The SDK's retry of the PutObject got 412 (If-None-Match), and the object is this content.
    expect(r).toMatchObject({ alreadyUploaded: true, attempts: 1, etag: `"${md5(data)}"` });
    expect(s3.ops()).toEqual(['PutObject', 'PutObject', 'HeadObject']);
  });

  test('a retry after a lost CompleteMultipartUpload response succeeds (multipart)', async () => {
    const s3 = new FakeS3();
    s3.loseResponse = loseFirst('CompleteMultipartUpload');
    const data = bytes(6 * MiB, 10);
    const r = await uploader(s3).upload({ key: 'raw/gw-1/landed-mp.bin', source: { data } });
    expect(r).toMatchObject({ alreadyUploaded: true, multipart: true, sha256: sha256(data) });
    expect(s3.objects.get('raw/gw-1/landed-mp.bin')?.body.equals(data)).toBe(true);
    expect(s3.ops().filter((o) => o === 'CompleteMultipartUpload').length).toBeGreaterThanOrEqual(2);
    expect(s3.ops().at(-1)).toBe('HeadObject');
  });

  test('gives up with UploadFailedError on errors not worth retrying, and after maxAttempts', async () => {
    const s3 = new FakeS3();
    s3.fail = () => ({ status: 403, code: 'AccessDenied' });
    const denied = (await uploader(s3)
      .upload({ key: 'raw/gw-1/no.bin', source: { data: bytes(10) } })
      .catch((e: unknown) => e)) as UploadFailedError;
    expect(denied).toBeInstanceOf(UploadFailedError);
    expect(denied.attempts).toBe(1);
    expect(denied.message).toBe(
      `upload of s3://${BUCKET}/raw/gw-1/no.bin failed: AccessDenied: AccessDenied (fake) (HTTP 403)`,
    );

    const busy = new FakeS3();
    busy.fail = () => ({ status: 500, code: 'InternalError' });
    const err = (await uploader(busy, { settings: { maxAttempts: 2 } })
      .upload({ key: 'raw/gw-1/busy.bin', source: { data: bytes(10) } })
      .catch((e: unknown) => e)) as UploadFailedError;
    expect(err).toBeInstanceOf(UploadFailedError);
    expect(err.attempts).toBe(2);
    expect(err.message).toContain('failed after 2 attempts: InternalError');
  });

  test('an abort signal stops the upload', async () => {
    const s3 = new FakeS3();
    const ac = new AbortController();
    ac.abort();
    await expect(
      uploader(s3).upload({ key: 'raw/gw-1/a.bin', source: { data: bytes(10) }, signal: ac.signal }),
    ).rejects.toBeInstanceOf(UploadAbortedError);
  });

  test('credentials that cannot be had are reported as such, for single and multipart uploads', async () => {
    const unavailable = new CredentialsUnavailableError(
      'no credentials for thing gw-1 (test)',
      'not-connected',
      5,
    );
    const credentials = Object.assign(
      async (): Promise<never> => {
        throw unavailable;
      },
      { memoized: true as const },
    );
    for (const size of [10, 6 * MiB]) {
      const s3 = new FakeS3();
      await expect(
        uploader(s3, { credentials }).upload({ key: 'raw/gw-1/c.bin', source: { data: bytes(size) } }),
      ).rejects.toBe(unavailable);
      expect(s3.seen).toEqual([]);
    }
  });

  test('a missing file is reported as such', async () => {
    await expect(
      uploader(new FakeS3()).upload({ key: 'raw/gw-1/a.bin', source: { path: join(dir, 'missing.bin') } }),
    ).rejects.toThrow(`cannot read ${join(dir, 'missing.bin')} (ENOENT)`);
  });
});

describe('S3Uploader with the MQTT credential provider', () => {
  /** A provider on an in-memory channel whose responder issues ASIATEST1, ASIATEST2, ... */
  function mqttSetup(clock: Clock) {
    const topics = credentialsTopics(THING);
    const channel = new MemoryIotChannel();
    let issued = 0;
    channel.onPublish((m) => {
      if (m.topic !== topics.request) return;
      const { requestId } = JSON.parse(m.payload.toString()) as { requestId: string };
      issued++;
      void channel.deliver(topics.response, {
        requestId,
        accessKeyId: `ASIATEST${issued}`,
        secretAccessKey: `secret-${issued}`,
        sessionToken: `token-${issued}`,
        expiration: new Date(clock.now() + 3600_000).toISOString(),
      });
    });
    const provider = mqttCredentialProvider({
      channel,
      thingName: THING,
      settings: { refreshMarginSeconds: 300 },
      clock,
      logger: pino({ level: 'silent' }),
    });
    return { provider, issued: () => issued };
  }

  test('every request resolves credentials; a multipart upload outliving them continues with fresh ones', async () => {
    let offset = 0;
    const clock: Clock = { now: () => Date.now() + offset, sleep: systemClock.sleep };
    const { provider, issued } = mqttSetup(clock);
    let calls = 0;
    const counted = Object.assign(
      async (o?: { forceRefresh?: boolean }) => {
        calls++;
        return provider(o);
      },
      { memoized: true as const },
    );
    const s3 = new FakeS3();
    const data = bytes(16 * MiB, 9);
    let parts = 0;
    const r = await uploader(s3, { credentials: counted, settings: { queueSize: 1 } }).upload({
      key: 'raw/gw-1/long.bin',
      source: { data },
      onProgress: (p) => {
        if (p.sentBytes === 0) return;
        // After the first part: an hour passes, the credentials are now past their refresh margin.
        if (++parts === 1) offset += 3600_000;
      },
    });
    expect(r.multipart).toBe(true);
    expect(s3.objects.get('raw/gw-1/long.bin')?.body.equals(data)).toBe(true);
    // The SDK asks the provider for every request (at least once; it may ask more than once).
    expect(calls).toBeGreaterThanOrEqual(s3.seen.length);
    expect(issued()).toBe(2);
    const keys = s3.seen.map((s) => `${s.op}:${s.accessKeyId}`);
    expect(keys).toEqual([
      'CreateMultipartUpload:ASIATEST1',
      'UploadPart:ASIATEST1',
      'UploadPart:ASIATEST2',
      'UploadPart:ASIATEST2',
      'UploadPart:ASIATEST2',
      'CompleteMultipartUpload:ASIATEST2',
    ]);
    await provider.close();
  });

  test('credentials S3 rejects as expired are refreshed and the upload retried', async () => {
    const { provider, issued } = mqttSetup(systemClock);
    const s3 = new FakeS3();
    s3.fail = (s) => (s.accessKeyId === 'ASIATEST1' ? { status: 400, code: 'ExpiredToken' } : undefined);
    const r = await uploader(s3, { credentials: provider }).upload({
      key: 'raw/gw-1/expired.bin',
      source: { data: bytes(100) },
    });
    expect(r.attempts).toBe(2);
    expect(issued()).toBe(2);
    expect(s3.seen.map((s) => s.accessKeyId)).toEqual(['ASIATEST1', 'ASIATEST2']);
    await provider.close();
  });
});
