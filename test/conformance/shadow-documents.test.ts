/**
 * Conformance of the local Device Shadow engine with the AWS IoT Core Developer Guide.
 * Each test names the page (and section) whose example it reproduces; example values are kept as
 * the documentation shows them.
 */
import { describe, expect, it } from '@jest/globals';
import {
  applyUpdate,
  DEFAULT_SHADOW_LIMITS,
  deleteShadow,
  getShadow,
  type JsonObject,
  type StoredShadow,
  type UpdateOutcome,
} from '../../cloud/local/shadow/engine.js';

const bytes = (doc: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(doc));
const EMPTY = new Uint8Array(0);

function accepted(outcome: UpdateOutcome): Extract<UpdateOutcome, { ok: true }> {
  if (!outcome.ok) throw new Error(`update rejected: ${JSON.stringify(outcome.error)}`);
  return outcome;
}

function document(shadow: StoredShadow | undefined, now: number, name = 'thing'): JsonObject {
  const r = getShadow(shadow, EMPTY, now, name);
  if (!r.ok) throw new Error(`get rejected: ${JSON.stringify(r.error)}`);
  return r.document;
}

/** Builds a shadow by applying updates in order, one second apart. */
function build(...requests: unknown[]): StoredShadow {
  let shadow: StoredShadow | undefined;
  let now = 1000;
  for (const r of requests) shadow = accepted(applyUpdate(shadow, bytes(r), now++)).shadow;
  if (!shadow) throw new Error('no request');
  return shadow;
}

describe('Device Shadow service documents — shadow document examples', () => {
  // Page: "Device Shadow service documents", section "Request state document" and
  // "/accepted response state document": the accepted document echoes only what the request sent,
  // with a metadata timestamp per attribute, plus timestamp, clientToken and version.
  it('answers a request state document with the /accepted response state document', () => {
    const shadow = build({ state: { reported: { attribute1: 1, attribute2: 'string1', attributeN: true } } });
    const r = accepted(
      applyUpdate(
        shadow,
        bytes({
          state: { desired: { attribute1: 2, attribute2: 'string2', attributeN: false } },
          clientToken: 'token',
          version: shadow.version,
        }),
        2000,
      ),
    );
    expect(r.accepted).toEqual({
      state: { desired: { attribute1: 2, attribute2: 'string2', attributeN: false } },
      metadata: {
        desired: {
          attribute1: { timestamp: 2000 },
          attribute2: { timestamp: 2000 },
          attributeN: { timestamp: 2000 },
        },
      },
      timestamp: 2000,
      clientToken: 'token',
      version: shadow.version + 1,
    });
  });

  // Page: "Device Shadow service documents", section "/delta response state document": the state and
  // metadata are flat (no desired/reported level), plus timestamp, clientToken and version.
  it('shapes the /update/delta document as the /delta response state document', () => {
    const shadow = build({ state: { reported: { attribute1: 1, attribute2: 'string1', attributeN: true } } });
    const r = accepted(
      applyUpdate(
        shadow,
        bytes({
          state: { desired: { attribute1: 2, attribute2: 'string2', attributeN: false } },
          clientToken: 'token',
        }),
        2000,
      ),
    );
    expect(r.delta).toEqual({
      state: { attribute1: 2, attribute2: 'string2', attributeN: false },
      metadata: {
        attribute1: { timestamp: 2000 },
        attribute2: { timestamp: 2000 },
        attributeN: { timestamp: 2000 },
      },
      timestamp: 2000,
      clientToken: 'token',
      version: shadow.version + 1,
    });
  });

  // Page: "Device Shadow service documents", section "/documents response state document": previous
  // holds the document before the update (version - 1), current the one after (version), each with
  // state (desired, reported), metadata (desired, reported) and version; plus timestamp and clientToken.
  it('shapes the /update/documents document with previous (version-1) and current (version)', () => {
    const shadow = build(
      { state: { desired: { attribute1: 2, attribute2: 'string2', attributeN: true } } },
      { state: { reported: { attribute1: 1, attribute2: 'string1', attributeN: true } } },
    );
    const r = accepted(
      applyUpdate(
        shadow,
        bytes({ state: { reported: { attribute1: 2, attribute2: 'string2' } }, clientToken: 'token' }),
        2000,
      ),
    );
    expect(r.documents).toEqual({
      previous: {
        state: {
          desired: { attribute1: 2, attribute2: 'string2', attributeN: true },
          reported: { attribute1: 1, attribute2: 'string1', attributeN: true },
        },
        metadata: shadow.metadata,
        version: shadow.version,
      },
      current: {
        state: {
          desired: { attribute1: 2, attribute2: 'string2', attributeN: true },
          reported: { attribute1: 2, attribute2: 'string2', attributeN: true },
        },
        metadata: {
          desired: shadow.metadata.desired,
          reported: {
            attribute1: { timestamp: 2000 },
            attribute2: { timestamp: 2000 },
            attributeN: shadow.metadata.reported?.attributeN,
          },
        },
        version: shadow.version + 1,
      },
      timestamp: 2000,
      clientToken: 'token',
    });
  });

  // Page: "Device Shadow service documents", /documents response: previous is the object's state
  // before the update. When the update creates the shadow there was no document before it, so
  // previous is null and current is the new document at version 1.
  it('publishes previous: null in /update/documents when the update creates the shadow', () => {
    const r = accepted(applyUpdate(undefined, bytes({ state: { reported: { temp: 55 } } }), 1591140517));
    expect(r.documents).toEqual({
      previous: null,
      current: {
        state: { reported: { temp: 55 } },
        metadata: { reported: { temp: { timestamp: 1591140517 } } },
        version: 1,
      },
      timestamp: 1591140517,
    });
  });

  // Page: "Device Shadow service documents", section "Error response document": code, message,
  // timestamp and clientToken (present only if the request used one).
  it('shapes error responses as the error response document', () => {
    const r = applyUpdate(undefined, bytes({ clientToken: 'token' }), 1591140517);
    expect(r).toEqual({
      ok: false,
      error: {
        code: 400,
        message: 'Missing required node: state',
        timestamp: 1591140517,
        clientToken: 'token',
      },
    });
    const noToken = applyUpdate(undefined, bytes({}), 1591140517);
    expect(noToken.ok).toBe(false);
    if (!noToken.ok) expect(noToken.error).not.toHaveProperty('clientToken');
  });

  // Page: "Device Shadow service documents", section "Response state document properties":
  // clientToken is present only if the request carried one.
  it('omits clientToken from responses when the request had none', () => {
    const r = accepted(applyUpdate(undefined, bytes({ state: { desired: { color: 'RED' } } }), 1));
    expect(r.accepted).not.toHaveProperty('clientToken');
    expect(r.delta).not.toHaveProperty('clientToken');
    expect(r.documents).not.toHaveProperty('clientToken');
  });
});

