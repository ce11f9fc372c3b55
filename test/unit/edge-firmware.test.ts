/**
 * The firmware agent with an in-memory IoT channel, a local HTTP server for artifacts (Range support,
 * injected faults) and manifests signed with real EC P-256 keys.
 */
import { mkdtemp, readFile, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { MemoryIotChannel } from '../../edge-component/adapters/memory-channel.js';
import { FirmwareConfigSchema, parseGatewayConfig } from '../../edge-component/config.js';
import { GatewayConfigError } from '../../edge-component/errors.js';
import { FirmwareAgent } from '../../edge-component/firmware/index.js';
import type { ShadowClient } from '../../edge-component/ports.js';
import { FIRMWARE_SHADOW, type FirmwareDesired, type FirmwareReport } from '../../protocol/firmware.js';
import { shadowTopics } from '../../protocol/topics.js';
import { ArtifactServer, artifactOf, desired, type SigningKey, signingKey } from '../helpers/firmware.js';

const THING = 'fw-unit';
const topics = shadowTopics(THING, FIRMWARE_SHADOW);
const trusted = signingKey();
const stranger = signingKey();

let dir: string;
let server: ArtifactServer;
let channel: MemoryIotChannel;
let agent: FirmwareAgent | undefined;
/** Every document sent through the shadow client. */
let sent: FirmwareReport[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edge-firmware-'));
  server = new ArtifactServer();
  await server.start();
  channel = new MemoryIotChannel();
  sent = [];
});

afterEach(async () => {
  await agent?.stop();
  agent = undefined;
  await server.stop();
  await rm(dir, { recursive: true, force: true });
});

const shadows: ShadowClient = {
  async update(name, doc) {
    expect(name).toBe(FIRMWARE_SHADOW);
    const r = (doc as { state: { reported: { firmware: FirmwareReport } } }).state.reported.firmware;
    sent.push(r);
  },
};

async function startAgent(extra: Record<string, unknown> = {}): Promise<FirmwareAgent> {
  const config = FirmwareConfigSchema.parse({
    target: 'gateway',
    currentVersion: '1.0.0',
    dir,
    trustedKeys: { k1: trusted.publicPem },
    download: { timeoutMs: 10_000, maxAttempts: 3, backoff: { initialDelayMs: 1, maxDelayMs: 5 } },
    ...extra,
  });
  agent = await FirmwareAgent.start({ config, thingName: THING, channel, shadows });
  return agent;
}

/** Resolves with the reports (from the first one seen) once one matches `done`. */
function reportsUntil(a: FirmwareAgent, done: (r: FirmwareReport) => boolean): Promise<FirmwareReport[]> {
  return new Promise((resolve, reject) => {
    const seen: FirmwareReport[] = [];
    const timer = setTimeout(() => reject(new Error(`no final report; saw ${JSON.stringify(seen)}`)), 15_000);
    const off = a.onReport((r) => {
      seen.push(r);
      if (done(r)) {
        clearTimeout(timer);
        off();
        resolve(seen);
      }
    });
  });
}

const final = (r: FirmwareReport) => ['succeeded', 'failed', 'rolled_back'].includes(r.state);

async function push(a: FirmwareAgent, d: FirmwareDesired | object): Promise<FirmwareReport[]> {
  const reports = reportsUntil(a, final);
  await channel.deliver(topics.updateDelta, { state: d, version: 2 });
  return reports;
}

function serve(version: string, size?: number): { artifact: Buffer; url: string } {
  const artifact = artifactOf(version, size);
  server.files.set(`/${version}.bin`, artifact);
  return { artifact, url: server.url(`/${version}.bin`) };
}

function doc(version: string, over: Partial<Parameters<typeof desired>[0]> = {}, key: SigningKey = trusted) {
  const { artifact, url } = serve(version);
  return desired({ key, version, artifact, url, ...over });
}

const states = (rs: FirmwareReport[]) => [...new Set(rs.map((r) => r.state))];

