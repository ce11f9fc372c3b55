/** Sensitive-ID pseudonymization: path parser, tokens, key ring, re-identification map, pseudonymizer. */
import { createHash, createHmac } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import {
  base32,
  FileReidentificationStore,
  InvalidRecordError,
  JsonPathError,
  KeyFileError,
  KeyRing,
  MemoryReidentificationStore,
  PseudonymizationConfigSchema,
  Pseudonymizer,
  PseudonymizerConfigError,
  parseJsonPath,
  ReidentificationStoreError,
  UnsupportedValueError,
} from '../../edge-component/pseudonymize/index.js';

const silent = pino({ level: 'silent' });
const K1 = Buffer.alloc(32, 1);
const K2 = Buffer.alloc(32, 2);
const TOKEN = /^k1\.[a-z2-7]{32}$/;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'edge-pseudonymize-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function pathError(p: string): JsonPathError {
  try {
    parseJsonPath(p);
  } catch (err) {
    if (err instanceof JsonPathError) return err;
    throw err;
  }
  throw new Error(`expected ${p} to be rejected`);
}

function makePseudonymizer(fields: string[], keys = KeyRing.fromKeys('k1', { k1: K1 })) {
  const store = new MemoryReidentificationStore();
  return { p: new Pseudonymizer({ fields, keys, store, logger: silent }), store, keys };
}

describe('parseJsonPath', () => {
  test.each([
    ['$.operatorId', [{ kind: 'member', name: 'operatorId' }]],
    [
      '$.badge.id',
      [
        { kind: 'member', name: 'badge' },
        { kind: 'member', name: 'id' },
      ],
    ],
    [
      '$.readings[*].patientId',
      [{ kind: 'member', name: 'readings' }, { kind: 'wildcard' }, { kind: 'member', name: 'patientId' }],
    ],
    ["$['weird key']", [{ kind: 'member', name: 'weird key' }]],
    ['$["dq"]', [{ kind: 'member', name: 'dq' }]],
    ["$['it\\'s']", [{ kind: 'member', name: "it's" }]],
    [
      '$.a[0].b',
      [
        { kind: 'member', name: 'a' },
        { kind: 'index', index: 0 },
        { kind: 'member', name: 'b' },
      ],
    ],
    [
      '$.x_y-z[12]',
      [
        { kind: 'member', name: 'x_y-z' },
        { kind: 'index', index: 12 },
      ],
    ],
  ])('%s', (src, segments) => {
    expect(parseJsonPath(src).segments).toEqual(segments);
  });

  test.each([
    ['', 0, 'expected "$"'],
    ['operatorId', 0, 'expected "$"'],
    ['$', 1, 'not "$" itself'],
    ['$.', 2, 'member name'],
    ['$..a', 2, 'recursive descent'],
    ['$.*', 2, '[*]'],
    ['$.1a', 2, 'member name'],
    ['$.a b', 3, 'expected "." or "["'],
    ['$a', 1, 'expected "." or "["'],
    ['$.a[', 4, 'after "["'],
    ['$.a[-1]', 4, 'negative'],
    ['$.a[01]', 4, 'leading zeros'],
    ['$.a[1', 5, 'expected "]"'],
    ['$.a[1:2]', 5, 'expected "]"'],
    ['$.a[*', 5, 'expected "]"'],
    ["$['abc", 6, 'unterminated'],
    ["$['a'", 5, 'expected "]"'],
    ["$['a\\n']", 4, 'invalid escape'],
    ['$.a[?(@.b)]', 4, 'after "["'],
    ['$.a[ 0]', 4, 'after "["'],
    ['$.a[99999999999999999]', 4, 'too large'],
  ])('rejects %j at position %i', (src, position, text) => {
    const err = pathError(src);
    expect(err.position).toBe(position);
    expect(err.path).toBe(src);
    expect(err.message).toContain(`at position ${position}`);
    expect(err.message).toContain(text);
  });
});