describe('Device Shadow service documents — delta state', () => {
  // Page: "Device Shadow service documents", section "Delta state", first example: desired
  // {color: RED, state: STOP}, reported {color: GREEN, engine: ON} => delta {color: RED, state: STOP};
  // the delta's metadata equals the desired metadata.
  it('puts desired fields missing from or different in reported into the delta', () => {
    const shadow = build(
      { state: { reported: { color: 'GREEN', engine: 'ON' } } },
      { state: { desired: { color: 'RED', state: 'STOP' } } },
    );
    const doc = document(shadow, 123456789);
    expect(doc.state).toEqual({
      desired: { color: 'RED', state: 'STOP' },
      reported: { color: 'GREEN', engine: 'ON' },
      delta: { color: 'RED', state: 'STOP' },
    });

    const again = accepted(applyUpdate(shadow, bytes({ state: { desired: { color: 'RED' } } }), 12345));
    expect(again.delta?.state).toEqual({ color: 'RED', state: 'STOP' });
    expect(again.delta?.metadata).toEqual({
      color: again.shadow.metadata.desired?.color,
      state: again.shadow.metadata.desired?.state,
    });
  });

  // Page: "Device Shadow service documents", section "Delta state", second example: nested objects
  // that differ give a delta holding the path down from the root: lights.color.g = 255.
  it('keeps the path to the root for nested objects that differ', () => {
    const shadow = build(
      { state: { reported: { lights: { color: { r: 255, g: 0, b: 255 } } } } },
      { state: { desired: { lights: { color: { r: 255, g: 255, b: 255 } } } } },
    );
    expect(document(shadow, 123456789).state).toEqual({
      desired: { lights: { color: { r: 255, g: 255, b: 255 } } },
      reported: { lights: { color: { r: 255, g: 0, b: 255 } } },
      delta: { lights: { color: { g: 255 } } },
    });
  });

  // Page: "Device Shadow service documents", section "Delta state": arrays are treated like values;
  // an array in desired that does not match reported is copied whole into the delta.
  it('copies the whole desired array into the delta when arrays differ', () => {
    const shadow = build(
      { state: { reported: { colors: ['RED', 'GREEN', 'BLUE'] } } },
      { state: { desired: { colors: ['RED', 'GREEN'] } } },
    );
    expect((document(shadow, 1).state as JsonObject).delta).toEqual({ colors: ['RED', 'GREEN'] });
    const same = build(
      { state: { reported: { colors: ['RED', 'GREEN', 'BLUE'] } } },
      { state: { desired: { colors: ['RED', 'GREEN', 'BLUE'] } } },
    );
    expect(document(same, 1).state).not.toHaveProperty('delta');
  });
});

