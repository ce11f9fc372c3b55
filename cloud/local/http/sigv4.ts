/**
 * Verification of AWS Signature Version 4 on incoming requests. In the Authorization header form the
 * canonical request is rebuilt from what arrived and signed again with the caller's secret through
 * @smithy/signature-v4, the same signer the SDK clients use. Query-string authentication (presigned
 * URLs) and unbuffered bodies (S3) use the explicit canonical request below, the same algorithm.
 */
import { createHash, createHmac, type Hash, type Hmac, timingSafeEqual } from 'node:crypto';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';

export interface SigV4Scope {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
}

export interface ParsedAuthorization extends SigV4Scope {
  signedHeaders: string[];
  signature: string;
}

export interface SigningSecret {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

const AUTH_RE =
  /^AWS4-HMAC-SHA256\s+Credential=([^/\s]+)\/(\d{8})\/([^/\s]+)\/([^/\s]+)\/aws4_request,\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})\s*$/;

/** Parses an `Authorization: AWS4-HMAC-SHA256 ...` header; undefined if it is not one. */
export function parseAuthorization(header: string | undefined): ParsedAuthorization | undefined {
  if (!header) return undefined;
  const m = AUTH_RE.exec(header);
  if (!m) return undefined;
  return {
    accessKeyId: m[1]!,
    date: m[2]!,
    region: m[3]!,
    service: m[4]!,
    signedHeaders: m[5]!.split(';'),
    signature: m[6]!,
  };
}

/** Parses `x-amz-date` (ISO 8601 basic, `20261123T134000Z`). */
export function parseAmzDate(value: string | undefined): Date | undefined {
  if (!value) return undefined;
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m;
  return new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)));
}

/** Splits a raw query string without treating `+` as a space (SigV4 clients encode spaces as %20). */
export function parseQuery(raw: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  if (!raw) return out;
  for (const part of raw.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const key = decodeURIComponent(eq < 0 ? part : part.slice(0, eq));
    const value = eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1));
    const prev = out[key];
    if (prev === undefined) out[key] = value;
    else out[key] = Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return out;
}

export interface IncomingForSigning {
  method: string;
  /** Host header as received. */
  host: string;
  /** The path exactly as received (still percent-encoded). */
  rawPath: string;
  query: Record<string, string | string[]>;
  headers: Record<string, string | string[] | undefined>;
  body: Uint8Array;
}

/**
 * SHA-256 (or, with a secret, HMAC-SHA256) on node:crypto, in the shape the signer takes (the SDK's
 * `Checksum`): the signer hashes every request's body and canonical request with it.
 */
class NodeSha256 {
  private readonly hash: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash =
      secret === undefined
        ? createHash('sha256')
        : createHmac(
            'sha256',
            typeof secret === 'string'
              ? secret
              : ArrayBuffer.isView(secret)
                ? new Uint8Array(secret.buffer, secret.byteOffset, secret.byteLength)
                : new Uint8Array(secret),
          );
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(
      typeof data === 'string'
        ? data
        : ArrayBuffer.isView(data)
          ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
          : new Uint8Array(data),
    );
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
}

/**
 * Computes the signature the caller should have produced. `uriEscapePath` is false for S3 only.
 */
export async function expectedSignature(
  req: IncomingForSigning,
  auth: ParsedAuthorization,
  secret: SigningSecret,
  signingDate: Date,
  uriEscapePath: boolean,
): Promise<string> {
  const headers: Record<string, string> = {};
  for (const name of auth.signedHeaders) {
    const v = name === 'host' ? req.host : req.headers[name];
    if (v === undefined) continue;
    headers[name] = Array.isArray(v) ? v.join(',') : v;
  }
  const request = new HttpRequest({
    method: req.method,
    protocol: 'http:',
    hostname: req.host.replace(/:\d+$/, ''),
    path: req.rawPath,
    query: req.query,
    headers,
    body: req.body,
  });
  const signer = new SignatureV4({
    credentials: {
      accessKeyId: secret.accessKeyId,
      secretAccessKey: secret.secretAccessKey,
      ...(secret.sessionToken !== undefined && headers['x-amz-security-token'] !== undefined
        ? { sessionToken: secret.sessionToken }
        : {}),
    },
    region: auth.region,
    service: auth.service,
    sha256: NodeSha256,
    uriEscapePath,
    applyChecksum: false,
  });
  const signed = await signer.sign(request, {
    signingDate,
    signingRegion: auth.region,
    signingService: auth.service,
    signableHeaders: new Set(auth.signedHeaders),
  });
  const header = signed.headers.authorization ?? signed.headers.Authorization ?? '';
  const m = /Signature=([0-9a-f]{64})/.exec(header);
  return m ? m[1]! : '';
}

