/**
 * AWS IoT SQL statements reproduced from the AWS IoT developer guide's SQL reference: "SELECT clause",
 * "FROM clause", "WHERE clause", "Literals", "Case statements", "JSON extensions", "Nested object
 * queries", "SET clause", "Operators", "Data types", "Binary payloads", "SQL versions" and
 * "Substitution templates". Each test names the page its example comes from.
 */
import { describe, expect, it } from '@jest/globals';
import {
  compile,
  compileTemplate,
  SqlParseError,
  type SqlVersion,
  serializeOutput,
} from '../../cloud/rules/sql/index.js';

const env = { accountId: '123456789012', region: 'us-east-1', now: () => 1579637878451 };

/** The rule's output as JSON text, or null when the message does not match. */
function run(sql: string, topic: string, payload: unknown, version?: SqlVersion): string | null {
  const bytes = typeof payload === 'string' ? Buffer.from(payload) : Buffer.from(JSON.stringify(payload));
  const r = compile(sql, version).evaluate({ topic, payload: bytes, timestamp: env.now() }, env);
  return r.matched ? serializeOutput(r.output).toString() : null;
}

/** Parsed output; null for no match and for an empty (Undefined) payload. */
const json = (text: string | null) => (text === null || text === '' ? null : JSON.parse(text));

describe('the examples every rule engine must reproduce', () => {
  // SELECT clause / WHERE clause pages, 'topic/subtopic' examples.
  it.each([
    [
      "SELECT color AS rgb FROM 'topic/subtopic' WHERE temperature > 50",
      { color: 'red', temperature: 100 },
      { rgb: 'red' },
    ],
    [
      "SELECT *, 15 as speed FROM 'topic/subtopic'",
      { color: 'red', temperature: 50 },
      { color: 'red', temperature: 50, speed: 15 },
    ],
    ["SELECT VALUE color FROM 'topic/subtopic'", { color: 'red', temperature: 50 }, 'red'],
    [
      "SELECT (temperature - 32) * 5 / 9 AS celsius, upper(color) as my_color FROM 'topic/subtopic'",
      { color: 'red', temperature: 50 },
      { celsius: 10, my_color: 'RED' },
    ],
    [
      "SELECT color FROM 'topic/subtopic' WHERE temperature > 50 AND color <> 'red'",
      { color: 'blue', temperature: 40 },
      null,
    ],
  ])('%s', (sql, payload, expected) => {
    expect(json(run(sql, 'topic/subtopic', payload))).toEqual(expected);
  });
});

describe('SELECT clause', () => {
  const payload = { color: 'red', temperature: 50 };
  it('SELECT * returns the whole payload', () => {
    expect(json(run("SELECT * FROM 'topic/subtopic'", 'topic/subtopic', payload))).toEqual(payload);
  });
  it('SELECT color returns the key-value pair', () => {
    expect(json(run("SELECT color FROM 'topic/subtopic'", 'topic/subtopic', payload))).toEqual({
      color: 'red',
    });
  });
  it('AS renames keys; several items are comma-separated', () => {
    expect(
      json(
        run(
          "SELECT color as my_color, temperature as fahrenheit FROM 'topic/subtopic'",
          'topic/subtopic',
          payload,
        ),
      ),
    ).toEqual({
      my_color: 'red',
      fahrenheit: 50,
    });
  });
  it("'.' drills into nested objects", () => {
    // {"color":{"red":255,"green":0,"blue":0}, "temperature":50} -> {"red_value":255}
    expect(
      json(
        run("SELECT color.red as red_value FROM 'topic/subtopic'", 'topic/subtopic', {
          color: { red: 255, green: 0, blue: 0 },
          temperature: 50,
        }),
      ),
    ).toEqual({ red_value: 255 });
  });
  it('SELECT VALUE outputs a string payload with its quotes', () => {
    expect(run("SELECT VALUE color FROM 'topic/subtopic'", 'topic/subtopic', payload)).toBe('"red"');
  });
  it('Undefined values are omitted from the output object', () => {
    expect(json(run("SELECT color, missing FROM 'a/b'", 'a/b', payload))).toEqual({ color: 'red' });
  });
  it('NULL is a value: SELECT NULL AS n', () => {
    // "Data types": "SELECT NULL AS n FROM 'topic/subtopic'"
    expect(json(run("SELECT NULL AS n FROM 'topic/subtopic'", 'topic/subtopic', {}))).toEqual({ n: null });
  });
  it('SELECT VALUE of Undefined serializes as an empty payload', () => {
    // "Data types": Undefined is converted to an empty string when serialized by itself.
    expect(run("SELECT VALUE missing FROM 'a/b'", 'a/b', {})).toBe('');
  });
});

