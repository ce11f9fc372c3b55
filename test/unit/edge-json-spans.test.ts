/**
 * The ingest path on a record's text: scanJson must accept exactly what JSON.parse accepts, and
 * Pseudonymizer.applyToText must give the records applyAsync gives, with no raw value left in the text.
 */
import pino from 'pino';
import { mulberry32 as prng } from '../../analytics/anomaly/synthetic.js';
import {
  KeyRing,
  MemoryReidentificationStore,
  Pseudonymizer,
  UnsupportedValueError,
} from '../../edge-component/pseudonymize/index.js';
import { parseJsonPath } from '../../edge-component/pseudonymize/json-path.js';
import { NdjsonLine, PathTrie, scanJson } from '../../edge-component/pseudonymize/json-spans.js';

const NONE = new PathTrie([]);
const trieOf = (...paths: string[]) => new PathTrie(paths.map((p) => parseJsonPath(p).segments));

function parses(text: Buffer): boolean {
  try {
    JSON.parse(text.toString());
    return true;
  } catch {
    return false;
  }
}

const WS = [' ', '\n', '\r', '\t', ''];
const STRINGS = [
  '',
  'a',
  'OP-1',
  'é✓',
  '\u2028',
  'q"uote',
  'back\\slash',
  'tab\t',
  'nul\u0000',
  '😀',
  '\ud800',
];
const NUMBERS = ['0', '-0', '1', '-12', '3.25', '1e3', '1E-2', '-0.5e+7', '10', '1.0'];

/** A random JSON text with random whitespace and number spellings. */
function randomJson(r: () => number, depth = 0): string {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)] as T;
  const w = () => pick(WS);
  const k = r();
  if (depth < 4 && k < 0.25) {
    const n = Math.floor(r() * 4);
    const members = Array.from(
      { length: n },
      () =>
        `${w()}${JSON.stringify(pick(['a', 'b', 'id', 'operatorId', '0', 'x y']))}${w()}:${w()}${randomJson(r, depth + 1)}${w()}`,
    );
    return `{${members.join(',')}${n === 0 ? w() : ''}}`;
  }
  if (depth < 4 && k < 0.45) {
    const n = Math.floor(r() * 4);
    return `[${Array.from({ length: n }, () => `${w()}${randomJson(r, depth + 1)}${w()}`).join(',')}${n === 0 ? w() : ''}]`;
  }
  if (k < 0.7) return JSON.stringify(pick(STRINGS));
  if (k < 0.9) return pick(NUMBERS);
  return pick(['true', 'false', 'null']);
}

const JUNK = [...'{}[]",:\\-+.0123456789eEtrufalsn \n\tx\u0001'];

function mutate(r: () => number, text: string): string {
  const at = Math.floor(r() * (text.length + 1));
  const k = r();
  const junk = JUNK[Math.floor(r() * JUNK.length)] as string;
  if (k < 0.4) return text.slice(0, at) + junk + text.slice(at);
  if (k < 0.7) return text.slice(0, at) + text.slice(at + 1);
  return text.slice(0, at) + junk + text.slice(at + 1);
}

