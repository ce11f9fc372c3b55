/**
 * The checksum algorithms S3 accepts and returns (`x-amz-checksum-crc32`, `-crc32c`, `-crc64nvme`,
 * `-sha1`, `-sha256`), computed incrementally while a body streams. CRC32 comes from node:zlib; CRC32C
 * (Castagnoli) and CRC64/NVME are table-driven here. Values travel base64-encoded, big-endian.
 */
import { createHash, type Hash } from 'node:crypto';
import { crc32 } from 'node:zlib';

export const CHECKSUM_ALGORITHMS = ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'] as const;
export type ChecksumAlgorithm = (typeof CHECKSUM_ALGORITHMS)[number];
export type ChecksumType = 'COMPOSITE' | 'FULL_OBJECT';

/** Size in bytes of each algorithm's digest. */
export const CHECKSUM_BYTES: Record<ChecksumAlgorithm, number> = {
  CRC32: 4,
  CRC32C: 4,
  CRC64NVME: 8,
  SHA1: 20,
  SHA256: 32,
};

/** `CRC32` → `x-amz-checksum-crc32`. */
export function checksumHeader(algorithm: ChecksumAlgorithm): string {
  return `x-amz-checksum-${algorithm.toLowerCase()}`;
}

/** `x-amz-checksum-crc32` → `CRC32`; undefined for anything else. */
export function algorithmOfHeader(name: string): ChecksumAlgorithm | undefined {
  const m = /^x-amz-checksum-([a-z0-9]+)$/.exec(name.toLowerCase());
  if (!m) return undefined;
  const upper = m[1]!.toUpperCase();
  return (CHECKSUM_ALGORITHMS as readonly string[]).includes(upper)
    ? (upper as ChecksumAlgorithm)
    : undefined;
}

export function parseAlgorithm(value: string): ChecksumAlgorithm | undefined {
  const upper = value.toUpperCase();
  return (CHECKSUM_ALGORITHMS as readonly string[]).includes(upper)
    ? (upper as ChecksumAlgorithm)
    : undefined;
}

/** Whether `value` is the base64 of a digest of the algorithm's size. */
export function isWellFormedChecksum(algorithm: ChecksumAlgorithm, value: string): boolean {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return false;
  return Buffer.from(value, 'base64').length === CHECKSUM_BYTES[algorithm];
}

export interface Digest {
  update(data: Uint8Array): void;
  /** The digest, big-endian. */
  digest(): Buffer;
}

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC-32C (Castagnoli): reflected polynomial 0x82F63B78, init and final XOR 0xFFFFFFFF. */
export class Crc32c implements Digest {
  private crc = 0xffffffff;
  update(data: Uint8Array): void {
    let c = this.crc;
    for (let i = 0; i < data.length; i++) c = CRC32C_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
    this.crc = c;
  }
  digest(): Buffer {
    const out = Buffer.alloc(4);
    out.writeUInt32BE((this.crc ^ 0xffffffff) >>> 0);
    return out;
  }
}

class Crc32 implements Digest {
  private crc = 0;
  update(data: Uint8Array): void {
    this.crc = crc32(data, this.crc);
  }
  digest(): Buffer {
    const out = Buffer.alloc(4);
    out.writeUInt32BE(this.crc >>> 0);
    return out;
  }
}

// CRC-64/NVME: reflected polynomial 0x9A6C9329AC4BC9B5, init and final XOR all ones. The 64-bit state is
// kept as two 32-bit halves so the inner loop stays in small integers.
const CRC64_LO = new Uint32Array(256);
const CRC64_HI = new Uint32Array(256);
(() => {
  const polyLo = 0xac4bc9b5;
  const polyHi = 0x9a6c9329;
  for (let i = 0; i < 256; i++) {
    let lo = i;
    let hi = 0;
    for (let k = 0; k < 8; k++) {
      const lsb = lo & 1;
      lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
      hi = hi >>> 1;
      if (lsb) {
        lo = (lo ^ polyLo) >>> 0;
        hi = (hi ^ polyHi) >>> 0;
      }
    }
    CRC64_LO[i] = lo;
    CRC64_HI[i] = hi;
  }
})();

export class Crc64Nvme implements Digest {
  private lo = 0xffffffff;
  private hi = 0xffffffff;
  update(data: Uint8Array): void {
    let lo = this.lo;
    let hi = this.hi;
    for (let i = 0; i < data.length; i++) {
      const idx = (lo ^ data[i]!) & 0xff;
      lo = (((lo >>> 8) | (hi << 24)) ^ CRC64_LO[idx]!) >>> 0;
      hi = ((hi >>> 8) ^ CRC64_HI[idx]!) >>> 0;
    }
    this.lo = lo;
    this.hi = hi;
  }
  digest(): Buffer {
    const out = Buffer.alloc(8);
    out.writeUInt32BE((this.hi ^ 0xffffffff) >>> 0, 0);
    out.writeUInt32BE((this.lo ^ 0xffffffff) >>> 0, 4);
    return out;
  }
}

class NodeHash implements Digest {
  private readonly hash: Hash;
  constructor(algorithm: 'sha1' | 'sha256' | 'md5') {
    this.hash = createHash(algorithm);
  }
  update(data: Uint8Array): void {
    this.hash.update(data);
  }
  digest(): Buffer {
    return this.hash.digest();
  }
}

export function createDigest(algorithm: ChecksumAlgorithm): Digest {
  switch (algorithm) {
    case 'CRC32':
      return new Crc32();
    case 'CRC32C':
      return new Crc32c();
    case 'CRC64NVME':
      return new Crc64Nvme();
    case 'SHA1':
      return new NodeHash('sha1');
    case 'SHA256':
      return new NodeHash('sha256');
  }
}

/** The base64 checksum of a whole buffer. */
export function checksumOf(algorithm: ChecksumAlgorithm, data: Uint8Array): string {
  const d = createDigest(algorithm);
  d.update(data);
  return d.digest().toString('base64');
}

/**
 * The checksum of a multipart object of type COMPOSITE: the algorithm over the concatenated binary
 * checksums of its parts, suffixed with `-{number of parts}` ("Checking object integrity" in the S3
 * User Guide).
 */
export function compositeChecksum(algorithm: ChecksumAlgorithm, partChecksums: string[]): string {
  const d = createDigest(algorithm);
  for (const c of partChecksums) d.update(Buffer.from(c, 'base64'));
  return `${d.digest().toString('base64')}-${partChecksums.length}`;
}

/** Which checksum types an algorithm allows for multipart uploads. */
export function allowedTypes(algorithm: ChecksumAlgorithm): ChecksumType[] {
  switch (algorithm) {
    case 'CRC64NVME':
      return ['FULL_OBJECT'];
    case 'CRC32':
    case 'CRC32C':
      return ['COMPOSITE', 'FULL_OBJECT'];
    case 'SHA1':
    case 'SHA256':
      return ['COMPOSITE'];
  }
}
