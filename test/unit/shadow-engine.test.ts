/**
 * Bad input and edge cases for the pure Device Shadow engine: every malformed request gets an error
 * document (never a throw), and errors echo the clientToken whenever a valid one could be read.
 */
import { describe, expect, it } from '@jest/globals';
import {
  applyUpdate,
  DEFAULT_SHADOW_LIMITS,
  deleteShadow,
  getShadow,
  type ShadowErrorDoc,
  type ShadowLimits,
  type StoredShadow,
  type UpdateOutcome,
} from '../../cloud/local/shadow/engine.js';

const enc = new TextEncoder();
const text = (s: string): Uint8Array => enc.encode(s);
const bytes = (doc: unknown): Uint8Array => enc.encode(JSON.stringify(doc));
const NOW = 1_700_000_000;
const TOKEN = 'req-1';

function rejected(outcome: { ok: boolean; error?: ShadowErrorDoc }): ShadowErrorDoc {
  if (outcome.ok || !outcome.error) throw new Error(`expected a rejection, got ${JSON.stringify(outcome)}`);
  return outcome.error;
}

function accepted(outcome: UpdateOutcome): Extract<UpdateOutcome, { ok: true }> {
  if (!outcome.ok) throw new Error(`update rejected: ${JSON.stringify(outcome.error)}`);
  return outcome;
}

/** `{ a: { a: ... { a: leaf } } }` with `levels` nested objects. */
function nested(levels: number, leaf: unknown = 1): unknown {
  let v: unknown = leaf;
  for (let i = 0; i < levels; i++) v = { a: v };
  return v;
}

const existing = (): StoredShadow =>
  accepted(
    applyUpdate(
      undefined,
      bytes({ state: { desired: { color: 'RED' }, reported: { color: 'GREEN' } } }),
      NOW,
    ),
  ).shadow;

describe('applyUpdate: invalid JSON', () => {
  it.each([
    ['truncated', '{"state":{"desired":'],
    ['trailing garbage', '{"state":{}} x'],
    ['single quotes', "{'state':{}}"],
    ['trailing comma', '{"state":{"desired":{"a":1,}}}'],
    ['empty payload', ''],
    ['whitespace only', '   \n'],
    ['top-level array', '[{"state":{}}]'],
    ['top-level string', '"state"'],
    ['top-level number', '42'],
    ['top-level null', 'null'],
  ])('%s -> 400 Invalid JSON', (_label, payload) => {
    expect(rejected(applyUpdate(undefined, text(payload), NOW))).toEqual({
      code: 400,
      message: 'Invalid JSON',
      timestamp: NOW,
    });
  });

  it('rejects numbers that only parse as Infinity inside state', () => {
    const err = rejected(
      applyUpdate(undefined, text(`{"state":{"reported":{"x":1e400}},"clientToken":"${TOKEN}"}`), NOW),
    );
    expect(err).toEqual({ code: 400, message: 'Invalid JSON', timestamp: NOW, clientToken: TOKEN });
  });
});

describe('applyUpdate: non-UTF-8 payloads', () => {
  it.each([
    ['invalid start byte', [0x7b, 0xff, 0x7d]],
    ['truncated multi-byte sequence', [0x7b, 0x22, 0xe2, 0x82, 0x22, 0x7d]],
    ['overlong encoding', [0x7b, 0xc0, 0xaf, 0x7d]],
    ['encoded surrogate', [0x22, 0xed, 0xa0, 0x80, 0x22]],
    ['Latin-1 text', [...text('{"state":{"reported":{"city":"M')].concat([0xfc], [...text('nchen"}}}')])],
  ])('%s -> 415', (_label, raw) => {
    expect(rejected(applyUpdate(undefined, Uint8Array.from(raw), NOW))).toEqual({
      code: 415,
      message: 'Unsupported documented encoding; supported encoding is UTF-8',
      timestamp: NOW,
    });
  });

  it('accepts multi-byte UTF-8 and a leading byte order mark', () => {
    const body = Uint8Array.from([0xef, 0xbb, 0xbf, ...text('{"state":{"reported":{"city":"München ✓"}}}')]);
    const r = accepted(applyUpdate(undefined, body, NOW));
    expect(r.shadow.state.reported).toEqual({ city: 'München ✓' });
  });
});

