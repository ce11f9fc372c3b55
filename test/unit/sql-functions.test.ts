/**
 * Unit tests of the AWS IoT SQL function library: arities, argument conversion and Undefined for bad
 * arguments (per each function's table on the Functions page), numeric edge cases, Unicode, the Java
 * regular expression translation, Joda/java.time patterns, MQTT 5 property functions, external
 * functions.
 */
import { describe, expect, it } from '@jest/globals';
import type { EvalContext, MessageContext } from '../../cloud/rules/sql/context.js';
import { SqlEvaluationError } from '../../cloud/rules/sql/errors.js';
import {
  CATCHES_ARGUMENT_ERRORS,
  FUNCTIONS,
  RAW_PAYLOAD_ARGUMENT,
  SUPPORTED_SINCE,
  toBooleanValue,
  toDecimal,
  toNumber,
  toStringValue,
} from '../../cloud/rules/sql/functions/index.js';
import { plainDecimal } from '../../cloud/rules/sql/functions/math.js';
import {
  compileJavaRegex,
  parseJavaReplacement,
  translateJavaRegex,
} from '../../cloud/rules/sql/functions/regexp.js';
import {
  arr,
  bin,
  dec,
  FALSE,
  int,
  NULL,
  obj,
  type SqlValue,
  str,
  TRUE,
  toJsonText,
  UNDEFINED,
} from '../../cloud/rules/sql/values.js';

function ctx(
  message: Partial<MessageContext> = {},
  extra: Partial<Omit<EvalContext, 'message'>> = {},
): EvalContext {
  return {
    message: { topic: 'a/b/c', payload: new Uint8Array(), timestamp: 0, ...message },
    sqlVersion: '2016-03-23',
    accountId: '123456789012',
    region: 'us-east-1',
    services: {},
    now: () => 1_700_000_000_123,
    random: () => 0.25,
    uuid: () => '00000000-0000-4000-8000-000000000000',
    ...extra,
  };
}

const call = (name: string, args: SqlValue[] = [], context: EvalContext = ctx()): SqlValue => {
  const spec = FUNCTIONS.get(name.toLowerCase());
  if (!spec) throw new Error(`no function ${name}`);
  return spec.fn(args, context);
};

/** Ints have up to 34 digits (values.ts, after the "Data types" page). */
const INT_MAX = 10n ** 34n - 1n;
const INT64_MIN = -(2n ** 63n);
const OTHER_TYPES: SqlValue[] = [TRUE, arr([int(1)]), obj([['a', int(1)]]), NULL, UNDEFINED];

describe('registry', () => {
  it('keys every function by its lower-case name, and both spellings of isNull/isUndefined resolve', () => {
    for (const [key, spec] of FUNCTIONS) {
      expect(key).toBe(key.toLowerCase());
      expect(spec.name).toBe(key);
      expect(spec.minArgs).toBeLessThanOrEqual(spec.maxArgs);
    }
    expect(FUNCTIONS.get('isNull'.toLowerCase())).toBeDefined();
    expect(FUNCTIONS.get('isUndefined'.toLowerCase())).toBeDefined();
    expect(FUNCTIONS.has('cast')).toBe(false);
  });

  it('declares the documented arities', () => {
    const arity = (name: string) => {
      const s = FUNCTIONS.get(name)!;
      return [s.minArgs, s.maxArgs];
    };
    const expected: Record<string, [number, number]> = {
      abs: [1, 1],
      accountid: [0, 0],
      atan2: [2, 2],
      aws_lambda: [2, 2],
      bitand: [2, 2],
      bitnot: [1, 1],
      chr: [1, 1],
      clientid: [0, 0],
      concat: [0, Number.POSITIVE_INFINITY],
      decode: [2, 6],
      encode: [2, 2],
      get: [2, 2],
      get_dynamodb: [4, 6],
      get_mqtt_property: [1, 1],
      get_or_default: [1, 2],
      get_registry_data: [3, 3],
      get_secret: [3, 4],
      get_thing_shadow: [2, 3],
      get_user_properties: [0, 1],
      indexof: [2, 2],
      isnull: [1, 1],
      isundefined: [1, 1],
      lpad: [2, 2],
      machinelearning_predict: [3, 3],
      md2: [1, 1],
      mod: [2, 2],
      nanvl: [2, 2],
      newuuid: [0, 0],
      parse_time: [2, 3],
      power: [2, 2],
      rand: [0, 0],
      regexp_matches: [2, 2],
      regexp_replace: [3, 3],
      regexp_substr: [2, 2],
      replace: [3, 3],
      sha512: [1, 1],
      sourceip: [0, 0],
      substring: [2, 3],
      time_to_epoch: [2, 2],
      timestamp: [0, 0],
      topic: [0, 1],
      traceid: [0, 0],
      transform: [3, 3],
      trunc: [2, 2],
    };
    for (const [name, a] of Object.entries(expected)) expect([name, ...arity(name)]).toEqual([name, ...a]);
  });

  it('registers every no-service function of the Functions page', () => {
    const names =
      'abs accountid acos asin atan atan2 bitand bitor bitxor bitnot ceil chr clientid concat cos cosh decode encode ' +
      'endswith exp floor get get_mqtt_property get_or_default get_thing_shadow get_user_properties md2 md5 sha1 ' +
      'sha224 sha256 sha384 sha512 indexof isnull isundefined length ln log lower lpad ltrim mod nanvl newuuid ' +
      'numbytes parse_time power principal rand regexp_matches regexp_replace regexp_substr remainder replace rpad ' +
      'round rtrim sign sin sinh sourceip substring sql_version sqrt startswith tan tanh time_to_epoch timestamp ' +
      'topic traceid transform trim trunc upper';
    for (const n of names.split(' ')) expect([n, FUNCTIONS.has(n)]).toEqual([n, true]);
  });

  it('exports evaluator metadata', () => {
    expect(RAW_PAYLOAD_ARGUMENT.get('encode')).toBe(0);
    expect(CATCHES_ARGUMENT_ERRORS.has('get_or_default')).toBe(true);
    expect(SUPPORTED_SINCE.get('parse_time')).toBe('2016-03-23');
    for (const name of SUPPORTED_SINCE.keys()) expect(FUNCTIONS.has(name)).toBe(true);
  });
});

