/**
 * Receiving an object body from the request stream into a temporary file, checking it on the way
 * against everything the client declared:
 *
 * - `x-amz-content-sha256` ("Signature Calculations for the Authorization Header"): a hex SHA-256 of the
 *   payload (checked: `XAmzContentSHA256Mismatch`), `UNSIGNED-PAYLOAD`, or an aws-chunked body,
 *   `STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]` (every chunk signature verified) or
 *   `STREAMING-UNSIGNED-PAYLOAD-TRAILER` (what the AWS SDKs send for streams);
 * - the trailing or header checksum `x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256}` (`BadDigest`);
 * - `Content-MD5` (`InvalidDigest` if malformed, `BadDigest` if wrong);
 * - checksums in the query string of a presigned URL are not used: "Uploading objects with presigned
 *   URLs" (S3 User Guide) says presigned URLs do not support the CRC/SHA checksums, only Content-MD5
 *   (current SDKs put the CRC32 of an empty body into presigned PutObject URLs);
 * - the length (`Content-Length`, or `x-amz-decoded-content-length` for aws-chunked; `IncompleteBody`).
 *
 * Nothing is buffered beyond one network chunk.
 */
import { createHash, type Hash } from 'node:crypto';
import type { ServiceRequest } from '../http/server.js';
import { UNSIGNED_PAYLOAD } from '../http/sigv4.js';
import {
  algorithmOfHeader,
  type ChecksumAlgorithm,
  checksumHeader,
  createDigest,
  type Digest,
  isWellFormedChecksum,
  parseAlgorithm,
} from './checksums.js';
import { AwsChunkedDecoder } from './chunked.js';
import { badDigest, invalidArgument, invalidRequest, notImplemented, S3Error } from './errors.js';
import type { TempFile } from './object-store.js';

export interface ReceivedBody {
  temp: TempFile;
  size: number;
  /** Binary MD5 of the body (the ETag of a single-part object). */
  md5: Buffer;
  /** Base64 checksums computed, by algorithm. */
  checksums: Partial<Record<ChecksumAlgorithm, string>>;
  /** The checksum the client sent (header or trailer), verified. */
  declared?: { algorithm: ChecksumAlgorithm; value: string };
}

export interface BodyOptions {
  /** Checksums to compute whatever the client sent. */
  compute: ChecksumAlgorithm[];
  /** A checksum to compute when the client declares none (S3 adds CRC64NVME to every new object). */
  fallback?: ChecksumAlgorithm;
  maxSize: number;
  newTemp: () => Promise<TempFile>;
}

type PayloadMode =
  | { kind: 'plain'; sha256?: string }
  | { kind: 'chunked'; signed: boolean; trailer: boolean };

function header(req: ServiceRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

function payloadMode(req: ServiceRequest): PayloadMode {
  // For presigned URLs the HTTP endpoint sets UNSIGNED-PAYLOAD unless the URL signed X-Amz-Content-Sha256.
  const hash = req.auth.payloadHash;
  if (hash === UNSIGNED_PAYLOAD) return { kind: 'plain' };
  if (/^[0-9a-f]{64}$/.test(hash)) return { kind: 'plain', sha256: hash };
  switch (hash) {
    case 'STREAMING-UNSIGNED-PAYLOAD-TRAILER':
      return { kind: 'chunked', signed: false, trailer: true };
    case 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD':
      return { kind: 'chunked', signed: true, trailer: false };
    case 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER':
      return { kind: 'chunked', signed: true, trailer: true };
    case 'STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD':
    case 'STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER':
      throw notImplemented('SigV4a (ECDSA) signed chunks');
  }
  throw invalidArgument(
    'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or a valid sha256 value.',
    'x-amz-content-sha256',
    hash,
  );
}

/** The `x-amz-checksum-*` header the client sent, if any (at most one is allowed). */
export function headerChecksum(
  req: ServiceRequest,
): { algorithm: ChecksumAlgorithm; value: string } | undefined {
  const found: { algorithm: ChecksumAlgorithm; value: string }[] = [];
  for (const [name, value] of Object.entries(req.headers)) {
    const algorithm = algorithmOfHeader(name);
    if (!algorithm || value === undefined) continue;
    found.push({ algorithm, value: Array.isArray(value) ? value.join(',') : value });
  }
  if (found.length > 1) {
    throw invalidRequest(
      'Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.',
    );
  }
  const c = found[0];
  if (c && !isWellFormedChecksum(c.algorithm, c.value)) {
    throw invalidRequest(`Value for ${checksumHeader(c.algorithm)} header is invalid.`);
  }
  return c;
}

/** The algorithm the client says it used (`x-amz-sdk-checksum-algorithm`), checked against what it sent. */
function sdkAlgorithm(req: ServiceRequest): ChecksumAlgorithm | undefined {
  const v = header(req, 'x-amz-sdk-checksum-algorithm');
  if (v === undefined) return undefined;
  const a = parseAlgorithm(v);
  if (!a) throw invalidRequest(`Checksum algorithm '${v}' is not supported.`);
  return a;
}

function contentMd5(req: ServiceRequest): Buffer | undefined {
  const v = header(req, 'content-md5');
  if (v === undefined) return undefined;
  const b = Buffer.from(v, 'base64');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(v) || b.length !== 16) {
    throw new S3Error(400, 'InvalidDigest', 'The Content-MD5 you specified was invalid.');
  }
  return b;
}