describe('applyUpdate: state node', () => {
  it('rejects a missing state and echoes the clientToken', () => {
    expect(rejected(applyUpdate(undefined, bytes({ clientToken: TOKEN }), NOW))).toEqual({
      code: 400,
      message: 'Missing required node: state',
      timestamp: NOW,
      clientToken: TOKEN,
    });
    // desired given without the state wrapper
    expect(
      rejected(applyUpdate(undefined, bytes({ desired: { a: 1 }, clientToken: TOKEN }), NOW)),
    ).toMatchObject({
      code: 400,
      message: 'Missing required node: state',
      clientToken: TOKEN,
    });
  });

  it.each([
    ['string', 'on'],
    ['array', [{ desired: { a: 1 } }]],
    ['number', 1],
    ['boolean', true],
  ])('rejects a %s state', (_label, state) => {
    expect(rejected(applyUpdate(existing(), bytes({ state, clientToken: TOKEN }), NOW))).toEqual({
      code: 400,
      message: 'State node must be an object',
      timestamp: NOW,
      clientToken: TOKEN,
    });
  });

  it.each(['delta', 'metadata', 'color', 'Desired'])(
    'rejects the unexpected state node %s, naming it',
    (node) => {
      const err = rejected(
        applyUpdate(undefined, bytes({ state: { [node]: { a: 1 } }, clientToken: TOKEN }), NOW),
      );
      expect(err).toEqual({
        code: 400,
        message: `State contains an invalid node: '${node}'`,
        timestamp: NOW,
        clientToken: TOKEN,
      });
    },
  );
});

describe('applyUpdate: desired and reported nodes', () => {
  const kinds: Array<[string, unknown]> = [
    ['string', 'RED'],
    ['array', [{ color: 'RED' }]],
    ['number', 3],
    ['boolean', false],
  ];
  it.each(kinds)('rejects a %s desired', (_label, value) => {
    expect(
      rejected(applyUpdate(undefined, bytes({ state: { desired: value }, clientToken: TOKEN }), NOW)),
    ).toEqual({
      code: 400,
      message: 'Desired node must be an object',
      timestamp: NOW,
      clientToken: TOKEN,
    });
  });
  it.each(kinds)('rejects a %s reported', (_label, value) => {
    expect(
      rejected(applyUpdate(undefined, bytes({ state: { reported: value }, clientToken: TOKEN }), NOW)),
    ).toEqual({
      code: 400,
      message: 'Reported node must be an object',
      timestamp: NOW,
      clientToken: TOKEN,
    });
  });

  it('rejects a null array element nested anywhere in a section, naming the path', () => {
    const err = rejected(
      applyUpdate(
        undefined,
        bytes({ state: { reported: { a: { list: [1, [2, null]] } } }, clientToken: TOKEN }),
        NOW,
      ),
    );
    expect(err.code).toBe(400);
    expect(err.message).toBe(
      "State contains an invalid node: 'reported.a.list[1][1]' (arrays can't hold null)",
    );
    expect(err.clientToken).toBe(TOKEN);
  });
});

describe('applyUpdate: nesting depth', () => {
  it('accepts a section exactly 6 levels deep and rejects 7', () => {
    // The reported object is level 1: nested(6) is reported plus five objects below it.
    expect(applyUpdate(undefined, bytes({ state: { reported: nested(6) } }), NOW).ok).toBe(true);
    expect(
      rejected(applyUpdate(undefined, bytes({ state: { reported: nested(7) }, clientToken: TOKEN }), NOW)),
    ).toEqual({
      code: 400,
      message: 'JSON contains too many levels of nesting; maximum is 6',
      timestamp: NOW,
      clientToken: TOKEN,
    });
  });

  it('accepts the five named levels below desired of the AWS quota example', () => {
    // AWS IoT Core quotas, Device Shadow: desired > one > two > three > four > five: {}.
    const desired = { one: { two: { three: { four: { five: {} } } } } };
    expect(applyUpdate(undefined, bytes({ state: { desired } }), NOW).ok).toBe(true);
  });

  it('counts arrays as levels', () => {
    expect(applyUpdate(undefined, bytes({ state: { desired: nested(5, [1, 2]) } }), NOW).ok).toBe(true);
    expect(
      rejected(applyUpdate(undefined, bytes({ state: { desired: nested(5, [[1]]) } }), NOW)).message,
    ).toBe('JSON contains too many levels of nesting; maximum is 6');
  });

  it('answers extremely deep documents with an error instead of overflowing the stack', () => {
    const levels = 20_000;
    const payload = `{"state":{"desired":${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}}}`;
    expect(payload.length).toBeLessThan(DEFAULT_SHADOW_LIMITS.maxPayloadBytes);
    expect(rejected(applyUpdate(undefined, text(payload), NOW)).message).toBe(
      'JSON contains too many levels of nesting; maximum is 6',
    );
  });

  it('uses the configured depth limit in the check and the message', () => {
    const limits: ShadowLimits = { ...DEFAULT_SHADOW_LIMITS, maxDepth: 3 };
    expect(applyUpdate(undefined, bytes({ state: { reported: nested(3) } }), NOW, limits).ok).toBe(true);
    expect(
      rejected(applyUpdate(undefined, bytes({ state: { reported: nested(4) } }), NOW, limits)).message,
    ).toBe('JSON contains too many levels of nesting; maximum is 3');
  });
});