describe('conversions (convert.ts)', () => {
  it('converts only strings matching the Data types regular expression, to Decimal', () => {
    expect(toNumber(str('5'))).toEqual(dec(5));
    expect(toNumber(str('-1.25e-3'))).toEqual(dec(-0.00125));
    expect(toNumber(str('5E12'))).toEqual(dec(5e12));
    for (const bad of ['+5', ' 5', '5 ', '.5', '5.', '1e+5', '0x10', 'NaN', 'Infinity', '', '1E999']) {
      expect([bad, toNumber(str(bad))]).toEqual([bad, UNDEFINED]);
    }
    expect(toNumber(int(3))).toEqual(int(3));
    expect(toNumber(TRUE)).toEqual(UNDEFINED);
    expect(toNumber(NULL)).toEqual(UNDEFINED);
  });

  it('To Decimal keeps Null (Data types page)', () => {
    expect(toDecimal(NULL)).toEqual(NULL);
    expect(toDecimal(int(2))).toEqual(dec(2));
  });

  it('To String: Int plain, Decimal as a double, Boolean, JSON for collections, Undefined for Null', () => {
    expect(toStringValue(int(INT_MAX))).toEqual(str('9999999999999999999999999999999999'));
    expect(toStringValue(dec(2.5))).toEqual(str('2.5'));
    expect(toStringValue(dec(5e-12))).toEqual(str('5e-12'));
    expect(toStringValue(FALSE)).toEqual(str('false'));
    expect(toStringValue(obj([['k', arr([str('v'), NULL])]]))).toEqual(str('{"k":["v",null]}'));
    expect(toStringValue(NULL)).toEqual(UNDEFINED);
    expect(toStringValue(UNDEFINED)).toEqual(UNDEFINED);
    expect(toStringValue(bin(new TextEncoder().encode('raw')))).toEqual(str('raw'));
  });

  it('To Boolean: "true"/"false" in any case', () => {
    expect(toBooleanValue(str('TRUE'))).toBe(true);
    expect(toBooleanValue(str('False'))).toBe(false);
    expect(toBooleanValue(str('yes'))).toBeUndefined();
    expect(toBooleanValue(int(1))).toBeUndefined();
  });
});