export function signaturesEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

// ---------------------------------------------------------------------------------------------------
// Explicit canonical requests: query-string authentication (presigned URLs) and services whose body is
// not buffered (S3), where the payload hash comes from `x-amz-content-sha256` rather than the body.
// ("Authenticating Requests: Using Query Parameters" and "Signature Calculations for the Authorization
// Header" in the Amazon S3 API Reference; the same algorithm as @smithy/signature-v4.)
// ---------------------------------------------------------------------------------------------------

export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** Longest validity of a presigned URL (seven days), in seconds. */
export const MAX_PRESIGNED_EXPIRES = 604800;

export interface ParsedQueryAuthorization extends ParsedAuthorization {
  algorithm: string;
  /** `X-Amz-Date` as sent (ISO 8601 basic). */
  amzDate: string;
  /** `X-Amz-Expires` as sent. */
  expires: string;
  securityToken?: string;
}

const CREDENTIAL_RE = /^([^/\s]+)\/(\d{8})\/([^/\s]+)\/([^/\s]+)\/aws4_request$/;

function firstValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Reads the SigV4 query parameters of a presigned URL. Undefined when the request carries none (no
 * `X-Amz-Credential`); `scope` is set whenever the credential could be read, even if other parameters
 * are missing, so that the error can be answered by the right service.
 */
export function parseQueryAuthorization(
  query: Record<string, string | string[]>,
):
  | { ok: true; auth: ParsedQueryAuthorization }
  | { ok: false; scope?: SigV4Scope; message: string }
  | undefined {
  const credential = firstValue(query['X-Amz-Credential']);
  if (credential === undefined) return undefined;
  const m = CREDENTIAL_RE.exec(credential);
  if (!m) return { ok: false, message: `X-Amz-Credential '${credential}' is malformed` };
  const scope: SigV4Scope = { accessKeyId: m[1]!, date: m[2]!, region: m[3]!, service: m[4]! };
  const algorithm = firstValue(query['X-Amz-Algorithm']);
  const amzDate = firstValue(query['X-Amz-Date']);
  const expires = firstValue(query['X-Amz-Expires']);
  const signedHeaders = firstValue(query['X-Amz-SignedHeaders']);
  const signature = firstValue(query['X-Amz-Signature']);
  const missing = [
    ['X-Amz-Algorithm', algorithm],
    ['X-Amz-Date', amzDate],
    ['X-Amz-Expires', expires],
    ['X-Amz-SignedHeaders', signedHeaders],
    ['X-Amz-Signature', signature],
  ].find(([, v]) => v === undefined || v === '');
  if (missing) return { ok: false, scope, message: `Query-string authentication requires ${missing[0]}` };
  if (algorithm !== 'AWS4-HMAC-SHA256') {
    return { ok: false, scope, message: `X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"` };
  }
  if (!/^[0-9a-f]{64}$/.test(signature!)) {
    return { ok: false, scope, message: 'X-Amz-Signature must be 64 lowercase hex digits' };
  }
  const token = firstValue(query['X-Amz-Security-Token']);
  return {
    ok: true,
    auth: {
      ...scope,
      algorithm,
      amzDate: amzDate!,
      expires: expires!,
      signedHeaders: signedHeaders!.split(';'),
      signature: signature!,
      ...(token !== undefined ? { securityToken: token } : {}),
    },
  };
}

/** RFC 3986 encoding as SigV4 wants it: everything but unreserved characters, upper-case hex. */
export function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * The canonical URI(s) a request may have been signed with. Services other than S3 normalize the path
 * and encode it twice (as @smithy/signature-v4 does with `uriEscapePath`); S3 signs its path encoded
 * once, which is what the SDK sends, so the path as received is tried first and then its canonical
 * re-encoding (for clients that leave characters such as `!` or `*` unencoded).
 */