describe('Device Shadow service documents — versioning, client tokens, empty properties, arrays', () => {
  // Page: "Device Shadow service documents", section "Versioning shadow documents": the version is
  // incremented on every update; omitting version bypasses version matching.
  it('increments the version on every update and skips matching when version is omitted', () => {
    let shadow: StoredShadow | undefined;
    for (let i = 1; i <= 3; i++) {
      shadow = accepted(applyUpdate(shadow, bytes({ state: { reported: { n: i } } }), i)).shadow;
      expect(shadow.version).toBe(i);
    }
  });

  // Page: "Device Shadow service documents", section "Client tokens in shadow documents": a client
  // token longer than 64 bytes gets 400 (Bad Request) with "Invalid clientToken".
  it('rejects client tokens over 64 bytes with 400 Invalid clientToken', () => {
    const ok = applyUpdate(
      undefined,
      bytes({ state: { reported: { a: 1 } }, clientToken: 'x'.repeat(64) }),
      1,
    );
    expect(ok.ok).toBe(true);
    const r = applyUpdate(
      undefined,
      bytes({ state: { reported: { a: 1 } }, clientToken: 'x'.repeat(65) }),
      1,
    );
    expect(r).toEqual({ ok: false, error: { code: 400, message: 'Invalid clientToken', timestamp: 1 } });
  });

  // Page: "Device Shadow service documents", section "Empty shadow document properties": a document
  // may have only reported ({temp: 55}) or only desired ({color: RED}); setting desired to null in
  // the documented update {reported: {color: red}, desired: null} removes the desired property.
  it('omits absent sections and removes desired when it is set to null', () => {
    const reportedOnly = build({ state: { reported: { temp: 55 } } });
    expect(document(reportedOnly, 1).state).toEqual({ reported: { temp: 55 } });
    const desiredOnly = build({ state: { desired: { color: 'RED' } } });
    expect(document(desiredOnly, 1).state).toEqual({ desired: { color: 'RED' }, delta: { color: 'RED' } });

    const r = accepted(
      applyUpdate(desiredOnly, bytes({ state: { reported: { color: 'red' }, desired: null } }), 2000),
    );
    expect(r.shadow.state).toEqual({ reported: { color: 'red' } });
    expect(r.shadow.metadata).toEqual({ reported: { color: { timestamp: 2000 } } });
    expect(r.accepted).toEqual({
      state: { reported: { color: 'red' }, desired: null },
      metadata: { reported: { color: { timestamp: 2000 } }, desired: { timestamp: 2000 } },
      version: 2,
      timestamp: 2000,
    });
    expect(r.delta).toBeUndefined();
  });

  // Page: "Device Shadow service documents", section "Empty shadow document properties": a shadow
  // document with neither desired nor reported is valid and empty.
  it('keeps an emptied shadow as a valid, empty document', () => {
    const shadow = build({ state: { desired: { color: 'RED' } } }, { state: { desired: null } });
    expect(document(shadow, 5)).toEqual({ state: {}, metadata: {}, version: 2, timestamp: 5 });
  });

  // Page: "Device Shadow service documents", section "Array values in shadow documents": an update to
  // an array replaces the whole array (initial colors [RED, GREEN, BLUE], update [RED], final [RED]).
  it('replaces arrays whole', () => {
    const shadow = build({ state: { desired: { colors: ['RED', 'GREEN', 'BLUE'] } } });
    const r = accepted(applyUpdate(shadow, bytes({ state: { desired: { colors: ['RED'] } } }), 7));
    expect(r.shadow.state).toEqual({ desired: { colors: ['RED'] } });
    expect(r.shadow.metadata).toEqual({ desired: { colors: [{ timestamp: 7 }] } });
  });

  // Page: "Device Shadow service documents", section "Array values in shadow documents": arrays
  // can't have null values; {desired: {colors: [null, RED, GREEN]}} is rejected.
  it('rejects arrays that hold null', () => {
    const r = applyUpdate(undefined, bytes({ state: { desired: { colors: [null, 'RED', 'GREEN'] } } }), 1);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe(400);
      expect(r.error.message).toMatch(/^State contains an invalid node/);
    }
  });
});