describe('numeric functions', () => {
  it('give Undefined for Boolean, Array, Object, Null, Undefined and unconvertible strings', () => {
    const unary =
      'abs acos asin atan cos cosh sin sinh tan tanh exp ln log sqrt ceil floor round sign bitnot'.split(' ');
    for (const f of unary) {
      for (const v of [...OTHER_TYPES, str('abc')]) expect([f, call(f, [v])]).toEqual([f, UNDEFINED]);
    }
    for (const f of 'atan2 power mod remainder bitand bitor bitxor'.split(' ')) {
      for (const v of [...OTHER_TYPES, str('x')]) {
        expect([f, call(f, [v, int(1)])]).toEqual([f, UNDEFINED]);
        expect([f, call(f, [int(1), v])]).toEqual([f, UNDEFINED]);
      }
    }
  });

  it('convert numeric strings', () => {
    expect(call('abs', [str('-3')])).toEqual(dec(3));
    expect(call('ceil', [str('1.2')])).toEqual(int(2));
    expect(call('sign', [str('-0.5')])).toEqual(int(-1));
    expect(call('bitand', [str('13.9'), dec(5.5)])).toEqual(int(5));
    expect(call('mod', [str('8'), int(3)])).toEqual(dec(2));
    expect(call('power', [str('2'), str('10')])).toEqual(dec(1024));
  });

  it('keep Int results exact up to 34 digits and give Undefined beyond', () => {
    expect(call('abs', [int(-INT_MAX)])).toEqual(int(INT_MAX));
    expect(call('abs', [int(INT64_MIN)])).toEqual(int(-INT64_MIN));
    expect(call('ceil', [dec(2 ** 100)])).toEqual(int(2n ** 100n));
    expect(call('ceil', [dec(1e35)])).toEqual(UNDEFINED);
    expect(call('floor', [dec(1e300)])).toEqual(UNDEFINED);
    expect(call('floor', [int(-INT_MAX)])).toEqual(int(-INT_MAX));
    expect(call('bitnot', [int(INT_MAX)])).toEqual(UNDEFINED); // -10^34 has 35 digits
    expect(call('bitand', [int(2n ** 70n + 5n), int(7)])).toEqual(int(5));
    expect(call('bitor', [int(INT64_MIN), int(1)])).toEqual(int(INT64_MIN + 1n));
    expect(call('bitxor', [int(-1), int(5)])).toEqual(int(-6));
    expect(call('bitand', [dec(1e300), int(1)])).toEqual(UNDEFINED);
    expect(call('mod', [int(INT64_MIN), int(-1)])).toEqual(int(0));
    expect(call('mod', [int(INT_MAX), int(10n ** 20n)])).toEqual(int(10n ** 20n - 1n));
  });

  it('give Undefined for results that are not finite doubles (imaginary, infinite)', () => {
    expect(call('acos', [int(2)])).toEqual(UNDEFINED);
    expect(call('sqrt', [int(-1)])).toEqual(UNDEFINED);
    expect(call('ln', [int(0)])).toEqual(UNDEFINED);
    expect(call('log', [dec(-1)])).toEqual(UNDEFINED);
    expect(call('exp', [int(1000)])).toEqual(UNDEFINED);
    expect(call('power', [int(0), int(-1)])).toEqual(UNDEFINED);
    expect(call('cosh', [int(1000)])).toEqual(UNDEFINED);
  });

  it('mod/remainder: Int result for Ints with the sign of the dividend, Decimal otherwise, Undefined for 0', () => {
    expect(call('mod', [int(-8), int(3)])).toEqual(int(-2));
    expect(call('remainder', [int(8), int(-3)])).toEqual(int(2));
    expect(call('mod', [dec(8.5), int(3)])).toEqual(dec(2.5));
    expect(call('mod', [int(8), int(0)])).toEqual(UNDEFINED);
    expect(call('mod', [dec(8), dec(0)])).toEqual(UNDEFINED);
  });

  it('round: halves away from zero; Int unchanged', () => {
    expect(call('round', [dec(2.5)])).toEqual(int(3));
    expect(call('round', [dec(-2.5)])).toEqual(int(-3));
    expect(call('round', [dec(0.49999999999999994)])).toEqual(int(0));
    expect(call('round', [int(7)])).toEqual(int(7));
  });

  it('sign of Decimal zero and negative zero is 0', () => {
    expect(call('sign', [dec(0)])).toEqual(int(0));
    expect(call('sign', [dec(-0)])).toEqual(int(0));
  });

  it('trunc: decimal digits, clamped places, string first argument, Undefined for a string place count', () => {
    expect(call('trunc', [dec(-2.888), int(2)])).toEqual(dec(-2.88));
    expect(call('trunc', [dec(1.23456), int(-3)])).toEqual(int(1));
    expect(call('trunc', [dec(1.5e-7), int(40)])).toEqual(dec(1.5e-7));
    expect(call('trunc', [str('1.23456789012345678901'), dec(4.9)])).toEqual(dec(1.2345));
    expect(call('trunc', [int(5), int(2)])).toEqual(int(5));
    expect(call('trunc', [dec(2.5), str('1')])).toEqual(UNDEFINED);
    expect(call('trunc', [TRUE, int(1)])).toEqual(UNDEFINED);
    expect(call('trunc', [dec(1e21), int(2)])).toEqual(int(10n ** 21n));
    expect(call('trunc', [dec(1e40), int(2)])).toEqual(dec(1e40));
    expect(plainDecimal('1.5e-7')).toBe('0.00000015');
    expect(plainDecimal('-1e+21')).toBe('-1000000000000000000000');
  });

  it('nanvl: the second argument for Undefined and Null, the first otherwise', () => {
    expect(call('nanvl', [UNDEFINED, int(3)])).toEqual(int(3));
    expect(call('nanvl', [NULL, int(3)])).toEqual(int(3));
    expect(call('nanvl', [str('NaN'), int(3)])).toEqual(str('NaN'));
    expect(call('nanvl', [dec(1.5), int(3)])).toEqual(dec(1.5));
    expect(call('nanvl', [{ type: 'Decimal', value: Number.NaN }, int(3)])).toEqual(int(3));
  });
});