describe('FROM clause', () => {
  const sql = "SELECT temperature AS t FROM 'a/#'";
  it.each([
    ['a/b', { t: 50 }],
    ['a/c', { t: 60 }],
    ['a/e/f', { t: 70 }],
    ['b/x', null],
  ])("'a/#' on %s", (topic, expected) => {
    const temperature = { 'a/b': 50, 'a/c': 60, 'a/e/f': 70, 'b/x': 80 }[topic];
    expect(json(run(sql, topic, { temperature }))).toEqual(expected);
  });
  it.each([
    ['a/b', true],
    ['a/c', true],
    ['a/e/f', false],
    ['b/x', false],
  ])("'a/+' on %s", (topic, fires) => {
    expect(run("SELECT temperature AS t FROM 'a/+'", topic, { temperature: 1 }) !== null).toBe(fires);
  });
  it('requires single quotes and a valid topic filter', () => {
    expect(() => compile('SELECT * FROM a/b')).toThrow(SqlParseError);
    expect(() => compile('SELECT * FROM "a/b"')).toThrow(/single quotes/);
    expect(() => compile("SELECT * FROM 'a/#/b'")).toThrow(/not a valid MQTT topic filter/);
  });
});

describe('Literals (2016-03-23)', () => {
  it('object literal', () => {
    expect(
      json(
        run(
          "SELECT {'latitude': get(lat_long, 0),'longitude':get(lat_long, 1)} as lat_long FROM 'topic/subtopic'",
          'topic/subtopic',
          { lat_long: [47.606, -122.332] },
        ),
      ),
    ).toEqual({ lat_long: { latitude: 47.606, longitude: -122.332 } });
  });
  it('array literal', () => {
    expect(
      json(
        run("SELECT [lat,long] as lat_long FROM 'topic/subtopic'", 'topic/subtopic', {
          lat: 47.606,
          long: -122.332,
        }),
      ),
    ).toEqual({
      lat_long: [47.606, -122.332],
    });
  });
  it('are a parse error with SQL version 2015-10-08', () => {
    expect(() => compile("SELECT [lat,long] as lat_long FROM 'a/b'", '2015-10-08')).toThrow(/2016-03-23/);
  });
});

describe('Case statements', () => {
  const sql =
    "SELECT CASE color WHEN 'green' THEN 'go' WHEN 'yellow' THEN 'caution' WHEN 'red' THEN 'stop' ELSE 'you are not at a stop light' END as instructions FROM 'a/b'";
  it.each([
    ['yellow', 'caution'],
    ['red', 'stop'],
    ['blue', 'you are not at a stop light'],
  ])('color %s', (color, instructions) => {
    expect(json(run(sql, 'a/b', { color }))).toEqual({ instructions });
  });
  it('no match and no ELSE gives Undefined; an Undefined subject gives Undefined', () => {
    expect(
      json(run("SELECT CASE color WHEN 'green' THEN 'go' END AS i FROM 'a/b'", 'a/b', { color: 'red' })),
    ).toEqual({});
    expect(
      json(run("SELECT CASE nope WHEN 'green' THEN 'go' ELSE 'x' END AS i FROM 'a/b'", 'a/b', {})),
    ).toEqual({});
  });
  it('needs at least one WHEN', () => {
    expect(() => compile("SELECT CASE color ELSE 1 END FROM 'a/b'")).toThrow(/WHEN/);
  });
});

describe('JSON extensions', () => {
  it('SELECT foo.bar AS bar.baz nests the output', () => {
    expect(json(run("SELECT foo.bar AS bar.baz FROM 'a/b'", 'a/b', { foo: { bar: 'x' } }))).toEqual({
      bar: { baz: 'x' },
    });
  });
  it('applies a function to an attribute: md5(deviceid)', () => {
    const payload = {
      deviceid: 'iot123',
      temp: 54.98,
      humidity: 32.43,
      coords: { latitude: 47.615694, longitude: -122.3359976 },
    };
    expect(json(run("SELECT temp, md5(deviceid) AS hashed_id FROM 'topic/#'", 'topic/x', payload))).toEqual({
      temp: 54.98,
      hashed_id: 'e37f81fb397e595c4aeb5645b8cbbbd1',
    });
  });
});

