/** The gateway configuration's `logs` section: defaults, field-naming errors, sources, relative paths. */

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { GATEWAY_LOGS_STREAM as CLOUD_STREAM } from '../../cloud/rules/streams.js';
import { loadGatewayConfig, parseGatewayConfig } from '../../edge-component/config.js';
import { GATEWAY_LOGS_STREAM } from '../../protocol/logs.js';
import { removeDir, tempDir } from '../helpers/cloud.js';
import { gatewayConfigError } from '../helpers/config.js';

const minimal = {
  thingName: 'gw-1',
  iot: { host: 'localhost', certFile: 'device.crt', keyFile: 'device.key', caFile: 'ca.pem' },
  aws: { region: 'eu-central-1' },
  storage: { bucket: 'edgefleet-data' },
};

describe('logs configuration', () => {
  test('is off when absent', () => {
    expect(parseGatewayConfig(minimal).logs).toBeUndefined();
  });

  test('an empty section ships the component lines at info to the shared stream, with the Kinesis limits', () => {
    const c = parseGatewayConfig({ ...minimal, logs: {} });
    expect(c.logs).toEqual({
      streamName: GATEWAY_LOGS_STREAM,
      component: { enabled: true, level: 'info' },
      files: [],
      batch: { maxRecords: 500, maxBytes: 5 * 1024 * 1024, maxAgeMs: 1000 },
      pollIntervalMs: 1000,
      backoff: { initialDelayMs: 100, maxDelayMs: 30_000 },
    });
    expect(GATEWAY_LOGS_STREAM).toBe('edgefleet-gateway-logs');
    expect(CLOUD_STREAM).toBe(GATEWAY_LOGS_STREAM);
    // The spool stream of the lines: bulk, overwriting the oldest when full.
    expect(c.spool.streams.logs).toEqual({
      maxSizeBytes: 64 * 1024 * 1024,
      segmentSizeBytes: 4 * 1024 * 1024,
      strategyOnFull: 'OverwriteOldestData',
      priority: 'bulk',
    });
  });

  test('a file source defaults to its file name (made safe for a partition key)', () => {
    const c = parseGatewayConfig({
      ...minimal,
      logs: { files: [{ path: '/var/log/syslog' }, { path: '/opt/app/my app.log', startAt: 'end' }] },
    });
    expect(c.logs?.files).toEqual([
      { path: '/var/log/syslog', source: 'syslog', startAt: 'beginning' },
      { path: '/opt/app/my app.log', source: 'my_app.log', startAt: 'end' },
    ]);
  });

  test.each([
    [{ batch: { maxRecords: 501 } }, 'logs.batch.maxRecords: must be an integer from 1 to 500'],
    [
      { batch: { maxBytes: 6 * 1024 * 1024 } },
      'logs.batch.maxBytes: must be an integer from 1024 to 5242880',
    ],
    [{ component: { level: 'silent' } }, 'logs.component.level: must be one of fatal, error, warn, info'],
    [{ component: { enabled: 'yes' } }, 'logs.component.enabled: must be true or false'],
    [{ streamName: 'bad name' }, 'logs.streamName: must be a stream name'],
    [{ files: [{ source: 'x' }] }, 'logs.files.0.path: is required'],
    [{ files: [{ path: 'a.log', source: 'a/b' }] }, 'logs.files.0.source: must be 1 to 64 characters'],
    [{ files: [{ path: 'a.log', startAt: 'middle' }] }, "logs.files.0.startAt: must be 'beginning' or 'end'"],
    [
      { files: [{ path: '/x/app.log' }, { path: '/y/app.log' }] },
      "logs.files.1.source: duplicate source 'app.log'",
    ],
    [{ files: [{ path: '/x/gateway' }] }, "logs.files.0.source: 'gateway' names the component's own lines"],
    [{ pollIntervalMs: 0 }, 'logs.pollIntervalMs: must be an integer from 10 to 3600000'],
    [{ endpoint: 'http://127.0.0.1:4566' }, 'logs.endpoint: is not a known field'],
  ])('%j is rejected naming the field', (logs, message) => {
    expect(gatewayConfigError({ ...minimal, logs }).message).toContain(message);
  });

  test("'gateway' is a file source only when the component's lines are not shipped", () => {
    const c = parseGatewayConfig({
      ...minimal,
      logs: { component: { enabled: false }, files: [{ path: '/x/gateway' }] },
    });
    expect(c.logs?.files[0]?.source).toBe('gateway');
  });

  test('aws.kinesisEndpoint must be a URL', () => {
    expect(
      gatewayConfigError({ ...minimal, aws: { region: 'us-east-1', kinesisEndpoint: 'localhost' } }).message,
    ).toContain('aws.kinesisEndpoint: must be an http:// or https:// URL');
  });

  describe('in a file', () => {
    let dir: string;
    beforeEach(() => {
      dir = tempDir('edgefleet-logs-config-');
    });
    afterEach(() => removeDir(dir));

    test('relative file paths resolve against the configuration file', () => {
      const file = join(dir, 'gw.json');
      writeFileSync(
        file,
        JSON.stringify({ ...minimal, logs: { files: [{ path: 'logs/app.log' }, { path: '/abs/b.log' }] } }),
      );
      const c = loadGatewayConfig(file);
      expect(c.logs?.files.map((f) => f.path)).toEqual([join(dir, 'logs', 'app.log'), '/abs/b.log']);
    });
  });
});
