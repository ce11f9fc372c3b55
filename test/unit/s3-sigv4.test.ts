/**
 * The explicit SigV4 canonical request (cloud/local/http/sigv4.ts) used for S3 and presigned URLs,
 * against the worked examples of the Amazon S3 API Reference: "Signature Calculations for the
 * Authorization Header: Transferring Payload in a Single Chunk" (GET Object with Range, GET Bucket
 * Lifecycle, Get Bucket (List Objects)), "Authenticating Requests: Using Query Parameters" (presigned
 * GET of test.txt) and the seed signature of the chunked upload example.
 */
import { describe, expect, test } from '@jest/globals';
import {
  canonicalRequest,
  canonicalUriCandidates,
  deriveSigningKey,
  EMPTY_SHA256,
  hmacHex,
  parseQuery,
  parseQueryAuthorization,
  type SigV4Scope,
  stringToSign,
  UNSIGNED_PAYLOAD,
} from '../../cloud/local/http/sigv4.js';

const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const scope: SigV4Scope = {
  accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
  date: '20130524',
  region: 'us-east-1',
  service: 's3',
};
const AMZ_DATE = '20130524T000000Z';
const HOST = 'examplebucket.s3.amazonaws.com';

function sign(input: {
  method: string;
  path: string;
  query?: string;
  headers: Record<string, string>;
  signedHeaders: string[];
  payloadHash: string;
}): string {
  const canonical = canonicalRequest({
    method: input.method,
    canonicalUri: canonicalUriCandidates(input.path, false)[0]!,
    query: parseQuery(input.query ?? ''),
    host: HOST,
    headers: input.headers,
    signedHeaders: input.signedHeaders,
    payloadHash: input.payloadHash,
  });
  return hmacHex(deriveSigningKey(SECRET, scope), stringToSign(AMZ_DATE, scope, canonical));
}

describe('Authorization header examples', () => {
  test('GET Object with a Range header', () => {
    expect(
      sign({
        method: 'GET',
        path: '/test.txt',
        headers: { range: 'bytes=0-9', 'x-amz-content-sha256': EMPTY_SHA256, 'x-amz-date': AMZ_DATE },
        signedHeaders: ['host', 'range', 'x-amz-content-sha256', 'x-amz-date'],
        payloadHash: EMPTY_SHA256,
      }),
    ).toBe('f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41');
  });

  test('GET Bucket Lifecycle (a sub-resource without value)', () => {
    expect(
      sign({
        method: 'GET',
        path: '/',
        query: 'lifecycle',
        headers: { 'x-amz-content-sha256': EMPTY_SHA256, 'x-amz-date': AMZ_DATE },
        signedHeaders: ['host', 'x-amz-content-sha256', 'x-amz-date'],
        payloadHash: EMPTY_SHA256,
      }),
    ).toBe('fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543');
  });

  test('Get Bucket (List Objects): query parameters sorted', () => {
    expect(
      sign({
        method: 'GET',
        path: '/',
        query: 'max-keys=2&prefix=J',
        headers: { 'x-amz-content-sha256': EMPTY_SHA256, 'x-amz-date': AMZ_DATE },
        signedHeaders: ['host', 'x-amz-content-sha256', 'x-amz-date'],
        payloadHash: EMPTY_SHA256,
      }),
    ).toBe('34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7');
  });

  test('the seed signature of the chunked upload example', () => {
    // The example signs with Host s3.amazonaws.com (path-style).
    const canonical = canonicalRequest({
      method: 'PUT',
      canonicalUri: '/examplebucket/chunkObject.txt',
      query: {},
      host: 's3.amazonaws.com',
      headers: {
        'content-encoding': 'aws-chunked',
        'content-length': '66824',
        'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
        'x-amz-date': AMZ_DATE,
        'x-amz-decoded-content-length': '66560',
        'x-amz-storage-class': 'REDUCED_REDUNDANCY',
      },
      signedHeaders: [
        'content-encoding',
        'content-length',
        'host',
        'x-amz-content-sha256',
        'x-amz-date',
        'x-amz-decoded-content-length',
        'x-amz-storage-class',
      ],
      payloadHash: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
    });
    expect(hmacHex(deriveSigningKey(SECRET, scope), stringToSign(AMZ_DATE, scope, canonical))).toBe(
      '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9',
    );
  });
});

describe('query-string authentication', () => {
  const url =
    'X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404';

  test('the documented presigned GET verifies (X-Amz-Signature left out of the canonical query)', () => {
    const query = parseQuery(url);
    const parsed = parseQueryAuthorization(query);
    expect(parsed?.ok).toBe(true);
    if (!parsed?.ok) return;
    expect(parsed.auth).toMatchObject({
      ...scope,
      expires: '86400',
      amzDate: AMZ_DATE,
      signedHeaders: ['host'],
    });
    const canonical = canonicalRequest({
      method: 'GET',
      canonicalUri: '/test.txt',
      query,
      host: HOST,
      headers: {},
      signedHeaders: parsed.auth.signedHeaders,
      payloadHash: UNSIGNED_PAYLOAD,
    });
    expect(
      hmacHex(
        deriveSigningKey(SECRET, parsed.auth),
        stringToSign(parsed.auth.amzDate, parsed.auth, canonical),
      ),
    ).toBe(parsed.auth.signature);
  });

  test('missing or malformed parameters are reported with the scope when it is readable', () => {
    expect(parseQueryAuthorization(parseQuery('a=b'))).toBeUndefined();
    const noSig = parseQueryAuthorization(parseQuery(url.replace(/&X-Amz-Signature=[0-9a-f]+/, '')));
    expect(noSig).toMatchObject({ ok: false, scope: { service: 's3' } });
    expect(parseQueryAuthorization(parseQuery('X-Amz-Credential=nonsense'))).toMatchObject({ ok: false });
    const md5 = parseQueryAuthorization(parseQuery(url.replace('AWS4-HMAC-SHA256', 'AWS4-HMAC-MD5')));
    expect(md5).toMatchObject({ ok: false });
  });
});

describe('canonical URIs', () => {
  test('S3 signs the path as sent, and accepts its canonical re-encoding', () => {
    expect(canonicalUriCandidates('/b/a%20b/%C3%BC%2B%3Dx', false)).toEqual(['/b/a%20b/%C3%BC%2B%3Dx']);
    expect(canonicalUriCandidates("/b/it's(1)", false)).toEqual(["/b/it's(1)", '/b/it%27s%281%29']);
  });

  test('other services normalize the path and encode it twice', () => {
    expect(canonicalUriCandidates('/things/a%20b/./shadow', true)).toEqual(['/things/a%2520b/shadow']);
  });
});