describe('scanJson', () => {
  test.each([
    ['{}', true],
    [' {"a" : [1, -2.5e+3, true, false, null, "x\\u00e9\\n"]} \n', true],
    ['"\\ud800"', true],
    ['-0', true],
    ['01', false],
    ['1.', false],
    ['.5', false],
    ['+1', false],
    ['1e', false],
    ['-', false],
    ['[1,]', false],
    ['{"a":1,}', false],
    ['{"a" 1}', false],
    ['{a:1}', false],
    ["'a'", false],
    ['"\\x"', false],
    ['"\\u12G4"', false],
    ['"\\u12"', false],
    ['"a\tb"', false],
    ['"unterminated', false],
    ['[1 2]', false],
    ['tru', false],
    ['nulll', false],
    ['{} {}', false],
    ['', false],
    ['   ', false],
    ['\u00a0{}', false],
    ['\ufeff{}', false],
    ['NaN', false],
    ['Infinity', false],
  ])('%j: %s, as JSON.parse says', (text, valid) => {
    const bytes = Buffer.from(text);
    expect(parses(bytes)).toBe(valid);
    expect(scanJson(bytes, NONE) !== undefined).toBe(valid);
  });

  test('accepts exactly what JSON.parse accepts, on 20,000 random and mutated texts', () => {
    const r = prng(7);
    let valid = 0;
    for (let i = 0; i < 20_000; i++) {
      let text = randomJson(r);
      const mutations = Math.floor(r() * 3);
      for (let m = 0; m < mutations; m++) text = mutate(r, text);
      const bytes = Buffer.from(text);
      const expected = parses(bytes);
      if (expected) valid++;
      const scan = scanJson(bytes, NONE);
      if ((scan !== undefined) !== expected)
        throw new Error(`disagrees with JSON.parse on ${JSON.stringify(text)}`);
      if (scan) expect(String.fromCharCode(scan.root)).toBe(text.trimStart()[0]);
    }
    // both kinds were tried
    expect(valid).toBeGreaterThan(5_000);
    expect(valid).toBeLessThan(18_000);
  });

  test('nesting too deep for the scanner is left to JSON.parse', () => {
    const deep = Buffer.from(`${'['.repeat(200_000)}${']'.repeat(200_000)}`);
    expect(scanJson(deep, NONE)).toBeUndefined();
    expect(parses(deep)).toBe(true);
  });

  test('finds the values at the paths, each location once, in text order; null is not one', () => {
    const text = Buffer.from(
      '{"b":{"id":"X"},"operatorId":7,"r":[{"p":"A"},{"p":null},{"q":1},{"p":"B"}],"o":{"2":"two","1":"one"},"n":null}',
    );
    const scan = scanJson(text, trieOf('$.operatorId', '$.b.id', '$.r[*].p', '$.r[3].p', '$.o[*]', '$.n'), {
      keys: true,
    })!;
    expect(scan.spans.map((s) => [s.keys, text.toString('utf8', s.start, s.end)])).toEqual([
      [['b', 'id'], '"X"'],
      [['operatorId'], '7'],
      [['r', 0, 'p'], '"A"'],
      [['r', 3, 'p'], '"B"'],
      [['o', '2'], '"two"'],
      [['o', '1'], '"one"'],
    ]);
  });

  test('matches member names written with escapes, and reports values with escapes', () => {
    const text = Buffer.from('{"operator\\u0049d":"OP\\u002d1"}');
    const [span] = scanJson(text, trieOf('$.operatorId'), { keys: true })!.spans;
    expect(span).toMatchObject({ keys: ['operatorId'], escaped: true });
    // without asking for keys, the spans are the same but for them
    expect(scanJson(text, trieOf('$.operatorId'))!.spans).toEqual([{ ...span, keys: undefined }]);
  });
});

describe('NdjsonLine', () => {
  test('trims the text and turns line breaks between tokens into spaces; a view when nothing changes', () => {
    expect(new NdjsonLine(Buffer.from(' \n{"a":\r\n[1,\n2]}\n')).toBuffer().toString()).toBe(
      '{"a":  [1, 2]}',
    );
    const text = Buffer.from('{"a":1}');
    const line = new NdjsonLine(text).toBuffer();
    expect(line.buffer).toBe(text.buffer);
    expect(line.toString()).toBe('{"a":1}');
  });

  test('writes itself with its replacements where it is told, and nowhere else', () => {
    const text = Buffer.from('\t{"id": "X",\n "n": [1, 2]}  ');
    const line = new NdjsonLine(new Uint8Array(text), [
      { start: text.indexOf('"X"'), end: text.indexOf('"X"') + 3, string: 'token-1' },
      { start: text.indexOf('2'), end: text.indexOf('2') + 1, string: 'k2.x' },
    ]);
    const expected = '{"id": "token-1",  "n": [1, "k2.x"]}';
    expect(line.length).toBe(expected.length);
    const out = Buffer.alloc(line.length + 4, '#');
    line.writeTo(out, 2);
    expect(out.toString()).toBe(`##${expected}##`);
    expect(line.toBuffer().toString()).toBe(expected);
  });
});