function declaredLength(req: ServiceRequest, chunked: boolean): number | undefined {
  const raw = chunked ? header(req, 'x-amz-decoded-content-length') : header(req, 'content-length');
  if (raw === undefined) {
    if (!chunked && header(req, 'transfer-encoding') !== undefined) return undefined;
    throw new S3Error(411, 'MissingContentLength', 'You must provide the Content-Length HTTP header.');
  }
  if (!/^\d+$/.test(raw)) throw invalidArgument('The content length is not a number', 'Content-Length', raw);
  return Number(raw);
}

/** Reads, checks and stores the request body; the caller commits or discards `temp`. */
export async function receiveBody(req: ServiceRequest, opts: BodyOptions): Promise<ReceivedBody> {
  const mode = payloadMode(req);
  const chunked = mode.kind === 'chunked';
  const length = declaredLength(req, chunked);
  if (length !== undefined && length > opts.maxSize) {
    throw new S3Error(400, 'EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size', {
      ProposedSize: String(length),
      MaxSizeAllowed: String(opts.maxSize),
    });
  }
  const fromHeader = headerChecksum(req);
  const sdk = sdkAlgorithm(req);
  let trailerAlgorithm: ChecksumAlgorithm | undefined;
  const trailerNames = header(req, 'x-amz-trailer');
  if (trailerNames !== undefined) {
    if (!chunked || !mode.trailer) {
      throw invalidRequest(
        'x-amz-trailer can only be sent with a STREAMING-...-TRAILER x-amz-content-sha256',
      );
    }
    const names = trailerNames.split(',').map((n) => n.trim().toLowerCase());
    const algorithms = names.map(algorithmOfHeader);
    if (names.length !== 1 || !algorithms[0]) {
      throw invalidRequest(
        `The value specified in the x-amz-trailer header is not supported: ${trailerNames}`,
      );
    }
    if (fromHeader) {
      throw invalidRequest(
        'Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.',
      );
    }
    trailerAlgorithm = algorithms[0];
  } else if (chunked && mode.trailer) {
    throw invalidRequest('STREAMING-...-TRAILER requires the x-amz-trailer header');
  }
  const declaredAlgorithm = fromHeader?.algorithm ?? trailerAlgorithm;
  if (sdk && declaredAlgorithm && sdk !== declaredAlgorithm) {
    throw badDigest(`checksum algorithm ${sdk} (x-amz-sdk-checksum-algorithm)`);
  }
  const md5Expected = contentMd5(req);
  const contentEncoding = header(req, 'content-encoding') ?? '';
  if (!chunked && /(^|,)\s*aws-chunked\s*(,|$)/.test(contentEncoding)) {
    throw invalidArgument(
      'aws-chunked encoding is not supported with the specified x-amz-content-sha256 value.',
      'Content-Encoding',
      contentEncoding,
    );
  }

  const algorithms = new Set<ChecksumAlgorithm>(opts.compute);
  if (declaredAlgorithm) algorithms.add(declaredAlgorithm);
  else if (opts.fallback) algorithms.add(opts.fallback);
  const digests = new Map<ChecksumAlgorithm, Digest>([...algorithms].map((a) => [a, createDigest(a)]));
  const md5 = createHash('md5');
  const sha256: Hash | undefined = mode.kind === 'plain' && mode.sha256 ? createHash('sha256') : undefined;
  const decoder = chunked
    ? new AwsChunkedDecoder({
        trailer: mode.trailer,
        ...(mode.signed
          ? {
              signed: {
                signingKey: req.auth.signingKey,
                amzDate: req.auth.amzDate,
                scope: req.auth.scope,
                seedSignature: req.auth.signature,
              },
              minChunkSize: 8192,
            }
          : {}),
      })
    : undefined;

  const temp = await opts.newTemp();
  try {
    let size = 0;
    const stream = req.stream;
    if (!stream) throw new Error('the S3 route needs the request stream');
    try {
      for await (const raw of stream.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
        const pieces = decoder ? decoder.push(raw) : [raw];
        for (const piece of pieces) {
          size += piece.length;
          if (size > opts.maxSize || (length !== undefined && size > length)) {
            throw length !== undefined && size > length
              ? new S3Error(400, 'IncompleteBody', 'The request body is longer than its declared length')
              : new S3Error(400, 'EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size');
          }
          md5.update(piece);
          sha256?.update(piece);
          for (const d of digests.values()) d.update(piece);
          await temp.write(piece);
        }
      }
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e?.code === 'ECONNRESET' || e?.message === 'aborted') {
        throw new S3Error(400, 'IncompleteBody', 'The request body ended early: the client went away');
      }
      throw err;
    }
    const trailers = decoder?.end() ?? {};
    if (length !== undefined && size !== length) {
      throw new S3Error(
        400,
        'IncompleteBody',
        'You did not provide the number of bytes specified by the Content-Length HTTP header.',
      );
    }
    if (sha256 && mode.kind === 'plain' && mode.sha256) {
      const computed = sha256.digest('hex');
      if (computed !== mode.sha256) {
        throw new S3Error(
          400,
          'XAmzContentSHA256Mismatch',
          "The provided 'x-amz-content-sha256' header does not match what was computed.",
          { ClientComputedContentSHA256: mode.sha256, S3ComputedContentSHA256: computed },
        );
      }
    }
    const md5Digest = md5.digest();
    if (md5Expected && !md5Expected.equals(md5Digest)) {
      throw new S3Error(400, 'BadDigest', 'The Content-MD5 you specified did not match what we received.', {
        ExpectedDigest: md5Expected.toString('hex'),
        CalculatedDigest: md5Digest.toString('base64'),
      });
    }
    const checksums: Partial<Record<ChecksumAlgorithm, string>> = {};
    for (const [a, d] of digests) checksums[a] = d.digest().toString('base64');
    let declared: ReceivedBody['declared'];
    if (fromHeader) declared = fromHeader;
    if (trailerAlgorithm) {
      const value = trailers[checksumHeader(trailerAlgorithm)];
      if (value === undefined) {
        throw new S3Error(
          400,
          'MalformedTrailerError',
          `The trailer did not contain ${checksumHeader(trailerAlgorithm)}`,
        );
      }
      if (!isWellFormedChecksum(trailerAlgorithm, value)) {
        throw invalidRequest(`Value for ${checksumHeader(trailerAlgorithm)} trailing header is invalid.`);
      }
      declared = { algorithm: trailerAlgorithm, value };
    }
    if (declared && checksums[declared.algorithm] !== declared.value) throw badDigest(declared.algorithm);
    await temp.finish();
    return { temp, size, md5: md5Digest, checksums, ...(declared ? { declared } : {}) };
  } catch (err) {
    await temp.discard();
    throw err;
  }
}

