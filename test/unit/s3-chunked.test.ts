/**
 * aws-chunked bodies, against the worked example of "Signature Calculations for the Authorization
 * Header: Transferring Payload in Multiple Chunks (Chunked Upload)" in the Amazon S3 API Reference
 * (66560 bytes of 'a' in a 65536-byte and a 1024-byte chunk, key AKIAIOSFODNN7EXAMPLE, 20130524), and
 * against the unsigned-with-trailer form the AWS SDKs send.
 */
import { createHash } from 'node:crypto';
import { describe, expect, test } from '@jest/globals';
import {
  chunkSignature,
  deriveSigningKey,
  type SigV4Scope,
  trailerSignature,
} from '../../cloud/local/http/sigv4.js';
import { AwsChunkedDecoder, type ChunkSigning } from '../../cloud/local/s3/chunked.js';
import type { S3Error } from '../../cloud/local/s3/errors.js';

const scope: SigV4Scope = {
  accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
  date: '20130524',
  region: 'us-east-1',
  service: 's3',
};
const signing: ChunkSigning = {
  signingKey: deriveSigningKey('wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', scope),
  amzDate: '20130524T000000Z',
  scope,
  seedSignature: '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9',
};
const SIG1 = 'ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648';
const SIG2 = '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497';
const SIG3 = 'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9';

function documentedBody(data1 = Buffer.alloc(65536, 'a'), sig1 = SIG1): Buffer {
  return Buffer.concat([
    Buffer.from(`10000;chunk-signature=${sig1}\r\n`),
    data1,
    Buffer.from(`\r\n400;chunk-signature=${SIG2}\r\n`),
    Buffer.alloc(1024, 'a'),
    Buffer.from(`\r\n0;chunk-signature=${SIG3}\r\n\r\n`),
  ]);
}

/** Feeds `body` in pieces of `step` bytes; returns the decoded bytes and trailers. */
function decode(decoder: AwsChunkedDecoder, body: Buffer, step = body.length) {
  const out: Buffer[] = [];
  for (let i = 0; i < body.length; i += step) {
    for (const piece of decoder.push(body.subarray(i, i + step))) out.push(Buffer.from(piece));
  }
  return { data: Buffer.concat(out), trailers: decoder.end() };
}

function errorOf(fn: () => unknown): S3Error {
  try {
    fn();
  } catch (err) {
    return err as S3Error;
  }
  throw new Error('expected an error');
}