describe('tokens', () => {
  test('format, stability, and the documented construction', () => {
    const ring = KeyRing.fromKeys('k1', { k1: K1 });
    const t = ring.pseudonym('4711');
    expect(t).toMatch(TOKEN);
    expect(ring.pseudonym('4711')).toBe(t);
    expect(KeyRing.fromKeys('k1', { k1: K1 }).pseudonym('4711')).toBe(t);
    const mac = createHmac('sha256', K1).update('string:"4711"').digest().subarray(0, 20);
    expect(t).toBe(`k1.${base32(mac)}`);
  });

  test('base32 matches the RFC 4648 test vectors (lower-case, no padding)', () => {
    const vectors: [string, string][] = [
      ['', ''],
      ['f', 'my'],
      ['fo', 'mzxq'],
      ['foo', 'mzxw6'],
      ['foob', 'mzxw6yq'],
      ['fooba', 'mzxw6ytb'],
      ['foobar', 'mzxw6ytboi'],
    ];
    for (const [input, out] of vectors) expect(base32(Buffer.from(input))).toBe(out);
  });

  test('differ by key, by version, and by type', () => {
    const a = KeyRing.fromKeys('k1', { k1: K1 });
    const b = KeyRing.fromKeys('k1', { k1: K2 });
    const both = KeyRing.fromKeys('k2', { k1: K1, k2: K2 });
    expect(a.pseudonym('4711')).not.toBe(b.pseudonym('4711'));
    expect(both.pseudonym('4711')).toMatch(/^k2\./);
    expect(both.pseudonym('4711', 'k1')).toBe(a.pseudonym('4711'));
    expect(both.pseudonym('4711').slice(3)).toBe(b.pseudonym('4711').slice(3));
    expect(a.pseudonym('123')).not.toBe(a.pseudonym(123));
    expect(a.pseudonym('')).not.toBe(a.pseudonym(0));
  });

  test('a key is mandatory and must have at least 32 bytes', () => {
    expect(() => KeyRing.fromKeys('k1', { k1: Buffer.alloc(31) })).toThrow(
      /keys.k1: must be at least 32 bytes/,
    );
    expect(() => KeyRing.fromKeys('k1', {})).toThrow(/active/);
    expect(() => KeyRing.fromKeys('v1', { v1: K1 })).toThrow(/key version/);
  });

  test('key material never shows in JSON', () => {
    const ring = KeyRing.fromKeys('k1', { k1: K1 });
    expect(JSON.stringify(ring)).toBe('{"active":"k1","versions":["k1"]}');
  });
});

