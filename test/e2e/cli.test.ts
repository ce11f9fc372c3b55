/** The `edgefleet` command as a user runs it: local up, local provision, demo. */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, expect, it } from '@jest/globals';
import mqtt from 'mqtt';
import { readDeviceFiles } from '../../cloud/local/provision.js';
import { removeDir, tempDir } from '../helpers/cloud.js';

const BIN = join(process.cwd(), 'bin', 'edgefleet.js');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) removeDir(d);
});

function run(args: string[]): {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exit: Promise<number | null>;
} {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exit = new Promise<number | null>((resolve) =>
    child.on('exit', (code, signal) =>
      resolve(code ?? (`signal ${signal}; stderr: ${err}` as unknown as number)),
    ),
  );
  return { child, out: () => out, err: () => err, exit };
}

function waitForOutput(p: ReturnType<typeof run>, re: RegExp, timeoutMs = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no ${re} in output within ${timeoutMs} ms:\n${p.out()}\n${p.err()}`)),
      timeoutMs,
    );
    const check = () => {
      if (re.test(p.out())) {
        clearTimeout(timer);
        resolve();
      }
    };
    p.child.stdout?.on('data', check);
    p.exit.then(() => {
      clearTimeout(timer);
      if (re.test(p.out())) resolve();
      else reject(new Error(`exited without ${re}:\n${p.out()}\n${p.err()}`));
    });
  });
}

it('local provision writes the device files, and local up serves them until SIGTERM', async () => {
  const data = tempDir();
  const out = join(data, 'dev');
  dirs.push(data);
  const prov = run(['local', 'provision', 'cli-thing', '--out', out, '--data-dir', data]);
  expect(await prov.exit).toBe(0);
  for (const f of ['device.crt', 'device.key', 'root-ca.crt', 'endpoint.json'])
    expect(existsSync(join(out, f))).toBe(true);
  expect(statSync(join(out, 'device.key')).mode & 0o777).toBe(0o600);
  expect(JSON.parse(await readFile(join(out, 'endpoint.json'), 'utf8'))).toMatchObject({
    host: '127.0.0.1',
    mqttPort: 8883,
    httpPort: 4566,
  });

  const up = run([
    'local',
    'up',
    '--data-dir',
    data,
    '--mqtt-port',
    '0',
    '--http-port',
    '0',
    '--log-level',
    'silent',
  ]);
  await waitForOutput(up, /Press Ctrl-C to stop/);
  expect(up.out()).toMatch(/MQTT \(mTLS\)\s+mqtts:\/\/127\.0\.0\.1:\d+/);
  up.child.kill('SIGTERM');
  expect(await up.exit).toBe(0);
  expect(up.out()).toMatch(/stopped/);
});

it('rejects bad flags with a message that names the flag', async () => {
  const p = run(['local', 'up', '--mqtt-port', 'abc']);
  expect(await p.exit).toBe(2);
  expect(p.err()).toMatch(/--mqtt-port/);
  const q = run(['local', 'provision', 'bad name!', '--out', tempDir()]);
  expect(await q.exit).not.toBe(0);
  expect(q.err()).toMatch(/thing name/);
});

it('demo runs end to end and exits 0', async () => {
  const data = tempDir();
  dirs.push(data);
  const p = run(['demo', '--data-dir', data, '--duration', '0.2']);
  expect(await p.exit).toBe(0);
  expect(p.out()).toMatch(/demo finished: OK/);
  expect(p.out()).toMatch(/shadow round-trip/);
});

it('local provision while local up runs goes through its IoT API, and the device connects to it', async () => {
  const data = tempDir();
  const out = join(data, 'live-dev');
  dirs.push(data);
  const up = run([
    'local',
    'up',
    '--data-dir',
    data,
    '--mqtt-port',
    '0',
    '--http-port',
    '0',
    '--log-level',
    'silent',
  ]);
  try {
    await waitForOutput(up, /Press Ctrl-C to stop/);
    const mqttPort = Number(/mqtts:\/\/127\.0\.0\.1:(\d+)/.exec(up.out())?.[1]);
    const httpPort = Number(/http:\/\/127\.0\.0\.1:(\d+)/.exec(up.out())?.[1]);
    const prov = run(['local', 'provision', 'live-thing', '--out', out, '--data-dir', data]);
    expect(await prov.exit).toBe(0);
    expect(prov.out()).toMatch(/provisioned thing live-thing/);
    const dev = await readDeviceFiles(out);
    expect(dev.endpoint).toMatchObject({ host: '127.0.0.1', mqttPort, httpPort, thingName: 'live-thing' });
    expect(statSync(join(out, 'device.key')).mode & 0o777).toBe(0o600);

    const client = await mqtt.connectAsync({
      host: dev.endpoint.host,
      port: dev.endpoint.mqttPort,
      protocol: 'mqtts',
      protocolVersion: 4,
      clientId: 'live-thing',
      cert: dev.cert,
      key: dev.key,
      ca: dev.ca,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    await client.publishAsync('things/live-thing/hello', 'hi', { qos: 1 });
    await client.endAsync();

    up.child.kill('SIGTERM');
    expect(await up.exit).toBe(0);
  } finally {
    if (up.child.exitCode === null && up.child.signalCode === null) up.child.kill('SIGKILL');
  }
});

it('sql prints the rule output, says when nothing matches, and exits 2 on a parse error', async () => {
  const ok = run([
    'sql',
    "SELECT color AS rgb FROM 'topic/subtopic' WHERE temperature > 50",
    '--topic',
    'topic/subtopic',
    '--payload',
    '{"color":"red","temperature":100}',
  ]);
  expect(await ok.exit).toBe(0);
  expect(JSON.parse(ok.out())).toEqual({ rgb: 'red' });

  const none = run([
    'sql',
    "SELECT color FROM 'topic/subtopic' WHERE temperature > 50 AND color <> 'red'",
    '--topic',
    'topic/subtopic',
    '--payload',
    '{"color":"blue","temperature":40}',
  ]);
  expect(await none.exit).toBe(0);
  expect(none.out()).toMatch(/no match/);

  const bad = run(['sql', "SELECT color FROM 'a/b' WHERE", '--topic', 'a/b']);
  expect(await bad.exit).toBe(2);
  expect(bad.err()).toMatch(/line 1, column 30/);
  expect(bad.err()).toMatch(/\n\s+\^/);
});