describe('firmware configuration', () => {
  it('is optional, resolves dir against the file and names bad fields', () => {
    const base = { thingName: THING, aws: { region: 'eu-central-1' }, storage: { bucket: 'data-bucket' } };
    const opts = { baseDir: '/etc/edgefleet', runtime: 'greengrass' as const };
    expect(parseGatewayConfig(base, opts).firmware).toBeUndefined();
    const c = parseGatewayConfig(
      { ...base, firmware: { target: 'gateway', trustedKeys: { k1: { file: 'k1.pem' } } } },
      opts,
    );
    expect(c.firmware).toMatchObject({
      dir: '/etc/edgefleet/firmware',
      currentVersion: '0.0.0',
      maxSizeBytes: 512 * 1024 * 1024,
      apply: { mode: 'link' },
      trustedKeys: { k1: { file: '/etc/edgefleet/k1.pem' } },
    });
    const bad = () =>
      parseGatewayConfig(
        {
          ...base,
          firmware: {
            target: 'gateway',
            currentVersion: 'one',
            trustedKeys: { k1: 'not a key' },
            apply: { mode: 'command' },
          },
        },
        opts,
      );
    expect(bad).toThrow(GatewayConfigError);
    expect(bad).toThrow(/firmware\.currentVersion: must be a semantic version/);
    expect(bad).toThrow(/firmware\.trustedKeys\.k1/);
    expect(bad).toThrow(/firmware\.apply/);
  });
});