describe('Pseudonymizer', () => {
  test('replaces top-level, nested, quoted and indexed fields; never mutates the input', () => {
    const { p, keys } = makePseudonymizer(['$.operatorId', '$.badge.id', "$['weird key']", '$.a[0].b']);
    const input = {
      operatorId: 'op-17',
      badge: { id: 123456, color: 'red' },
      'weird key': 'x',
      a: [{ b: 'first' }, { b: 'second' }],
      temp: 21.5,
    };
    const before = structuredClone(input);
    const { record, tokens } = p.apply(input);
    expect(input).toEqual(before);
    expect(tokens).toBe(4);
    expect(record).toEqual({
      operatorId: keys.pseudonym('op-17'),
      badge: { id: keys.pseudonym(123456), color: 'red' },
      'weird key': keys.pseudonym('x'),
      a: [{ b: keys.pseudonym('first') }, { b: 'second' }],
      temp: 21.5,
    });
    expect((record.badge as { id: string }).id).toMatch(TOKEN);
    (record.badge as { color: string }).color = 'blue';
    expect(input.badge.color).toBe('red');
  });

  test('nested arrays with [*]; numbers keep their type on re-identification', () => {
    const { p, store } = makePseudonymizer(['$.readings[*].patientId']);
    const { record, tokens } = p.apply({
      readings: [{ patientId: 'P-1', v: 1 }, { patientId: 42, v: 2 }, { v: 3 }, 'junk', { patientId: null }],
    });
    expect(tokens).toBe(2);
    const r = record.readings as { patientId?: unknown }[];
    expect(r[0]?.patientId).toMatch(TOKEN);
    expect(r[1]?.patientId).toMatch(TOKEN);
    expect(r[2]).toEqual({ v: 3 });
    expect(r[3]).toBe('junk');
    expect(r[4]).toEqual({ patientId: null });
    expect(p.reidentify(r[0]?.patientId as string)).toBe('P-1');
    expect(p.reidentify(r[1]?.patientId as string)).toBe(42);
    expect(p.reidentify('k1.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa')).toBeUndefined();
    expect(store.size).toBe(2);
  });

  test('[*] also covers member values of an object', () => {
    const { p } = makePseudonymizer(['$.ids[*]']);
    const { record, tokens } = p.apply({ ids: { a: 'x', b: 7 } });
    expect(tokens).toBe(2);
    expect(Object.values(record.ids as object).every((v) => TOKEN.test(v as string))).toBe(true);
  });

  test('missing paths are ignored', () => {
    const { p } = makePseudonymizer(['$.operatorId', '$.badge.id', '$.a[3].b', '$.readings[*].patientId']);
    const input = { badge: 'flat', a: [{ b: 1 }], readings: 5, other: { operatorId: 'not at the root' } };
    expect(p.apply(input)).toEqual({ record: input, tokens: 0 });
  });

  test('a non-scalar match is an error naming the concrete path', () => {
    const { p, store } = makePseudonymizer(['$.operatorId', '$.readings[*].patientId']);
    const call = () =>
      p.apply({ operatorId: 'a', readings: [{ patientId: 'x' }, { patientId: { nested: 'y' } }] });
    expect(call).toThrow(UnsupportedValueError);
    expect(call).toThrow(
      '$.readings[1].patientId is an object; only strings and numbers can be pseudonymized',
    );
    expect(() => p.apply({ operatorId: ['a'] })).toThrow('$.operatorId is an array');
    expect(() => p.apply({ operatorId: true })).toThrow('$.operatorId is a boolean');
    expect(() => p.apply({ operatorId: Number.NaN })).toThrow(/non-finite/);
    expect(store.size).toBe(0);
  });

  test('a location matched by two paths is replaced once', () => {
    const { p, keys } = makePseudonymizer(['$.a[*]', '$.a[0]']);
    const { record, tokens } = p.apply({ a: ['x'] });
    expect(tokens).toBe(1);
    expect(record).toEqual({ a: [keys.pseudonym('x')] });
  });

  test('a record must be a JSON object', () => {
    const { p } = makePseudonymizer(['$.a']);
    expect(() => p.apply([1])).toThrow(InvalidRecordError);
    expect(() => p.apply('x')).toThrow(InvalidRecordError);
    expect(() => p.apply(null)).toThrow(InvalidRecordError);
  });

  test('own "__proto__" members are members, and prototype properties never match', () => {
    const { p } = makePseudonymizer(["$['__proto__'].id", '$.constructor']);
    const input = JSON.parse('{"__proto__":{"id":"secret"}}') as unknown;
    const { record, tokens } = p.apply(input);
    expect(tokens).toBe(1);
    expect(Object.hasOwn(record, '__proto__')).toBe(true);
    expect(JSON.stringify(record)).not.toContain('secret');
    expect(Object.getPrototypeOf(record)).toBe(Object.prototype);
  });

  test('invalid fields are refused at construction, naming index and position', () => {
    try {
      makePseudonymizer(['$.ok', '$.a..b']);
      throw new Error('expected a PseudonymizerConfigError');
    } catch (err) {
      expect(err).toBeInstanceOf(PseudonymizerConfigError);
      const e = err as PseudonymizerConfigError;
      expect(e.fieldIndex).toBe(1);
      expect(e.position).toBe(4);
      expect(e.message).toMatch(/^fields\[1\]: invalid JSON path "\$\.a\.\.b" at position 4/);
    }
    expect(() => makePseudonymizer(['$.a', "$['a']"])).toThrow(
      'fields[1]: "$[\'a\']" is the same path as fields[0]',
    );
  });

  test('property: no raw low-entropy ID survives, and no token is a plain hash', () => {
    let seed = 0x5eed;
    const rand = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const { p } = makePseudonymizer(['$.badge', '$.readings[*].patientId'], KeyRing.generate());
    const plain = (s: string) => {
      const h = createHash('sha256').update(s).digest();
      return [h.toString('hex'), base32(h.subarray(0, 20)), base32(h), h.toString('base64')];
    };
    for (let n = 0; n < 1000; n++) {
      const id = String(100000 + Math.floor(rand() * 900000));
      const asNumber = n % 2 === 0;
      const value = asNumber ? Number(id) : id;
      const { record, tokens } = p.apply({ badge: value, readings: [{ patientId: value, t: 'x' }] });
      expect(tokens).toBe(2);
      const json = JSON.stringify(record);
      expect(json).not.toContain(id);
      const token = record.badge as string;
      expect(token).toMatch(/^k1\.[a-z2-7]{32}$/);
      const body = token.slice(3);
      for (const h of [...plain(id), ...plain(asNumber ? `number:${id}` : `string:"${id}"`)]) {
        expect(h.includes(body) || body === h.slice(0, 32)).toBe(false);
      }
      expect(p.reidentify(token)).toBe(value);
    }
  });
});