describe('Interacting with shadows', () => {
  // Page: "Interacting with shadows", section "Updating a shadow when a client requests a state
  // change": the client publishes desired {color: {r: 10}, engine: ON}; AWS IoT answers on
  // /update/accepted and /update/delta.
  it('publishes accepted and delta when a client requests a state change', () => {
    const r = accepted(
      applyUpdate(undefined, bytes({ state: { desired: { color: { r: 10 }, engine: 'ON' } } }), 1591057000),
    );
    expect(r.accepted).toEqual({
      state: { desired: { color: { r: 10 }, engine: 'ON' } },
      metadata: { desired: { color: { r: { timestamp: 1591057000 } }, engine: { timestamp: 1591057000 } } },
      version: 1,
      timestamp: 1591057000,
    });
    expect(r.delta).toEqual({
      state: { color: { r: 10 }, engine: 'ON' },
      metadata: { color: { r: { timestamp: 1591057000 } }, engine: { timestamp: 1591057000 } },
      version: 1,
      timestamp: 1591057000,
    });
  });

  // Page: "Interacting with shadows", section "Updating a shadow when a device reports its current
  // state": the device reports {color: {r: 10}, engine: ON}; the update is accepted and the shadow
  // no longer has a delta.
  it('clears the delta when the device reports the desired state', () => {
    const requested = build({ state: { desired: { color: { r: 10 }, engine: 'ON' } } });
    const r = accepted(
      applyUpdate(requested, bytes({ state: { reported: { color: { r: 10 }, engine: 'ON' } } }), 1591057100),
    );
    expect(r.accepted.state).toEqual({ reported: { color: { r: 10 }, engine: 'ON' } });
    expect(r.delta).toBeUndefined();
    expect(document(r.shadow, 1591057200).state).toEqual({
      desired: { color: { r: 10 }, engine: 'ON' },
      reported: { color: { r: 10 }, engine: 'ON' },
    });
  });

  // Page: "Interacting with shadows", section "Optimistic locking": initial document version 10 with
  // desired colors [RED, GREEN, BLUE]; an update with version 9 is rejected with
  // {code: 409, message: "Version conflict", clientToken: "426bfd96-e720-46d3-95cd-014e3ef12bb6"};
  // the same update with version 10 is accepted and the final state has colors [BLUE] at version 11.
  it('rejects a stale version with 409 and accepts the matching one', () => {
    const initial: StoredShadow = {
      state: { desired: { colors: ['RED', 'GREEN', 'BLUE'] } },
      metadata: { desired: { colors: [{ timestamp: 1 }, { timestamp: 1 }, { timestamp: 1 }] } },
      version: 10,
      timestamp: 1,
    };
    const clientToken = '426bfd96-e720-46d3-95cd-014e3ef12bb6';
    const stale = applyUpdate(
      initial,
      bytes({ state: { desired: { colors: ['BLUE'] } }, version: 9, clientToken }),
      2,
    );
    expect(stale.ok).toBe(false);
    if (!stale.ok) expect(stale.error).toMatchObject({ code: 409, message: 'Version conflict', clientToken });

    const r = accepted(
      applyUpdate(initial, bytes({ state: { desired: { colors: ['BLUE'] } }, version: 10 }), 3),
    );
    expect(r.shadow.state).toEqual({ desired: { colors: ['BLUE'] } });
    expect(r.shadow.version).toBe(11);
  });

  // Page: "Interacting with shadows", section "Deleting a property from a shadow document": the
  // update {state: {desired: {engine: null}}} removes the engine property.
  it('deletes a property set to null', () => {
    const shadow = build({ state: { desired: { color: { r: 10 }, engine: 'ON' } } });
    const r = accepted(applyUpdate(shadow, bytes({ state: { desired: { engine: null } } }), 50));
    expect(r.shadow.state).toEqual({ desired: { color: { r: 10 } } });
    expect(r.shadow.metadata.desired).not.toHaveProperty('engine');
    expect(r.accepted.state).toEqual({ desired: { engine: null } });
  });

  // Page: "Interacting with shadows", section "Deleting a shadow": the accepted delete message is the
  // abbreviated document {version: 4, timestamp: 1591057529}.
  it('answers a delete with the abbreviated accepted document', () => {
    const shadow = build(
      { state: { desired: { a: 1 } } },
      { state: { desired: { a: 2 } } },
      { state: { desired: { a: 3 } } },
      { state: { desired: { a: 4 } } },
    );
    const r = deleteShadow(shadow, EMPTY, 1591057529, 'thing');
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.accepted).toEqual({ version: 4, timestamp: 1591057529 });
    expect(getShadow(undefined, EMPTY, 1591057530, 'thing')).toMatchObject({
      ok: false,
      error: { code: 404 },
    });
  });

  // Page: "Interacting with shadows", DELETE and "Deleting shadow data": deleting a shadow does not
  // reset its version to 0; a shadow recreated within 48 hours continues from the deleted version,
  // after 48 hours the version number starts over.
  it('continues the version of a shadow recreated within 48 hours of its delete', () => {
    const shadow = build({ state: { desired: { a: 1 } } }, { state: { desired: { a: 2 } } });
    const del = deleteShadow(shadow, EMPTY, 10_000, 'thing');
    if (!del.ok) throw new Error('delete rejected');
    const soon = accepted(
      applyUpdate(undefined, bytes({ state: { desired: { a: 1 } } }), 20_000, undefined, del.tombstone),
    );
    expect(soon.shadow.version).toBe(3);
    const withVersionOnly = accepted(
      applyUpdate(undefined, bytes({ state: { desired: { a: 1 } } }), 20_000, undefined, del.deletedVersion),
    );
    expect(withVersionOnly.shadow.version).toBe(3);
    const late = accepted(
      applyUpdate(
        undefined,
        bytes({ state: { desired: { a: 1 } } }),
        10_000 + 48 * 3600 + 1,
        undefined,
        del.tombstone,
      ),
    );
    expect(late.shadow.version).toBe(1);
  });

  // Page: "Interacting with shadows", section "Deleting a shadow", note: setting the shadow's state
  // to null does not delete the shadow; its version is incremented on the next update.
  it('empties but keeps the shadow when state is set to null', () => {
    const shadow = build({ state: { desired: { a: 1 }, reported: { b: 2 } } });
    const r = accepted(applyUpdate(shadow, bytes({ state: null }), 60));
    expect(r.shadow).toEqual({ state: {}, metadata: {}, version: 2, timestamp: 60 });
    expect(r.accepted).toEqual({ state: null, metadata: { timestamp: 60 }, version: 2, timestamp: 60 });
    const next = accepted(applyUpdate(r.shadow, bytes({ state: { reported: { b: 3 } } }), 61));
    expect(next.shadow.version).toBe(3);
  });
});