describe('firmware agent', () => {
  it('installs a signed update: link switched, floor raised, states reported in order', async () => {
    const a = await startAgent();
    expect(await readlink(join(dir, 'current'))).toBe('versions/1.0.0');
    const d = doc('1.1.0');
    const reports = await push(a, d);
    expect(states(reports)).toEqual(['downloading', 'verifying', 'applying', 'testing', 'succeeded']);
    const downloading = reports.filter((r) => r.state === 'downloading');
    expect(downloading.at(-1)!.progress).toBe(100);
    expect(reports.at(-1)).toMatchObject({
      state: 'succeeded',
      version: '1.1.0',
      targetVersion: '1.1.0',
      previousVersion: '1.0.0',
      rolloutId: 'rollout-1',
    });
    expect(await readlink(join(dir, 'current'))).toBe('versions/1.1.0');
    expect(await readFile(join(dir, 'versions', '1.1.0', 'firmware.bin'))).toEqual(artifactOf('1.1.0'));
    expect(a.status).toMatchObject({ floor: '1.1.0', current: '1.1.0', previous: '1.0.0' });
    await a.whenIdle();
    await a.stop();
    // What went through the shadow: the same reports, in the same order.
    expect(sent.map((r) => r.state)).toEqual(reports.map((r) => r.state));
  });

  it('refuses a tampered artifact (hash mismatch) and removes the download', async () => {
    const a = await startAgent();
    server.fault = { kind: 'tamper' };
    const reports = await push(a, doc('1.1.0'));
    expect(reports.at(-1)).toMatchObject({ state: 'failed', version: '1.0.0', targetVersion: '1.1.0' });
    expect(reports.at(-1)!.error).toMatch(/hash mismatch/);
    await expect(stat(join(dir, 'downloads', '1.1.0.part'))).rejects.toThrow();
    expect(await readlink(join(dir, 'current'))).toBe('versions/1.0.0');
  });

  it('refuses a manifest of another signer and of an unknown key', async () => {
    const a = await startAgent();
    let reports = await push(a, doc('1.1.0', {}, stranger));
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ state: 'failed', version: '1.0.0' });
    expect(reports[0]!.error).toMatch(/signature does not verify/);
    reports = await push(a, doc('1.2.0', { keyId: 'k9' }));
    expect(reports[0]!.error).toMatch(/unknown key k9/);
    expect(server.ranges).toHaveLength(0);
  });

  it('refuses a version not above the floor, an expired manifest, another target and an oversized one', async () => {
    const a = await startAgent({ maxSizeBytes: 1000 });
    const cases: [FirmwareDesired, RegExp][] = [
      [doc('0.9.0'), /not above the anti-rollback floor 1\.0\.0/],
      [doc('1.1.0', { expiresAt: Date.now() - 1000, issuedAt: Date.now() - 5000 }), /expired/],
      [doc('1.1.1', { issuedAt: Date.now() + 3_600_000, expiresAt: Date.now() + 7_200_000 }), /future/],
      [doc('1.2.0', { target: 'plc' }), /target plc/],
      [doc('1.3.0'), /exceeds the limit of 1000 bytes/],
    ];
    for (const [d, why] of cases) {
      const reports = await push(a, d);
      expect(reports[0]).toMatchObject({ state: 'failed', version: '1.0.0' });
      expect(reports[0]!.error).toMatch(why);
    }
    expect(server.ranges).toHaveLength(0);
  });

  it('reports an invalid desired document as failed', async () => {
    const a = await startAgent();
    const reports = await push(a, { manifest: { version: 'x' }, downloadUrl: 'nope' });
    expect(reports[0]).toMatchObject({ state: 'failed', version: '1.0.0' });
    expect(reports[0]!.error).toMatch(/invalid desired document: manifest/);
  });

  it('stops a download that brings more bytes than declared', async () => {
    const a = await startAgent();
    server.fault = { kind: 'extra', bytes: 10 };
    const reports = await push(a, doc('1.1.0'));
    expect(reports.at(-1)).toMatchObject({ state: 'failed', version: '1.0.0' });
    expect(reports.at(-1)!.error).toMatch(/size larger than declared/);
    await expect(stat(join(dir, 'downloads', '1.1.0.part'))).rejects.toThrow();
  });

  it('rolls back when the apply command fails', async () => {
    const marker = join(dir, 'installed');
    const script = `require('fs').writeFileSync(${JSON.stringify(marker)}, process.env.FIRMWARE_VERSION);
      process.exit(process.env.FIRMWARE_ROLLBACK === '1' ? 0 : 1);`;
    const a = await startAgent({ apply: { mode: 'command', command: [process.execPath, '-e', script] } });
    const reports = await push(a, doc('1.1.0'));
    expect(states(reports)).toEqual(['downloading', 'verifying', 'applying', 'rolled_back']);
    expect(reports.at(-1)).toMatchObject({ state: 'rolled_back', version: '1.0.0', targetVersion: '1.1.0' });
    expect(reports.at(-1)!.error).toMatch(/apply failed: exit 1/);
    expect(await readFile(marker, 'utf8')).toBe('1.0.0');
    expect(a.status.floor).toBe('1.0.0');
  });

  it('rolls back when the self-test fails: current is the previous version again', async () => {
    const a = await startAgent({ selfTest: { command: [process.execPath, '-e', 'process.exit(3)'] } });
    const reports = await push(a, doc('1.1.0'));
    expect(states(reports)).toEqual(['downloading', 'verifying', 'applying', 'testing', 'rolled_back']);
    expect(reports.at(-1)).toMatchObject({ state: 'rolled_back', version: '1.0.0' });
    expect(reports.at(-1)!.error).toMatch(/self-test failed: exit 3/);
    expect(await readlink(join(dir, 'current'))).toBe('versions/1.0.0');
    expect(a.status).toMatchObject({ floor: '1.0.0', current: '1.0.0' });
    await expect(stat(join(dir, 'versions', '1.1.0'))).rejects.toThrow();
  });

  it('refuses a stale desired document replayed after an update, and stays on the new version', async () => {
    const a = await startAgent();
    const old = doc('1.1.0');
    expect((await push(a, old)).at(-1)!.state).toBe('succeeded');
    expect((await push(a, doc('1.2.0'))).at(-1)!.state).toBe('succeeded');
    const reports = await push(a, old);
    expect(reports[0]).toMatchObject({ state: 'failed', version: '1.2.0' });
    expect(reports[0]!.error).toMatch(/1\.1\.0 is not above the anti-rollback floor 1\.2\.0/);
    expect(await readlink(join(dir, 'current'))).toBe('versions/1.2.0');
  });

  it('gets the update on reconnect when it was written while offline', async () => {
    channel = new MemoryIotChannel({ connected: false });
    const a = await startAgent();
    const d = doc('1.1.0');
    const gets: string[] = [];
    channel.onPublish((m) => {
      if (m.topic === topics.get) {
        gets.push(m.topic);
        void channel.deliver(topics.getAccepted, { state: { desired: d, reported: {} }, version: 3 });
      }
    });
    const reports = reportsUntil(a, final);
    channel.setConnected(true);
    expect((await reports).at(-1)).toMatchObject({ state: 'succeeded', version: '1.1.0' });
    expect(gets).toHaveLength(1);
    // A later reconnect gets the same document again: nothing happens, the last report is re-sent.
    await a.whenIdle();
    channel.setConnected(false);
    channel.setConnected(true);
    await a.whenIdle();
    expect(gets).toHaveLength(2);
    expect(sent.at(-1)).toMatchObject({ state: 'succeeded', version: '1.1.0' });
    expect(server.ranges).toHaveLength(1);
  });

  it('resumes an interrupted download with a Range request after a restart', async () => {
    server.fault = { kind: 'stall', after: 20_000 };
    let a = await startAgent();
    const d = doc('1.1.0');
    const progressed = reportsUntil(a, (r) => r.state === 'downloading' && (r.progress ?? 0) >= 30);
    await channel.deliver(topics.updateDelta, { state: d });
    await progressed;
    await a.stop();
    server.fault = undefined;
    channel = new MemoryIotChannel();
    a = await startAgent();
    expect((await reportsUntil(a, final)).at(-1)).toMatchObject({ state: 'succeeded', version: '1.1.0' });
    expect(server.ranges.at(-1)).toMatch(/^bytes=\d+-$/);
    expect(Number(/\d+/.exec(server.ranges.at(-1)!)![0])).toBeGreaterThan(0);
  });
});
