/** State survives a restart of the local cloud: registry, CA, certificates and shadows. */

import {
  GetThingShadowCommand,
  IoTDataPlaneClient,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import { afterAll, expect, it } from '@jest/globals';
import { connectDevice, removeDir, startTestCloud, tempDir } from '../helpers/cloud.js';

const dir = tempDir();
afterAll(() => removeDir(dir));

it('keeps things, certificates, the root CA, credentials and shadows across a restart', async () => {
  const first = await startTestCloud(dir);
  const dev = await first.provision('persist-1');
  const rootPem = first.cloud.pki.rootCa.certPem;
  const data = new IoTDataPlaneClient(first.cloud.sdkConfig());
  await data.send(
    new UpdateThingShadowCommand({
      thingName: 'persist-1',
      payload: Buffer.from(JSON.stringify({ state: { reported: { v: 7 } } })),
    }),
  );
  data.destroy();
  const cfg = first.cloud.sdkConfig();
  await first.stop();

  const second = await startTestCloud(dir);
  try {
    expect(second.cloud.pki.rootCa.certPem).toBe(rootPem);
    expect(second.cloud.registry.describeThing('persist-1').thingName).toBe('persist-1');
    expect(second.cloud.registry.describeCertificate(dev.certificateId).status).toBe('ACTIVE');
    expect(second.cloud.sdkConfig().credentials).toEqual(cfg.credentials);
    // The device's files from before the restart still connect (the broker's certificate chains to the same CA).
    const c = await connectDevice(second.cloud, dev, 'persist-1');
    await c.endAsync();
    const client = new IoTDataPlaneClient(second.cloud.sdkConfig());
    const got = await client.send(new GetThingShadowCommand({ thingName: 'persist-1' }));
    expect(JSON.parse(Buffer.from(got.payload ?? []).toString())).toMatchObject({
      state: { reported: { v: 7 } },
      version: 1,
    });
    client.destroy();
  } finally {
    await second.stop();
  }
});

it('refuses to start a second local cloud on a data dir that is in use', async () => {
  const { LocalCloud } = await import('../../cloud/local/index.js');
  const { writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { spawn } = await import('node:child_process');
  // A live process that holds the data dir.
  const holder = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
  try {
    writeFileSync(
      join(dir, 'runtime.json'),
      JSON.stringify({ pid: holder.pid, host: '127.0.0.1', mqttPort: 1, httpPort: 2 }),
    );
    await expect(LocalCloud.start({ dataDir: dir, mqttPort: 0, httpPort: 0 })).rejects.toThrow(
      /already running/,
    );
  } finally {
    holder.kill();
  }
});
