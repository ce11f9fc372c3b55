/**
 * Crash test of the firmware agent: a child process running it is SIGKILLed during a download (the
 * server stalls mid-body) and during apply (an apply command that blocks), then started again over the
 * same directory. The download must resume with a Range request and succeed; the interrupted apply must
 * roll back to the previous version. The kill points are reached by waiting on the agent's reports.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, expect, it } from '@jest/globals';
import { loadState } from '../../edge-component/firmware/index.js';
import type { FirmwareReport } from '../../protocol/firmware.js';
import { ArtifactServer, artifactOf, desired, signingKey } from '../helpers/firmware.js';

const key = signingKey();
let dir: string;
let server: ArtifactServer;
const children: ChildProcess[] = [];

beforeAll(() => {
  // The repository runs TypeScript through tsx (bin/run-ts.js); the child does the same.
  expect(() => createRequire(import.meta.url).resolve('tsx')).not.toThrow();
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edge-firmware-crash-'));
  server = new ArtifactServer();
  await server.start();
});

afterEach(async () => {
  for (const c of children.splice(0)) killGroup(c);
  await server.stop();
  await rm(dir, { recursive: true, force: true });
});

/** SIGKILL to the child's process group: the agent and any command it runs. */
function killGroup(child: ChildProcess): void {
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    // already gone
  }
}

interface Run {
  child: ChildProcess;
  exited: Promise<void>;
  /** Resolves with the reports so far once one matches. */
  until(match: (r: FirmwareReport) => boolean): Promise<FirmwareReport[]>;
}

function runAgent(config: object, desiredDoc: object): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/firmware-agent-child.ts'], {
    cwd: process.cwd(),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    env: {
      ...process.env,
      FIRMWARE_CONFIG: JSON.stringify(config),
      FIRMWARE_DESIRED: JSON.stringify(desiredDoc),
    },
  });
  children.push(child);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const reports: FirmwareReport[] = [];
  const waiters: { match: (r: FirmwareReport) => boolean; resolve: (rs: FirmwareReport[]) => void }[] = [];
  let buf = '';
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.startsWith('report ')) continue;
      const r = JSON.parse(line.slice(7)) as FirmwareReport;
      reports.push(r);
      for (const w of [...waiters]) {
        if (w.match(r)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve([...reports]);
        }
      }
    }
  });
  return {
    child,
    exited,
    until: (match) =>
      new Promise((resolve, reject) => {
        const found = reports.find(match);
        if (found) return resolve([...reports]);
        const timer = setTimeout(
          () => reject(new Error(`timed out; reports ${JSON.stringify(reports)}; stderr ${stderr}`)),
          25_000,
        );
        waiters.push({
          match,
          resolve: (rs) => {
            clearTimeout(timer);
            resolve(rs);
          },
        });
        void exited.then(() => {
          clearTimeout(timer);
          reject(new Error(`child exited; reports ${JSON.stringify(reports)}; stderr ${stderr}`));
        });
      }),
  };
}

async function kill(run: Run): Promise<void> {
  killGroup(run.child);
  await run.exited;
}

function baseConfig(extra: object = {}) {
  return {
    target: 'gateway',
    currentVersion: '1.0.0',
    dir,
    trustedKeys: { k1: key.publicPem },
    download: { timeoutMs: 20_000, maxAttempts: 3, backoff: { initialDelayMs: 1, maxDelayMs: 5 } },
    ...extra,
  };
}

it('resumes a download killed mid-body with a Range request, then succeeds', async () => {
  const artifact = artifactOf('2.0.0', 256 * 1024);
  server.files.set('/fw.bin', artifact);
  server.fault = { kind: 'stall', after: 100 * 1024 };
  const doc = desired({ key, version: '2.0.0', artifact, url: server.url('/fw.bin') });
  const first = runAgent(baseConfig(), doc);
  await server.whenStalled();
  await first.until((r) => r.state === 'downloading' && (r.progress ?? 0) >= 30);
  await kill(first);
  expect((await loadState(join(dir, 'state.json')))?.inProgress?.step).toBe('downloading');

  server.fault = undefined;
  const second = runAgent(baseConfig(), doc);
  const reports = await second.until((r) => r.state === 'succeeded');
  expect(reports.at(-1)).toMatchObject({ version: '2.0.0', previousVersion: '1.0.0' });
  const resumeFrom = Number(/^bytes=(\d+)-$/.exec(server.ranges.at(-1) ?? '')?.[1]);
  expect(resumeFrom).toBeGreaterThanOrEqual(30 * 1024);
  expect(await readFile(join(dir, 'versions', '2.0.0', 'firmware.bin'))).toEqual(artifact);
  await kill(second);
});

it('rolls back an apply interrupted by a kill, on restart', async () => {
  const artifact = artifactOf('2.0.0');
  server.files.set('/fw.bin', artifact);
  const marker = join(dir, 'installed');
  // Records what it installs; blocks when installing the update (not when rolling back).
  const script = `require('fs').writeFileSync(${JSON.stringify(marker)}, process.env.FIRMWARE_VERSION);
    if (process.env.FIRMWARE_ROLLBACK !== '1') setInterval(() => {}, 1000);`;
  const config = baseConfig({ apply: { mode: 'command', command: [process.execPath, '-e', script] } });
  const doc = desired({ key, version: '2.0.0', artifact, url: server.url('/fw.bin') });
  const first = runAgent(config, doc);
  await first.until((r) => r.state === 'applying');
  await kill(first);
  expect((await loadState(join(dir, 'state.json')))?.inProgress?.step).toBe('applying');

  const second = runAgent(config, doc);
  const reports = await second.until((r) => r.state === 'rolled_back');
  expect(reports.at(-1)).toMatchObject({ version: '1.0.0', targetVersion: '2.0.0' });
  expect(reports.at(-1)!.error).toMatch(/interrupted during apply/);
  expect(await readFile(marker, 'utf8')).toBe('1.0.0');
  const state = await loadState(join(dir, 'state.json'));
  expect(state).toMatchObject({ current: '1.0.0', floor: '1.0.0' });
  expect(state?.inProgress).toBeUndefined();
  await kill(second);
});

it('rolls back the link when killed during the self-test: current is the previous version', async () => {
  const artifact = artifactOf('2.0.0');
  server.files.set('/fw.bin', artifact);
  const config = baseConfig({
    selfTest: { command: [process.execPath, '-e', 'setInterval(() => {}, 1000)'] },
  });
  const doc = desired({ key, version: '2.0.0', artifact, url: server.url('/fw.bin') });
  const first = runAgent(config, doc);
  await first.until((r) => r.state === 'testing');
  await kill(first);
  const { readlink } = await import('node:fs/promises');
  expect(await readlink(join(dir, 'current'))).toBe('versions/2.0.0');

  const second = runAgent(baseConfig(), doc);
  const reports = await second.until((r) => r.state === 'rolled_back');
  expect(reports.at(-1)!.error).toMatch(/interrupted during self-test/);
  expect(await readlink(join(dir, 'current'))).toBe('versions/1.0.0');
  await kill(second);
});