describe('string functions', () => {
  it('give Undefined for Null and Undefined arguments', () => {
    for (const f of 'length numbytes lower upper ltrim rtrim trim md5 sha256 md2'.split(' ')) {
      expect([f, call(f, [NULL])]).toEqual([f, UNDEFINED]);
      expect([f, call(f, [UNDEFINED])]).toEqual([f, UNDEFINED]);
    }
    for (const f of 'endswith startswith indexof'.split(' ')) {
      expect([f, call(f, [NULL, str('a')])]).toEqual([f, UNDEFINED]);
      expect([f, call(f, [str('a'), UNDEFINED])]).toEqual([f, UNDEFINED]);
    }
    expect(call('replace', [str('a'), NULL, str('b')])).toEqual(UNDEFINED);
    expect(call('substring', [NULL, int(0)])).toEqual(UNDEFINED);
    expect(call('concat', [str('a'), NULL])).toEqual(UNDEFINED);
  });

  it('convert non-String arguments with the standard conversions', () => {
    expect(call('endswith', [int(123), int(3)])).toEqual(TRUE);
    expect(call('startswith', [dec(1.5), str('1.')])).toEqual(TRUE);
    expect(call('indexof', [arr([str('a')]), str('"a"')])).toEqual(int(1));
    expect(call('upper', [TRUE])).toEqual(str('TRUE'));
    expect(call('concat', [int(1), dec(2.5), TRUE])).toEqual(str('12.5true'));
    expect(call('sha256', [int(1)])).toEqual(call('sha256', [str('1')]));
  });

  it('count UTF-16 code units like Java (length, get, substring, indexof) and UTF-8 bytes for numbytes', () => {
    expect(call('length', [str('😀')])).toEqual(int(2));
    expect(call('numbytes', [str('😀')])).toEqual(int(4));
    expect(call('numbytes', [str('é')])).toEqual(int(2));
    expect(call('indexof', [str('😀x'), str('x')])).toEqual(int(2));
    expect(call('substring', [str('a😀b'), int(3)])).toEqual(str('b'));
    expect(call('upper', [str('straße')])).toEqual(str('STRASSE'));
  });

  it('indexof gives -1 when not found', () => {
    expect(call('indexof', [str('abc'), str('z')])).toEqual(int(-1));
  });

  it('chr: ASCII only, Decimal and String rounded down, other types Undefined', () => {
    expect(call('chr', [dec(65.9)])).toEqual(str('A'));
    expect(call('chr', [str('66')])).toEqual(str('B'));
    expect(call('chr', [int(128)])).toEqual(UNDEFINED);
    expect(call('chr', [int(-1)])).toEqual(UNDEFINED);
    expect(call('chr', [TRUE])).toEqual(UNDEFINED);
    expect(call('chr', [str('A')])).toEqual(UNDEFINED);
  });

  it('lpad/rpad: count clamped to 0..1000, converted from Decimal/String, Undefined for other types', () => {
    expect(call('lpad', [str('x'), int(-5)])).toEqual(str('x'));
    expect((call('rpad', [str('x'), int(5000)]) as { value: string }).value.length).toBe(1001);
    expect(call('lpad', [str('x'), dec(2.9)])).toEqual(str('  x'));
    expect(call('rpad', [str('x'), str('2')])).toEqual(str('x  '));
    expect(call('lpad', [str('x'), str('two')])).toEqual(UNDEFINED);
    expect(call('lpad', [str('x'), TRUE])).toEqual(UNDEFINED);
    expect(call('lpad', [NULL, int(1)])).toEqual(UNDEFINED);
  });

  it('trim family removes tabs, spaces and other characters up to U+0020, not inner ones', () => {
    expect(call('trim', [str('\t a b \n')])).toEqual(str('a b'));
    expect(call('ltrim', [str('\t x ')])).toEqual(str('x '));
    expect(call('rtrim', [str(' x \t')])).toEqual(str(' x'));
    expect(call('trim', [str('\u00a0x\u00a0')])).toEqual(str('\u00a0x\u00a0'));
    expect(call('trim', [int(5)])).toEqual(str('5'));
  });

  it('replace is literal: regex characters and `$` in the replacement have no special meaning', () => {
    expect(call('replace', [str('a.b.c'), str('.'), str('$&')])).toEqual(str('a$&b$&c'));
    expect(call('replace', [str('abc'), str(''), str('-')])).toEqual(str('-a-b-c-'));
  });

  it('substring: non-convertible index → Undefined; Int index beyond the string → empty', () => {
    expect(call('substring', [str('abc'), TRUE])).toEqual(UNDEFINED);
    expect(call('substring', [str('abc'), str('x')])).toEqual(UNDEFINED);
    expect(call('substring', [str('abc'), str('1')])).toEqual(str('bc'));
    expect(call('substring', [str('abc'), int(10)])).toEqual(str(''));
    expect(call('substring', [str('abc'), int(1), NULL])).toEqual(UNDEFINED);
    expect(call('substring', [str('abc'), int(INT_MAX)])).toEqual(str(''));
  });

  it('concat: arrays absorb all arguments; a single Array is returned as is', () => {
    expect(toJsonText(call('concat', [int(1), arr([int(2)]), obj([['a', int(1)]])]))).toBe('[1,2,{"a":1}]');
    expect(call('concat', [arr([int(1)])])).toEqual(arr([int(1)]));
    expect(call('concat', [str('a'), obj([['k', str('v')]])])).toEqual(str('a{"k":"v"}'));
  });
});

describe('hash functions', () => {
  it('give lower-case hex digests of the UTF-8 bytes', () => {
    expect(call('sha1', [str('hello')])).toEqual(str('aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d'));
    expect(call('sha224', [str('')])).toEqual(
      str('d14a028c2a3a2bc9476102bb288234c415a2b01f828ea62ac5b3e42f'),
    );
    expect(call('sha256', [str('abc')])).toEqual(
      str('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'),
    );
    expect((call('sha384', [str('abc')]) as { value: string }).value).toHaveLength(96);
    expect((call('sha512', [str('abc')]) as { value: string }).value).toHaveLength(128);
  });

  it('md2 matches the RFC 1319 test suite', () => {
    expect(call('md2', [str('')])).toEqual(str('8350e5a3e24c153df2275c9f80692773'));
    expect(call('md2', [str('abc')])).toEqual(str('da853b0d3f88d99b30283a69e6ded6bb'));
    expect(call('md2', [str('abcdefghijklmnopqrstuvwxyz')])).toEqual(str('4e8ddff3650292ab5a4108c3aa47940b'));
    expect(
      call('md2', [str('12345678901234567890123456789012345678901234567890123456789012345678901234567890')]),
    ).toEqual(str('d5976f79d83d3a0dc9806c3c66f3efd8'));
  });

  it('hash a Binary payload as its bytes', () => {
    expect(call('md5', [bin(new Uint8Array([0xff]))])).toEqual(str('00594fd4f42ba43fc1ca0427a0576295'));
  });
});

