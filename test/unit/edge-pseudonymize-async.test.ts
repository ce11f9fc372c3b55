/**
 * Pseudonymization on the ingest path: group commit of the re-identification map (putDurable),
 * Pseudonymizer.applyAsync (copy and in place), and the key ring's pseudonym cache.
 */
import { createHmac } from 'node:crypto';
import { fdatasync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import {
  base32,
  computeToken,
  FileReidentificationStore,
  InvalidRecordError,
  KeyRing,
  MemoryReidentificationStore,
  Pseudonymizer,
  ReidentificationStoreError,
  TOKEN_CACHE_ENTRIES,
  TOKEN_CACHE_MAX_STRING,
  UnsupportedValueError,
} from '../../edge-component/pseudonymize/index.js';

const silent = pino({ level: 'silent' });
const K1 = Buffer.alloc(32, 1);
const K2 = Buffer.alloc(32, 2);
const keys = KeyRing.fromKeys('k1', { k1: K1 });
const realFdatasync = promisify(fdatasync);

let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'edge-pseudonymize-async-'));
  file = join(dir, 'map.jsonl');
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function entry(value: string | number) {
  return { token: keys.pseudonym(value), value };
}

/** The entries in the map file, as written (one object per line). */
function fileLines(): { t: string; k: string; v: unknown }[] {
  const text = readFileSync(file, 'utf8');
  if (text === '') return [];
  expect(text.endsWith('\n')).toBe(true);
  return text
    .slice(0, -1)
    .split('\n')
    .map((l) => JSON.parse(l));
}

/**
 * A flush hook that counts calls and can hold a flush until released (or fail it): the group commit
 * can be observed without timing.
 */
function controlledSync() {
  let calls = 0;
  let hold = false;
  let failNext: Error | undefined;
  let release: (() => void) | undefined;
  const called: (() => void)[] = [];
  const hook = async (fd: number) => {
    calls++;
    for (const c of called.splice(0)) c();
    if (hold) await new Promise<void>((r) => (release = r));
    const fail = failNext;
    failNext = undefined;
    if (fail) throw fail;
    await realFdatasync(fd);
  };
  return {
    hook,
    get calls() {
      return calls;
    },
    /** The next flush waits for release(). */
    hold() {
      hold = true;
    },
    release() {
      hold = false;
      release?.();
      release = undefined;
    },
    /** The next flush fails with `err`. */
    failNext(err: Error) {
      failNext = err;
    },
    /** Resolves when the hook is called next. */
    nextCall() {
      return new Promise<void>((r) => called.push(r));
    },
  };
}

