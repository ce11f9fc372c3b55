/**
 * Conformance of the AWS IoT SQL function library with the AWS IoT Core Developer Guide, "AWS IoT SQL
 * reference" → "Functions" (iot-sql-functions), plus the "Data types" page's conversion example.
 * Each test names the function's section and reproduces its examples with the values the page shows.
 * Where the page's example contradicts the page's own description, the test says so and asserts the
 * behaviour described (three cases: bitnot, get on a String, ltrim).
 */
import { describe, expect, it } from '@jest/globals';
import type { EvalContext, MessageContext, SqlServices } from '../../cloud/rules/sql/context.js';
import { SqlEvaluationError } from '../../cloud/rules/sql/errors.js';
import { FUNCTIONS } from '../../cloud/rules/sql/functions/index.js';
import {
  arr,
  bin,
  bool,
  dec,
  FALSE,
  int,
  NULL,
  obj,
  parseJsonValue,
  type SqlValue,
  str,
  TRUE,
  toJsonText,
  UNDEFINED,
} from '../../cloud/rules/sql/values.js';

const PAYLOAD = '{"attribute1":21,"attribute2":"value"}';

function ctx(
  message: Partial<MessageContext> = {},
  extra: Partial<Omit<EvalContext, 'message'>> & { services?: SqlServices } = {},
): EvalContext {
  return {
    message: {
      topic: 'things/myThings/thingOne',
      payload: new TextEncoder().encode(PAYLOAD),
      clientId: '123456789012',
      principal: 'ba67293af50bf2506f5f93469686da660c7c844e7b3950bfb16813e0d31e9373',
      traceId: '12345678-1234-1234-1234-123456789012',
      timestamp: 1481825251155,
      ...message,
    },
    sqlVersion: '2016-03-23',
    accountId: '123456789012',
    region: 'us-east-1',
    services: {},
    now: () => 1481825251155,
    random: () => 0.8231909191640703,
    uuid: () => '123a4567-b89c-12d3-e456-789012345000',
    ...extra,
  };
}

/** Calls a function by name (any case, as SQL allows), checking the argument count is accepted. */
function call(name: string, args: SqlValue[] = [], context: EvalContext = ctx()): SqlValue {
  const spec = FUNCTIONS.get(name.toLowerCase());
  if (spec === undefined) throw new Error(`no function ${name}`);
  expect(args.length).toBeGreaterThanOrEqual(spec.minArgs);
  expect(args.length).toBeLessThanOrEqual(spec.maxArgs);
  return spec.fn(args, context);
}

/** A JSON literal as the SQL parser would produce it (Int vs Decimal kept). */
const json = (text: string): SqlValue => {
  const v = parseJsonValue(text);
  if (v === undefined) throw new Error(`bad JSON ${text}`);
  return v;
};

const text = (v: SqlValue): string | undefined => toJsonText(v);