describe('applyUpdate: size limits', () => {
  const M413 = 'The payload exceeds the maximum size allowed';

  it('rejects a request whose state alone exceeds 8 KB', () => {
    const err = rejected(
      applyUpdate(
        undefined,
        bytes({ state: { reported: { blob: 'x'.repeat(9000) } }, clientToken: TOKEN }),
        NOW,
      ),
    );
    expect(err).toEqual({ code: 413, message: M413, timestamp: NOW, clientToken: TOKEN });
  });

  it('counts desired and reported together after the merge', () => {
    const half = 'x'.repeat(4100);
    const shadow = accepted(applyUpdate(undefined, bytes({ state: { desired: { a: half } } }), NOW)).shadow;
    expect(rejected(applyUpdate(shadow, bytes({ state: { reported: { b: half } } }), NOW)).code).toBe(413);
    // Deleting data makes room again.
    const smaller = accepted(applyUpdate(shadow, bytes({ state: { desired: { a: 'short' } } }), NOW)).shadow;
    expect(applyUpdate(smaller, bytes({ state: { reported: { b: half } } }), NOW).ok).toBe(true);
  });

  it('counts UTF-8 bytes, not characters', () => {
    // 3000 x U+20AC is 9000 bytes but only 3000 characters.
    expect(
      rejected(applyUpdate(undefined, bytes({ state: { reported: { e: '€'.repeat(3000) } } }), NOW)).code,
    ).toBe(413);
  });

  it('rejects a payload over maxPayloadBytes before parsing it', () => {
    const limits: ShadowLimits = { ...DEFAULT_SHADOW_LIMITS, maxPayloadBytes: 64 };
    const body = bytes({ state: { reported: { note: 'y'.repeat(80) } }, clientToken: TOKEN });
    expect(rejected(applyUpdate(undefined, body, NOW, limits))).toEqual({
      code: 413,
      message: M413,
      timestamp: NOW,
    });
    const tooBigJunk = new Uint8Array(DEFAULT_SHADOW_LIMITS.maxPayloadBytes + 1).fill(0xff);
    expect(rejected(applyUpdate(undefined, tooBigJunk, NOW)).code).toBe(413);
  });

  it('leaves the current shadow untouched when an update is rejected', () => {
    const shadow = existing();
    const before = JSON.stringify(shadow);
    rejected(applyUpdate(shadow, bytes({ state: { reported: { blob: 'x'.repeat(9000) } } }), NOW + 1));
    applyUpdate(shadow, bytes({ state: { reported: { color: 'RED', extra: { deep: 1 } } } }), NOW + 2);
    expect(JSON.stringify(shadow)).toBe(before);
  });
});

describe('applyUpdate: clientToken', () => {
  it('measures the 64-byte limit in UTF-8 bytes', () => {
    expect(applyUpdate(undefined, bytes({ state: {}, clientToken: '€'.repeat(21) }), NOW).ok).toBe(true); // 63 bytes
    expect(rejected(applyUpdate(undefined, bytes({ state: {}, clientToken: '€'.repeat(22) }), NOW))).toEqual({
      code: 400,
      message: 'Invalid clientToken',
      timestamp: NOW,
    });
  });

  it.each([
    ['number', 12],
    ['object', { id: 1 }],
    ['array', ['a']],
    ['null', null],
    ['boolean', true],
  ])('rejects a %s clientToken without echoing it', (_label, clientToken) => {
    expect(rejected(applyUpdate(undefined, bytes({ state: {}, clientToken }), NOW))).toEqual({
      code: 400,
      message: 'Invalid clientToken',
      timestamp: NOW,
    });
  });
});