describe('regexp functions (Java regex semantics)', () => {
  it('give Undefined for an invalid pattern or Null/Undefined arguments', () => {
    expect(call('regexp_matches', [str('a'), str('(')])).toEqual(UNDEFINED);
    expect(call('regexp_matches', [str('a'), str('a{')])).toEqual(UNDEFINED);
    expect(call('regexp_substr', [NULL, str('a')])).toEqual(UNDEFINED);
    expect(call('regexp_replace', [str('a'), UNDEFINED, str('b')])).toEqual(UNDEFINED);
    expect(call('regexp_replace', [str('a'), str('a'), NULL])).toEqual(UNDEFINED);
  });

  it('match anywhere in the string (find), with converted non-String arguments', () => {
    expect(call('regexp_matches', [str('xxaay'), str('a{2}')])).toEqual(TRUE);
    expect(call('regexp_matches', [int(12345), int(34)])).toEqual(TRUE);
    expect(call('regexp_matches', [arr([str('a')]), str('^\\["a"\\]$')])).toEqual(TRUE);
  });

  it('regexp_substr: no match gives Undefined', () => {
    expect(call('regexp_substr', [str('abc'), str('z')])).toEqual(UNDEFINED);
    expect(call('regexp_substr', [str('abc'), str('z*')])).toEqual(str(''));
  });

  it('Java replacement strings: $n, ${name}, \\$ literal; invalid references give Undefined', () => {
    expect(call('regexp_replace', [str('2024-01-02'), str('(\\d+)-(\\d+)-(\\d+)'), str('$3/$2/$1')])).toEqual(
      str('02/01/2024'),
    );
    expect(call('regexp_replace', [str('ab'), str('(?<first>a)'), str('${first}${first}')])).toEqual(
      str('aab'),
    );
    expect(call('regexp_replace', [str('aXbX'), str('X'), str('\\$')])).toEqual(str('a$b$'));
    expect(call('regexp_replace', [str('ab'), str('(a)'), str('$2')])).toEqual(UNDEFINED);
    expect(call('regexp_replace', [str('ab'), str('a'), str('$')])).toEqual(UNDEFINED);
    expect(call('regexp_replace', [str('ab'), str('a'), str('x\\')])).toEqual(UNDEFINED);
    expect(call('regexp_replace', [str('ab'), str('a'), str('$&')])).toEqual(UNDEFINED);
    // $12 with one group is group 1 followed by "2".
    expect(call('regexp_replace', [str('ab'), str('(a)'), str('$12')])).toEqual(str('a2b'));
    expect(call('regexp_replace', [str('abc'), str('x*'), str('-')])).toEqual(str('-a-b-c-'));
    expect(parseJavaReplacement('$1x', 1, new Set())).toEqual([1, 'x']);
  });

  it('translates Java-only syntax', () => {
    const matches = (s: string, p: string) => call('regexp_matches', [str(s), str(p)]);
    expect(matches('a.*b', '\\Q.*\\E')).toEqual(TRUE);
    expect(matches('axyb', '\\Q.*\\E')).toEqual(FALSE);
    expect(matches('ABC', '(?i)abc')).toEqual(TRUE);
    expect(matches('xABC', 'x(?i:abc)')).toEqual(TRUE);
    expect(matches('aaab', 'a*+b')).toEqual(TRUE);
    expect(matches('Hello', '^\\p{Upper}\\p{Lower}+$')).toEqual(TRUE);
    expect(matches('héllo', '^\\p{Alpha}+$')).toEqual(FALSE); // POSIX classes are ASCII-only in Java
    expect(matches('héllo', '^\\p{L}+$')).toEqual(TRUE);
    expect(matches('héllo', '^\\p{IsLatin}+$')).toEqual(TRUE);
    expect(matches('123', '\\A\\d+\\z')).toEqual(TRUE);
    expect(matches('123\n', '\\A\\d+\\z')).toEqual(FALSE);
    expect(matches('123\n', '\\A\\d+\\Z')).toEqual(TRUE);
    expect(matches('a\n', 'a$')).toEqual(TRUE); // $ before a final line terminator
    expect(matches('a\u0085', '^a.$')).toEqual(FALSE); // . excludes U+0085 like Java
    expect(matches('a\u00a0', '\\s')).toEqual(FALSE); // \s is ASCII-only in Java
    expect(matches('say "hi"', '\\"hi\\"')).toEqual(TRUE);
    expect(matches('n', '[a-d[m-p]]')).toEqual(TRUE);
    expect(matches('a b', '(?x) a \\  b # comment')).toEqual(TRUE);
    expect(matches('aa0', '(a)\\10')).toEqual(TRUE); // \10 is \1 then "0" with one group
    expect(matches('\u001b', '\\e')).toEqual(TRUE);
    expect(matches('A', '\\0101')).toEqual(TRUE);
    expect(matches('A', '\\x{41}')).toEqual(TRUE);
    expect(matches('a\tb', 'a\\hb')).toEqual(TRUE);
    expect(matches('😀', '^.$')).toEqual(TRUE); // code points, not UTF-16 units
    expect(matches(']', ']')).toEqual(TRUE);
  });

  it('rejects constructs JavaScript cannot express', () => {
    expect(compileJavaRegex('[a-z&&[^aeiou]]')).toBeUndefined();
    expect(compileJavaRegex('\\p{InGreek}')).toBeUndefined();
    expect(compileJavaRegex('\\G')).toBeUndefined();
    expect(compileJavaRegex('\\y')).toBeUndefined();
    expect(() => translateJavaRegex('[^a[^b]]')).toThrow();
  });
});