describe('Device Shadow MQTT topics — /update/delta message body details', () => {
  // Page: "Device Shadow MQTT topics", /update/delta: the message includes every desired attribute
  // that differs from reported, whether or not it was in this update; attributes only in reported are
  // not included; attributes in desired with no reported equivalent are included; an attribute
  // deleted from reported but still in desired is included.
  it('includes all differing desired attributes, not just those in the update', () => {
    const shadow = build(
      { state: { reported: { color: 'red', power: 'off', fan: 1 } } },
      { state: { desired: { color: 'blue', power: 'off' } } },
    );
    const r = accepted(applyUpdate(shadow, bytes({ state: { desired: { brightness: 80 } } }), 10));
    expect(r.delta?.state).toEqual({ color: 'blue', brightness: 80 });
  });

  it('includes an attribute deleted from reported that is still desired', () => {
    const shadow = build(
      { state: { reported: { color: 'red', power: 'on' } } },
      { state: { desired: { color: 'red', power: 'on' } } },
    );
    const reportDelete = accepted(applyUpdate(shadow, bytes({ state: { reported: { power: null } } }), 10));
    expect(document(reportDelete.shadow, 11).state).toMatchObject({ delta: { power: 'on' } });
    const r = accepted(applyUpdate(reportDelete.shadow, bytes({ state: { desired: { color: 'red' } } }), 12));
    expect(r.delta?.state).toEqual({ power: 'on' });
  });

  // Page: "Device Shadow MQTT topics", /update/delta: published when the update's desired and
  // reported states differ; a desired update that matches reported publishes no delta.
  it('publishes no delta when desired matches reported', () => {
    const shadow = build({ state: { reported: { color: 'red', power: 'on' } } });
    const r = accepted(applyUpdate(shadow, bytes({ state: { desired: { color: 'red', power: 'on' } } }), 10));
    expect(r.delta).toBeUndefined();
  });
});

