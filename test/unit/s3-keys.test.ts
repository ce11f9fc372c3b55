/**
 * How the local S3 maps keys onto files (cloud/local/s3/names.ts, object-store.ts): keys that would
 * escape the bucket directory or that the filesystem cannot hold are refused, keys are listed in UTF-8
 * binary order ("Naming Amazon S3 objects", "ListObjectsV2"), bucket names follow "Bucket naming
 * rules", and a key cannot be both an object and a directory of other keys.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from '@jest/globals';
import type { S3Error } from '../../cloud/local/s3/errors.js';
import { bucketNameProblem, compareKeys, keySegments } from '../../cloud/local/s3/names.js';
import { ObjectStore } from '../../cloud/local/s3/object-store.js';
import { parseRange } from '../../cloud/local/s3/objects.js';
import { requestTarget } from '../../cloud/local/s3/route.js';

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as S3Error).code;
  }
  return 'no error';
}

describe('key safety', () => {
  test.each([
    ['..'],
    ['../etc/passwd'],
    ['a/../../b'],
    ['a/./b'],
    ['.'],
    ['/absolute'],
    ['a//b'],
    ['nul\0byte'],
    [`${'x'.repeat(256)}/y`],
  ])('%j is refused with InvalidArgument', (key) => {
    expect(codeOf(() => keySegments(key))).toBe('InvalidArgument');
  });

  test('keys over 1024 bytes are KeyTooLongError', () => {
    expect(codeOf(() => keySegments('a/'.repeat(600)))).toBe('KeyTooLongError');
  });

  test.each([
    ['a', ['a']],
    ['raw/gw-1/2026/01/x.ndjson.gz', ['raw', 'gw-1', '2026', '01', 'x.ndjson.gz']],
    ['a b/ü+=x', ['a b', 'ü+=x']],
    ['..a/b..', ['..a', 'b..']],
    ['folder/', ['folder']],
    ['back\\slash', ['back\\slash']],
  ])('%j maps to its segments', (key, segments) => {
    expect(keySegments(key)).toEqual(segments);
  });
});

describe('bucket names', () => {
  test.each(['edgefleet-data', 'my.bucket.1', 'abc'])('%s is valid', (name) => {
    expect(bucketNameProblem(name)).toBeUndefined();
  });
  test.each([
    'ab',
    'UPPER',
    'a_b',
    '-start',
    'end-',
    'a..b',
    '192.168.1.1',
    'xn--abc',
    'x-s3alias',
    '..',
    'a'.repeat(64),
  ])('%s is refused', (name) => {
    expect(bucketNameProblem(name)).toBeDefined();
  });
});

describe('ordering', () => {
  test('keys compare by UTF-8 bytes, not UTF-16 code units', () => {
    // U+FF61 sorts after U+1F600 in UTF-16 (0xFF61 > 0xD83D) but before it in UTF-8.
    expect(compareKeys('\uff61', '\u{1f600}')).toBeLessThan(0);
    expect(compareKeys('a.txt', 'a/b')).toBeLessThan(0);
    expect(compareKeys('a', 'a')).toBe(0);
  });
});

describe('ranges', () => {
  test.each([
    ['bytes=0-9', 100, { start: 0, end: 9 }],
    ['bytes=90-', 100, { start: 90, end: 99 }],
    ['bytes=-10', 100, { start: 90, end: 99 }],
    ['bytes=-500', 100, { start: 0, end: 99 }],
    ['bytes=50-500', 100, { start: 50, end: 99 }],
    ['bytes=100-', 100, 'unsatisfiable'],
    ['bytes=-0', 100, 'unsatisfiable'],
    ['bytes=0-1,5-6', 100, undefined],
    ['bytes=9-1', 100, undefined],
    ['items=0-1', 100, undefined],
  ] as const)('%s of %d bytes', (header, size, expected) => {
    expect(parseRange(header, size)).toEqual(expected);
  });
});

describe('addressing', () => {
  test('path-style and virtual-host style', () => {
    expect(requestTarget('127.0.0.1:4566', '/')).toEqual({ key: '' });
    expect(requestTarget('127.0.0.1:4566', '/b/')).toEqual({ bucket: 'b', key: '' });
    expect(requestTarget('127.0.0.1:4566', '/b')).toEqual({ bucket: 'b', key: '' });
    expect(requestTarget('localhost:4566', '/b/a%20b/%C3%BC%2B%3Dx')).toEqual({
      bucket: 'b',
      key: 'a b/ü+=x',
    });
    expect(requestTarget('my.bucket.localhost:4566', '/k/x')).toEqual({ bucket: 'my.bucket', key: 'k/x' });
  });
});

describe('the object store on disk', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgefleet-s3-store-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const store = new ObjectStore(dir);
  store.createBucket('bucket-1', 'us-east-1');

  async function put(key: string, data: string) {
    const temp = await store.newTemp();
    await temp.write(Buffer.from(data));
    await temp.finish();
    return store.commit('bucket-1', key, temp, { etag: '"x"', userMetadata: {} });
  }

  async function keys(prefix = '') {
    const out: string[] = [];
    for await (const k of store.walk('bucket-1', { prefix })) out.push(k);
    return out;
  }

  test('an object is a plain file under the bucket directory', async () => {
    await put('raw/gw-1/a.json', '{"a":1}');
    expect(readFileSync(join(dir, 's3', 'bucket-1', 'raw', 'gw-1', 'a.json'), 'utf8')).toBe('{"a":1}');
    expect(await keys()).toEqual(['raw/gw-1/a.json']);
  });

  test("a key cannot be both an object and another key's directory", async () => {
    await put('clash', 'x');
    await expect(put('clash/inner', 'y')).rejects.toMatchObject({ code: 'InvalidArgument', status: 400 });
    await expect(put('raw', 'z')).rejects.toMatchObject({ code: 'InvalidArgument' });
    expect((await store.head('bucket-1', 'clash'))?.size).toBe(1);
  });

  test('deleting the last key under a prefix removes the empty directories', async () => {
    await put('deep/er/still/k', 'v');
    await store.delete('bucket-1', 'deep/er/still/k');
    await put('deep', 'now a file');
    expect(await store.head('bucket-1', 'deep')).toMatchObject({ size: 10 });
  });

  test('a file written behind S3 is served with metadata derived from the file', async () => {
    await put('changed', 'old');
    writeFileSync(join(dir, 's3', 'bucket-1', 'changed'), 'new contents');
    const meta = await store.head('bucket-1', 'changed');
    expect(meta).toMatchObject({ size: 12, derived: true });
    expect(meta?.etag).toMatch(/^"[0-9a-f]{32}"$/);
  });

  test('keys are walked in order, within a prefix', async () => {
    await put('order/a/b', '1');
    await put('order/a.txt', '2');
    await put('order/a0', '3');
    expect(await keys('order/')).toEqual(['order/a.txt', 'order/a/b', 'order/a0']);
    expect(await keys('order/a/')).toEqual(['order/a/b']);
  });
});
