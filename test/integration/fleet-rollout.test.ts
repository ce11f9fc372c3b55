/**
 * Firmware rollouts against the local cloud: publish a signed firmware into the firmware bucket, then roll
 * it out through the `firmware` named shadow of provisioned things, whose gateways are simulated by small
 * MQTT responders that answer `/update/delta` with `reported.firmware` states.
 */
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AddThingToThingGroupCommand, CreateThingGroupCommand, IoTClient } from '@aws-sdk/client-iot';
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { MqttClient } from 'mqtt';
import { FirmwarePublishError } from '../../cli/fleet/errors.js';
import { generateSignerKey, publishFirmware, signerKey } from '../../cli/fleet/firmware.js';
import { type RolloutEvent, readFirmwareShadow, runRollout } from '../../cli/fleet/rollout.js';
import { LOCAL_FIRMWARE_BUCKET } from '../../cloud/rules/resources.js';
import {
  type FirmwareDesired,
  FirmwareDesiredSchema,
  type FirmwareReport,
  verifyManifestSignature,
} from '../../protocol/firmware.js';
import { connectDevice, removeDir, startTestCloud, type TestCloud, tempDir } from '../helpers/cloud.js';

const TARGET = 'gateway';
let tc: TestCloud;
let work: string;
let iot: IoTClient;
let iotData: IoTDataPlaneClient;
let s3: S3Client;
const signer = generateSignerKey();
const trustedKeys = { [signer.keyId]: signer.publicKeyPem };
const devices: MqttClient[] = [];

type Behaviour = 'succeed' | 'fail' | 'silent';
/** Shared log of what the simulated gateways saw and did, in order. */
const log: { kind: 'desired' | 'final'; thing: string }[] = [];
const downloaded = new Map<string, string>();

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A gateway that answers the firmware shadow's delta: downloads, checks the hash, and reports. */
async function gateway(thing: string, behaviour: Behaviour): Promise<void> {
  const dev = await tc.provision(thing);
  const client = await connectDevice(tc.cloud, dev, thing);
  devices.push(client);
  const base = `$aws/things/${thing}/shadow/name/firmware`;
  const report = (firmware: FirmwareReport) =>
    client.publishAsync(`${base}/update`, JSON.stringify({ state: { reported: { firmware } } }), { qos: 1 });
  client.on('message', (topic, payload) => {
    if (topic !== `${base}/update/delta`) return;
    const delta = FirmwareDesiredSchema.safeParse(
      (JSON.parse(payload.toString()) as { state?: unknown }).state,
    );
    if (!delta.success) return;
    const desired: FirmwareDesired = delta.data;
    log.push({ kind: 'desired', thing });
    if (behaviour === 'silent') return;
    void (async () => {
      const common = {
        targetVersion: desired.manifest.version,
        rolloutId: desired.rolloutId,
        previousVersion: '0.9.0',
      };
      await report({ version: '0.9.0', state: 'downloading', progress: 0, ...common });
      const body = new Uint8Array(await (await fetch(desired.downloadUrl)).arrayBuffer());
      downloaded.set(thing, sha256(body));
      log.push({ kind: 'final', thing });
      if (behaviour === 'fail' || sha256(body) !== desired.manifest.sha256) {
        await report({ version: '0.9.0', state: 'failed', error: 'self-test failed', ...common });
      } else {
        await report({ version: desired.manifest.version, state: 'succeeded', ...common });
      }
    })();
  });
  await client.subscribeAsync(`${base}/update/delta`, { qos: 1 });
}

/** At no point were more than `n` things between their desired document and their final report. */
function maxInFlight(): number {
  const active = new Set<string>();
  let max = 0;
  for (const e of log) {
    if (e.kind === 'desired') active.add(e.thing);
    else active.delete(e.thing);
    max = Math.max(max, active.size);
  }
  return max;
}

async function publish(version: string, bytes: Uint8Array) {
  const file = join(work, `fw-${version}.bin`);
  await writeFile(file, bytes);
  return publishFirmware({
    s3,
    bucket: LOCAL_FIRMWARE_BUCKET,
    file,
    target: TARGET,
    version,
    privateKey: signerKey(signer.privateKeyPem),
    expiresInDays: 30,
  });
}

beforeAll(async () => {
  work = tempDir('edgefleet-rollout-');
  tc = await startTestCloud();
  iot = new IoTClient(tc.cloud.sdkConfig());
  iotData = new IoTDataPlaneClient(tc.cloud.sdkConfig());
  s3 = new S3Client({ ...tc.cloud.sdkConfig(), forcePathStyle: true });
});
afterAll(async () => {
  for (const d of devices) d.end(true);
  iot?.destroy();
  iotData?.destroy();
  s3?.destroy();
  await tc?.stop();
  if (tc) removeDir(tc.dataDir);
  removeDir(work);
});