describe('KeyRing files', () => {
  function writeKeyFile(name: string, doc: unknown, mode = 0o600): string {
    const file = join(dir, name);
    writeFileSync(file, typeof doc === 'string' ? doc : JSON.stringify(doc), { mode });
    chmodSync(file, mode);
    return file;
  }

  test('loads a key file and uses the active version', async () => {
    const file = writeKeyFile('keys.json', {
      active: 'k2',
      keys: { k1: K1.toString('base64'), k2: K2.toString('base64') },
    });
    const ring = await KeyRing.load(file);
    expect(ring.activeVersion).toBe('k2');
    expect(ring.versions).toEqual(['k1', 'k2']);
    expect(ring.pseudonym('a')).toBe(KeyRing.fromKeys('k2', { k1: K1, k2: K2 }).pseudonym('a'));
  });

  test.each([0o640, 0o604, 0o644, 0o660, 0o620])('refuses a key file with mode %s', async (mode) => {
    const file = writeKeyFile('keys.json', { active: 'k1', keys: { k1: K1.toString('base64') } }, mode);
    await expect(KeyRing.load(file)).rejects.toThrow(KeyFileError);
    await expect(KeyRing.load(file)).rejects.toThrow(/accessible by group or others .*chmod 600/);
  });

  test('accepts mode 0400', async () => {
    const file = writeKeyFile('keys.json', { active: 'k1', keys: { k1: K1.toString('base64') } }, 0o400);
    await expect(KeyRing.load(file)).resolves.toBeInstanceOf(KeyRing);
  });

  test.each([
    ['not json', '{', /not valid JSON/],
    [
      'a short key',
      { active: 'k1', keys: { k1: Buffer.alloc(16).toString('base64') } },
      /keys\.k1: must be at least 32 bytes/,
    ],
    ['bad base64', { active: 'k1', keys: { k1: '!!!!' } }, /keys\.k1: must be a base64 string/],
    [
      'an unknown active version',
      { active: 'k3', keys: { k1: K1.toString('base64') } },
      /active: "k3" is not one of/,
    ],
    [
      'a bad version name',
      { active: 'k1', keys: { key1: K1.toString('base64') } },
      /keys\.key1: must be a key version/,
    ],
    ['no keys', { active: 'k1', keys: {} }, /keys: must not be empty/],
    ['a missing active', { keys: { k1: K1.toString('base64') } }, /active: is required/],
    [
      'an unknown field',
      { active: 'k1', keys: { k1: K1.toString('base64') }, extra: 1 },
      /extra: is not a known field/,
    ],
  ])('refuses %s', async (_what, doc, message) => {
    const file = writeKeyFile('keys.json', doc);
    await expect(KeyRing.load(file)).rejects.toThrow(message);
  });

  test('a missing key file is a KeyFileError', async () => {
    await expect(KeyRing.load(join(dir, 'none.json'))).rejects.toThrow(/cannot read key file .*ENOENT/);
  });

  test('create, rotate: new active version, old ones kept, file rewritten with mode 0600', async () => {
    const file = join(dir, 'keys.json');
    const ring = await KeyRing.create(file);
    await expect(KeyRing.create(file)).rejects.toThrow(/already exists/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const oldToken = ring.pseudonym('badge-1');
    const store = FileReidentificationStore.open(join(dir, 'map.jsonl'), { logger: silent });
    const p = new Pseudonymizer({ fields: ['$.id'], keys: ring, store, logger: silent });
    expect(p.apply({ id: 'badge-1' }).record.id).toBe(oldToken);

    const [v2, v3] = await Promise.all([ring.rotate(), ring.rotate()]);
    expect([v2, v3]).toEqual(['k2', 'k3']);
    expect(ring.activeVersion).toBe('k3');
    expect(ring.versions).toEqual(['k1', 'k2', 'k3']);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const newToken = p.apply({ id: 'badge-1' }).record.id as string;
    expect(newToken).toMatch(/^k3\.[a-z2-7]{32}$/);
    expect(newToken).not.toBe(oldToken);
    expect(p.reidentify(oldToken)).toBe('badge-1');
    expect(p.reidentify(newToken)).toBe('badge-1');

    const reloaded = await KeyRing.load(file);
    expect(reloaded.activeVersion).toBe('k3');
    expect(reloaded.pseudonym('badge-1', 'k1')).toBe(oldToken);
    expect(reloaded.pseudonym('badge-1')).toBe(newToken);
    expect(readFileSync(file, 'utf8')).not.toContain('badge');
    store.close();
  });

  test('keys from a SecretSource', async () => {
    const ring = await KeyRing.fromSecret({
      name: 'arn:aws:secretsmanager:eu-central-1:1:secret:gw',
      read: async () => JSON.stringify({ active: 'k1', keys: { k1: K1.toString('base64') } }),
    });
    expect(ring.pseudonym('a')).toBe(KeyRing.fromKeys('k1', { k1: K1 }).pseudonym('a'));
    await expect(
      KeyRing.fromSecret({
        name: 's',
        read: async () => {
          throw new Error('ipc down');
        },
      }),
    ).rejects.toThrow('cannot read key secret s');
  });
});

describe('FileReidentificationStore', () => {
  const keys = KeyRing.fromKeys('k1', { k1: K1 });

  test('creates the file with mode 0600, stores each pseudonym once, reloads with types', () => {
    const file = join(dir, 'map.jsonl');
    const store = FileReidentificationStore.open(file, { logger: silent });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const p = new Pseudonymizer({ fields: ['$.a', '$.b'], keys, store, logger: silent });
    p.apply({ a: '123', b: 123 });
    p.apply({ a: '123', b: 123 });
    p.apply({ a: 'x', b: 'x' });
    store.close();
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(3);

    const again = FileReidentificationStore.open(file, { logger: silent });
    expect(again.loadReport).toEqual({ entries: 3, tornBytes: 0 });
    expect(again.get(keys.pseudonym('123'))).toBe('123');
    expect(again.get(keys.pseudonym(123))).toBe(123);
    expect(again.get(keys.pseudonym('x'))).toBe('x');
    again.close();
  });

  test('a torn last line is ignored, reported and cut off; appends continue cleanly', () => {
    const file = join(dir, 'map.jsonl');
    const store = FileReidentificationStore.open(file, { logger: silent });
    store.put([{ token: keys.pseudonym('a'), value: 'a' }]);
    store.close();
    appendFileSync(file, `{"t":"${keys.pseudonym('b')}","k":"str`);

    const warnings: unknown[] = [];
    const logger = pino({ level: 'warn' }, { write: (s: string) => void warnings.push(JSON.parse(s)) });
    const reopened = FileReidentificationStore.open(file, { logger });
    expect(reopened.loadReport.entries).toBe(1);
    expect(reopened.loadReport.tornBytes).toBeGreaterThan(0);
    expect(warnings).toHaveLength(1);
    expect(JSON.stringify(warnings[0])).toContain('torn last line');
    expect(reopened.get(keys.pseudonym('b'))).toBeUndefined();
    reopened.put([{ token: keys.pseudonym('b'), value: 'b' }]);
    reopened.close();

    const third = FileReidentificationStore.open(file, { logger: silent });
    expect(third.loadReport).toEqual({ entries: 2, tornBytes: 0 });
    expect(third.get(keys.pseudonym('b'))).toBe('b');
    third.close();
  });

  test('a bad line before the last one is an error naming the line', () => {
    const file = join(dir, 'map.jsonl');
    writeFileSync(file, `garbage\n${JSON.stringify({ t: keys.pseudonym('a'), k: 'string', v: 'a' })}\n`, {
      mode: 0o600,
    });
    expect(() => FileReidentificationStore.open(file, { logger: silent })).toThrow(
      ReidentificationStoreError,
    );
    expect(() => FileReidentificationStore.open(file, { logger: silent })).toThrow(
      /line 1 is not a valid entry/,
    );
  });

  test('refuses a map that group or others may read', () => {
    const file = join(dir, 'map.jsonl');
    writeFileSync(file, '');
    chmodSync(file, 0o644);
    expect(() => FileReidentificationStore.open(file, { logger: silent })).toThrow(
      /accessible by group or others/,
    );
  });

  test('put after close is an error', () => {
    const store = FileReidentificationStore.open(join(dir, 'map.jsonl'), { logger: silent });
    store.close();
    expect(() => store.put([{ token: keys.pseudonym('a'), value: 'a' }])).toThrow(/closed/);
  });
});

describe('PseudonymizationConfigSchema', () => {
  test('accepts a valid section', () => {
    const c = { fields: ['$.operatorId', '$.readings[*].patientId'], keyFile: 'k.json', mapFile: 'm.jsonl' };
    expect(PseudonymizationConfigSchema.parse(c)).toEqual(c);
  });

  test('names the bad field', () => {
    const r = PseudonymizationConfigSchema.safeParse({ fields: ['$.a', '$.b[x]'], keyFile: '', extra: 1 });
    expect(r.success).toBe(false);
    const issues = r.error?.issues.map((i) => [i.path.join('.'), i.message]);
    expect(issues).toEqual(
      expect.arrayContaining([
        ['fields.1', expect.stringContaining('at position 4')],
        ['keyFile', 'must not be empty'],
        ['mapFile', 'is required'],
      ]),
    );
  });
});
