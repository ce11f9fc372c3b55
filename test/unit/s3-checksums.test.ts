/**
 * The checksum algorithms of "Checking object integrity" (S3 User Guide), against the standard check
 * values of each CRC (the checksum of the ASCII string "123456789"), and the XML reader for request
 * bodies.
 */
import { describe, expect, test } from '@jest/globals';
import {
  checksumOf,
  compositeChecksum,
  createDigest,
  isWellFormedChecksum,
} from '../../cloud/local/s3/checksums.js';
import { parseXml } from '../../cloud/local/s3/xml.js';

const CHECK = Buffer.from('123456789');
const hex = (b64: string) => Buffer.from(b64, 'base64').toString('hex');

describe('checksums', () => {
  test('check values', () => {
    expect(hex(checksumOf('CRC32', CHECK))).toBe('cbf43926');
    expect(hex(checksumOf('CRC32C', CHECK))).toBe('e3069283');
    expect(hex(checksumOf('CRC64NVME', CHECK))).toBe('ae8b14860a799888');
    expect(hex(checksumOf('SHA1', CHECK))).toBe('f7c3bc1d808e04732adf679965ccc34ca7ae3441');
    expect(checksumOf('CRC32', Buffer.from('hello'))).toBe('NhCmhg==');
    expect(checksumOf('CRC32', Buffer.alloc(0))).toBe('AAAAAA==');
  });

  test('incremental updates equal one update', () => {
    const data = Buffer.from(Array.from({ length: 10000 }, (_, i) => (i * 7) % 251));
    for (const a of ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'] as const) {
      const d = createDigest(a);
      for (let i = 0; i < data.length; i += 333) d.update(data.subarray(i, i + 333));
      expect(d.digest().toString('base64')).toBe(checksumOf(a, data));
    }
  });

  test('composite checksums are over the binary part checksums, with the part count', () => {
    const parts = [Buffer.from('part one'), Buffer.from('part two')].map((p) => checksumOf('CRC32', p));
    const concatenated = Buffer.concat(parts.map((p) => Buffer.from(p, 'base64')));
    expect(compositeChecksum('CRC32', parts)).toBe(`${checksumOf('CRC32', concatenated)}-2`);
  });

  test('well-formed values have the digest size', () => {
    expect(isWellFormedChecksum('CRC32', 'NhCmhg==')).toBe(true);
    expect(isWellFormedChecksum('CRC64NVME', 'NhCmhg==')).toBe(false);
    expect(isWellFormedChecksum('CRC32', 'not base64!')).toBe(false);
  });
});

describe('request XML', () => {
  test('CompleteMultipartUpload with a namespace, entities and whitespace', () => {
    const doc = parseXml(
      '<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><ETag>&quot;abc&quot;</ETag><PartNumber>1</PartNumber></Part>\n</CompleteMultipartUpload>',
    );
    expect(doc.name).toBe('CompleteMultipartUpload');
    expect(doc.children[0]?.children.map((c) => [c.name, c.text])).toEqual([
      ['ETag', '"abc"'],
      ['PartNumber', '1'],
    ]);
  });

  test.each(['<a>', '<a></b>', 'text', '<a>&bogus;</a>', '<a/><b/>', '<a>&#xFFFFFFF;</a>'])(
    '%j is MalformedXML',
    (text) => {
      expect(() => parseXml(text)).toThrow(expect.objectContaining({ code: 'MalformedXML' }));
    },
  );
});
