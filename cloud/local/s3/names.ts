/**
 * Bucket names and object keys, and how keys map onto the filesystem.
 *
 * Objects are plain files at `{bucketDir}/{key}`, so a key must be a relative path that stays inside the
 * bucket directory and that the filesystem can hold. Refused, with `InvalidArgument` naming the key:
 * absolute keys and empty segments (`/a`, `a//b`), `.` and `..` segments, NUL, and segments longer than
 * 255 bytes (the usual file name limit). A key ending in `/` is a folder marker and must be empty.
 * Keys longer than 1024 bytes are refused with `KeyTooLongError`, as S3 does.
 */
import { invalidArgument, S3Error } from './errors.js';

/** Longest object key, in UTF-8 bytes ("Naming Amazon S3 objects"). */
export const MAX_KEY_BYTES = 1024;
/** Longest file name on the filesystems the local cloud runs on. */
export const MAX_SEGMENT_BYTES = 255;

/**
 * Why `name` is not a valid general purpose bucket name ("Bucket naming rules"), or undefined if it is.
 */
export function bucketNameProblem(name: string): string | undefined {
  if (name.length < 3 || name.length > 63) return 'must be between 3 and 63 characters long';
  if (!/^[a-z0-9.-]+$/.test(name)) return 'can consist only of lowercase letters, numbers, dots and hyphens';
  if (!/^[a-z0-9]/.test(name) || !/[a-z0-9]$/.test(name)) return 'must begin and end with a letter or number';
  if (name.includes('..')) return 'must not contain two adjacent periods';
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(name)) return 'must not be formatted as an IP address';
  if (/^(xn--|sthree-|amzn-s3-demo-)/.test(name)) return 'must not start with a reserved prefix';
  if (/(-s3alias|--ol-s3|\.mrap|--x-s3|--table-s3)$/.test(name)) return 'must not end with a reserved suffix';
  return undefined;
}

export function assertBucketName(name: string): void {
  const problem = bucketNameProblem(name);
  if (problem) {
    throw new S3Error(400, 'InvalidBucketName', `The specified bucket is not valid: '${name}' ${problem}`, {
      BucketName: name,
    });
  }
}

/** Whether the key names a folder marker (ends in `/`). */
export function isFolderKey(key: string): boolean {
  return key.endsWith('/');
}

/**
 * Checks that `key` can be stored as a file under the bucket directory and returns its path segments
 * (for a folder marker `a/b/`, the segments of the directory `a/b`).
 */
export function keySegments(key: string): string[] {
  if (key === '') throw invalidArgument('The object key must not be empty', 'key', key);
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) {
    throw new S3Error(400, 'KeyTooLongError', 'Your key is too long', {
      MaxSizeAllowed: String(MAX_KEY_BYTES),
      Size: String(Buffer.byteLength(key)),
    });
  }
  const refuse = (why: string) =>
    invalidArgument(
      `Object key '${key}' cannot be stored by the local S3, which keeps objects as files: ${why}`,
      'key',
      key,
    );
  if (key.includes('\0')) throw refuse('it contains a NUL character');
  const body = isFolderKey(key) ? key.slice(0, -1) : key;
  const segments = body.split('/');
  for (const seg of segments) {
    if (seg === '') throw refuse('it is absolute or has an empty path segment');
    if (seg === '.' || seg === '..') throw refuse(`it has a '${seg}' path segment`);
    if (Buffer.byteLength(seg) > MAX_SEGMENT_BYTES) {
      throw refuse(`a path segment is longer than ${MAX_SEGMENT_BYTES} bytes`);
    }
  }
  return segments;
}

/**
 * Compares two keys in the order S3 lists them: by their UTF-8 bytes. (JavaScript compares UTF-16 code
 * units, which differs only for characters outside the Basic Multilingual Plane.)
 */
export function compareKeys(a: string, b: string): number {
  if (!/[\ud800-\udfff]/.test(a) && !/[\ud800-\udfff]/.test(b)) return a < b ? -1 : a > b ? 1 : 0;
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