describe('Simulating Device Shadow service communications (mySimulatedThing / simShadow1)', () => {
  // Page: "Simulating Device Shadow service communications". The named shadow simShadow1 starts
  // absent; the device reports ID SmartLamp21 and ColorRGB [128,128,128]; the app sets desired
  // ColorRGB [255,255,0]; the device reports it back. Values and timestamps are the page's.
  const name = 'simShadow1';

  it('answers get on a missing shadow with 404 naming the shadow', () => {
    expect(getShadow(undefined, EMPTY, 1591140000, name)).toEqual({
      ok: false,
      error: { code: 404, message: "No shadow exists with name: 'simShadow1'", timestamp: 1591140000 },
    });
  });

  it('reproduces the accepted, delta, documents and get documents of the walk-through', () => {
    // "Initialize the device": the shadow as the get/accepted example shows it, at version 3.
    const initial: StoredShadow = {
      state: { reported: { ID: 'SmartLamp21', ColorRGB: [128, 128, 128] } },
      metadata: {
        reported: {
          ID: { timestamp: 1591140517 },
          ColorRGB: [{ timestamp: 1591140517 }, { timestamp: 1591140517 }, { timestamp: 1591140517 }],
        },
      },
      version: 3,
      timestamp: 1591140517,
    };

    // "Send an update from the app": get-thing-shadow returns the document.
    expect(document(initial, 1591141111, name)).toEqual({
      state: { reported: { ID: 'SmartLamp21', ColorRGB: [128, 128, 128] } },
      metadata: {
        reported: {
          ID: { timestamp: 1591140517 },
          ColorRGB: [{ timestamp: 1591140517 }, { timestamp: 1591140517 }, { timestamp: 1591140517 }],
        },
      },
      version: 3,
      timestamp: 1591141111,
    });

    // update-thing-shadow with desired ColorRGB [255,255,0].
    const appUpdate = accepted(
      applyUpdate(
        initial,
        bytes({
          state: { desired: { ColorRGB: [255, 255, 0] } },
          clientToken: '21b21b21-bfd2-4279-8c65-e2f697ff4fab',
        }),
        1591141596,
      ),
    );
    expect(appUpdate.accepted).toEqual({
      state: { desired: { ColorRGB: [255, 255, 0] } },
      metadata: {
        desired: {
          ColorRGB: [{ timestamp: 1591141596 }, { timestamp: 1591141596 }, { timestamp: 1591141596 }],
        },
      },
      version: 4,
      timestamp: 1591141596,
      clientToken: '21b21b21-bfd2-4279-8c65-e2f697ff4fab',
    });

    // "Respond to update in device": the /update/delta message.
    expect(appUpdate.delta).toEqual({
      version: 4,
      timestamp: 1591141596,
      state: { ColorRGB: [255, 255, 0] },
      metadata: {
        ColorRGB: [{ timestamp: 1591141596 }, { timestamp: 1591141596 }, { timestamp: 1591141596 }],
      },
      clientToken: '21b21b21-bfd2-4279-8c65-e2f697ff4fab',
    });

    // The device reports ColorRGB [255,255,0].
    const deviceReport = accepted(
      applyUpdate(
        appUpdate.shadow,
        bytes({
          state: { reported: { ColorRGB: [255, 255, 0] } },
          clientToken: 'a4dc2227-9213-4c6a-a6a5-053304f60258',
        }),
        1591142747,
      ),
    );
    expect(deviceReport.accepted).toEqual({
      state: { reported: { ColorRGB: [255, 255, 0] } },
      metadata: {
        reported: {
          ColorRGB: [{ timestamp: 1591142747 }, { timestamp: 1591142747 }, { timestamp: 1591142747 }],
        },
      },
      version: 5,
      timestamp: 1591142747,
      clientToken: 'a4dc2227-9213-4c6a-a6a5-053304f60258',
    });
    expect(deviceReport.delta).toBeUndefined();

    // The comprehensive /update/documents message of that update.
    expect(deviceReport.documents).toEqual({
      previous: {
        state: {
          desired: { ColorRGB: [255, 255, 0] },
          reported: { ID: 'SmartLamp21', ColorRGB: [128, 128, 128] },
        },
        metadata: {
          desired: {
            ColorRGB: [{ timestamp: 1591141596 }, { timestamp: 1591141596 }, { timestamp: 1591141596 }],
          },
          reported: {
            ID: { timestamp: 1591140517 },
            ColorRGB: [{ timestamp: 1591140517 }, { timestamp: 1591140517 }, { timestamp: 1591140517 }],
          },
        },
        version: 4,
      },
      current: {
        state: {
          desired: { ColorRGB: [255, 255, 0] },
          reported: { ID: 'SmartLamp21', ColorRGB: [255, 255, 0] },
        },
        metadata: {
          desired: {
            ColorRGB: [{ timestamp: 1591141596 }, { timestamp: 1591141596 }, { timestamp: 1591141596 }],
          },
          reported: {
            ID: { timestamp: 1591140517 },
            ColorRGB: [{ timestamp: 1591142747 }, { timestamp: 1591142747 }, { timestamp: 1591142747 }],
          },
        },
        version: 5,
      },
      timestamp: 1591142747,
      clientToken: 'a4dc2227-9213-4c6a-a6a5-053304f60258',
    });

    // "Observe the update in the app": get-thing-shadow, no delta left.
    expect(document(deviceReport.shadow, 1591143269, name)).toEqual({
      state: {
        desired: { ColorRGB: [255, 255, 0] },
        reported: { ID: 'SmartLamp21', ColorRGB: [255, 255, 0] },
      },
      metadata: {
        desired: {
          ColorRGB: [{ timestamp: 1591141596 }, { timestamp: 1591141596 }, { timestamp: 1591141596 }],
        },
        reported: {
          ID: { timestamp: 1591140517 },
          ColorRGB: [{ timestamp: 1591142747 }, { timestamp: 1591142747 }, { timestamp: 1591142747 }],
        },
      },
      version: 5,
      timestamp: 1591143269,
    });
  });

  // Same page, "Initialize the device": the device's first report creates the shadow and the
  // accepted document echoes its clientToken 426bfd96-e720-46d3-95cd-014e3ef12bb6.
  it('creates the shadow from the device report', () => {
    const r = accepted(
      applyUpdate(
        undefined,
        bytes({
          state: { reported: { ID: 'SmartLamp21', ColorRGB: [128, 128, 128] } },
          clientToken: '426bfd96-e720-46d3-95cd-014e3ef12bb6',
        }),
        1591140517,
      ),
    );
    expect(r.accepted).toEqual({
      state: { reported: { ID: 'SmartLamp21', ColorRGB: [128, 128, 128] } },
      metadata: {
        reported: {
          ID: { timestamp: 1591140517 },
          ColorRGB: [{ timestamp: 1591140517 }, { timestamp: 1591140517 }, { timestamp: 1591140517 }],
        },
      },
      version: 1,
      timestamp: 1591140517,
      clientToken: '426bfd96-e720-46d3-95cd-014e3ef12bb6',
    });
  });
});

