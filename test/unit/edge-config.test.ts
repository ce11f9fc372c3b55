/** The gateway configuration: defaults, field-naming errors, relative paths, loading from a file. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadGatewayConfig, parseGatewayConfig } from '../../edge-component/config.js';
import { removeDir, tempDir } from '../helpers/cloud.js';
import { gatewayConfigError } from '../helpers/config.js';

const minimal = {
  thingName: 'gw-1',
  iot: {
    host: 'abc-ats.iot.eu-central-1.amazonaws.com',
    certFile: 'device.crt',
    keyFile: 'device.key',
    caFile: 'ca.pem',
  },
  aws: { region: 'eu-central-1' },
  storage: { bucket: 'edgefleet-data' },
};

describe('parseGatewayConfig', () => {
  test('fills in the documented defaults', () => {
    const c = parseGatewayConfig(minimal);
    expect(c.credentials).toEqual({
      source: 'mqtt',
      refreshMarginSeconds: 300,
      requestTimeoutMs: 10_000,
      maxAttempts: 5,
      backoff: { initialDelayMs: 500, maxDelayMs: 30_000 },
    });
    expect(c.upload).toEqual({
      partSizeBytes: 8 * 1024 * 1024,
      queueSize: 4,
      singlePutMaxBytes: 8 * 1024 * 1024,
      maxAttempts: 3,
      backoff: { initialDelayMs: 1000, maxDelayMs: 30_000 },
    });
    expect(c.iot).toMatchObject({ port: 8883, keepaliveSeconds: 60 });
    expect(c.aws.s3Endpoint).toBeUndefined();
    expect(c.logLevel).toBe('info');
  });

  test('accepts the local cloud settings', () => {
    const c = parseGatewayConfig({
      ...minimal,
      aws: { region: 'us-east-1', s3Endpoint: 'http://127.0.0.1:4566', forcePathStyle: true },
      credentials: { refreshMarginSeconds: 0, requestTimeoutMs: 500, maxAttempts: 1 },
    });
    expect(c.aws).toEqual({ region: 'us-east-1', s3Endpoint: 'http://127.0.0.1:4566', forcePathStyle: true });
    expect(c.credentials.refreshMarginSeconds).toBe(0);
  });

  test.each([
    [
      { credentials: { refreshMarginSeconds: -1 } },
      'credentials.refreshMarginSeconds: must be an integer from 0 to 43200',
    ],
    [
      { credentials: { refreshMarginSeconds: 1.5 } },
      'credentials.refreshMarginSeconds: must be an integer from 0 to 43200',
    ],
    [{ credentials: { refreshMarginSeconds: '300' } }, 'credentials.refreshMarginSeconds: must be a number'],
    [{ credentials: { source: 'env' } }, "credentials.source: must be 'mqtt' or 'tes'"],
    [{ credentials: { maxAttempts: 0 } }, 'credentials.maxAttempts: must be an integer from 1 to 100'],
    [
      { credentials: { backoff: { initialDelayMs: 5000, maxDelayMs: 100 } } },
      'credentials.backoff.initialDelayMs: must not exceed maxDelayMs',
    ],
    [
      { upload: { partSizeBytes: 1024 * 1024 } },
      'upload.partSizeBytes: must be an integer from 5242880 to 5368709120',
    ],
    [{ upload: { partSize: 6000000 } }, 'upload.partSize: is not a known field'],
    [{ upload: { queueSize: 0 } }, 'upload.queueSize: must be an integer from 1 to 64'],
    [{ aws: { region: 'Frankfurt' } }, 'aws.region: must look like an AWS region, e.g. eu-central-1'],
    [
      { aws: { region: 'us-east-1', s3Endpoint: 'localhost:4566' } },
      'aws.s3Endpoint: must be an http:// or https:// URL',
    ],
    [{ aws: { region: 'us-east-1', forcePathStyle: 'yes' } }, 'aws.forcePathStyle: must be true or false'],
    [{ storage: { bucket: 'Bad_Bucket' } }, 'storage.bucket: must be a valid S3 bucket name'],
    [{ storage: undefined }, 'storage: is required'],
    [{ thingName: 'gw/1' }, 'thingName: must be 1 to 128 characters'],
    [{ iot: undefined }, "iot: is required when credentials.source is 'mqtt'"],
    [{ iot: { ...minimal.iot, port: 70000 } }, 'iot.port: must be an integer from 1 to 65535'],
    [{ iot: { ...minimal.iot, certFile: '' } }, 'iot.certFile: must not be empty'],
    [{ extra: 1 }, 'extra: is not a known field'],
  ])('%j is rejected naming the field', (patch, message) => {
    const err = gatewayConfigError({ ...minimal, ...patch });
    expect(err.message).toContain(message);
    expect(err.issues.length).toBeGreaterThan(0);
  });

  test('reports every problem, not just the first', () => {
    const err = gatewayConfigError({ ...minimal, credentials: { maxAttempts: 0 }, upload: { queueSize: 0 } });
    expect(err.issues.map((i) => i.path).sort()).toEqual(['credentials.maxAttempts', 'upload.queueSize']);
  });

  test('iot is optional with the token exchange service', () => {
    const { iot: _iot, ...rest } = minimal;
    expect(parseGatewayConfig({ ...rest, credentials: { source: 'tes' } }).iot).toBeUndefined();
  });

  test('a non-object is rejected', () => {
    expect(gatewayConfigError(42).message).toMatch(/must be an object/);
  });
});

describe('loadGatewayConfig', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('edgefleet-config-');
  });
  afterEach(() => removeDir(dir));

  test('resolves relative file paths against the configuration file', () => {
    mkdirSync(join(dir, 'conf'));
    const file = join(dir, 'conf', 'gw.json');
    writeFileSync(file, JSON.stringify({ ...minimal, iot: { ...minimal.iot, caFile: '/etc/ssl/ca.pem' } }));
    const c = loadGatewayConfig(file);
    expect(c.iot?.certFile).toBe(join(dir, 'conf', 'device.crt'));
    expect(c.iot?.keyFile).toBe(join(dir, 'conf', 'device.key'));
    expect(c.iot?.caFile).toBe('/etc/ssl/ca.pem');
  });

  test('names the file when it is missing, not JSON, or invalid', () => {
    const missing = join(dir, 'nope.json');
    expect(() => loadGatewayConfig(missing)).toThrow(`cannot read gateway configuration ${missing} (ENOENT)`);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{ "thingName": ');
    expect(() => loadGatewayConfig(bad)).toThrow(new RegExp(`${bad} is not valid JSON`));
    const invalid = join(dir, 'invalid.json');
    writeFileSync(invalid, JSON.stringify({ ...minimal, credentials: { refreshMarginSeconds: -5 } }));
    expect(() => loadGatewayConfig(invalid)).toThrow(
      `invalid gateway configuration in ${invalid}: credentials.refreshMarginSeconds: must be an integer from 0 to 43200`,
    );
  });
});