describe('Nested object queries', () => {
  const payload = {
    e: [
      { n: 'temperature', u: 'Cel', t: 1234, v: 22.5 },
      { n: 'light', u: 'lm', t: 1235, v: 135 },
      { n: 'acidity', u: 'pH', t: 1235, v: 7 },
    ],
  };
  it('SELECT (SELECT VALUE n FROM e) as sensors', () => {
    expect(
      json(run("SELECT (SELECT VALUE n FROM e) as sensors FROM 'my/topic'", 'my/topic', payload)),
    ).toEqual({
      sensors: ['temperature', 'light', 'acidity'],
    });
  });
  it('SELECT (SELECT v FROM e WHERE n = ...) as temperature', () => {
    expect(
      json(
        run(
          "SELECT (SELECT v FROM e WHERE n = 'temperature') as temperature FROM 'my/topic'",
          'my/topic',
          payload,
        ),
      ),
    ).toEqual({
      temperature: [{ v: 22.5 }],
    });
  });
  it('flattened with get(...).v', () => {
    expect(
      json(
        run(
          "SELECT get((SELECT v FROM e WHERE n = 'temperature'), 0).v as temperature FROM 'topic'",
          'topic',
          payload,
        ),
      ),
    ).toEqual({
      temperature: 22.5,
    });
  });
  it('are a parse error with SQL version 2015-10-08', () => {
    expect(() => compile("SELECT (SELECT VALUE n FROM e) as s FROM 'my/topic'", '2015-10-08')).toThrow(
      /2016-03-23/,
    );
  });
});

describe('SET clause', () => {
  it('variables hold expression results', () => {
    // The page's example output rounds to 23.89; with Int operands the "/ operator" table gives an Int.
    expect(
      json(
        run(
          "SET @temp_celsius = (temp_fahrenheit - 32) * 5 / 9 SELECT @temp_celsius AS celsius, humidity FROM 'device/data'",
          'device/data',
          { temp_fahrenheit: 75, humidity: 60 },
        ),
      ),
    ).toEqual({ celsius: 23, humidity: 60 });
    expect(
      json(
        run(
          "SET @t = (temp_fahrenheit - 32.0) * 5 / 9 SELECT round(@t * 100) / 100.0 AS celsius FROM 'device/data'",
          'device/data',
          { temp_fahrenheit: 75.5 },
        ),
      ),
    ).toEqual({ celsius: 24.17 });
  });
  it('variables reach members of embedded objects', () => {
    const payload = {
      device1: {
        deviceId: 'weather_sensor',
        deviceData: { sensors: { temp_fahrenheit: 75, humidity: 60 }, location: [47.606, -122.332] },
      },
    };
    expect(
      json(
        run(
          "SET @device_sensor_data = device1.deviceData.sensors SELECT @device_sensor_data.temp_fahrenheit AS temp_fahrenheit, @device_sensor_data.humidity as humidity FROM 'device/data'",
          'device/data',
          payload,
        ),
      ),
    ).toEqual({ temp_fahrenheit: 75, humidity: 60 });
  });
  it('variables are immutable, set once, defined before use', () => {
    expect(() => compile("SET @a = 1, @a = 2 SELECT @a FROM 'x'")).toThrow(/assigned twice/);
    expect(() => compile("SET @a = 1 SET @b = 2 SELECT @a FROM 'x'")).toThrow(/only once/);
    expect(() => compile("SELECT @nope FROM 'x'")).toThrow(/not defined/);
    expect(() => compile(`SET @${'v'.repeat(65)} = 1 SELECT 1 FROM 'x'`)).toThrow(/64/);
  });
});

describe('Operators', () => {
  const p = { i: 7, d: 2.5, s: '3', t: 'true', word: 'x', arr: [1, 2], o: { a: 1 } };
  const v = (expr: string) => json(run(`SELECT VALUE ${expr} FROM 'a'`, 'a', p));
  it.each([
    ['i / 2', 3],
    ['i % 4', 3],
    ['i + d', 9.5],
    ['s + i', '37'],
    ['i + s', '73'],
    ['s - 1', 2],
    ['s * d', 7.5],
    ['word - 1', undefined],
    ['i > s', true],
    ["i > 'abc'", undefined],
    ['t AND true', true],
    ["'TRUE' OR false", true],
    ['NOT t', false],
    ['i = 7.0', true],
    ["i = '7'", false],
    ["i <> '7'", true],
    ['arr = [1, 2]', true],
    ["o = {'a': 1}", true],
    ['missing = 1', undefined],
    ['NULL = NULL', true],
    ['NULL <> NULL', false],
    ["word IN ('x', 'y')", true],
    ['3 IN arr', false],
    ['-i', -7],
    ['i / 0', undefined],
  ])('%s', (expr, expected) => {
    const out = v(expr);
    if (expected === undefined) expect(out).toBeNull();
    else expect(out).toEqual(expected);
  });
});