describe('time functions', () => {
  it('parse_time: Joda pattern letters', () => {
    const t = 1_700_000_000_123; // 2023-11-14T22:13:20.123Z, a Tuesday
    const f = (p: string, tz?: string) =>
      call('parse_time', tz === undefined ? [str(p), int(t)] : [str(p), int(t), str(tz)]);
    expect(f('EEEE, MMMM d, yyyy h:mm a')).toEqual(str('Tuesday, November 14, 2023 10:13 PM'));
    expect(f('EEE MMM dd yy HH:mm:ss.SSS')).toEqual(str('Tue Nov 14 23 22:13:20.123'));
    expect(f('S SS SSSS')).toEqual(str('1 12 1230'));
    expect(f("yyyy-MM-dd'T'HH:mm:ssZZ", 'Europe/Paris')).toEqual(str('2023-11-14T23:13:20+01:00'));
    expect(f('Z ZZZ', 'America/Los_Angeles')).toEqual(str('-0800 America/Los_Angeles'));
    expect(f('z zzzz', 'America/Los_Angeles')).toEqual(str('PST Pacific Standard Time'));
    expect(f('HH:mm z', '+05:30')).toEqual(str('03:43 +05:30'));
    expect(f("xxxx-'W'ww-e D")).toEqual(str('2023-W46-2 318'));
    expect(f('K k h H', 'UTC')).toEqual(str('10 22 10 22'));
    expect(f("''yy''")).toEqual(str("'23'"));
    expect(f('G C Y')).toEqual(str('AD 20 2023'));
  });

  it('parse_time: timestamp conversion and Undefined for bad arguments', () => {
    expect(call('parse_time', [str('yyyy'), str('0')])).toEqual(str('1970'));
    expect(call('parse_time', [str('yyyy'), dec(1.9)])).toEqual(str('1970'));
    expect(call('parse_time', [str('HH:mm'), int(-60000)])).toEqual(str('23:59'));
    expect(call('parse_time', [str('yyyy'), TRUE])).toEqual(UNDEFINED);
    expect(call('parse_time', [str('yyyy'), str('soon')])).toEqual(UNDEFINED);
    expect(call('parse_time', [NULL, int(0)])).toEqual(UNDEFINED);
    expect(call('parse_time', [str('yyyy q'), int(0)])).toEqual(UNDEFINED); // q is not a Joda letter
    expect(call('parse_time', [str("'open"), int(0)])).toEqual(UNDEFINED);
    expect(call('parse_time', [str('yyyy'), int(0), str('Nope/Zone')])).toEqual(UNDEFINED);
    expect(call('parse_time', [str('yyyy'), int(0), NULL])).toEqual(UNDEFINED);
    expect(call('parse_time', [str('yyyy'), int(9e15)])).toEqual(UNDEFINED);
  });

  it('time_to_epoch: java.time patterns', () => {
    const e = (s: string, p: string) => call('time_to_epoch', [str(s), str(p)]);
    expect(e('2021-11-07T01:30:00+0100', "yyyy-MM-dd'T'HH:mm:ssZ")).toEqual(
      int(Date.UTC(2021, 10, 7, 0, 30)),
    );
    expect(e('2021-11-07T01:30:00Z', "yyyy-MM-dd'T'HH:mm:ssX")).toEqual(int(Date.UTC(2021, 10, 7, 1, 30)));
    expect(e('2021-11-07T01:30:00+05:30', "yyyy-MM-dd'T'HH:mm:ssXXX")).toEqual(
      int(Date.UTC(2021, 10, 6, 20, 0)),
    );
    expect(e('2021-11-07 10:15 GMT+2', 'yyyy-MM-dd HH:mm O')).toEqual(int(Date.UTC(2021, 10, 7, 8, 15)));
    expect(e('2021-11-07 10:15 PST', 'yyyy-MM-dd HH:mm z')).toEqual(int(Date.UTC(2021, 10, 7, 18, 15)));
    expect(e('Sun, 07 Nov 2021 10:15:00 PM', 'EEE, dd MMM yyyy hh:mm:ss a')).toEqual(
      int(Date.UTC(2021, 10, 7, 22, 15)),
    );
    expect(e('21-11-07', 'yy-MM-dd')).toEqual(int(Date.UTC(2021, 10, 7)));
    expect(e('2021-311', 'yyyy-DDD')).toEqual(int(Date.UTC(2021, 10, 7)));
    expect(e('20211107', 'yyyyMMdd')).toEqual(int(Date.UTC(2021, 10, 7)));
    expect(e('2021-11-07', "yyyy-MM-dd['T'HH:mm]")).toEqual(int(Date.UTC(2021, 10, 7)));
    expect(e('2021-11-07T10:15', "yyyy-MM-dd['T'HH:mm]")).toEqual(int(Date.UTC(2021, 10, 7, 10, 15)));
    expect(e('2021-11-07 10:15:30.5', 'yyyy-MM-dd HH:mm:ss.S')).toEqual(
      int(Date.UTC(2021, 10, 7, 10, 15, 30, 500)),
    );
  });

  it('time_to_epoch: SMART resolution clamps the day of month; DST gaps move later, overlaps take the earlier offset', () => {
    const e = (s: string, p: string) => call('time_to_epoch', [str(s), str(p)]);
    expect(e('2021-02-31', 'yyyy-MM-dd')).toEqual(int(Date.UTC(2021, 1, 28)));
    expect(e('2024-02-30', 'yyyy-MM-dd')).toEqual(int(Date.UTC(2024, 1, 29)));
    expect(e('2021-03-14 02:30 America/New_York', 'yyyy-MM-dd HH:mm VV')).toEqual(
      int(Date.UTC(2021, 2, 14, 7, 30)),
    );
    expect(e('2021-11-07 01:30 America/New_York', 'yyyy-MM-dd HH:mm VV')).toEqual(
      int(Date.UTC(2021, 10, 7, 5, 30)),
    );
  });

  it('time_to_epoch: Undefined when the text does not match or does not resolve', () => {
    const e = (s: string, p: string) => call('time_to_epoch', [str(s), str(p)]);
    expect(e('nope', 'yyyy-MM-dd')).toEqual(UNDEFINED);
    expect(e('2021-13-01', 'yyyy-MM-dd')).toEqual(UNDEFINED);
    expect(e('2021-01-32', 'yyyy-MM-dd')).toEqual(UNDEFINED);
    expect(e('2021-01-01 24:00', 'yyyy-MM-dd HH:mm')).toEqual(UNDEFINED);
    expect(e('2021-1-01', 'yyyy-MM-dd')).toEqual(UNDEFINED); // MM is exactly two digits
    expect(e('Mon, 07 Nov 2021', 'EEE, dd MMM yyyy')).toEqual(UNDEFINED); // 2021-11-07 is a Sunday
    expect(e('2021-11', 'yyyy-MM')).toEqual(UNDEFINED); // no day
    expect(e('10:15', 'HH:mm')).toEqual(UNDEFINED); // no date
    expect(e('07 november 2021', 'dd MMMM yyyy')).toEqual(UNDEFINED); // case-sensitive
    expect(e('2021-11-07 10:15 Nowhere/Zone', 'yyyy-MM-dd HH:mm VV')).toEqual(UNDEFINED);
    expect(e('2021', 'yyyy {')).toEqual(UNDEFINED); // reserved pattern character
    expect(e('2021', 'yyyy p')).toEqual(UNDEFINED); // unsupported letter
    expect(call('time_to_epoch', [NULL, str('yyyy')])).toEqual(UNDEFINED);
  });

  it('timestamp() reads the context clock', () => {
    expect(call('timestamp')).toEqual(int(1_700_000_000_123));
  });
});

