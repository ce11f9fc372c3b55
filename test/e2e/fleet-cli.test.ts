import { createHash, randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IoTDataPlaneClient, UpdateThingShadowCommand } from '@aws-sdk/client-iot-data-plane';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { readFirmwareShadow } from '../../cli/fleet/rollout.js';
import { type FirmwareReport, ManifestSchema, verifyManifestSignature } from '../../protocol/firmware.js';
import { runCli, SPAWNING_TEST_MS } from '../helpers/cli.js';
import { eventually, removeDir, startTestCloud, type TestCloud, tempDir } from '../helpers/cloud.js';

let work: string;
let tc: TestCloud;
let data: IoTDataPlaneClient;
beforeAll(async () => {
  work = tempDir('edgefleet-fleet-cli-');
  tc = await startTestCloud();
  data = new IoTDataPlaneClient(tc.cloud.sdkConfig());
});
afterAll(async () => {
  data?.destroy();
  await tc?.stop();
  removeDir(work);
  if (tc) removeDir(tc.dataDir);
});

const report = (thingName: string, firmware: FirmwareReport) =>
  data.send(
    new UpdateThingShadowCommand({
      thingName,
      shadowName: 'firmware',
      payload: Buffer.from(JSON.stringify({ state: { reported: { firmware } } })),
    }),
  );

it(
  'keygen, publish (once), rollout and status',
  async () => {
    const local = ['--local', '--data-dir', tc.dataDir];
    const keys = join(work, 'keys');
    const keygen = await runCli(['fleet', 'firmware', 'keygen', '--out', keys]);
    expect(keygen).toMatchObject({ code: 0 });
    expect(statSync(join(keys, 'signer.key')).mode & 0o777).toBe(0o600);
    const trust = JSON.parse(await readFile(join(keys, 'signer.json'), 'utf8')) as Record<string, string>;
    const [keyId] = Object.keys(trust);
    expect(keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(keygen.out).toContain(`key id: ${keyId}`);
    expect(trust[keyId!]).toBe(await readFile(join(keys, 'signer.pub'), 'utf8'));
    expect((await runCli(['fleet', 'firmware', 'keygen', '--out', keys])).code).toBe(1);

    const image = randomBytes(100_000);
    const fw = join(work, 'fw.bin');
    await writeFile(fw, image);
    const publishArgs = [
      'fleet',
      'firmware',
      'publish',
      '--file',
      fw,
      '--version',
      '2.1.0',
      '--target',
      'gateway',
    ];
    const published = await runCli([...publishArgs, '--key', join(keys, 'signer.key'), ...local]);
    expect(published).toMatchObject({ code: 0 });
    const manifest = ManifestSchema.parse(JSON.parse(published.out.slice(published.out.indexOf('{'))));
    expect(manifest).toMatchObject({
      target: 'gateway',
      version: '2.1.0',
      size: image.length,
      sha256: createHash('sha256').update(image).digest('hex'),
      keyId,
      url: `s3://edgefleet-firmware/firmware/gateway/2.1.0/${manifest.sha256}.bin`,
    });
    expect(verifyManifestSignature(manifest, trust[keyId!]!)).toBe(true);
    const again = await runCli([...publishArgs, '--key', join(keys, 'signer.key'), ...local]);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/already published/);
    const badVersion = await runCli([
      ...publishArgs.slice(0, 5),
      '--version',
      'v2',
      '--target',
      'gateway',
      '--key',
      join(keys, 'signer.key'),
      ...local,
    ]);
    expect(badVersion.code).toBe(2);
    expect(badVersion.err).toMatch(/invalid --version: must be a semantic version/);

    await tc.provision('st-1');
    await tc.provision('st-2');
    // A gateway that takes the update as soon as it sees it.
    const gateway = (async () => {
      const shadow = await eventually(
        async () => (await readFirmwareShadow(data, 'st-1'))?.desired,
        'the desired firmware of st-1',
        60_000,
      );
      await report('st-1', {
        version: shadow.manifest.version,
        state: 'succeeded',
        previousVersion: '2.0.0',
        ...(shadow.rolloutId !== undefined ? { rolloutId: shadow.rolloutId } : {}),
        updatedAt: '2026-01-01T00:00:00Z',
      });
    })();
    const rollout = await runCli([
      'fleet',
      'firmware',
      'rollout',
      '--version',
      '2.1.0',
      '--target',
      'gateway',
      '--things',
      'st-1',
      '--trust',
      join(keys, 'signer.json'),
      '--poll-interval',
      '100',
      ...local,
    ]);
    await gateway;
    expect(rollout).toMatchObject({ code: 0 });
    expect(rollout.out).toContain('wave 1/1: 1 things, 1 succeeded, 0 failed');
    expect(rollout.out).toMatch(/done: 1 succeeded, 0 failed/);

    const json = await runCli(['fleet', 'firmware', 'status', '--format', 'json', ...local]);
    expect(json).toMatchObject({ code: 0 });
    expect(JSON.parse(json.out)).toEqual([
      {
        thing: 'st-1',
        version: '2.1.0',
        state: 'succeeded',
        previousVersion: '2.0.0',
        updatedAt: '2026-01-01T00:00:00Z',
      },
      { thing: 'st-2' },
    ]);
    const table = await runCli(['fleet', 'firmware', 'status', '--things', 'st-1', ...local]);
    expect(table).toMatchObject({ code: 0 });
    const lines = table.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(
      /^thing\s+version\s+state\s+targetVersion\s+progress\s+error\s+previousVersion\s+updatedAt$/,
    );
    expect(lines[1]).toMatch(/^st-1\s+2\.1\.0\s+succeeded\s+-\s+-\s+-\s+2\.0\.0\s+2026-01-01T00:00:00Z$/);
    expect(lines).toHaveLength(2);

    const noTargets = await runCli([
      'fleet',
      'firmware',
      'rollout',
      '--version',
      '2.1.0',
      '--target',
      'gateway',
      '--trust',
      join(keys, 'signer.json'),
      ...local,
    ]);
    expect(noTargets.code).toBe(2);
    expect(noTargets.err).toMatch(/--things\/--thing-group/);
  },
  SPAWNING_TEST_MS * 2,
);
