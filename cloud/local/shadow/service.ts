/**
 * The Device Shadow service of the local cloud: shadow documents persisted per (thing, shadow name),
 * served over the reserved MQTT topics and through the data-plane HTTP API. Document semantics live
 * in the pure engine (`engine.ts`); this module does storage and publishing.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { parseShadowTopic, shadowTopics } from '../../../protocol/topics.js';
import type { SqlServices } from '../../rules/sql/context.js';
import { fromJs } from '../../rules/sql/values.js';
import { readJsonFile, writeJsonFile } from '../store.js';
import {
  applyUpdate,
  deleteShadow,
  getShadow,
  type JsonObject,
  type ShadowErrorDoc,
  type ShadowTombstone,
  type StoredShadow,
  shadowError,
} from './engine.js';

export const SHADOW_NAME = /^[a-zA-Z0-9:_-]{1,64}$/;
export const THING_NAME = /^[a-zA-Z0-9:_-]{1,128}$/;
const CLASSIC = '$classic';

/** Publishes on the broker as the service. */
export type ServicePublisher = (topic: string, payload: string) => Promise<void>;

export type ShadowResult = { ok: true; document: JsonObject } | { ok: false; error: ShadowErrorDoc };

interface ShadowFile {
  shadow?: StoredShadow;
  /** The version and time of the last delete, so that a recreated shadow continues the version. */
  tombstone?: ShadowTombstone;
}

export class ShadowService {
  private readonly dir: string;

  constructor(
    dataDir: string,
    private readonly publish: ServicePublisher,
    private readonly log: Logger,
    private readonly now: () => number = () => Math.floor(Date.now() / 1000),
  ) {
    this.dir = join(dataDir, 'shadows');
  }

  private file(thing: string, name: string | undefined): string {
    return join(this.dir, thing, `${name ?? CLASSIC}.json`);
  }

  private load(thing: string, name: string | undefined): ShadowFile {
    return readJsonFile<ShadowFile>(this.file(thing, name)) ?? {};
  }

  private validateNames(
    thing: string,
    name: string | undefined,
    clientToken?: string,
  ): ShadowErrorDoc | undefined {
    if (!THING_NAME.test(thing)) return shadowError(400, 'Invalid thing name', this.now(), clientToken);
    if (name !== undefined && !SHADOW_NAME.test(name)) {
      return shadowError(400, 'Invalid shadow name', this.now(), clientToken);
    }
    return undefined;
  }

  /** Handles a message published to a shadow request topic (get, update, delete). */
  async handleMqtt(topic: string, payload: Buffer): Promise<void> {
    const parsed = parseShadowTopic(topic);
    if (parsed?.suffix !== '') return;
    const { thingName, shadowName, operation } = parsed;
    const t = shadowTopics(thingName, shadowName);
    if (operation === 'update') {
      const r = this.update(thingName, shadowName, payload);
      if (!r.ok) await this.publish(t.updateRejected, JSON.stringify(r.error));
      return;
    }
    if (operation === 'get') {
      const r = this.get(thingName, shadowName, payload);
      await this.publish(r.ok ? t.getAccepted : t.getRejected, JSON.stringify(r.ok ? r.document : r.error));
      return;
    }
    const r = this.delete(thingName, shadowName, payload);
    if (!r.ok) await this.publish(t.deleteRejected, JSON.stringify(r.error));
  }

  /** Applies an update; on success publishes /update/accepted, /update/delta and /update/documents. */
  update(thing: string, name: string | undefined, payload: Uint8Array): ShadowResult {
    const bad = this.validateNames(thing, name);
    if (bad) return { ok: false, error: bad };
    const current = this.load(thing, name);
    const outcome = applyUpdate(current.shadow, payload, this.now(), undefined, current.tombstone);
    if (!outcome.ok) return outcome;
    writeJsonFile(this.file(thing, name), { shadow: outcome.shadow } satisfies ShadowFile);
    const t = shadowTopics(thing, name);
    const sends: Promise<void>[] = [this.publish(t.updateAccepted, JSON.stringify(outcome.accepted))];
    if (outcome.delta) sends.push(this.publish(t.updateDelta, JSON.stringify(outcome.delta)));
    sends.push(this.publish(t.updateDocuments, JSON.stringify(outcome.documents)));
    Promise.all(sends).catch((err) => this.log.warn({ err, thing, name }, 'shadow response not published'));
    return { ok: true, document: outcome.accepted };
  }

  get(thing: string, name: string | undefined, payload: Uint8Array): ShadowResult {
    const bad = this.validateNames(thing, name);
    if (bad) return { ok: false, error: bad };
    const r = getShadow(this.load(thing, name).shadow, payload, this.now(), shadowDisplayName(thing, name));
    return r.ok ? { ok: true, document: r.document } : r;
  }

  delete(thing: string, name: string | undefined, payload: Uint8Array): ShadowResult {
    const bad = this.validateNames(thing, name);
    if (bad) return { ok: false, error: bad };
    const current = this.load(thing, name);
    const r = deleteShadow(current.shadow, payload, this.now(), shadowDisplayName(thing, name));
    if (!r.ok) return r;
    writeJsonFile(this.file(thing, name), { tombstone: r.tombstone } satisfies ShadowFile);
    const t = shadowTopics(thing, name);
    this.publish(t.deleteAccepted, JSON.stringify(r.accepted)).catch((err) =>
      this.log.warn({ err, thing, name }, 'shadow delete response not published'),
    );
    return { ok: true, document: r.accepted };
  }

  /** Names of the thing's named shadows (the classic shadow is not listed), sorted. */
  listNamed(thing: string): string[] {
    let entries: string[];
    try {
      entries = readdirSync(join(this.dir, thing));
    } catch {
      return [];
    }
    return entries
      .filter((f) => f.endsWith('.json') && f !== `${CLASSIC}.json`)
      .map((f) => f.slice(0, -'.json'.length))
      .filter((n) => this.load(thing, n).shadow !== undefined)
      .sort();
  }
}

function shadowDisplayName(thing: string, name: string | undefined): string {
  return name ?? thing;
}

/** SQL services backed by the local shadows: what `get_thing_shadow()` reads in rule SQL. */
export function shadowSqlServices(shadows: ShadowService): SqlServices {
  return {
    getThingShadow(thingName, shadowName) {
      const r = shadows.get(thingName, shadowName, new Uint8Array());
      return r.ok ? fromJs(r.document) : undefined;
    },
  };
}