/** Reads a small request body (an XML document) whole, checking it like an object body. */
export async function readSmallBody(req: ServiceRequest, maxSize: number): Promise<Buffer> {
  const mode = payloadMode(req);
  const stream = req.stream;
  if (!stream) return req.body;
  const chunks: Buffer[] = [];
  let size = 0;
  const decoder =
    mode.kind === 'chunked'
      ? new AwsChunkedDecoder({
          trailer: mode.trailer,
          ...(mode.signed
            ? {
                signed: {
                  signingKey: req.auth.signingKey,
                  amzDate: req.auth.amzDate,
                  scope: req.auth.scope,
                  seedSignature: req.auth.signature,
                },
              }
            : {}),
        })
      : undefined;
  for await (const raw of stream.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    for (const piece of decoder ? decoder.push(raw) : [raw]) {
      size += piece.length;
      if (size > maxSize) throw new S3Error(400, 'MaxMessageLengthExceeded', 'Your request was too big.');
      chunks.push(Buffer.from(piece));
    }
  }
  const trailers = decoder?.end() ?? {};
  const body = Buffer.concat(chunks);
  if (mode.kind === 'plain' && mode.sha256) {
    const computed = createHash('sha256').update(body).digest('hex');
    if (computed !== mode.sha256) {
      throw new S3Error(
        400,
        'XAmzContentSHA256Mismatch',
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
        { ClientComputedContentSHA256: mode.sha256, S3ComputedContentSHA256: computed },
      );
    }
  }
  const md5Expected = contentMd5(req);
  if (md5Expected && !md5Expected.equals(createHash('md5').update(body).digest())) {
    throw new S3Error(400, 'BadDigest', 'The Content-MD5 you specified did not match what we received.');
  }
  const declared = headerChecksum(req);
  const trailerEntry = Object.entries(trailers).find(([n]) => algorithmOfHeader(n));
  const check =
    declared ??
    (trailerEntry ? { algorithm: algorithmOfHeader(trailerEntry[0])!, value: trailerEntry[1] } : undefined);
  if (check) {
    const d = createDigest(check.algorithm);
    d.update(body);
    if (d.digest().toString('base64') !== check.value) throw badDigest(check.algorithm);
  }
  return body;
}
