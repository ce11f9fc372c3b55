/**
 * Firmware end to end: an operator publishes a signed firmware and rolls it out to two gateways through
 * their `firmware` named shadows; each gateway (Gateway.start with a `firmware` section, MQTT over
 * mutual TLS) verifies, downloads the presigned artifact from the local S3, applies it by switching its
 * `current` link and runs its self-test. The gateway whose self-test fails rolls back and stays on its
 * version; the rollout reports one success and one rollback.
 */
import { randomBytes } from 'node:crypto';
import { readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IoTClient } from '@aws-sdk/client-iot';
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import pino from 'pino';
import { generateSignerKey, publishFirmware, signerKey } from '../../cli/fleet/firmware.js';
import { readFirmwareShadow, runRollout } from '../../cli/fleet/rollout.js';
import { LOCAL_FIRMWARE_BUCKET } from '../../cloud/rules/resources.js';
import { loadGatewayConfig } from '../../edge-component/config.js';
import {
  eventually,
  localGatewayConfig,
  removeDir,
  startTestCloud,
  type TestCloud,
  tempDir,
} from '../helpers/cloud.js';
import { startStandaloneGateway } from '../helpers/gateway.js';

const logger = pino({ level: 'silent' });
let tc: TestCloud;
let work: string;

beforeAll(async () => {
  tc = await startTestCloud();
  work = tempDir('edgefleet-firmware-e2e-');
});

afterAll(async () => {
  await tc?.stop();
  if (tc) removeDir(tc.dataDir);
  if (work) removeDir(work);
});

async function startGateway(thing: string, trusted: Record<string, string>, selfTestExit: number) {
  const dev = await tc.provision(thing);
  const file = join(dev.outDir, 'gw.json');
  writeFileSync(
    file,
    JSON.stringify(
      localGatewayConfig(tc.cloud, thing, {
        spool: { dir: 'spool' },
        firmware: {
          target: 'gateway',
          currentVersion: '1.0.0',
          dir: 'firmware',
          trustedKeys: trusted,
          apply: { mode: 'link' },
          selfTest: { command: [process.execPath, '-e', `process.exit(${selfTestExit})`], timeoutMs: 30_000 },
        },
      }),
    ),
  );
  const gw = await startStandaloneGateway(loadGatewayConfig(file), logger);
  await eventually(() => (gw.channel.connected ? true : undefined), `${thing} connected`);
  return { dir: join(dev.outDir, 'firmware'), stop: gw.stop };
}

it('rolls a signed firmware out to two gateways: one succeeds, the one whose self-test fails rolls back', async () => {
  const signer = generateSignerKey();
  const trusted = { [signer.keyId]: signer.publicKeyPem };
  const good = await startGateway('gw-fw-1', trusted, 0);
  const bad = await startGateway('gw-fw-2', trusted, 1);
  const s3 = new S3Client({ ...tc.cloud.sdkConfig(), forcePathStyle: true });
  const iot = new IoTClient(tc.cloud.sdkConfig());
  const iotData = new IoTDataPlaneClient(tc.cloud.sdkConfig());
  try {
    const fw = join(work, 'gateway-1.1.0.bin');
    writeFileSync(fw, randomBytes(3 * 1024 * 1024));
    await publishFirmware({
      s3,
      bucket: LOCAL_FIRMWARE_BUCKET,
      file: fw,
      target: 'gateway',
      version: '1.1.0',
      privateKey: signerKey(signer.privateKeyPem),
      keyId: signer.keyId,
      expiresInDays: 30,
    });
    const result = await runRollout(
      { iot, iotData, s3, logger },
      {
        bucket: LOCAL_FIRMWARE_BUCKET,
        target: 'gateway',
        version: '1.1.0',
        selection: { things: ['gw-fw-1', 'gw-fw-2'] },
        trustedKeys: trusted,
        maxConcurrency: 2,
        abortFailureRate: 0.6,
        waveTimeoutMs: 60_000,
        urlExpiresSeconds: 600,
        pollIntervalMs: 100,
      },
    );
    expect(result).toMatchObject({ succeeded: 1, failed: 1, aborted: false });
    expect(result.outcomes['gw-fw-1']).toMatchObject({ status: 'succeeded' });
    const one = await readFirmwareShadow(iotData, 'gw-fw-1');
    expect(one?.report).toMatchObject({ version: '1.1.0', state: 'succeeded', previousVersion: '1.0.0' });
    const two = await readFirmwareShadow(iotData, 'gw-fw-2');
    expect(two?.report).toMatchObject({ version: '1.0.0', state: 'rolled_back', targetVersion: '1.1.0' });
    // The good gateway runs the new version; the other one never left its own.
    expect(readlinkSync(join(good.dir, 'current'))).toMatch(/versions\/1\.1\.0$/);
    expect(readlinkSync(join(bad.dir, 'current'))).not.toMatch(/1\.1\.0/);
  } finally {
    s3.destroy();
    iot.destroy();
    iotData.destroy();
    await good.stop();
    await bad.stop();
  }
});
