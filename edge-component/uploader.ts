/**
 * Uploads objects to the data bucket under the thing's own prefixes, with temporary credentials.
 *
 * - The S3 client has the SDK's default settings (retry strategy, checksums, ...), except endpoint and
 *   path style from the configuration (the local cloud needs both).
 * - Objects up to `singlePutMaxBytes` go up in one PutObject; larger ones as a multipart upload through
 *   lib-storage's Upload, which passes its params on to CompleteMultipartUpload as well.
 * - Uploads never overwrite: PutObject and CompleteMultipartUpload carry `If-None-Match: *`, and every
 *   object carries its SHA-256 in user metadata (`x-amz-meta-sha256`). A 412 Precondition Failed means
 *   the key exists: if the existing object has the same size and SHA-256 (or, for single puts, the
 *   ETag equals the MD5), an earlier attempt already uploaded it and this counts as success; otherwise
 *   the upload fails with DuplicateKeyError.
 * - Whole uploads are retried with jittered exponential backoff on throttling, 5xx, network errors and
 *   rejected (expired) credentials, on top of the SDK's per-request retries.
 * - Each request resolves credentials anew (the providers in credentials.ts are called per request),
 *   so a long upload that outlives its credentials continues with fresh ones.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import {
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import pino, { type Logger } from 'pino';
import { checkThingObjectKey, MAX_OBJECT_KEY_BYTES } from '../protocol/storage.js';
import { type Backoff, backoffDelay } from './backoff.js';
import { isAbortError, systemClock } from './clock.js';
import type { GatewayConfig } from './config.js';
import {
  CredentialsUnavailableError,
  DuplicateKeyError,
  InvalidObjectKeyError,
  UploadAbortedError,
  UploadError,
  UploadFailedError,
  UploadSourceError,
} from './errors.js';
import type { Clock } from './ports.js';

/** User metadata key holding the object's SHA-256 (hex); sent as `x-amz-meta-sha256`. */
export const SHA256_METADATA_KEY = 'sha256';

export interface UploadSettings {
  partSizeBytes: number;
  queueSize: number;
  singlePutMaxBytes: number;
  maxAttempts: number;
  backoff: Backoff;
}

const MiB = 1024 * 1024;

export const DEFAULT_UPLOAD_SETTINGS: UploadSettings = {
  partSizeBytes: 8 * MiB,
  queueSize: 4,
  singlePutMaxBytes: 8 * MiB,
  maxAttempts: 3,
  backoff: { initialDelayMs: 1000, maxDelayMs: 30_000 },
};

/** What to upload: a file, or bytes in memory. */
export type UploadSource = { path: string } | { data: Uint8Array };

export interface UploadProgress {
  sentBytes: number;
  totalBytes: number;
}

export interface UploadRequest {
  /** Must lie under `raw/{thing}/`, `frames/{thing}/` or `frames-identify/{thing}/`. */
  key: string;
  source: UploadSource;
  contentType?: string;
  /** Extra user metadata (`x-amz-meta-*`); `sha256` is reserved for the uploader. */
  metadata?: Record<string, string>;
  onProgress?: (progress: UploadProgress) => void;
  signal?: AbortSignal;
}

export interface UploadResult {
  bucket: string;
  key: string;
  /** ETag S3 reported (of the existing object when it was already uploaded). */
  etag?: string;
  bytes: number;
  /** SHA-256 of the content, hex. */
  sha256: string;
  multipart: boolean;
  /** True when the key already held this exact content (an earlier attempt uploaded it). */
  alreadyUploaded: boolean;
  attempts: number;
}

export interface S3UploaderOptions {
  thingName: string;
  bucket: string;
  region: string;
  /** For the local cloud; unset on AWS. */
  s3Endpoint?: string;
  forcePathStyle?: boolean;
  settings?: Partial<UploadSettings>;
  credentials: AwsCredentialIdentityProvider;
  clock?: Clock;
  logger?: Logger;
  /** Random numbers in [0, 1) for the backoff jitter. */
  random?: () => number;
  /** Tests only: the S3 client's HTTP handler (production uses the SDK's default). */
  requestHandler?: S3ClientConfig['requestHandler'];
}

interface PreparedSource {
  size: number;
  sha256: string;
  /** MD5 hex, for comparing with a single PutObject's ETag. */
  md5: string;
  /** The bytes for a single PutObject (read on demand). */
  bytes(): Promise<Uint8Array>;
  /** The body for a multipart upload. */
  body(): Uint8Array | NodeJS.ReadableStream;
}

interface ErrorShape {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
}

function shape(err: unknown): ErrorShape {
  return typeof err === 'object' && err !== null ? (err as ErrorShape) : {};
}