describe('message functions', () => {
  it('topic(n): 1-based segments; 0, negative, out of range and non-numeric → Undefined', () => {
    expect(call('topic', [int(3)])).toEqual(str('c'));
    expect(call('topic', [dec(2.7)])).toEqual(str('b'));
    expect(call('topic', [str('1')])).toEqual(str('a'));
    expect(call('topic', [int(0)])).toEqual(UNDEFINED);
    expect(call('topic', [int(-1)])).toEqual(UNDEFINED);
    expect(call('topic', [int(4)])).toEqual(UNDEFINED);
    expect(call('topic', [TRUE])).toEqual(UNDEFINED);
    expect(call('topic', [NULL])).toEqual(UNDEFINED);
  });

  it('principal(), sourceip(), traceid() are Undefined when the message has none', () => {
    expect(call('principal')).toEqual(UNDEFINED);
    expect(call('sourceip')).toEqual(UNDEFINED);
    expect(call('traceid')).toEqual(UNDEFINED);
    expect(call('sourceip', [], ctx({ sourceIp: '2001:db8:ff00::12ab:34cd' }))).toEqual(
      str('2001:db8:ff00::12ab:34cd'),
    );
  });

  it('encode/decode: base64 only; bad base64 decodes to Null; unknown schemes and protobuf → Undefined', () => {
    expect(call('encode', [str('€'), str('base64')])).toEqual(str('4oKs'));
    expect(call('encode', [obj([['a', int(1)]]), str('base64')])).toEqual(
      str(Buffer.from('{"a":1}').toString('base64')),
    );
    expect(call('encode', [str('x'), str('hex')])).toEqual(UNDEFINED);
    expect(call('encode', [NULL, str('base64')])).toEqual(UNDEFINED);
    expect(call('decode', [str('4oKs'), str('base64')])).toEqual(str('€'));
    expect(call('decode', [str('MTI='), str('base64')])).toEqual(int(12));
    expect(call('decode', [str('MTI'), str('base64')])).toEqual(int(12)); // padding optional
    expect(call('decode', [str('not base64!'), str('base64')])).toEqual(NULL);
    expect(call('decode', [str('A'), str('base64')])).toEqual(NULL);
    expect(call('decode', [bin(new TextEncoder().encode('eyJhIjoxfQ==')), str('base64')])).toEqual(
      obj([['a', int(1)]]),
    );
    expect(call('decode', [str('x'), str('proto'), str('b'), str('k'), str('f'), str('M')])).toEqual(
      UNDEFINED,
    );
    expect(call('decode', [NULL, str('base64')])).toEqual(UNDEFINED);
  });

  it('get_mqtt_property: the four MQTT 5 properties; Undefined without them', () => {
    const mqtt5 = ctx({
      mqttProperties: {
        content_type: str('application/json'),
        format_indicator: int(1),
        response_topic: str('reply/here'),
        correlation_data: bin(new TextEncoder().encode('cid')),
      },
    });
    const p = (name: string, c = mqtt5) => call('get_mqtt_property', [str(name)], c);
    expect(p('content_type')).toEqual(str('application/json'));
    expect(p('format_indicator')).toEqual(str('UTF8_DATA'));
    expect(p('response_topic')).toEqual(str('reply/here'));
    expect(p('correlation_data')).toEqual(str('Y2lk'));
    expect(p('message_expiry_interval')).toEqual(UNDEFINED);
    expect(p('toString')).toEqual(UNDEFINED);
    const bare = ctx({ mqttProperties: {} });
    expect(p('format_indicator', bare)).toEqual(str('UNSPECIFIED_BYTES'));
    expect(p('content_type', bare)).toEqual(UNDEFINED);
    expect(p('content_type', ctx())).toEqual(UNDEFINED);
    expect(call('get_mqtt_property', [int(1)], mqtt5)).toEqual(UNDEFINED);
  });

  it('get_user_properties: all pairs, or the values of one key (keys may repeat)', () => {
    const c = ctx({
      userProperties: [
        ['k', 'v1'],
        ['o', 'ov'],
        ['k', 'v2'],
      ],
    });
    expect(toJsonText(call('get_user_properties', [], c))).toBe('[{"k":"v1"},{"o":"ov"},{"k":"v2"}]');
    expect(toJsonText(call('get_user_properties', [str('k')], c))).toBe('["v1","v2"]');
    expect(call('get_user_properties', [str('none')], c)).toEqual(UNDEFINED);
    expect(call('get_user_properties', [])).toEqual(UNDEFINED);
    expect(call('get_user_properties', [NULL], c)).toEqual(UNDEFINED);
  });

  it('get_thing_shadow: Undefined without a shadow service, without a shadow, or with non-String names', () => {
    expect(call('get_thing_shadow', [str('t'), str('role')])).toEqual(UNDEFINED);
    const c = ctx({}, { services: { getThingShadow: () => undefined } });
    expect(call('get_thing_shadow', [str('t'), str('role')], c)).toEqual(UNDEFINED);
    const d = ctx({}, { services: { getThingShadow: () => obj([]) } });
    expect(call('get_thing_shadow', [int(1), str('role')], d)).toEqual(UNDEFINED);
    expect(call('get_thing_shadow', [str('t'), NULL, str('role')], d)).toEqual(UNDEFINED);
    expect(call('get_thing_shadow', [str('t'), str('role')], d)).toEqual(obj([]));
  });

  it('newuuid() and rand() come from the context', () => {
    expect(call('newuuid')).toEqual(str('00000000-0000-4000-8000-000000000000'));
    expect(call('rand')).toEqual(dec(0.25));
  });
});

