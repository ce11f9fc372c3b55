/**
 * Pseudonyms: `{version}.{base32(HMAC-SHA256(key, canonical(value))[0..20))}`, e.g.
 * `k1.` followed by 32 characters of `a-z2-7`. The canonical form carries the value's type
 * (`string:"123"` vs `number:123`), so a string and a number with the same text never collide.
 */
import { createHmac, type KeyObject } from 'node:crypto';

/** The values that can be pseudonymized (and are given back by re-identification). */
export type PseudonymizableValue = string | number;

export type ValueType = 'string' | 'number';

/** Bytes of the HMAC kept in a pseudonym: 160 bits, exactly 32 base32 characters. */
export const TOKEN_BYTES = 20;

/** Key versions: `k1`, `k2`, ... */
export const KEY_VERSION_PATTERN = /^k[1-9][0-9]{0,8}$/;

/** Matches a pseudonym; group 1 is the key version. */
export const TOKEN_PATTERN = /^(k[1-9][0-9]{0,8})\.[a-z2-7]{32}$/;

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

/** RFC 4648 base32, lower-case, without padding. */
export function base32(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = ((buffer << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}

/** `string:"abc"` or `number:123`; throws RangeError for non-finite numbers (they have no JSON text). */
export function canonical(value: PseudonymizableValue): string {
  if (typeof value === 'number' && !Number.isFinite(value)) {
    throw new RangeError(`${value} has no JSON representation`);
  }
  return `${typeof value}:${JSON.stringify(value)}`;
}

/**
 * The pseudonym of `value` under `key` (raw bytes, or a secret KeyObject of those bytes), tagged with
 * `version`.
 */
export function computeToken(
  version: string,
  key: Uint8Array | KeyObject,
  value: PseudonymizableValue,
): string {
  const mac = createHmac('sha256', key).update(canonical(value), 'utf8').digest();
  return `${version}.${base32(mac.subarray(0, TOKEN_BYTES))}`;
}