describe('Pseudonymizer.applyToText', () => {
  const fields = ['$.operatorId', '$.badge.id', '$.readings[*].patientId', '$.ids[*]'];
  const make = () =>
    new Pseudonymizer({
      fields,
      keys: KeyRing.fromKeys('k1', { k1: Buffer.alloc(32, 9) }),
      store: new MemoryReidentificationStore(),
      logger: pino({ level: 'silent' }),
    });

  test('gives the records applyAsync gives, on 3,000 random records', async () => {
    const p = make();
    const r = prng(11);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)] as T;
    for (let i = 0; i < 3_000; i++) {
      const record: Record<string, unknown> = { seq: i };
      if (r() < 0.8) record.operatorId = pick(['OP-1', 'OP-2', 42, 'é', 'a"b', null]);
      if (r() < 0.6) record.badge = { site: 'x', id: pick(['B-1', 'B\n2', 7.5, null]) };
      if (r() < 0.6)
        record.readings = Array.from({ length: Math.floor(r() * 4) }, (_, k) =>
          r() < 0.8 ? { v: k, patientId: pick(['P-1', 'P-2', 3]) } : { v: k },
        );
      if (r() < 0.3) record.ids = r() < 0.5 ? ['a', 'b', 1] : { z: 'Z', 10: 'ten', 2: 'two' };
      if (r() < 0.3) record.samples = Array.from({ length: 20 }, () => Math.round(r() * 1e4) / 100);
      const pretty = r() < 0.3 ? JSON.stringify(record, null, 2) : JSON.stringify(record);
      const text = Buffer.from(pretty);
      const viaText = await p.applyToText(text);
      const viaObject = await p.applyAsync(JSON.parse(pretty));
      expect(viaText).toBeDefined();
      expect(viaText!.tokens).toBe(viaObject.tokens);
      expect(viaText!.line.toBuffer().includes(0x0a)).toBe(false);
      expect(JSON.parse(viaText!.line.toBuffer().toString())).toEqual(viaObject.record);
    }
  });

  test('keeps the text as written apart from the replaced values', async () => {
    const p = make();
    const out = await p.applyToText(Buffer.from('  {"t": 1.50, "operatorId" : "OP-1", "z":[1e2]}\n'));
    const token = p.reidentify(JSON.parse(out!.line.toBuffer().toString()).operatorId) === 'OP-1';
    expect(token).toBe(true);
    expect(out!.line.toBuffer().toString()).toMatch(
      /^\{"t": 1\.50, "operatorId" : "k1\.[a-z2-7]{32}", "z":\[1e2\]\}$/,
    );
  });

  test('replaces every occurrence of a repeated member, not only the one JSON.parse keeps', async () => {
    const p = make();
    const text =
      '{"operatorId":"OP-SECRET","operatorId":"OP-2","badge":{"id":"B-SECRET"},"badge":{"id":null}}';
    const out = await p.applyToText(Buffer.from(text));
    expect(out!.tokens).toBe(3);
    expect(out!.line.toBuffer().toString()).not.toContain('SECRET');
    expect(out!.line.toBuffer().toString()).not.toContain('OP-2');
  });

  test('a name or a value written with escapes is replaced like its plain form', async () => {
    const p = make();
    const out = await p.applyToText(Buffer.from('{"operator\\u0049d":"OP\\u002d1"}'));
    const plain = await p.applyAsync({ operatorId: 'OP-1' });
    expect(JSON.parse(out!.line.toBuffer().toString())).toEqual({ operatorId: plain.record.operatorId });
  });

  test.each([
    ['{"operatorId":{"id":"OP-1"}}', '$.operatorId is an object'],
    ['{"operatorId":["OP-1"]}', '$.operatorId is an array'],
    ['{"badge":{"id":true}}', '$.badge.id is a boolean'],
    ['{"readings":[{"patientId":1e400}]}', '$.readings[0].patientId is the non-finite number Infinity'],
  ])('%s is refused like applyAsync refuses it', async (text, message) => {
    const p = make();
    await expect(p.applyToText(Buffer.from(text))).rejects.toThrow(UnsupportedValueError);
    await expect(p.applyToText(Buffer.from(text))).rejects.toThrow(message);
    await expect(p.applyAsync(JSON.parse(text))).rejects.toThrow(message);
  });

  test('leaves to JSON.parse what is not one JSON object in valid UTF-8', async () => {
    const p = make();
    expect(await p.applyToText(Buffer.from('[{"operatorId":"OP-1"}]'))).toBeUndefined();
    expect(await p.applyToText(Buffer.from('{"operatorId":"OP-1"'))).toBeUndefined();
    expect(await p.applyToText(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]))).toBeUndefined();
  });
});