function httpStatus(err: unknown): number | undefined {
  return shape(err).$metadata?.httpStatusCode;
}

const RETRYABLE_NAMES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'RequestThrottled',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
  'InternalError',
  'ServiceUnavailable',
  'ConditionalRequestConflict',
  'OperationAborted',
]);

const CREDENTIAL_REJECTIONS = new Set([
  'ExpiredToken',
  'ExpiredTokenException',
  'TokenRefreshRequired',
  'InvalidToken',
  'InvalidAccessKeyId',
]);

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

function isPreconditionFailed(err: unknown): boolean {
  return httpStatus(err) === 412 || shape(err).name === 'PreconditionFailed';
}

function isNoSuchUpload(err: unknown): boolean {
  return shape(err).name === 'NoSuchUpload';
}

function isNotFound(err: unknown): boolean {
  return httpStatus(err) === 404 || shape(err).name === 'NotFound' || shape(err).name === 'NoSuchKey';
}

function isCredentialRejection(err: unknown): boolean {
  return CREDENTIAL_REJECTIONS.has(shape(err).name ?? '');
}

/** Throttling, 5xx, 408/409/429, network errors and rejected credentials are worth another attempt. */
export function isRetryableUploadError(err: unknown): boolean {
  const s = shape(err);
  const status = httpStatus(err);
  if (status !== undefined && (status >= 500 || status === 408 || status === 409 || status === 429))
    return true;
  if (RETRYABLE_NAMES.has(s.name ?? '') || isCredentialRejection(err)) return true;
  if (NETWORK_CODES.has(s.code ?? '') || NETWORK_CODES.has(s.name ?? '')) return true;
  return status === undefined && s.$retryable !== undefined;
}

function describeError(err: unknown): string {
  const s = shape(err);
  const status = httpStatus(err);
  const name = s.name && s.name !== 'Error' ? `${s.name}: ` : '';
  return `${name}${s.message ?? String(err)}${status !== undefined ? ` (HTTP ${status})` : ''}`;
}

function unquote(etag: string | undefined): string | undefined {
  return etag?.replace(/^"(.*)"$/, '$1');
}

async function hashFile(path: string): Promise<{ sha256: string; md5: string; size: number }> {
  const sha = createHash('sha256');
  const md5 = createHash('md5');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    const b = chunk as Buffer;
    sha.update(b);
    md5.update(b);
    size += b.length;
  }
  return { sha256: sha.digest('hex'), md5: md5.digest('hex'), size };
}

async function prepare(source: UploadSource): Promise<PreparedSource> {
  if ('data' in source) {
    const data = source.data;
    return {
      size: data.byteLength,
      sha256: createHash('sha256').update(data).digest('hex'),
      md5: createHash('md5').update(data).digest('hex'),
      bytes: async () => data,
      body: () => data,
    };
  }
  const path = source.path;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new UploadSourceError(`${path} is not a regular file`);
    const h = await hashFile(path);
    return {
      ...h,
      bytes: async () => {
        const b = await readFile(path);
        if (b.length !== h.size) throw new UploadSourceError(`${path} changed while uploading`);
        return b;
      },
      body: () => createReadStream(path),
    };
  } catch (err) {
    if (err instanceof UploadSourceError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new UploadSourceError(`cannot read ${path}${code ? ` (${code})` : ''}`, { cause: err });
  }
}

/**
 * The restricted prefix of unmasked frames from cameras configured for identification
 * (`frames-identify/{thing}/`); the cloud's upload session policy allows it too
 * (cloud/rules/resources.ts, `identificationPrefix`).
 */
export function identificationPrefix(thingName: string): string {
  return `frames-identify/${thingName}/`;
}

/** Why `key` is not a key under the thing's identification prefix, or undefined if it is. */
function checkIdentificationKey(thingName: string, key: string): string | undefined {
  const prefix = identificationPrefix(thingName);
  const rest = key.slice(prefix.length);
  if (rest === '') return `must name an object under '${prefix}', not the prefix itself`;
  if (Buffer.byteLength(key, 'utf8') > MAX_OBJECT_KEY_BYTES) {
    return `must be at most ${MAX_OBJECT_KEY_BYTES} bytes of UTF-8`;
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(key)) return 'must not contain control characters';
  if (rest.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    return "must not contain empty, '.' or '..' path segments";
  }
  return undefined;
}

/**
 * Throws InvalidObjectKeyError unless `key` is under the thing's own prefixes (see protocol/storage.ts)
 * or its identification prefix `frames-identify/{thing}/`.
 */