/** Lets pending I/O callbacks and promise jobs run (to show that something has NOT happened). */
async function turns(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

describe('FileReidentificationStore.putDurable (group commit)', () => {
  test('concurrent calls are written together: one flush for a burst, one for what arrives meanwhile', async () => {
    const sync = controlledSync();
    const store = FileReidentificationStore.open(file, { logger: silent, fdatasync: sync.hook });
    const burst = Array.from({ length: 100 }, (_, i) => store.putDurable([entry(`burst-${i}`)]));
    await Promise.all(burst);
    expect(sync.calls).toBe(1);
    expect(fileLines()).toHaveLength(100);

    // While a group is in flight, new calls queue up and go out together in the next one.
    sync.hold();
    const flushing = sync.nextCall();
    const first = store.putDurable([entry('first')]);
    await flushing;
    const during = Array.from({ length: 200 }, (_, i) => store.putDurable([entry(`during-${i % 50}`)]));
    // an entry that is being written: the caller waits for that write
    let sameDone = false;
    const same = store.putDurable([entry('first')]).then(() => {
      sameDone = true;
    });
    await turns();
    expect(sameDone).toBe(false);
    expect(store.has(entry('first').token)).toBe(false); // not durable yet
    sync.release();
    await Promise.all([first, same, ...during]);
    expect(sync.calls).toBe(3);
    expect(store.get(entry('first').token)).toBe('first');
    expect(store.size).toBe(151);
    const lines = fileLines();
    expect(lines).toHaveLength(151);
    expect(new Set(lines.map((l) => l.t)).size).toBe(151);

    // known entries resolve at once, without a flush
    await store.putDurable([entry('first'), entry('during-3')]);
    await store.putDurable([]);
    expect(sync.calls).toBe(3);
    await store.closeAsync();

    const again = FileReidentificationStore.open(file, { logger: silent });
    expect(again.loadReport).toEqual({ entries: 151, tornBytes: 0 });
    expect(again.get(entry('during-49').token)).toBe('during-49');
    again.close();
  });

  test('a failed flush rejects every waiting caller, cuts off the group, and a later call works', async () => {
    const sync = controlledSync();
    const store = FileReidentificationStore.open(file, { logger: silent, fdatasync: sync.hook });
    await store.putDurable([entry('kept')]);
    const before = statSync(file).size;

    sync.failNext(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    const waiters = [
      store.putDurable([entry('a')]),
      store.putDurable([entry('b'), entry('kept')]),
      store.putDurable([entry('a'), entry(7)]),
    ];
    const results = await Promise.allSettled(waiters);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      const reason = (r as PromiseRejectedResult).reason as ReidentificationStoreError;
      expect(reason).toBeInstanceOf(ReidentificationStoreError);
      expect(reason.message).toBe(`cannot append to re-identification map ${file}`);
      expect((reason.cause as { code?: string }).code).toBe('EIO');
    }
    expect(statSync(file).size).toBe(before); // the group's bytes are cut off
    expect(store.has(entry('a').token)).toBe(false);
    expect(store.size).toBe(1);

    await store.putDurable([entry('a'), entry(7)]);
    expect(store.get(entry(7).token)).toBe(7);
    await store.closeAsync();
    const again = FileReidentificationStore.open(file, { logger: silent });
    expect(again.loadReport).toEqual({ entries: 3, tornBytes: 0 });
    again.close();
  });

  test('after close, putDurable and put are errors naming the map', async () => {
    const store = FileReidentificationStore.open(file, { logger: silent });
    await store.closeAsync();
    await expect(store.putDurable([entry('a')])).rejects.toThrow(ReidentificationStoreError);
    await expect(store.putDurable([entry('a')])).rejects.toThrow(/closed/);
    expect(() => store.put([entry('a')])).toThrow(/closed/);
    await store.closeAsync(); // twice is fine
    store.close();
  });

  test('a synchronous put during a group write does not tear it, and makes it durable too', async () => {
    const sync = controlledSync();
    const store = FileReidentificationStore.open(file, { logger: silent, fdatasync: sync.hook });
    sync.hold();
    const flushing = sync.nextCall();
    const group = store.putDurable([entry('g1'), entry('g2')]);
    await flushing;
    store.put([entry('p1'), entry('g1')]);
    // put() fsynced the group's bytes along with its own
    expect(store.has(entry('g1').token)).toBe(true);
    expect(store.has(entry('g2').token)).toBe(true);
    expect(store.has(entry('p1').token)).toBe(true);
    // even if the group's own flush then fails, its entries are durable
    sync.failNext(new Error('late failure'));
    sync.release();
    await expect(group).resolves.toBeUndefined();
    expect(fileLines().map((l) => l.v)).toEqual(['g1', 'g2', 'p1']);

    // a put() of nothing but entries of the group in flight is durable on return as well
    sync.hold();
    const flushing2 = sync.nextCall();
    const group2 = store.putDurable([entry('h1')]);
    await flushing2;
    store.put([entry('h1')]);
    expect(store.has(entry('h1').token)).toBe(true);
    sync.release();
    await group2;
    expect(fileLines().map((l) => l.v)).toEqual(['g1', 'g2', 'p1', 'h1']);
    store.close();
    const again = FileReidentificationStore.open(file, { logger: silent });
    expect(again.loadReport).toEqual({ entries: 4, tornBytes: 0 });
    again.close();
  });

  test('close() writes the queued group before closing; closeAsync() waits for the group in flight', async () => {
    const store = FileReidentificationStore.open(file, { logger: silent });
    const queued = store.putDurable([entry('q')]);
    store.close();
    await expect(queued).resolves.toBeUndefined();
    expect(fileLines().map((l) => l.v)).toEqual(['q']);

    const sync = controlledSync();
    const second = FileReidentificationStore.open(file, { logger: silent, fdatasync: sync.hook });
    sync.hold();
    const flushing = sync.nextCall();
    const inFlight = second.putDurable([entry('w')]);
    await flushing;
    let closed = false;
    const closing = second.closeAsync().then(() => {
      closed = true;
    });
    await expect(second.putDurable([entry('x')])).rejects.toThrow(/closed/);
    await turns();
    expect(closed).toBe(false);
    sync.release();
    await Promise.all([inFlight, closing]);
    expect(fileLines().map((l) => l.v)).toEqual(['q', 'w']);
  });

  test('MemoryReidentificationStore.putDurable stores at once', async () => {
    const store = new MemoryReidentificationStore();
    await store.putDurable([entry('a'), entry('a')]);
    expect(store.size).toBe(1);
    await store.closeAsync();
  });
});

describe('Pseudonymizer.applyAsync', () => {
  const fields = ['$.operatorId', '$.badge.id', '$.readings[*].patientId'];
  const sample = () => ({
    operatorId: 'OP-17',
    badge: { id: 4711, color: 'red' },
    site: { name: 'plant 7', tags: ['a', 'b'] },
    readings: [
      { patientId: 'P-1', v: 1 },
      { patientId: 'P-2', v: 2 },
    ],
  });

  test('resolves only after the new entries are in the file', async () => {
    const sync = controlledSync();
    const store = FileReidentificationStore.open(file, { logger: silent, fdatasync: sync.hook });
    const p = new Pseudonymizer({ fields, keys, store, logger: silent });
    sync.hold();
    const flushing = sync.nextCall();
    let result: Awaited<ReturnType<Pseudonymizer['applyAsync']>> | undefined;
    const applying = p.applyAsync(sample()).then((r) => {
      result = r;
    });
    await flushing;
    await turns();
    expect(result).toBeUndefined();
    sync.release();
    await applying;
    const r = result as NonNullable<typeof result>;
    expect(r.tokens).toBe(4);
    const token = r.record.operatorId as string;
    // a second handle on the file (as after a crash) sees every pseudonym of the record
    const reader = FileReidentificationStore.open(file, { logger: silent });
    expect(reader.get(token)).toBe('OP-17');
    expect(reader.get(keys.pseudonym(4711))).toBe(4711);
    expect(reader.get(keys.pseudonym('P-2'))).toBe('P-2');
    reader.close();
    await store.closeAsync();
  });

  test('gives the same records as apply(); copies only the containers on the way to a replaced value', async () => {
    const store = new MemoryReidentificationStore();
    const p = new Pseudonymizer({ fields, keys, store, logger: silent });
    const input = sample();
    const before = structuredClone(input);
    const expected = p.apply(structuredClone(input));
    const copied = await p.applyAsync(input);
    expect(input).toEqual(before); // untouched
    expect(copied).toEqual(expected);
    expect(copied.record).not.toBe(input);
    expect(copied.record.badge).not.toBe(input.badge);
    expect(copied.record.readings).not.toBe(input.readings);
    expect(copied.record.site).toBe(input.site); // shared: nothing in it was replaced

    const own = sample();
    const inPlace = await p.applyAsync(own, { inPlace: true });
    expect(inPlace.record).toBe(own);
    expect(own).toEqual(expected.record);
    expect(inPlace.tokens).toBe(4);

    // no match: a new object without inPlace, the record itself with it
    const none = { other: 1 };
    expect((await p.applyAsync(none)).record).not.toBe(none);
    expect(await p.applyAsync(none)).toEqual({ record: none, tokens: 0 });
    expect((await p.applyAsync(none, { inPlace: true })).record).toBe(none);
  });

  test('overlapping paths replace a location once; a value reached twice keeps apply() results', async () => {
    const store = new MemoryReidentificationStore();
    const p = new Pseudonymizer({ fields: ['$.a[*]', '$.a[0]', '$.b[*].id'], keys, store, logger: silent });
    const shared = { id: 'S' };
    const input = { a: ['x', 'y'], b: [shared, shared] };
    const expected = p.apply(input);
    expect(expected.tokens).toBe(4);
    expect(await p.applyAsync(input)).toEqual(expected);
    expect(shared.id).toBe('S');
    const own = { a: ['x', 'y'], b: [shared, shared] };
    expect(await p.applyAsync(own, { inPlace: true })).toEqual(expected);
    expect(shared.id).toBe(keys.pseudonym('S'));
  });

  test('rejects like apply() throws, and leaves an in-place record as it was', async () => {
    const store = new MemoryReidentificationStore();
    const p = new Pseudonymizer({ fields, keys, store, logger: silent });
    const bad = { operatorId: 'OP-1', readings: [{ patientId: 'P-1' }, { patientId: { nested: 'y' } }] };
    const before = structuredClone(bad);
    await expect(p.applyAsync(bad, { inPlace: true })).rejects.toThrow(UnsupportedValueError);
    await expect(p.applyAsync(bad)).rejects.toThrow(
      '$.readings[1].patientId is an object; only strings and numbers can be pseudonymized',
    );
    expect(bad).toEqual(before);
    expect(store.size).toBe(0);
    await expect(p.applyAsync([1])).rejects.toThrow(InvalidRecordError);
    await expect(p.applyAsync(null, { inPlace: true })).rejects.toThrow(InvalidRecordError);
  });

  test('when the map cannot be written, no record comes out and an in-place record gets its values back', async () => {
    const sync = controlledSync();
    const store = FileReidentificationStore.open(file, { logger: silent, fdatasync: sync.hook });
    const p = new Pseudonymizer({ fields, keys, store, logger: silent });
    sync.failNext(new Error('disk gone'));
    const own = sample();
    const copy = sample();
    const results = await Promise.allSettled([p.applyAsync(own, { inPlace: true }), p.applyAsync(copy)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    for (const r of results) {
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(ReidentificationStoreError);
    }
    expect(own).toEqual(sample());
    expect(copy).toEqual(sample());
    expect(fileLines()).toEqual([]);
    // the next record works
    const ok = await p.applyAsync(own, { inPlace: true });
    expect(ok.tokens).toBe(4);
    expect(fileLines()).toHaveLength(4);
    await store.closeAsync();
  });

  test.each([false, true])('own "__proto__" members stay members (inPlace: %s)', async (inPlace) => {
    const store = new MemoryReidentificationStore();
    const p = new Pseudonymizer({
      fields: ["$['__proto__'].id", "$.x['__proto__']", '$.constructor'],
      keys,
      store,
      logger: silent,
    });
    const text = '{"__proto__":{"id":"secret","keep":1},"x":{"__proto__":"inner"},"y":{"__proto__":{"z":1}}}';
    const input = JSON.parse(text) as Record<string, unknown>;
    const { record, tokens } = await p.applyAsync(input, { inPlace });
    expect(tokens).toBe(2);
    expect(Object.getPrototypeOf(record)).toBe(Object.prototype);
    expect(Object.getPrototypeOf(record.x)).toBe(Object.prototype);
    expect(Object.hasOwn(record, '__proto__')).toBe(true);
    expect(Object.hasOwn(record.x as object, '__proto__')).toBe(true);
    const json = JSON.stringify(record);
    expect(json).not.toContain('secret');
    expect(json).not.toContain('inner');
    expect(JSON.parse(json)).toEqual(
      JSON.parse(
        `{"__proto__":{"id":"${keys.pseudonym('secret')}","keep":1},"x":{"__proto__":"${keys.pseudonym('inner')}"},"y":{"__proto__":{"z":1}}}`,
      ),
    );
    if (!inPlace) expect(JSON.stringify(input)).toBe(text);
    expect(({} as { id?: unknown }).id).toBeUndefined(); // Object.prototype untouched
  });
});

describe('KeyRing pseudonym cache', () => {
  const uncached = (version: string, key: Buffer, value: string | number) =>
    computeToken(version, key, value);

  test('cached pseudonyms are the documented construction, for strings and numbers', () => {
    const ring = KeyRing.fromKeys('k1', { k1: K1 });
    for (const v of ['4711', 4711, '', 0, -0, 1.5, 'ü', '"quoted"']) {
      const first = ring.pseudonym(v);
      expect(ring.pseudonym(v)).toBe(first); // from the cache
      expect(first).toBe(uncached('k1', K1, v));
    }
    const mac = createHmac('sha256', K1).update('string:"4711"').digest().subarray(0, 20);
    expect(ring.pseudonym('4711')).toBe(`k1.${base32(mac)}`);
    expect(ring.pseudonym('123')).not.toBe(ring.pseudonym(123));
    expect(ring.pseudonym(0)).toBe(ring.pseudonym(-0));
    expect(() => ring.pseudonym(Number.NaN)).toThrow(RangeError);
    expect(() => ring.pseudonym('a', 'k9')).toThrow(/unknown key version/);
  });

  test('long strings are not cached but pseudonymized the same', () => {
    const ring = KeyRing.fromKeys('k1', { k1: K1 });
    const long = 'x'.repeat(TOKEN_CACHE_MAX_STRING + 1);
    expect(ring.pseudonym(long)).toBe(uncached('k1', K1, long));
    expect(ring.cachedPseudonyms()).toBe(0);
  });

  test('bounded: the oldest entries are dropped, and every pseudonym stays correct', () => {
    const ring = KeyRing.fromKeys('k1', { k1: K1 });
    const n = TOKEN_CACHE_ENTRIES + 10;
    for (let i = 0; i < n; i++) ring.pseudonym(`id-${i}`);
    expect(ring.cachedPseudonyms()).toBe(TOKEN_CACHE_ENTRIES);
    for (const i of [0, 5, 9, 10, n - 1])
      expect(ring.pseudonym(`id-${i}`)).toBe(uncached('k1', K1, `id-${i}`));
    expect(ring.cachedPseudonyms()).toBe(TOKEN_CACHE_ENTRIES);
  });

  test('one cache per version, across rotation', async () => {
    const ring = KeyRing.fromKeys('k1', { k1: K1, k2: K2 });
    const v1 = ring.pseudonym('badge-1');
    expect(ring.pseudonym('badge-1', 'k2')).toBe(uncached('k2', K2, 'badge-1'));
    expect(v1).toBe(uncached('k1', K1, 'badge-1'));
    const k3 = await ring.rotate();
    expect(k3).toBe('k3');
    const v3 = ring.pseudonym('badge-1');
    expect(v3).toMatch(/^k3\.[a-z2-7]{32}$/);
    expect(v3.slice(3)).not.toBe(v1.slice(3));
    expect(ring.pseudonym('badge-1', 'k1')).toBe(v1);
    expect(ring.cachedPseudonyms('k1')).toBe(1);
    expect(ring.cachedPseudonyms('k3')).toBe(1);
    // a ring loaded with the same keys (no cache yet) agrees
    const fresh = KeyRing.fromKeys('k2', { k1: K1, k2: K2 });
    expect(fresh.pseudonym('badge-1')).toBe(ring.pseudonym('badge-1', 'k2'));
  });
});