describe('Device Shadow error messages', () => {
  // Page: "Device Shadow error messages": the HTTP codes and messages of the table.
  const cases: Array<[string, string | Uint8Array, number, string]> = [
    ['invalid JSON', '{"state":', 400, 'Invalid JSON'],
    ['missing state', '{"clientToken":"t"}', 400, 'Missing required node: state'],
    ['state not an object', '{"state":"on"}', 400, 'State node must be an object'],
    ['desired not an object', '{"state":{"desired":[1]}}', 400, 'Desired node must be an object'],
    ['reported not an object', '{"state":{"reported":5}}', 400, 'Reported node must be an object'],
    ['invalid version', '{"state":{"reported":{}},"version":"1"}', 400, 'Invalid version'],
    [
      'invalid clientToken',
      `{"state":{"reported":{}},"clientToken":"${'t'.repeat(65)}"}`,
      400,
      'Invalid clientToken',
    ],
    [
      'too deep',
      '{"state":{"reported":{"a":{"b":{"c":{"d":{"e":{"f":{"g":1}}}}}}}}}',
      400,
      'JSON contains too many levels of nesting; maximum is 6',
    ],
    ['invalid state node', '{"state":{"delta":{"a":1}}}', 400, "State contains an invalid node: 'delta'"],
    [
      'non-UTF-8 bytes',
      new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]),
      415,
      'Unsupported documented encoding; supported encoding is UTF-8',
    ],
  ];
  it.each(cases)('%s', (_label, payload, code, message) => {
    const body = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
    const r = applyUpdate(undefined, body, 42);
    expect(r.ok).toBe(false);
    if (!r.ok)
      expect({ code: r.error.code, message: r.error.message, timestamp: r.error.timestamp }).toEqual({
        code,
        message,
        timestamp: 42,
      });
  });

  it('answers 404 for get and delete of a missing shadow', () => {
    expect(getShadow(undefined, EMPTY, 1, 'myThing')).toEqual({
      ok: false,
      error: { code: 404, message: "No shadow exists with name: 'myThing'", timestamp: 1 },
    });
    expect(deleteShadow(undefined, EMPTY, 1, 'myThing')).toEqual({
      ok: false,
      error: { code: 404, message: "No shadow exists with name: 'myThing'", timestamp: 1 },
    });
  });

  it('answers 409 Version conflict and 413 for a payload over the size limit', () => {
    const shadow = build({ state: { reported: { a: 1 } } });
    expect(applyUpdate(shadow, bytes({ state: { reported: { a: 2 } }, version: 7 }), 3)).toEqual({
      ok: false,
      error: { code: 409, message: 'Version conflict', timestamp: 3 },
    });
    const huge = new Uint8Array(DEFAULT_SHADOW_LIMITS.maxPayloadBytes + 1).fill(0x20);
    expect(applyUpdate(shadow, huge, 3)).toEqual({
      ok: false,
      error: { code: 413, message: 'The payload exceeds the maximum size allowed', timestamp: 3 },
    });
  });
});

describe('Diagnosing problems with shadows', () => {
  // Page: "Diagnosing problems with shadows": a shadow holds 8 KB of data; only desired and reported
  // state count toward the limit (metadata does not); JSON outside those sections is not stored.
  it('limits desired + reported state to 8 KB, not counting metadata', () => {
    // {"v":"…"} is 8 bytes of JSON around the string.
    const fits = build({ state: { reported: { v: 'x'.repeat(8192 - 8) } } });
    expect(fits.version).toBe(1);
    const over = applyUpdate(fits, bytes({ state: { desired: { w: 1 } } }), 2);
    expect(over).toEqual({
      ok: false,
      error: { code: 413, message: 'The payload exceeds the maximum size allowed', timestamp: 2 },
    });
  });

  it('ignores JSON content outside the desired and reported sections', () => {
    const r = accepted(
      applyUpdate(
        undefined,
        bytes({
          state: { reported: { temp: 55 } },
          metadata: { reported: { temp: { timestamp: 1 } } },
          extra: true,
        }),
        9,
      ),
    );
    expect(r.shadow).toEqual({
      state: { reported: { temp: 55 } },
      metadata: { reported: { temp: { timestamp: 9 } } },
      version: 1,
      timestamp: 9,
    });
  });
});