describe('value functions', () => {
  it('get: bounds, conversions and Undefined for other collection types', () => {
    const a = arr([str('a'), str('b')]);
    expect(call('get', [a, int(-1)])).toEqual(UNDEFINED);
    expect(call('get', [a, int(2)])).toEqual(UNDEFINED);
    expect(call('get', [a, dec(1.7)])).toEqual(str('b'));
    expect(call('get', [a, str('1')])).toEqual(str('b'));
    expect(call('get', [a, TRUE])).toEqual(UNDEFINED);
    expect(call('get', [str('😀'), int(0)])).toEqual(str('\ud83d'));
    expect(call('get', [obj([['1', int(5)]]), int(1)])).toEqual(UNDEFINED); // no conversion for Object keys
    expect(call('get', [obj([['1', int(5)]]), str('1')])).toEqual(int(5));
    expect(call('get', [obj([]), str('missing')])).toEqual(UNDEFINED);
    expect(call('get', [int(5), int(0)])).toEqual(UNDEFINED);
    expect(call('get', [NULL, int(0)])).toEqual(UNDEFINED);
  });

  it('get_or_default: the default for Null and Undefined, Undefined when there is none', () => {
    expect(call('get_or_default', [str('Hello'), str('default')])).toEqual(str('Hello'));
    expect(call('get_or_default', [NULL, str('default')])).toEqual(str('default'));
    expect(call('get_or_default', [UNDEFINED, int(0)])).toEqual(int(0));
    expect(call('get_or_default', [UNDEFINED])).toEqual(UNDEFINED);
    expect(call('get_or_default', [FALSE, TRUE])).toEqual(FALSE);
  });

  it('isNull / isUndefined on every type', () => {
    for (const v of [int(0), dec(0), FALSE, str(''), arr([]), obj([]), bin(new Uint8Array())]) {
      expect(call('isnull', [v])).toEqual(FALSE);
      expect(call('isundefined', [v])).toEqual(FALSE);
    }
    expect(call('isUndefined', [NULL])).toEqual(FALSE);
    expect(call('isNull', [UNDEFINED])).toEqual(FALSE);
  });

  it('transform: the object wins on shared keys; non-Object elements or arguments → Undefined', () => {
    expect(
      toJsonText(
        call('transform', [
          str('enrichArray'),
          obj([['a', int(9)]]),
          arr([
            obj([
              ['a', int(1)],
              ['b', int(2)],
            ]),
          ]),
        ]),
      ),
    ).toBe('[{"a":9,"b":2}]');
    expect(call('transform', [str('enrichArray'), obj([]), arr([int(1)])])).toEqual(UNDEFINED);
    expect(call('transform', [str('enrichArray'), arr([]), arr([])])).toEqual(UNDEFINED);
    expect(call('transform', [str('enrichArray'), obj([]), obj([])])).toEqual(UNDEFINED);
    expect(call('transform', [str('enricharray'), obj([]), arr([])])).toEqual(UNDEFINED);
    expect(call('transform', [str('enrichArray'), obj([]), arr([])])).toEqual(arr([]));
  });
});

describe('functions that need another AWS service', () => {
  it('throw SqlEvaluationError naming the function', () => {
    const cases: [string, SqlValue[]][] = [
      ['aws_lambda', [str('arn'), obj([])]],
      ['get_dynamodb', [str('t'), str('k'), str('v'), str('role')]],
      ['get_registry_data', [str('DescribeThing'), str('thing'), str('role')]],
      ['get_secret', [str('s'), str('SecretString'), str('role')]],
      ['machinelearning_predict', [str('m'), str('role'), obj([])]],
    ];
    for (const [name, args] of cases) {
      expect(() => call(name, args)).toThrow(SqlEvaluationError);
      expect(() => call(name, args)).toThrow(
        new RegExp(`^${name}\\(\\) is not available in the local cloud`),
      );
    }
  });
});
