/**
 * Firmware through device shadows: the signed manifest, the `firmware` named shadow's documents, and the
 * states a gateway reports. Shared by the operator CLI (which signs manifests and writes `desired`) and
 * the gateway's firmware agent (which verifies them and reports in `reported`).
 *
 * A manifest is `{target, version, url, size, sha256, issuedAt, expiresAt, keyId, signature}`; the
 * signature is ECDSA P-256 with SHA-256 (DER, base64) over the canonical JSON of every other field.
 * `url` names the artifact where it was published (`s3://bucket/key`); the rollout adds a presigned
 * `downloadUrl` beside the manifest in `desired`, outside what is signed: the gateway trusts only the
 * signed size and hash, not the transport.
 */
import { createPublicKey, createSign, createVerify, type KeyObject } from 'node:crypto';
import semver from 'semver';
import { z } from 'zod';

/** The named shadow that carries firmware updates. */
export const FIRMWARE_SHADOW = 'firmware';

const isoTime = z.iso.datetime({ offset: true, error: 'must be an ISO 8601 date-time' });

export const ManifestBodySchema = z
  .object({
    /** What the firmware is for, e.g. `gateway` or `plc-s7-1200`. */
    target: z
      .string()
      .min(1)
      .max(128)
      .regex(/^[A-Za-z0-9._-]+$/, 'must be letters, digits, ".", "_" and "-"'),
    version: z.string().refine((v) => semver.valid(v) === v, { message: 'must be a semantic version' }),
    url: z.string().min(1).max(2048),
    size: z.number().int().positive(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex characters'),
    issuedAt: isoTime,
    expiresAt: isoTime,
    keyId: z
      .string()
      .min(1)
      .max(128)
      .regex(/^[A-Za-z0-9._:-]+$/, 'must be letters, digits, ".", "_", ":" and "-"'),
  })
  .strict();
export type ManifestBody = z.infer<typeof ManifestBodySchema>;

export const ManifestSchema = ManifestBodySchema.extend({
  signature: z.string().min(1).max(1024),
}).strict();
export type Manifest = z.infer<typeof ManifestSchema>;

/** `desired` of the firmware shadow: the signed manifest, and where to download it from. */
export const FirmwareDesiredSchema = z
  .object({
    manifest: ManifestSchema,
    /** A presigned HTTPS (or, locally, HTTP) URL of the artifact; unsigned, checked by size and hash. */
    downloadUrl: z.string().url(),
    /** The rollout that wrote it. */
    rolloutId: z.string().min(1).max(128).optional(),
  })
  .strict();
export type FirmwareDesired = z.infer<typeof FirmwareDesiredSchema>;

export const FIRMWARE_STATES = [
  'idle',
  'downloading',
  'verifying',
  'applying',
  'testing',
  'succeeded',
  'failed',
  'rolled_back',
] as const;
export type FirmwareState = (typeof FIRMWARE_STATES)[number];

/** `reported.firmware` of the firmware shadow. */
export const FirmwareReportSchema = z.object({
  /** The version running now (the previous one while an update is in progress). */
  version: z.string(),
  state: z.enum(FIRMWARE_STATES),
  /** The version being installed, or the last one tried. */
  targetVersion: z.string().optional(),
  /** 0..100 while downloading. */
  progress: z.number().min(0).max(100).optional(),
  error: z.string().optional(),
  previousVersion: z.string().optional(),
  rolloutId: z.string().optional(),
  updatedAt: z.string().optional(),
});
export type FirmwareReport = z.infer<typeof FirmwareReportSchema>;

/**
 * Canonical JSON (RFC 8785 for the values a manifest holds): object keys sorted by UTF-16 code units,
 * no whitespace, strings and numbers as JSON.stringify writes them.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** The bytes a manifest's signature covers: the canonical JSON of everything but the signature. */
export function signedBytes(body: ManifestBody | Manifest): Buffer {
  const { signature: _s, ...rest } = body as Manifest;
  return Buffer.from(canonicalJson(rest), 'utf8');
}

/** Signs a manifest body with an EC P-256 private key (PEM or KeyObject). */
export function signManifest(body: ManifestBody, privateKey: string | KeyObject): Manifest {
  const parsed = ManifestBodySchema.parse(body);
  const signer = createSign('sha256');
  signer.update(signedBytes(parsed));
  return { ...parsed, signature: signer.sign(privateKey).toString('base64') };
}

/** Whether the manifest's signature verifies with the public key (PEM or KeyObject). */
export function verifyManifestSignature(manifest: Manifest, publicKey: string | KeyObject): boolean {
  const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') return false;
  const verifier = createVerify('sha256');
  verifier.update(signedBytes(manifest));
  try {
    return verifier.verify(key, Buffer.from(manifest.signature, 'base64'));
  } catch {
    return false;
  }
}

/** semver comparison: negative, 0 or positive. */
export const compareVersions = (a: string, b: string): number => semver.compare(a, b);
