import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { runCli } from '../helpers/cli.js';
import { removeDir, tempDir } from '../helpers/cloud.js';

const dir = tempDir('edgefleet-gateway-cli-');
afterAll(() => removeDir(dir));

const config = join(dir, 'gw.json');
const file = join(dir, 'data.bin');
writeFileSync(file, 'hello');
writeFileSync(
  config,
  JSON.stringify({
    thingName: 'gw-cli-1',
    // Nothing listens here: these tests must fail before connecting.
    iot: { host: '127.0.0.1', port: 1, certFile: 'device.crt', keyFile: 'device.key', caFile: 'root-ca.crt' },
    aws: { region: 'us-east-1', s3Endpoint: 'http://127.0.0.1:1', forcePathStyle: true },
    storage: { bucket: 'edgefleet-data' },
  }),
);

describe('edgefleet gateway upload', () => {
  it('lists the command in the help', async () => {
    const r = await runCli(['gateway', '--help']);
    expect(r.out).toContain('upload [options] <file>');
  });

  it('requires --key and --config', async () => {
    const r = await runCli(['gateway', 'upload', file, '--config', config]);
    expect(r.code).not.toBe(0);
    expect(r.err).toContain("required option '--key <key>' not specified");
  });

  it('reports a missing configuration file', async () => {
    const missing = join(dir, 'nope.json');
    const r = await runCli(['gateway', 'upload', file, '--key', 'raw/gw-cli-1/a.bin', '--config', missing]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`edgefleet: cannot read gateway configuration ${missing} (ENOENT)\n`);
  });

  it('reports an invalid configuration by field', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ thingName: 'gw-cli-1', credentials: { refreshMarginSeconds: -1 } }));
    const r = await runCli(['gateway', 'upload', file, '--key', 'raw/gw-cli-1/a.bin', '--config', bad]);
    expect(r.code).toBe(2);
    expect(r.err).toContain('credentials.refreshMarginSeconds: must be an integer from 0 to 43200');
    expect(r.err).toContain('aws: is required');
  });

  it('refuses a key outside the thing prefixes before connecting', async () => {
    const r = await runCli(['gateway', 'upload', file, '--key', 'raw/gw-other/a.bin', '--config', config]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      "edgefleet: object key 'raw/gw-other/a.bin' must start with 'raw/gw-cli-1/' or 'frames/gw-cli-1/': thing gw-cli-1 may only write under its own prefixes\n",
    );
  });

  it('reports a missing file to upload', async () => {
    const r = await runCli([
      'gateway',
      'upload',
      join(dir, 'missing.bin'),
      '--key',
      'raw/gw-cli-1/a.bin',
      '--config',
      config,
    ]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`edgefleet: cannot read ${join(dir, 'missing.bin')} (ENOENT)\n`);
  });

  it('reports unreadable device certificate files by their configuration field', async () => {
    const r = await runCli(['gateway', 'upload', file, '--key', 'raw/gw-cli-1/a.bin', '--config', config]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`edgefleet: iot.certFile: cannot read ${join(dir, 'device.crt')} (ENOENT)\n`);
  });
});