describe('applyUpdate: version', () => {
  it.each([
    ['string', '1'],
    ['fraction', 1.5],
    ['negative', -1],
    ['boolean', true],
    ['null', null],
    ['object', { v: 1 }],
    ['unsafe integer', 1e300],
  ])('rejects a %s version with 400 Invalid version', (_label, version) => {
    expect(rejected(applyUpdate(existing(), bytes({ state: {}, version, clientToken: TOKEN }), NOW))).toEqual(
      {
        code: 400,
        message: 'Invalid version',
        timestamp: NOW,
        clientToken: TOKEN,
      },
    );
  });

  it('reports a conflict for a version that does not match, echoing the clientToken', () => {
    const shadow = existing();
    expect(rejected(applyUpdate(shadow, bytes({ state: {}, version: 0, clientToken: TOKEN }), NOW))).toEqual({
      code: 409,
      message: 'Version conflict',
      timestamp: NOW,
      clientToken: TOKEN,
    });
    expect(applyUpdate(shadow, bytes({ state: {}, version: 1 }), NOW).ok).toBe(true);
  });

  it('compares against 0 when the shadow does not exist yet', () => {
    expect(applyUpdate(undefined, bytes({ state: {}, version: 0 }), NOW).ok).toBe(true);
    expect(rejected(applyUpdate(undefined, bytes({ state: {}, version: 3 }), NOW)).code).toBe(409);
  });

  it('validates the request before checking the version', () => {
    expect(rejected(applyUpdate(existing(), bytes({ state: 'x', version: 99 }), NOW)).code).toBe(400);
  });
});

