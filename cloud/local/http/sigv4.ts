/**
 * Verification of AWS Signature Version 4 on incoming requests (Authorization header form): the
 * canonical request is rebuilt from what arrived and signed again with the caller's secret through
 * @smithy/signature-v4, the same signer the SDK clients use.
 */
import { timingSafeEqual } from 'node:crypto';
import { Sha256 } from '@aws-crypto/sha256-js';
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
    sha256: Sha256,
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