describe('Binary payloads', () => {
  const bytes = Buffer.from([0, 1, 2, 250, 251]);
  it('SELECT * passes raw bytes through', () => {
    const r = compile("SELECT * FROM 'a/b'").evaluate({ topic: 'a/b', payload: bytes, timestamp: 0 }, env);
    expect(r.matched && serializeOutput(r.output).equals(bytes)).toBe(true);
  });
  it('SELECT encode(*, base64) AS data, timestamp() AS ts', () => {
    const r = compile("SELECT encode(*, 'base64') AS data, timestamp() AS ts FROM 'a/b'").evaluate(
      { topic: 'a/b', payload: bytes, timestamp: 0 },
      env,
    );
    expect(r.matched && json(serializeOutput(r.output).toString())).toEqual({
      data: bytes.toString('base64'),
      ts: 1579637878451,
    });
  });
  it('encode(*, base64) encodes the payload bytes as received, also for JSON payloads', () => {
    const text = '{ "a" : 1 }';
    const r = compile("SELECT VALUE encode(*, 'base64') FROM 'a/b'").evaluate(
      { topic: 'a/b', payload: Buffer.from(text), timestamp: 0 },
      env,
    );
    expect(r.matched && json(serializeOutput(r.output).toString())).toBe(
      Buffer.from(text).toString('base64'),
    );
  });
  it("SELECT * FROM 'a/b' WHERE timestamp() % 12 = 0 works on binary payloads", () => {
    const r = compile("SELECT * FROM 'a/b' WHERE timestamp() % 12 = 0").evaluate(
      { topic: 'a/b', payload: bytes, timestamp: 0 },
      { ...env, now: () => 1200 },
    );
    expect(r.matched).toBe(true);
  });
});

describe('SQL versions', () => {
  it('2016-03-23 outputs an array as the top-level value', () => {
    expect(json(run("SELECT VALUE arr FROM 'topic'", 'topic', { a: { b: 'c' }, arr: [1, 2, 3, 4] }))).toEqual(
      [1, 2, 3, 4],
    );
  });
  it('2015-10-08 does not', () => {
    expect(() => run("SELECT VALUE arr FROM 'topic'", 'topic', { arr: [1, 2] }, '2015-10-08')).toThrow(
      /top-level/,
    );
  });
  it('encode() exists from 2016-03-23', () => {
    expect(() => compile("SELECT encode(*, 'base64') AS d FROM 'a'", '2015-10-08')).toThrow(/2016-03-23/);
  });
  it('2016-03-23 processes whole-number decimals such as 10.0 as Int', () => {
    expect(run("SELECT v FROM 'a'", 'a', '{"v": 10.0}')).toBe('{"v":10}');
  });
});

describe('Substitution templates', () => {
  it('${topic()}/republish', () => {
    const t = compileTemplate('${topic()}/republish');
    expect(
      t.render({ topic: 'my/iot/topic', payload: Buffer.from('{"deviceid":"iot123"}'), timestamp: 0 }, env),
    ).toBe('my/iot/topic/republish');
  });
  it('evaluates against the original message, not the SELECT output, and sees SET variables', () => {
    const sql = compile("SET @d = upper(deviceid) SELECT deviceid AS renamed FROM 'my/iot/topic'");
    const msg = { topic: 'my/iot/topic', payload: Buffer.from('{"deviceid":"iot123"}'), timestamp: 0 };
    const r = sql.evaluate(msg, env);
    if (!r.matched) throw new Error('expected a match');
    expect(compileTemplate('devices/${deviceid}/${renamed}/${@d}').render(msg, env, r.variables)).toBe(
      'devices/iot123//IOT123',
    );
  });
  it('reports template syntax errors with their position', () => {
    expect(() => compileTemplate('a/${topic(}/b')).toThrow(SqlParseError);
    expect(() => compileTemplate('a/${x')).toThrow(/unterminated/);
  });
});

describe('parse errors name the position and what was expected', () => {
  it.each([
    ["SELECT FROM 'a'", 1, 8, /expected an expression/],
    ["SELECT a FROM 'a' WHERE", 1, 24, /expected an expression but found end of statement/],
    ["SELECT a,\n b FROM 'a' WHERE a >", 2, 22, /expected an expression/],
    ["SELECT 'unterminated FROM 'a'", 1, 29, /unterminated string/],
    ["SELECT a FROM 'a' LIMIT 1", 1, 19, /expected end of statement but found 'LIMIT'/],
    ["SELECT cast(a AS Float) FROM 'a'", 1, 18, /unknown cast type/],
  ])('%s', (sql, line, column, message) => {
    try {
      compile(sql);
      throw new Error('expected a parse error');
    } catch (e) {
      expect(e).toBeInstanceOf(SqlParseError);
      const pe = e as SqlParseError;
      expect(pe.message).toMatch(message);
      expect([pe.line, pe.column]).toEqual([line, column]);
    }
  });
});