describe('AWS IoT SQL functions: documented examples (Functions page)', () => {
  it('abs(Decimal): `abs(-5)` returns 5', () => {
    expect(call('abs', [int(-5)])).toEqual(int(5));
  });

  it('accountid(): `accountid()` = "123456789012"', () => {
    expect(call('accountid')).toEqual(str('123456789012'));
  });

  it('acos(Decimal): `acos(0)` = 1.5707963267948966', () => {
    expect(call('acos', [int(0)])).toEqual(dec(1.5707963267948966));
  });

  it('asin(Decimal): `asin(0)` = 0.0', () => {
    expect(call('asin', [int(0)])).toEqual(dec(0));
  });

  it('atan(Decimal): `atan(0)` = 0.0', () => {
    expect(call('atan', [int(0)])).toEqual(dec(0));
  });

  it('atan2(Decimal, Decimal): `atan2(1, 0)` = 1.5707963267948966', () => {
    expect(call('atan2', [int(1), int(0)])).toEqual(dec(1.5707963267948966));
  });

  it('aws_lambda(functionArn, inputJson): needs AWS Lambda, so it fails the rule in the local cloud', () => {
    // Example: aws_lambda("arn:aws:lambda:us-east-1:account_id:function:lambda_function", {"payload":attribute1})
    expect(() =>
      call('aws_lambda', [
        str('arn:aws:lambda:us-east-1:account_id:function:lambda_function'),
        obj([['payload', int(21)]]),
      ]),
    ).toThrow(SqlEvaluationError);
  });

  it('bitand(Int, Int): `bitand(13, 5)` = 5', () => {
    expect(call('bitand', [int(13), int(5)])).toEqual(int(5));
  });

  it('bitor(Int, Int): `bitor(8, 5)` = 13', () => {
    expect(call('bitor', [int(8), int(5)])).toEqual(int(13));
  });

  it('bitxor(Int, Int): the example (printed as `bitor(13, 5)`) = 8', () => {
    // The bitxor section's example is written with the name bitor; 13 XOR 5 is 8 (13 OR 5 would be 13).
    expect(call('bitxor', [int(13), int(5)])).toEqual(int(8));
  });

  it('bitnot(Int): `bitnot(13)` is documented as 2; a 64-bit bitwise NOT of an Int gives -14', () => {
    // The page describes a bitwise NOT of the Int argument's bit representation; 2 is the NOT of
    // 13's four significant bits only (1101 → 0010), which no 64-bit (or BigInteger) NOT produces.
    // The implementation follows the description: ~13 = -14.
    expect(call('bitnot', [int(13)])).toEqual(int(-14));
  });

  it('ceil(Decimal): `ceil(1.2)` = 2, `ceil(-1.2)` = -1', () => {
    expect(call('ceil', [dec(1.2)])).toEqual(int(2));
    expect(call('ceil', [dec(-1.2)])).toEqual(int(-1));
  });

  it('chr(String): `chr(65)` = "A", `chr(49)` = "1"', () => {
    expect(call('chr', [int(65)])).toEqual(str('A'));
    expect(call('chr', [int(49)])).toEqual(str('1'));
  });

  it('clientid(): `clientid()` = "123456789012"; "n/a" when the message was not sent over MQTT', () => {
    expect(call('clientid')).toEqual(str('123456789012'));
    expect(call('clientid', [], ctx({ clientId: undefined }))).toEqual(str('n/a'));
  });

  it('concat(): the eight examples', () => {
    expect(call('concat')).toEqual(UNDEFINED);
    expect(call('concat', [int(1)])).toEqual(str('1'));
    expect(text(call('concat', [json('[1, 2, 3]'), int(4)]))).toBe('[1,2,3,4]');
    expect(text(call('concat', [json('[1, 2, 3]'), str('hello')]))).toBe('[1,2,3,"hello"]');
    expect(call('concat', [str('con'), str('cat')])).toEqual(str('concat'));
    expect(call('concat', [int(1), str('hello')])).toEqual(str('1hello'));
    expect(call('concat', [str('he'), str('is'), str('man')])).toEqual(str('heisman'));
    expect(text(call('concat', [json('[1, 2, 3]'), str('hello'), json('[4, 5, 6]')]))).toBe(
      '[1,2,3,"hello",4,5,6]',
    );
  });

  it('cos(Decimal): `cos(0)` = 1', () => {
    expect(call('cos', [int(0)])).toEqual(dec(1));
  });

  it('cosh(Decimal): `cosh(2.3)` = 5.037220649268761', () => {
    expect(call('cosh', [dec(2.3)])).toEqual(dec(5.037220649268761));
  });

  it('decode(value, decodingScheme): the encoded_temp example decodes to {"temperature": 33}', () => {
    // Payload { encoded_temp: "eyAidGVtcGVyYXR1cmUiOiAzMyB9Cg==" };
    // SELECT decode(encoded_temp,"base64").temperature AS temp → { "temp": 33 }
    const decoded = call('decode', [str('eyAidGVtcGVyYXR1cmUiOiAzMyB9Cg=='), str('base64')]);
    expect(decoded.type).toBe('Object');
    if (decoded.type === 'Object') expect(decoded.value.get('temperature')).toEqual(int(33));
    // Decoded text that is not a JSON document comes back as a String.
    expect(call('decode', [str(Buffer.from('not json').toString('base64')), str('base64')])).toEqual(
      str('not json'),
    );
  });

  it("encode(value, encodingScheme): `encode(*, 'base64')` encodes the whole payload (Binary payloads page)", () => {
    // SELECT encode(*, 'base64') AS data, timestamp() AS ts FROM 'a/b'
    const raw = new Uint8Array([0, 1, 2, 250, 251, 255]);
    expect(call('encode', [bin(raw), str('base64')])).toEqual(str(Buffer.from(raw).toString('base64')));
    // Any other expression is converted to a String first.
    expect(call('encode', [int(21), str('base64')])).toEqual(str(Buffer.from('21').toString('base64')));
  });

  it('endswith(String, String): `endswith("cat","at")` = true', () => {
    expect(call('endswith', [str('cat'), str('at')])).toEqual(TRUE);
  });

  it('exp(Decimal): `exp(1)` = e', () => {
    expect(call('exp', [int(1)])).toEqual(dec(Math.E));
  });

  it('floor(Decimal): `floor(1.2)` = 1, `floor(-1.2)` = -2', () => {
    expect(call('floor', [dec(1.2)])).toEqual(int(1));
    expect(call('floor', [dec(-1.2)])).toEqual(int(-2));
  });

  it('get: `get(["a", "b", "c"], 1)` = "b", `get({"a":"b"}, "a")` = "b"', () => {
    expect(call('get', [json('["a", "b", "c"]'), int(1)])).toEqual(str('b'));
    expect(call('get', [json('{"a":"b"}'), str('a')])).toEqual(str('b'));
  });

  it('get: `get("abc", 1)` is documented as "a"; the 0-based index the table describes gives "b"', () => {
    // The table gives the character at a 0-based index. Index 1 of "abc" is "b", as for
    // the Array example just above; the example's "a" would need a 1-based index.
    expect(call('get', [str('abc'), int(1)])).toEqual(str('b'));
    expect(call('get', [str('abc'), int(0)])).toEqual(str('a'));
  });

  it('get_dynamodb(...): needs Amazon DynamoDB, so it fails the rule in the local cloud', () => {
    // get_dynamodb("InServiceDevices", "deviceId", id, "arn:aws:iam::12345678910:role/getdynamo")
    expect(() =>
      call('get_dynamodb', [
        str('InServiceDevices'),
        str('deviceId'),
        str('d1'),
        str('arn:aws:iam::12345678910:role/getdynamo'),
      ]),
    ).toThrow(/not available in the local cloud/);
  });

  it('get_secret(...): needs AWS Secrets Manager, so it fails the rule in the local cloud', () => {
    // get_secret('API_KEY', 'SecretString', 'API_KEY_VALUE', 'arn:aws:iam::12345678910:role/getsecret')
    expect(() =>
      call('get_secret', [
        str('API_KEY'),
        str('SecretString'),
        str('API_KEY_VALUE'),
        str('arn:aws:iam::12345678910:role/getsecret'),
      ]),
    ).toThrow(SqlEvaluationError);
  });

  it('get_thing_shadow(thingName, shadowName, roleArn): named and classic shadow examples', () => {
    const shadows: Record<string, SqlValue> = {
      'MyThing/MyThingShadow': json('{"state":{"reported":{"alarm":"ON"}}}'),
      'MyThing/': json('{"state":{"reported":{"alarm":"ON"}}}'),
    };
    const calls: [string, string | undefined][] = [];
    const services: SqlServices = {
      getThingShadow(thing, shadow) {
        calls.push([thing, shadow]);
        return shadows[`${thing}/${shadow ?? ''}`];
      },
    };
    const c = ctx({}, { services });
    const alarm = (v: SqlValue): SqlValue => {
      if (v.type !== 'Object') return UNDEFINED;
      const state = v.value.get('state');
      const reported = state?.type === 'Object' ? state.value.get('reported') : undefined;
      return (reported?.type === 'Object' ? reported.value.get('alarm') : undefined) ?? UNDEFINED;
    };
    // get_thing_shadow("MyThing","MyThingShadow","arn:aws:iam::123456789012:role/AllowsThingShadowAccess").state.reported.alarm = 'ON'
    const named = call(
      'get_thing_shadow',
      [str('MyThing'), str('MyThingShadow'), str('arn:aws:iam::123456789012:role/AllowsThingShadowAccess')],
      c,
    );
    expect(alarm(named)).toEqual(str('ON'));
    // get_thing_shadow("MyThing","arn:aws:iam::123456789012:role/AllowsThingShadowAccess").state.reported.alarm = 'ON'
    const classic = call(
      'get_thing_shadow',
      [str('MyThing'), str('arn:aws:iam::123456789012:role/AllowsThingShadowAccess')],
      c,
    );
    expect(alarm(classic)).toEqual(str('ON'));
    expect(calls).toEqual([
      ['MyThing', 'MyThingShadow'],
      ['MyThing', undefined],
    ]);
  });

  it('Hashing functions: `md2("hello")`, `md5("hello")`', () => {
    expect(call('md2', [str('hello')])).toEqual(str('a9046c73e00331af68917d3804f70655'));
    expect(call('md5', [str('hello')])).toEqual(str('5d41402abc4b2a76b9719d911017c592'));
  });

  it('indexof(String, String): `indexof("abcd", "bc")` = 1', () => {
    expect(call('indexof', [str('abcd'), str('bc')])).toEqual(int(1));
  });

  it('isNull(): `isNull(5)` = false, `isNull(Null)` = true', () => {
    expect(call('isNull', [int(5)])).toEqual(FALSE);
    expect(call('isNull', [NULL])).toEqual(TRUE);
  });

  it('isUndefined(): `isUndefined(5)` = false, `isUndefined(floor([1,2,3]))` = true', () => {
    expect(call('isUndefined', [int(5)])).toEqual(FALSE);
    expect(call('isUndefined', [call('floor', [json('[1,2,3]')])])).toEqual(TRUE);
  });

  it('length(String): `length("hi")` = 2, `length(false)` = 5', () => {
    expect(call('length', [str('hi')])).toEqual(int(2));
    expect(call('length', [FALSE])).toEqual(int(5));
  });

  it('ln(Decimal): `ln(e)` = 1', () => {
    expect(call('ln', [dec(Math.E)])).toEqual(dec(1));
  });

  it('log(Decimal): `log(100)` = 2.0', () => {
    expect(call('log', [int(100)])).toEqual(dec(2));
  });

  it('lower(String): `lower("HELLO")` = "hello", `lower(["HELLO"])` = "[\\"hello\\"]"', () => {
    expect(call('lower', [str('HELLO')])).toEqual(str('hello'));
    expect(call('lower', [json('["HELLO"]')])).toEqual(str('["hello"]'));
  });

  it('lpad(String, Int): `lpad("hello", 2)` = "  hello", `lpad(1, 3)` = "   1"', () => {
    expect(call('lpad', [str('hello'), int(2)])).toEqual(str('  hello'));
    expect(call('lpad', [int(1), int(3)])).toEqual(str('   1'));
  });

  it('ltrim(String): `Ltrim(" h i ")` is printed as "hi "; removing leading white space leaves "h i "', () => {
    // The function only removes *leading* white space (rtrim's example keeps the inner space: " h i").
    expect(call('Ltrim', [str(' h i ')])).toEqual(str('h i '));
  });

  it('machinelearning_predict(modelId, roleArn, record): needs Amazon ML, so it fails the rule', () => {
    expect(() => call('machinelearning_predict', [str('model'), str('role'), json('{"key2": 0}')])).toThrow(
      SqlEvaluationError,
    );
  });

  it('mod(Decimal, Decimal): `mod(8, 3)` = 2', () => {
    expect(call('mod', [int(8), int(3)])).toEqual(int(2));
  });

  it('nanvl(AnyValue, AnyValue): `Nanvl(8, 3)` = 8', () => {
    expect(call('Nanvl', [int(8), int(3)])).toEqual(int(8));
  });

  it('newuuid(): a random 16-byte UUID such as `123a4567-b89c-12d3-e456-789012345000`', () => {
    expect(call('newuuid')).toEqual(str('123a4567-b89c-12d3-e456-789012345000'));
  });

  it('numbytes(String): `numbytes("hi")` = 2, `numbytes("€")` = 3', () => {
    expect(call('numbytes', [str('hi')])).toEqual(int(2));
    expect(call('numbytes', [str('€')])).toEqual(int(3));
  });

  it('parse_time(String, Long[, String]): the America/Belize, timestamp() and "yyyy" examples', () => {
    // parse_time("yyyy.MM.dd G 'at' HH:mm:ss z", 100000000, "America/Belize") → "1970.01.01 AD at 21:46:40 CST"
    expect(
      call('parse_time', [str("yyyy.MM.dd G 'at' HH:mm:ss z"), int(100000000), str('America/Belize')]),
    ).toEqual(str('1970.01.01 AD at 21:46:40 CST'));
    // parse_time("yyyy.MM.dd G 'at' HH:mm:ss z", timestamp()) → similar to "2017.06.09 AD at 17:19:46 UTC"
    const at = ctx({}, { now: () => Date.UTC(2017, 5, 9, 17, 19, 46) });
    expect(call('parse_time', [str("yyyy.MM.dd G 'at' HH:mm:ss z"), call('timestamp', [], at)], at)).toEqual(
      str('2017.06.09 AD at 17:19:46 UTC'),
    );
    // key = "${parse_time("yyyy", timestamp(), "UTC")}" → "2017"
    expect(call('parse_time', [str('yyyy'), call('timestamp', [], at), str('UTC')], at)).toEqual(str('2017'));
  });

  it('power(Decimal, Decimal): `power(2, 5)` = 32.0', () => {
    expect(call('power', [int(2), int(5)])).toEqual(dec(32));
  });

  it('principal(): an X.509 certificate thumbprint', () => {
    expect(call('principal')).toEqual(
      str('ba67293af50bf2506f5f93469686da660c7c844e7b3950bfb16813e0d31e9373'),
    );
    expect(call('principal', [], ctx({ principal: 'ABCD1EFG3HIJK2LMNOP5:my-session-name' }))).toEqual(
      str('ABCD1EFG3HIJK2LMNOP5:my-session-name'),
    );
  });

  it('rand(): `rand()` = 0.8231909191640703 (a double in [0, 1))', () => {
    expect(call('rand')).toEqual(dec(0.8231909191640703));
  });

  it('regexp_matches(String, String): `regexp_matches("aaaa", "a{2,}")` = true, with "b" false', () => {
    expect(call('regexp_matches', [str('aaaa'), str('a{2,}')])).toEqual(TRUE);
    expect(call('regexp_matches', [str('aaaa'), str('b')])).toEqual(FALSE);
  });

  it('regexp_replace(String, String, String): "axd" and the `$1` capture group example "ac"', () => {
    expect(call('regexp_replace', [str('abcd'), str('bc'), str('x')])).toEqual(str('axd'));
    expect(call('regexp_replace', [str('abcd'), str('b(.*)d'), str('$1')])).toEqual(str('ac'));
  });

  it('regexp_substr(String, String): "hi" and `(hi)*` → "hihi"', () => {
    expect(call('regexp_substr', [str('hihihello'), str('hi')])).toEqual(str('hi'));
    expect(call('regexp_substr', [str('hihihello'), str('(hi)*')])).toEqual(str('hihi'));
  });

  it('remainder(Decimal, Decimal): `remainder(8, 3)` = 2', () => {
    expect(call('remainder', [int(8), int(3)])).toEqual(int(2));
  });

  it('replace(String, String, String): "axd" and "axcdaxcd"', () => {
    expect(call('replace', [str('abcd'), str('bc'), str('x')])).toEqual(str('axd'));
    expect(call('replace', [str('abcdabcd'), str('b'), str('x')])).toEqual(str('axcdaxcd'));
  });

  it('rpad(String, Int): `rpad("hello", 2)` = "hello  ", `rpad(1, 3)` = "1   "', () => {
    expect(call('rpad', [str('hello'), int(2)])).toEqual(str('hello  '));
    expect(call('rpad', [int(1), int(3)])).toEqual(str('1   '));
  });

  it('round(Decimal): Round(1.2) = 1, Round(1.5) = 2, Round(1.7) = 2, Round(-1.1) = -1, Round(-1.5) = -2', () => {
    expect(call('Round', [dec(1.2)])).toEqual(int(1));
    expect(call('Round', [dec(1.5)])).toEqual(int(2));
    expect(call('Round', [dec(1.7)])).toEqual(int(2));
    expect(call('Round', [dec(-1.1)])).toEqual(int(-1));
    expect(call('Round', [dec(-1.5)])).toEqual(int(-2));
  });

  it('rtrim(String): `rtrim(" h i ")` = " h i"', () => {
    expect(call('rtrim', [str(' h i ')])).toEqual(str(' h i'));
  });

  it('sign(Decimal): `sign(-7)` = -1, `sign(0)` = 0, `sign(13)` = 1', () => {
    expect(call('sign', [int(-7)])).toEqual(int(-1));
    expect(call('sign', [int(0)])).toEqual(int(0));
    expect(call('sign', [int(13)])).toEqual(int(1));
  });

  it('sin(Decimal): `sin(0)` = 0.0', () => {
    expect(call('sin', [int(0)])).toEqual(dec(0));
  });

  it('sinh(Decimal): `sinh(2.3)` = 4.936961805545957', () => {
    expect(call('sinh', [dec(2.3)])).toEqual(dec(4.936961805545957));
  });

  it('substring(String, Int[, Int]): the ten examples', () => {
    expect(call('substring', [str('012345'), int(0)])).toEqual(str('012345'));
    expect(call('substring', [str('012345'), int(2)])).toEqual(str('2345'));
    expect(call('substring', [str('012345'), dec(2.745)])).toEqual(str('2345'));
    expect(call('substring', [int(123), int(2)])).toEqual(str('3'));
    expect(call('substring', [str('012345'), int(-1)])).toEqual(str('012345'));
    expect(call('substring', [TRUE, dec(1.2)])).toEqual(str('rue'));
    expect(call('substring', [FALSE, dec(-2.411e247)])).toEqual(str('false'));
    expect(call('substring', [str('012345'), int(1), int(3)])).toEqual(str('12'));
    expect(call('substring', [str('012345'), int(-50), int(50)])).toEqual(str('012345'));
    expect(call('substring', [str('012345'), int(3), int(1)])).toEqual(str(''));
  });

  it('sql_version(): `sql_version()` = "2016-03-23"', () => {
    expect(call('sql_version')).toEqual(str('2016-03-23'));
  });

  it('sqrt(Decimal): `sqrt(9)` = 3.0', () => {
    expect(call('sqrt', [int(9)])).toEqual(dec(3));
  });

  it('startswith(String, String): `startswith("ranger","ran")` = true', () => {
    expect(call('startswith', [str('ranger'), str('ran')])).toEqual(TRUE);
  });

  it('tan(Decimal): `tan(3)` = -0.1425465430742778', () => {
    expect(call('tan', [int(3)])).toEqual(dec(-0.1425465430742778));
  });

  it('tanh(Decimal): `tanh(2.3)` = 0.9800963962661914', () => {
    expect(call('tanh', [dec(2.3)])).toEqual(dec(0.9800963962661914));
  });

  it('time_to_epoch(String, String): the three examples', () => {
    expect(
      call('time_to_epoch', [str('2020-04-03 09:45:18 UTC+01:00'), str('yyyy-MM-dd HH:mm:ss VV')]),
    ).toEqual(int(1585903518000));
    expect(call('time_to_epoch', [str('18 December 2015'), str('dd MMMM yyyy')])).toEqual(int(1450396800000));
    expect(
      call('time_to_epoch', [
        str('2007-12-03 10:15:30.592 America/Los_Angeles'),
        str('yyyy-MM-dd HH:mm:ss.SSS z'),
      ]),
    ).toEqual(int(1196705730592));
  });

  it('timestamp(): `timestamp()` = 1481825251155', () => {
    expect(call('timestamp')).toEqual(int(1481825251155));
  });

  it('topic(Decimal): topic() and topic(1) on things/myThings/thingOne, and the Basic Ingest example', () => {
    expect(call('topic')).toEqual(str('things/myThings/thingOne'));
    expect(call('topic', [int(1)])).toEqual(str('things'));
    const ingest = ctx({ topic: '$aws/rules/BuildingManager/Buildings/Building5/Floor2/Room201/Lights' });
    expect(call('topic', [], ingest)).toEqual(str('Buildings/Building5/Floor2/Room201/Lights'));
    expect(call('topic', [int(3)], ingest)).toEqual(str('Floor2'));
  });

  it('traceid(): `traceid()` = "12345678-1234-1234-1234-123456789012"; Undefined when not sent over MQTT', () => {
    expect(call('traceid')).toEqual(str('12345678-1234-1234-1234-123456789012'));
    expect(call('traceid', [], ctx({ traceId: undefined }))).toEqual(UNDEFINED);
  });

  describe('transform(String, Object, Array)', () => {
    const message = json(
      '{"attributes": {"data1": 1, "data2": 2}, "values": [{"a": 3}, {"b": 4}, {"c": 5}]}',
    ) as Extract<SqlValue, { type: 'Object' }>;
    const attributes = message.value.get('attributes')!;
    const values = message.value.get('values')!;

    it('example 1: transform("enrichArray", attributes, values)', () => {
      expect(text(call('transform', [str('enrichArray'), attributes, values]))).toBe(
        '[{"a":3,"data1":1,"data2":2},{"b":4,"data1":1,"data2":2},{"c":5,"data1":1,"data2":2}]',
      );
    });

    it('example 2: transform("enrichArray", {"key": attributes.data1}, values)', () => {
      expect(text(call('transform', [str('enrichArray'), obj([['key', int(1)]]), values]))).toBe(
        '[{"a":3,"key":1},{"b":4,"key":1},{"c":5,"key":1}]',
      );
    });

    it("example 3: transform('enrichArray', (select a, b from data2), (select value c from data2))", () => {
      // The nested SELECTs evaluate to {"a": ..., "b": ...} and to the data2.c array.
      const ab = json('{"a": "first attribute", "b": "second attribute"}');
      const c = json(
        '[{"x": {"someInt": 5, "someString": "hello"}, "y": true}, {"x": {"someInt": 10, "someString": "world"}, "y": false}]',
      );
      expect(text(call('transform', [str('enrichArray'), ab, c]))).toBe(
        '[{"x":{"someInt":5,"someString":"hello"},"y":true,"a":"first attribute","b":"second attribute"},' +
          '{"x":{"someInt":10,"someString":"world"},"y":false,"a":"first attribute","b":"second attribute"}]',
      );
    });

    it('any other mode → Undefined', () => {
      expect(call('transform', [str('somethingElse'), attributes, values])).toEqual(UNDEFINED);
    });
  });

  it('trim(String): `Trim(" hi ")` = "hi"', () => {
    expect(call('Trim', [str(' hi ')])).toEqual(str('hi'));
  });

  it('trunc(Decimal, Int): 2, 2.31, 2.88, 2', () => {
    expect(call('trunc', [dec(2.3), int(0)])).toEqual(int(2));
    expect(call('trunc', [dec(2.3123), int(2)])).toEqual(dec(2.31));
    expect(call('trunc', [dec(2.888), int(2)])).toEqual(dec(2.88));
    expect(call('trunc', [dec(2.0), int(5)])).toEqual(int(2));
  });

  it('upper(String): `upper("hello")` = "HELLO", `upper(["hello"])` = "[\\"HELLO\\"]"', () => {
    expect(call('upper', [str('hello')])).toEqual(str('HELLO'));
    expect(call('upper', [json('["hello"]')])).toEqual(str('["HELLO"]'));
  });
});

describe('Data types page: conversions', () => {
  it("'abs(\"-5.123\")' is treated as 'abs(-5.123)'", () => {
    expect(call('abs', [str('-5.123')])).toEqual(dec(5.123));
  });

  it('"0", "-1.2", "5E-12" convert to Decimals', () => {
    expect(call('abs', [str('0')])).toEqual(dec(0));
    expect(call('abs', [str('-1.2')])).toEqual(dec(1.2));
    expect(call('abs', [str('5E-12')])).toEqual(dec(5e-12));
  });

  it('a Boolean does not convert to a number', () => {
    expect(call('abs', [bool(true)])).toEqual(UNDEFINED);
  });

  it('arrays convert to their JSON text (strings quoted, numbers and booleans not)', () => {
    expect(call('concat', [arr([str('a'), int(1), dec(1.5), TRUE, NULL]), str('')])).toEqual(
      arr([str('a'), int(1), dec(1.5), TRUE, NULL, str('')]),
    );
    expect(call('lower', [arr([str('A'), int(1), dec(1.5), TRUE, NULL])])).toEqual(
      str('["a",1,1.5,true,null]'),
    );
  });
});