describe('applyUpdate: merge semantics', () => {
  it('compares numbers by value and objects regardless of key order', () => {
    const shadow = accepted(
      applyUpdate(undefined, text('{"state":{"reported":{"n":1,"o":{"a":1,"b":2}}}}'), NOW),
    ).shadow;
    const r = accepted(
      applyUpdate(shadow, text('{"state":{"desired":{"n":1.0,"o":{"b":2,"a":1.00}}}}'), NOW),
    );
    expect(r.delta).toBeUndefined();
  });

  it('keeps metadata aligned when a value changes between scalar, object and array', () => {
    let shadow = accepted(applyUpdate(undefined, bytes({ state: { reported: { v: 1 } } }), 1)).shadow;
    shadow = accepted(
      applyUpdate(shadow, bytes({ state: { reported: { v: { x: 1, y: [1, { z: 2 }] } } } }), 2),
    ).shadow;
    expect(shadow.metadata.reported).toEqual({
      v: { x: { timestamp: 2 }, y: [{ timestamp: 2 }, { z: { timestamp: 2 } }] },
    });
    shadow = accepted(applyUpdate(shadow, bytes({ state: { reported: { v: { x: 5 } } } }), 3)).shadow;
    expect(shadow.state.reported).toEqual({ v: { x: 5, y: [1, { z: 2 }] } });
    expect(shadow.metadata.reported).toEqual({
      v: { x: { timestamp: 3 }, y: [{ timestamp: 2 }, { z: { timestamp: 2 } }] },
    });
    shadow = accepted(applyUpdate(shadow, bytes({ state: { reported: { v: 'flat' } } }), 4)).shadow;
    expect(shadow.metadata.reported).toEqual({ v: { timestamp: 4 } });
  });

  it('creates nothing for an object holding only deletions, but keeps an emptied existing object', () => {
    const created = accepted(
      applyUpdate(undefined, bytes({ state: { reported: { a: 1, o: { b: null } } } }), 1),
    );
    expect(created.shadow.state.reported).toEqual({ a: 1 });
    const emptied = accepted(
      applyUpdate(
        accepted(applyUpdate(undefined, bytes({ state: { reported: { o: { b: 1 } } } }), 1)).shadow,
        bytes({ state: { reported: { o: { b: null } } } }),
        2,
      ),
    );
    expect(emptied.shadow.state.reported).toEqual({ o: {} });
  });

  it('drops a section once its last key is deleted', () => {
    const shadow = existing();
    const r = accepted(applyUpdate(shadow, bytes({ state: { desired: { color: null } } }), NOW + 1));
    expect(r.shadow.state).toEqual({ reported: { color: 'GREEN' } });
    expect(r.shadow.metadata).not.toHaveProperty('desired');
  });

  it('stores keys such as __proto__ as plain data without touching prototypes', () => {
    const r = accepted(
      applyUpdate(undefined, text('{"state":{"desired":{"__proto__":{"polluted":1},"constructor":2}}}'), NOW),
    );
    const desired = r.shadow.state.desired ?? {};
    expect(Object.keys(desired).sort()).toEqual(['__proto__', 'constructor']);
    expect(Object.getPrototypeOf(desired)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(JSON.parse(JSON.stringify(r.shadow.state.desired))).toEqual(
      JSON.parse('{"__proto__":{"polluted":1},"constructor":2}'),
    );
  });

  it('does not let toString-like keys collide with inherited members during the delta', () => {
    const shadow = accepted(
      applyUpdate(undefined, bytes({ state: { desired: { toString: 'x', valueOf: { a: 1 } } } }), NOW),
    ).shadow;
    expect(
      accepted(applyUpdate(shadow, bytes({ state: { reported: {} } }), NOW)).shadow.state.desired,
    ).toEqual({
      toString: 'x',
      valueOf: { a: 1 },
    });
    const doc = getShadow(shadow, new Uint8Array(0), NOW);
    expect(doc.ok && doc.document.state).toMatchObject({ delta: { toString: 'x', valueOf: { a: 1 } } });
  });

  it('accepts an empty state and still increments the version', () => {
    const shadow = existing();
    const r = accepted(applyUpdate(shadow, bytes({ state: {} }), NOW + 5));
    expect(r.shadow.version).toBe(shadow.version + 1);
    expect(r.shadow.state).toEqual(shadow.state);
    expect(r.accepted).toEqual({ state: {}, metadata: {}, version: shadow.version + 1, timestamp: NOW + 5 });
  });

  it('floors fractional clock readings to epoch seconds', () => {
    const r = accepted(applyUpdate(undefined, bytes({ state: { reported: { a: 1 } } }), NOW + 0.9));
    expect(r.shadow.timestamp).toBe(NOW);
    expect(r.accepted.timestamp).toBe(NOW);
  });
});

describe('getShadow: request body', () => {
  const shadow = existing();

  it('accepts an empty or whitespace body and an object without clientToken', () => {
    expect(getShadow(shadow, new Uint8Array(0), NOW).ok).toBe(true);
    expect(getShadow(shadow, text(' \n'), NOW).ok).toBe(true);
    expect(getShadow(shadow, bytes({}), NOW).ok).toBe(true);
  });

  it('echoes the clientToken in the document and in the 404', () => {
    const r = getShadow(shadow, bytes({ clientToken: TOKEN }), NOW);
    expect(r.ok && r.document.clientToken).toBe(TOKEN);
    expect(rejected(getShadow(undefined, bytes({ clientToken: TOKEN }), NOW, 'lamp'))).toEqual({
      code: 404,
      message: "No shadow exists with name: 'lamp'",
      timestamp: NOW,
      clientToken: TOKEN,
    });
  });

  it('rejects invalid JSON, non-UTF-8, an invalid clientToken and an oversized body', () => {
    expect(rejected(getShadow(shadow, text('{"clientToken":'), NOW))).toEqual({
      code: 400,
      message: 'Invalid JSON',
      timestamp: NOW,
    });
    expect(rejected(getShadow(shadow, Uint8Array.from([0xff]), NOW)).code).toBe(415);
    expect(rejected(getShadow(shadow, bytes({ clientToken: 'z'.repeat(65) }), NOW)).message).toBe(
      'Invalid clientToken',
    );
    const limits: ShadowLimits = { ...DEFAULT_SHADOW_LIMITS, maxPayloadBytes: 8 };
    expect(rejected(getShadow(shadow, bytes({ clientToken: TOKEN }), NOW, 'x', limits)).code).toBe(413);
  });
});

describe('deleteShadow: request body', () => {
  it('ignores message content it cannot use, echoing a valid clientToken', () => {
    const shadow = existing();
    const junk = deleteShadow(shadow, Uint8Array.from([0xff, 0x00]), NOW);
    expect(junk.ok && junk.accepted).toEqual({ version: shadow.version, timestamp: NOW });
    const badToken = deleteShadow(shadow, bytes({ clientToken: 'z'.repeat(65) }), NOW);
    expect(badToken.ok && badToken.accepted).toEqual({ version: shadow.version, timestamp: NOW });
    const withToken = deleteShadow(shadow, bytes({ clientToken: TOKEN }), NOW);
    expect(withToken).toEqual({
      ok: true,
      accepted: { version: shadow.version, timestamp: NOW, clientToken: TOKEN },
      deletedVersion: shadow.version,
      tombstone: { version: shadow.version, deletedAt: NOW },
    });
    expect(rejected(deleteShadow(undefined, bytes({ clientToken: TOKEN }), NOW, 'lamp'))).toEqual({
      code: 404,
      message: "No shadow exists with name: 'lamp'",
      timestamp: NOW,
      clientToken: TOKEN,
    });
  });
});