export function assertThingObjectKey(thingName: string, key: string): void {
  const problem = key.startsWith(identificationPrefix(thingName))
    ? checkIdentificationKey(thingName, key)
    : checkThingObjectKey(thingName, key);
  if (problem !== undefined) {
    throw new InvalidObjectKeyError(
      `object key '${key}' ${problem}: thing ${thingName} may only write under its own prefixes`,
    );
  }
}

export class S3Uploader {
  /** The S3 client (SDK defaults; endpoint and path style from the configuration). */
  readonly client: S3Client;
  readonly bucket: string;
  readonly thingName: string;
  private readonly settings: UploadSettings;
  private readonly credentials: AwsCredentialIdentityProvider;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly random: () => number;

  constructor(opts: S3UploaderOptions) {
    this.thingName = opts.thingName;
    this.bucket = opts.bucket;
    this.settings = { ...DEFAULT_UPLOAD_SETTINGS, ...opts.settings };
    this.credentials = opts.credentials;
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? Math.random;
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({
      component: 'uploader',
      bucket: opts.bucket,
    });
    this.client = new S3Client({
      region: opts.region,
      credentials: opts.credentials,
      ...(opts.s3Endpoint !== undefined ? { endpoint: opts.s3Endpoint } : {}),
      ...(opts.forcePathStyle !== undefined ? { forcePathStyle: opts.forcePathStyle } : {}),
      ...(opts.requestHandler !== undefined ? { requestHandler: opts.requestHandler } : {}),
    });
  }

  /** An uploader for the gateway configuration's bucket, region, endpoint and upload settings. */
  static fromConfig(
    config: Pick<GatewayConfig, 'thingName' | 'aws' | 'storage' | 'upload'>,
    credentials: AwsCredentialIdentityProvider,
    deps: Pick<S3UploaderOptions, 'clock' | 'logger' | 'random' | 'requestHandler'> = {},
  ): S3Uploader {
    return new S3Uploader({
      thingName: config.thingName,
      bucket: config.storage.bucket,
      region: config.aws.region,
      ...(config.aws.s3Endpoint !== undefined ? { s3Endpoint: config.aws.s3Endpoint } : {}),
      ...(config.aws.forcePathStyle !== undefined ? { forcePathStyle: config.aws.forcePathStyle } : {}),
      settings: config.upload,
      credentials,
      ...deps,
    });
  }

  /** Throws InvalidObjectKeyError unless `key` is under the thing's own prefixes. */
  checkKey(key: string): void {
    assertThingObjectKey(this.thingName, key);
  }

  /** Uploads one object; see the module comment for the guarantees. */
  async upload(req: UploadRequest): Promise<UploadResult> {
    this.checkKey(req.key);
    if (req.metadata && Object.keys(req.metadata).some((k) => k.toLowerCase() === SHA256_METADATA_KEY)) {
      throw new UploadError(`metadata key '${SHA256_METADATA_KEY}' is reserved for the uploader`);
    }
    const source = await prepare(req.source);
    const multipart = source.size > this.settings.singlePutMaxBytes;
    const log = this.log.child({ key: req.key, bytes: source.size, multipart });
    const { maxAttempts } = this.settings;
    for (let attempt = 1; ; attempt++) {
      if (req.signal?.aborted)
        throw new UploadAbortedError(`upload of ${req.key} aborted`, { cause: req.signal.reason });
      try {
        const etag = multipart ? await this.putMultipart(req, source) : await this.putSingle(req, source);
        log.info({ attempt, etag }, 'uploaded');
        return this.result(req.key, source, multipart, etag, false, attempt);
      } catch (err) {
        if (err instanceof UploadSourceError || err instanceof CredentialsUnavailableError) throw err;
        if (req.signal?.aborted || isAbortError(err)) {
          throw new UploadAbortedError(`upload of ${req.key} aborted`, { cause: err });
        }
        let retryable = isRetryableUploadError(err);
        if (isPreconditionFailed(err) || (multipart && isNoSuchUpload(err))) {
          // The key is taken (412), or a retried CompleteMultipartUpload found its upload gone
          // (the first one may have succeeded): compare with what is there.
          const existing = await this.resolveExisting(req.key, source, multipart, attempt, err);
          if (existing) return existing;
          retryable = true; // nothing there after all: upload again
        }
        if (!retryable || attempt >= maxAttempts) {
          const tried = attempt > 1 ? ` after ${attempt} attempts` : '';
          throw new UploadFailedError(
            `upload of s3://${this.bucket}/${req.key} failed${tried}: ${describeError(err)}`,
            attempt,
            { cause: err },
          );
        }
        if (isCredentialRejection(err)) {
          // S3 no longer accepts the credentials: make the provider fetch new ones.
          await this.credentials({ forceRefresh: true }).catch(() => {});
        }
        const delay = backoffDelay(attempt, this.settings.backoff, this.random);
        log.warn(
          { attempt, of: maxAttempts, delayMs: delay, err: describeError(err) },
          'upload failed; retrying',
        );
        try {
          await this.clock.sleep(delay, req.signal);
        } catch (sleepErr) {
          throw new UploadAbortedError(`upload of ${req.key} aborted`, { cause: sleepErr });
        }
      }
    }
  }