describe('signed chunks (STREAMING-AWS4-HMAC-SHA256-PAYLOAD)', () => {
  test('the documented example decodes, each chunk signature verified', () => {
    for (const step of [66824, 8192, 1000, 7]) {
      const { data } = decode(
        new AwsChunkedDecoder({ signed: signing, trailer: false, minChunkSize: 8192 }),
        documentedBody(),
        step,
      );
      expect(data).toEqual(Buffer.alloc(66560, 'a'));
    }
  });

  test('the documented chunk signatures are what chunkSignature computes', () => {
    const h = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const s1 = chunkSignature(
      signing.signingKey,
      signing.amzDate,
      scope,
      signing.seedSignature,
      h(Buffer.alloc(65536, 'a')),
    );
    const s2 = chunkSignature(signing.signingKey, signing.amzDate, scope, s1, h(Buffer.alloc(1024, 'a')));
    const s3 = chunkSignature(signing.signingKey, signing.amzDate, scope, s2, h(Buffer.alloc(0)));
    expect([s1, s2, s3]).toEqual([SIG1, SIG2, SIG3]);
  });

  test('a tampered chunk fails with SignatureDoesNotMatch', () => {
    const tampered = Buffer.alloc(65536, 'a');
    tampered[100] = 'b'.charCodeAt(0);
    const err = errorOf(() =>
      decode(new AwsChunkedDecoder({ signed: signing, trailer: false }), documentedBody(tampered)),
    );
    expect(err.code).toBe('SignatureDoesNotMatch');
    expect(err.status).toBe(403);
  });

  test('a forged chunk signature fails', () => {
    const err = errorOf(() =>
      decode(new AwsChunkedDecoder({ signed: signing, trailer: false }), documentedBody(undefined, SIG2)),
    );
    expect(err.code).toBe('SignatureDoesNotMatch');
  });

  test('a chunk without signature is refused', () => {
    const body = Buffer.from('5\r\nhello\r\n0\r\n\r\n');
    expect(errorOf(() => decode(new AwsChunkedDecoder({ signed: signing, trailer: false }), body)).code).toBe(
      'IncompleteBody',
    );
  });

  test('only the last chunk may be smaller than 8 KiB', () => {
    const h = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const a = Buffer.from('hello');
    const b = Buffer.from('world');
    const s1 = chunkSignature(signing.signingKey, signing.amzDate, scope, signing.seedSignature, h(a));
    const s2 = chunkSignature(signing.signingKey, signing.amzDate, scope, s1, h(b));
    const s3 = chunkSignature(signing.signingKey, signing.amzDate, scope, s2, h(Buffer.alloc(0)));
    const body = Buffer.from(
      `5;chunk-signature=${s1}\r\nhello\r\n5;chunk-signature=${s2}\r\nworld\r\n0;chunk-signature=${s3}\r\n\r\n`,
    );
    const err = errorOf(() =>
      decode(new AwsChunkedDecoder({ signed: signing, trailer: false, minChunkSize: 8192 }), body),
    );
    expect(err.code).toBe('InvalidChunkSizeError');
    expect(err.fields).toEqual({ Chunk: '1', BadChunkSize: '5' });
    // A single small chunk is the last one: fine.
    const single = Buffer.from(
      `5;chunk-signature=${s1}\r\nhello\r\n0;chunk-signature=${chunkSignature(signing.signingKey, signing.amzDate, scope, s1, h(Buffer.alloc(0)))}\r\n\r\n`,
    );
    expect(
      decode(
        new AwsChunkedDecoder({ signed: signing, trailer: false, minChunkSize: 8192 }),
        single,
      ).data.toString(),
    ).toBe('hello');
  });

  test('a signed trailer is verified against the final chunk signature', () => {
    const h = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const data = Buffer.from('hello');
    const s1 = chunkSignature(signing.signingKey, signing.amzDate, scope, signing.seedSignature, h(data));
    const s2 = chunkSignature(signing.signingKey, signing.amzDate, scope, s1, h(Buffer.alloc(0)));
    const trailer = 'x-amz-checksum-crc32:NhCmhg==';
    const ts = trailerSignature(signing.signingKey, signing.amzDate, scope, s2, `${trailer}\n`);
    const body = (sig: string) =>
      Buffer.from(
        `5;chunk-signature=${s1}\r\nhello\r\n0;chunk-signature=${s2}\r\n${trailer}\r\nx-amz-trailer-signature:${sig}\r\n\r\n`,
      );
    const ok = decode(new AwsChunkedDecoder({ signed: signing, trailer: true }), body(ts), 3);
    expect(ok.data.toString()).toBe('hello');
    expect(ok.trailers).toEqual({ 'x-amz-checksum-crc32': 'NhCmhg==' });
    expect(
      errorOf(() => decode(new AwsChunkedDecoder({ signed: signing, trailer: true }), body(SIG1))).code,
    ).toBe('SignatureDoesNotMatch');
  });
});

describe('unsigned chunks with a trailer (STREAMING-UNSIGNED-PAYLOAD-TRAILER)', () => {
  // What @aws-sdk/client-s3 sends for a stream body of 'hello' + ' world'.
  const sdkBody = Buffer.from('5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n');

  test('decodes at every split point and returns the trailer', () => {
    for (let step = 1; step <= sdkBody.length; step++) {
      const { data, trailers } = decode(new AwsChunkedDecoder({ trailer: true }), sdkBody, step);
      expect(data.toString()).toBe('hello world');
      expect(trailers).toEqual({ 'x-amz-checksum-crc32': 'DUoRhQ==' });
    }
  });

  test('a body cut short is IncompleteBody', () => {
    for (const cut of [3, 9, 20, sdkBody.length - 2]) {
      const decoder = new AwsChunkedDecoder({ trailer: true });
      decoder.push(sdkBody.subarray(0, cut));
      expect(errorOf(() => decoder.end()).code).toBe('IncompleteBody');
    }
  });

  test('a chunk longer than its size line says is refused', () => {
    const body = Buffer.from('5\r\nhello!\r\n0\r\n\r\n');
    expect(errorOf(() => decode(new AwsChunkedDecoder({ trailer: false }), body)).code).toBe(
      'IncompleteBody',
    );
  });

  test('a malformed size line is refused', () => {
    expect(errorOf(() => decode(new AwsChunkedDecoder({ trailer: false }), Buffer.from('zz\r\n'))).code).toBe(
      'IncompleteBody',
    );
  });

  test('trailing headers that were not declared are refused', () => {
    const err = errorOf(() => decode(new AwsChunkedDecoder({ trailer: false }), sdkBody));
    expect(err.code).toBe('IncompleteBody');
  });

  test('an empty body is just the final chunk', () => {
    const { data, trailers } = decode(
      new AwsChunkedDecoder({ trailer: true }),
      Buffer.from('0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n'),
    );
    expect(data.length).toBe(0);
    expect(trailers['x-amz-checksum-crc32']).toBe('AAAAAA==');
  });
});