describe('fleet firmware rollout', () => {
  it('publishes once (multipart for a big artifact) and rolls out in waves of at most N things', async () => {
    // Larger than one 8 MiB part, so the artifact goes up as a multipart upload.
    const image = randomBytes(9 * 1024 * 1024);
    const published = await publish('1.0.0', image);
    expect(published.artifactKey).toBe(`firmware/${TARGET}/1.0.0/${sha256(image)}.bin`);
    expect(published.manifest).toMatchObject({
      size: image.length,
      sha256: sha256(image),
      keyId: signer.keyId,
    });
    await expect(publish('1.0.0', image)).rejects.toBeInstanceOf(FirmwarePublishError);
    await expect(publish('1.0.0', image)).rejects.toThrow(/already published/);

    const things = ['ok-1', 'ok-2', 'ok-3', 'ok-4', 'ok-5'];
    for (const t of things) await gateway(t, 'succeed');
    const events: RolloutEvent[] = [];
    const result = await runRollout(
      { iot, iotData, s3, onProgress: (e) => events.push(e) },
      {
        bucket: LOCAL_FIRMWARE_BUCKET,
        target: TARGET,
        version: '1.0.0',
        selection: { things },
        trustedKeys,
        maxConcurrency: 2,
        abortFailureRate: 0.2,
        waveTimeoutMs: 20_000,
        urlExpiresSeconds: 600,
        pollIntervalMs: 50,
        rolloutId: 'r-1',
      },
    );
    expect(result).toMatchObject({
      succeeded: 5,
      failed: 0,
      aborted: false,
      notStarted: [],
      rolloutId: 'r-1',
    });
    expect(result.waves.map((w) => w.things)).toEqual([['ok-1', 'ok-2'], ['ok-3', 'ok-4'], ['ok-5']]);
    expect(maxInFlight()).toBeLessThanOrEqual(2);
    expect(events.filter((e) => e.kind === 'wave-end')).toHaveLength(3);
    for (const t of things) expect(downloaded.get(t)).toBe(sha256(image));

    // The desired document holds a manifest that verifies and a URL that downloads the artifact.
    const shadow = await readFirmwareShadow(iotData, 'ok-3');
    expect(shadow?.report).toMatchObject({ state: 'succeeded', version: '1.0.0' });
    const desired = shadow?.desired;
    expect(desired?.rolloutId).toBe('r-1');
    expect(desired && verifyManifestSignature(desired.manifest, signer.publicKeyPem)).toBe(true);
    const fetched = new Uint8Array(await (await fetch(desired?.downloadUrl ?? '')).arrayBuffer());
    expect(sha256(fetched)).toBe(desired?.manifest.sha256);
  });

  it('stops when the failure rate passes the limit (a timed-out thing counts as failed)', async () => {
    await publish('1.1.0', randomBytes(4096));
    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'line-2' }));
    const plan: [string, Behaviour][] = [
      ['ab-1', 'fail'],
      ['ab-2', 'silent'],
      ['ab-3', 'succeed'],
      ['ab-4', 'succeed'],
      ['ab-5', 'succeed'],
    ];
    for (const [t, b] of plan) {
      await gateway(t, b);
      await iot.send(new AddThingToThingGroupCommand({ thingGroupName: 'line-2', thingName: t }));
    }
    const result = await runRollout(
      { iot, iotData, s3 },
      {
        bucket: LOCAL_FIRMWARE_BUCKET,
        target: TARGET,
        version: '1.1.0',
        selection: { thingGroup: 'line-2' },
        trustedKeys,
        maxConcurrency: 2,
        abortFailureRate: 0.2,
        waveTimeoutMs: 1500,
        urlExpiresSeconds: 600,
        pollIntervalMs: 50,
      },
    );
    expect(result.aborted).toBe(true);
    expect(result.failed).toBe(2);
    expect(result.outcomes['ab-1']).toMatchObject({ status: 'failed', reason: 'failed: self-test failed' });
    expect(result.outcomes['ab-2']).toMatchObject({
      status: 'failed',
      reason: expect.stringMatching(/no final report/),
    });
    expect(result.notStarted).toEqual(['ab-3', 'ab-4', 'ab-5']);
    for (const t of result.notStarted) expect(await readFirmwareShadow(iotData, t)).toBeUndefined();
  });

  it('refuses a manifest signed by an untrusted key', async () => {
    const other = generateSignerKey();
    await expect(
      runRollout(
        { iot, iotData, s3 },
        {
          bucket: LOCAL_FIRMWARE_BUCKET,
          target: TARGET,
          version: '1.0.0',
          selection: { things: ['ok-1'] },
          trustedKeys: { [signer.keyId]: other.publicKeyPem },
          maxConcurrency: 1,
          abortFailureRate: 0,
          waveTimeoutMs: 1000,
          urlExpiresSeconds: 60,
        },
      ),
    ).rejects.toThrow(/does not verify/);
    await expect(
      runRollout(
        { iot, iotData, s3 },
        {
          bucket: LOCAL_FIRMWARE_BUCKET,
          target: TARGET,
          version: '2.0.0',
          selection: { things: ['ok-1'] },
          trustedKeys,
          maxConcurrency: 1,
          abortFailureRate: 0,
          waveTimeoutMs: 1000,
          urlExpiresSeconds: 60,
        },
      ),
    ).rejects.toThrow(/not published/);
  });
});