  private result(
    key: string,
    source: PreparedSource,
    multipart: boolean,
    etag: string | undefined,
    alreadyUploaded: boolean,
    attempts: number,
  ): UploadResult {
    return {
      bucket: this.bucket,
      key,
      ...(etag !== undefined ? { etag } : {}),
      bytes: source.size,
      sha256: source.sha256,
      multipart,
      alreadyUploaded,
      attempts,
    };
  }

  private metadata(req: UploadRequest, source: PreparedSource): Record<string, string> {
    return { ...req.metadata, [SHA256_METADATA_KEY]: source.sha256 };
  }

  private async putSingle(req: UploadRequest, source: PreparedSource): Promise<string | undefined> {
    req.onProgress?.({ sentBytes: 0, totalBytes: source.size });
    const body = await source.bytes();
    const out = await this.client.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: req.key,
        Body: body,
        ContentLength: source.size,
        ...(req.contentType !== undefined ? { ContentType: req.contentType } : {}),
        Metadata: this.metadata(req, source),
        IfNoneMatch: '*',
      }),
      req.signal ? { abortSignal: req.signal } : {},
    );
    req.onProgress?.({ sentBytes: source.size, totalBytes: source.size });
    return out.ETag;
  }

  private async putMultipart(req: UploadRequest, source: PreparedSource): Promise<string | undefined> {
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.bucket,
        Key: req.key,
        Body: source.body() as Uint8Array,
        ContentLength: source.size,
        ...(req.contentType !== undefined ? { ContentType: req.contentType } : {}),
        Metadata: this.metadata(req, source),
        // lib-storage passes its params on to CompleteMultipartUpload (and to PutObject when the
        // body fits in one part), so the object only comes into existence if the key is free.
        IfNoneMatch: '*',
      },
      partSize: this.settings.partSizeBytes,
      queueSize: this.settings.queueSize,
      leavePartsOnError: false,
    });
    req.onProgress?.({ sentBytes: 0, totalBytes: source.size });
    upload.on('httpUploadProgress', (p) => {
      req.onProgress?.({ sentBytes: p.loaded ?? 0, totalBytes: source.size });
    });
    const onAbort = () => {
      upload.abort().catch(() => {});
    };
    req.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const out = await upload.done();
      return out.ETag;
    } finally {
      req.signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * After a 412 (or a vanished multipart upload): success if the key holds this content,
   * DuplicateKeyError if it holds other content, undefined if it holds nothing.
   */
  private async resolveExisting(
    key: string,
    source: PreparedSource,
    multipart: boolean,
    attempts: number,
    conflict: unknown,
  ): Promise<UploadResult | undefined> {
    let head: HeadObjectCommandOutput;
    try {
      head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw new UploadFailedError(
        `s3://${this.bucket}/${key} already exists and cannot be inspected: ${describeError(err)}`,
        attempts,
        { cause: err },
      );
    }
    const existing = {
      ...(head.ContentLength !== undefined ? { size: head.ContentLength } : {}),
      ...(head.Metadata?.[SHA256_METADATA_KEY] !== undefined
        ? { sha256: head.Metadata[SHA256_METADATA_KEY] }
        : {}),
      ...(head.ETag !== undefined ? { etag: head.ETag } : {}),
    };
    const sameSize = existing.size === source.size;
    const sameHash = existing.sha256 !== undefined && existing.sha256 === source.sha256;
    // An object without our metadata (uploaded by something else) can still be recognised by the
    // ETag of a single PutObject, which is the MD5 of the content (not with SSE-KMS or multipart).
    const sameMd5 = existing.sha256 === undefined && !multipart && unquote(existing.etag) === source.md5;
    if (sameSize && (sameHash || sameMd5)) {
      this.log.info({ key, etag: existing.etag }, 'already uploaded (same content under the key)');
      return this.result(key, source, multipart, existing.etag, true, attempts);
    }
    throw new DuplicateKeyError(
      `s3://${this.bucket}/${key} already exists with different content (existing: ${existing.size ?? '?'} bytes, sha256 ${existing.sha256 ?? 'unknown'}; this upload: ${source.size} bytes, sha256 ${source.sha256}); uploads never overwrite`,
      key,
      existing,
      { cause: conflict },
    );
  }

  /** Releases the S3 client's sockets. */
  destroy(): void {
    this.client.destroy();
  }
}
