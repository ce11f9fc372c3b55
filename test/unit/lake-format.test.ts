/** Output formats of `edgefleet lake query`: table, CSV (RFC 4180) and JSON. */
import { describe, expect, it } from '@jest/globals';
import { formatCsv, formatJson, formatResult, formatTable } from '../../cloud/local/lake/format.js';
import { LakeJson, type LakeResult } from '../../cloud/local/lake/values.js';

const result: LakeResult = {
  columns: [
    { name: 'thing', type: 'VARCHAR' },
    { name: 'hour', type: 'BIGINT' },
    { name: 'avg', type: 'DOUBLE' },
    { name: 'data', type: 'JSON' },
    { name: 'ok', type: 'BOOLEAN' },
  ],
  rows: [
    ['gw-1', 7n, 21.5, new LakeJson('{"code":"E1","n":12345678901234567890}'), true],
    ['gw-10', 11n, null, null, false],
  ],
};

describe('table', () => {
  it('aligns columns under a header, numbers to the right, with a row count', () => {
    expect(formatTable(result)).toBe(
      [
        'thing | hour | avg  | data                                   | ok',
        '------+------+------+----------------------------------------+------',
        'gw-1  |    7 | 21.5 | {"code":"E1","n":12345678901234567890} | true',
        'gw-10 |   11 | NULL | NULL                                   | false',
        '(2 rows)',
        '',
      ].join('\n'),
    );
  });

  it('keeps a row on one line and cuts long cells', () => {
    const r: LakeResult = {
      columns: [{ name: 's', type: 'VARCHAR' }],
      rows: [['a\nb\tc\u0001'], ['x'.repeat(100)]],
    };
    expect(formatTable(r, { maxCellWidth: 12 }).split('\n')).toEqual([
      's',
      '------------',
      'a\\nb\\tc\\x01',
      `${'x'.repeat(11)}…`,
      '(2 rows)',
      '',
    ]);
  });

  it('prints a header and (0 rows) for an empty result, and (1 row)', () => {
    expect(formatTable({ columns: [{ name: 'n', type: 'BIGINT' }], rows: [] })).toBe('n\n-\n(0 rows)\n');
    expect(formatTable({ columns: [{ name: 'n', type: 'BIGINT' }], rows: [[1n]] })).toBe(
      'n\n-\n1\n(1 row)\n',
    );
  });
});

describe('csv', () => {
  it('quotes as RFC 4180 asks, with CRLF line ends', () => {
    const r: LakeResult = {
      columns: [
        { name: 'a,b', type: 'VARCHAR' },
        { name: 'q', type: 'VARCHAR' },
        { name: 'n', type: 'BIGINT' },
      ],
      rows: [
        ['x', 'say "hi"', 1n],
        ['line\nbreak', 'cr\rhere', -2n],
        [null, '', 9007199254740993n],
      ],
    };
    expect(formatCsv(r)).toBe(
      '"a,b",q,n\r\nx,"say ""hi""",1\r\n"line\nbreak","cr\rhere",-2\r\n,"",9007199254740993\r\n',
    );
  });

  it('writes JSON and nested values as JSON text', () => {
    expect(formatCsv(result)).toBe(
      'thing,hour,avg,data,ok\r\ngw-1,7,21.5,"{""code"":""E1"",""n"":12345678901234567890}",true\r\ngw-10,11,,,false\r\n',
    );
    const nested: LakeResult = {
      columns: [{ name: 's', type: 'STRUCT(a BIGINT[])' }],
      rows: [[{ a: [1n, 2n] }]],
    };
    expect(formatCsv(nested)).toBe('s\r\n"{""a"":[1,2]}"\r\n');
  });
});

describe('json', () => {
  it('is an array of row objects with JSON columns embedded and safe BIGINTs as numbers', () => {
    const text = formatJson(result);
    expect(text).toBe(
      '[\n{"thing":"gw-1","hour":7,"avg":21.5,"data":{"code":"E1","n":12345678901234567890},"ok":true},\n' +
        '{"thing":"gw-10","hour":11,"avg":null,"data":null,"ok":false}\n]\n',
    );
    expect(JSON.parse(text)).toHaveLength(2);
  });

  it('writes unsafe integers, NaN and infinities as strings', () => {
    const r: LakeResult = {
      columns: [
        { name: 'big', type: 'HUGEINT' },
        { name: 'max', type: 'BIGINT' },
        { name: 'nan', type: 'DOUBLE' },
        { name: 'inf', type: 'DOUBLE' },
        { name: 'ts', type: 'TIMESTAMP WITH TIME ZONE' },
        { name: 'list', type: 'BIGINT[]' },
      ],
      rows: [
        [2n ** 64n, 9007199254740991n, Number.NaN, -Infinity, '2026-11-23T10:00:00.000Z', [1n, 2n ** 60n]],
      ],
    };
    expect(JSON.parse(formatJson(r))).toEqual([
      {
        big: '18446744073709551616',
        max: 9007199254740991,
        nan: 'NaN',
        inf: '-Infinity',
        ts: '2026-11-23T10:00:00.000Z',
        list: [1, '1152921504606846976'],
      },
    ]);
  });

  it('gives repeated column names a suffix, and an empty result is []', () => {
    const r: LakeResult = {
      columns: [
        { name: 'a', type: 'INTEGER' },
        { name: 'a', type: 'INTEGER' },
        { name: 'a_1', type: 'INTEGER' },
      ],
      rows: [[1, 2, 3]],
    };
    expect(JSON.parse(formatJson(r))).toEqual([{ a: 1, a_1: 2, a_1_1: 3 }]);
    expect(formatJson({ columns: r.columns, rows: [] })).toBe('[]\n');
  });
});

it('formatResult picks the format', () => {
  expect(formatResult(result, 'json')).toBe(formatJson(result));
  expect(formatResult(result, 'csv')).toBe(formatCsv(result));
  expect(formatResult(result, 'table')).toBe(formatTable(result));
});
