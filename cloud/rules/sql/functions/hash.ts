/**
 * Hashing functions of the AWS IoT SQL "Functions" page: md2, md5, sha1, sha224, sha256, sha384, sha512.
 * Each hash function takes one String argument; non-String arguments go through the standard string
 * conversion, the result is the lower-case hex digest of the UTF-8 bytes. A Binary value (a non-JSON
 * payload) is hashed as its bytes. Null and Undefined give Undefined.
 *
 * MD2 is not in Node's OpenSSL build, so it is implemented here after RFC 1319.
 */
import { createHash } from 'node:crypto';
import type { FunctionSpec } from '../context.js';
import { type SqlValue, str, UNDEFINED } from '../values.js';
import { toText, utf8 } from './convert.js';
import { arg, define } from './define.js';

/** RFC 1319 appendix A.3: the permutation of 0..255 built from the digits of pi. */
const PI_SUBST = Uint8Array.from([
  41, 46, 67, 201, 162, 216, 124, 1, 61, 54, 84, 161, 236, 240, 6, 19, 98, 167, 5, 243, 192, 199, 115, 140,
  152, 147, 43, 217, 188, 76, 130, 202, 30, 155, 87, 60, 253, 212, 224, 22, 103, 66, 111, 24, 138, 23, 229,
  18, 190, 78, 196, 214, 218, 158, 222, 73, 160, 251, 245, 142, 187, 47, 238, 122, 169, 104, 121, 145, 21,
  178, 7, 63, 148, 194, 16, 137, 11, 34, 95, 33, 128, 127, 93, 154, 90, 144, 50, 39, 53, 62, 204, 231, 191,
  247, 151, 3, 255, 25, 48, 179, 72, 165, 181, 209, 215, 94, 146, 42, 172, 86, 170, 198, 79, 184, 56, 210,
  150, 164, 125, 182, 118, 252, 107, 226, 156, 116, 4, 241, 69, 157, 112, 89, 100, 113, 135, 32, 134, 91, 207,
  101, 230, 45, 168, 2, 27, 96, 37, 173, 174, 176, 185, 246, 28, 70, 97, 105, 52, 64, 126, 15, 85, 71, 163,
  35, 221, 81, 175, 58, 195, 92, 249, 206, 186, 197, 234, 38, 44, 83, 13, 110, 133, 40, 132, 9, 211, 223, 205,
  244, 65, 129, 77, 82, 106, 220, 55, 200, 108, 193, 171, 250, 36, 225, 123, 8, 12, 189, 177, 74, 120, 136,
  149, 139, 227, 99, 232, 109, 233, 203, 213, 254, 59, 0, 29, 57, 242, 239, 183, 14, 102, 88, 208, 228, 166,
  119, 114, 248, 235, 117, 75, 10, 49, 68, 80, 180, 143, 237, 31, 26, 219, 153, 141, 51, 159, 17, 131, 20,
]);

/** MD2 digest (RFC 1319). */
export function md2(data: Uint8Array): Uint8Array {
  const padLen = 16 - (data.length % 16);
  const msg = new Uint8Array(data.length + padLen + 16);
  msg.set(data);
  msg.fill(padLen, data.length, data.length + padLen);
  const blocks = data.length + padLen;
  // Checksum (3.2).
  const checksum = new Uint8Array(16);
  let l = 0;
  for (let i = 0; i < blocks; i += 16) {
    for (let j = 0; j < 16; j++) {
      checksum[j]! ^= PI_SUBST[msg[i + j]! ^ l]!;
      l = checksum[j]!;
    }
  }
  msg.set(checksum, blocks);
  // Digest (3.3, 3.4).
  const x = new Uint8Array(48);
  for (let i = 0; i < msg.length; i += 16) {
    for (let j = 0; j < 16; j++) {
      x[16 + j] = msg[i + j]!;
      x[32 + j] = x[16 + j]! ^ x[j]!;
    }
    let t = 0;
    for (let j = 0; j < 18; j++) {
      for (let k = 0; k < 48; k++) {
        x[k]! ^= PI_SUBST[t]!;
        t = x[k]!;
      }
      t = (t + j) & 0xff;
    }
  }
  return x.slice(0, 16);
}

function bytesOf(v: SqlValue): Uint8Array | undefined {
  if (v.type === 'Binary') return v.value;
  const t = toText(v);
  return t === undefined ? undefined : utf8(t);
}

function hashFunction(name: string, digest: (b: Uint8Array) => Uint8Array): FunctionSpec {
  return define(name, 1, 1, (args) => {
    const b = bytesOf(arg(args, 0));
    return b === undefined ? UNDEFINED : str(Buffer.from(digest(b)).toString('hex'));
  });
}

const nodeHash = (algorithm: string) => (b: Uint8Array) => createHash(algorithm).update(b).digest();

export const HASH_FUNCTIONS: readonly FunctionSpec[] = [
  hashFunction('md2', md2),
  hashFunction('md5', nodeHash('md5')),
  hashFunction('sha1', nodeHash('sha1')),
  hashFunction('sha224', nodeHash('sha224')),
  hashFunction('sha256', nodeHash('sha256')),
  hashFunction('sha384', nodeHash('sha384')),
  hashFunction('sha512', nodeHash('sha512')),
];