export function canonicalUriCandidates(rawPath: string, uriEscapePath: boolean): string[] {
  if (uriEscapePath) {
    const segments: string[] = [];
    for (const seg of rawPath.split('/')) {
      if (seg === '' || seg === '.') continue;
      if (seg === '..') segments.pop();
      else segments.push(seg);
    }
    const normalized = `${rawPath.startsWith('/') ? '/' : ''}${segments.join('/')}${segments.length > 0 && rawPath.endsWith('/') ? '/' : ''}`;
    return [uriEncode(normalized).replace(/%2F/g, '/')];
  }
  let reencoded: string | undefined;
  try {
    reencoded = rawPath
      .split('/')
      .map((seg) => uriEncode(decodeURIComponent(seg)))
      .join('/');
  } catch {
    reencoded = undefined;
  }
  return reencoded === undefined || reencoded === rawPath ? [rawPath] : [rawPath, reencoded];
}

function canonicalHeaderValue(v: string | string[] | undefined): string {
  const s = Array.isArray(v) ? v.join(',') : (v ?? '');
  return s
    .replace(/[\r\n]/g, ' ')
    .replace(/[ \t]+/g, ' ')
    .trim();
}

export interface CanonicalRequestInput {
  method: string;
  canonicalUri: string;
  /** Decoded query parameters; `X-Amz-Signature` is left out of the canonical form. */
  query: Record<string, string | string[]>;
  /** Host header as received. */
  host: string;
  headers: Record<string, string | string[] | undefined>;
  /** Lower-case header names, as listed in SignedHeaders. */
  signedHeaders: string[];
  payloadHash: string;
}

export function canonicalRequest(i: CanonicalRequestInput): string {
  const query = Object.entries(i.query)
    .filter(([k]) => k.toLowerCase() !== 'x-amz-signature')
    .flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((x) => `${uriEncode(k)}=${uriEncode(x)}`))
    .sort((a, b) => {
      const ka = a.slice(0, a.indexOf('='));
      const kb = b.slice(0, b.indexOf('='));
      if (ka !== kb) return ka < kb ? -1 : 1;
      return a < b ? -1 : a > b ? 1 : 0;
    })
    .join('&');
  const headers = i.signedHeaders
    .map((n) => `${n}:${canonicalHeaderValue(n === 'host' ? i.host : i.headers[n])}\n`)
    .join('');
  return `${i.method}\n${i.canonicalUri}\n${query}\n${headers}\n${i.signedHeaders.join(';')}\n${i.payloadHash}`;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function hmacHex(key: Uint8Array, data: string): string {
  return createHmac('sha256', key).update(data).digest('hex');
}

/** kSigning = HMAC chain over "AWS4"+secret, date, region, service, "aws4_request". */
export function deriveSigningKey(secretAccessKey: string, scope: SigV4Scope): Buffer {
  let key: Buffer = Buffer.from(`AWS4${secretAccessKey}`);
  for (const part of [scope.date, scope.region, scope.service, 'aws4_request']) {
    key = createHmac('sha256', key).update(part).digest();
  }
  return key;
}

export function credentialScope(scope: SigV4Scope): string {
  return `${scope.date}/${scope.region}/${scope.service}/aws4_request`;
}

export function stringToSign(amzDate: string, scope: SigV4Scope, canonical: string): string {
  return `AWS4-HMAC-SHA256\n${amzDate}\n${credentialScope(scope)}\n${sha256Hex(canonical)}`;
}

/**
 * The signature of one chunk of a `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` body, chained on the previous
 * chunk's (the seed signature for the first).
 */
export function chunkSignature(
  signingKey: Uint8Array,
  amzDate: string,
  scope: SigV4Scope,
  previousSignature: string,
  chunkSha256Hex: string,
): string {
  return hmacHex(
    signingKey,
    `AWS4-HMAC-SHA256-PAYLOAD\n${amzDate}\n${credentialScope(scope)}\n${previousSignature}\n${EMPTY_SHA256}\n${chunkSha256Hex}`,
  );
}

/** The signature of the trailing headers of a signed aws-chunked body (`x-amz-trailer-signature`). */
export function trailerSignature(
  signingKey: Uint8Array,
  amzDate: string,
  scope: SigV4Scope,
  previousSignature: string,
  canonicalTrailer: string,
): string {
  return hmacHex(
    signingKey,
    `AWS4-HMAC-SHA256-TRAILER\n${amzDate}\n${credentialScope(scope)}\n${previousSignature}\n${sha256Hex(canonicalTrailer)}`,
  );
}
