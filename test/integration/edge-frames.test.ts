/**
 * Camera frames on the gateway with real sources: ffmpeg (a lavfi test source, a child that exits, a
 * missing executable, an HTTP MJPEG stream that stalls), a local HTTP snapshot server, a folder that
 * images are dropped into, a corrupt JPEG reported in the health figures and skipped, and frames
 * uploaded end to end to the local cloud (masked, under frames/{thing}/{camera}/dt=..., with sidecars).
 */
import { mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { GetThingShadowCommand, IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import pino from 'pino';
import sharp from 'sharp';
import { LOCAL_DATA_BUCKET } from '../../cloud/rules/resources.js';
import { mqttChannelFromConfig } from '../../edge-component/adapters/mqtt-channel.js';
import {
  type CameraConfig,
  type GatewayConfig,
  loadGatewayConfig,
  parseGatewayConfig,
} from '../../edge-component/config.js';
import { credentialProviderFromConfig } from '../../edge-component/credentials.js';
import type { FrameSourceError } from '../../edge-component/frames/errors.js';
import type { FrameOutcome } from '../../edge-component/frames/pipeline.js';
import type { FaceDetector, Frame, FrameSource } from '../../edge-component/frames/ports.js';
import { FrameService } from '../../edge-component/frames/service.js';
import { createFrameSource, patternFrame } from '../../edge-component/frames/sources/index.js';
import { Gateway } from '../../edge-component/gateway.js';
import type { JsonValue } from '../../edge-component/spool/index.js';
import { S3Uploader } from '../../edge-component/uploader.js';
import {
  eventually,
  localGatewayConfig,
  removeDir,
  startTestCloud,
  type TestCloud,
  tempDir,
} from '../helpers/cloud.js';

/** The end-to-end test's limit. */
const FRAMES_E2E_MS = 120_000;
const logger = pino({ level: 'silent' });

function cameras(list: Record<string, unknown>[]): CameraConfig[] {
  return parseGatewayConfig({
    thingName: 'gw-frames-it',
    aws: { region: 'eu-central-1' },
    storage: { bucket: 'data-bucket' },
    credentials: { source: 'tes' },
    cameras: list.map((c) => ({ restartBackoff: { initialDelayMs: 20, maxDelayMs: 200 }, ...c })),
  }).cameras;
}

/** Takes `n` frames from a started source (or fails after `timeoutMs`). */
async function take(source: FrameSource, n: number, timeoutMs = 15_000): Promise<Frame[]> {
  const out: Frame[] = [];
  const timer = setTimeout(() => void source.stop(), timeoutMs);
  try {
    for await (const f of source) {
      out.push(f);
      if (out.length >= n) break;
    }
  } finally {
    clearTimeout(timer);
  }
  if (out.length < n) throw new Error(`got ${out.length} of ${n} frames`);
  return out;
}

function errorsOf(source: FrameSource): FrameSourceError[] {
  const errors: FrameSourceError[] = [];
  source.onError((e) => errors.push(e));
  return errors;
}

const noFaces: FaceDetector = { detect: async () => [] };

class MemorySink {
  readonly entries: { bytes: Uint8Array; metadata: JsonValue | undefined }[] = [];
  async appendFile(_stream: string, bytes: Uint8Array, metadata?: JsonValue) {
    this.entries.push({ bytes, metadata });
    return { seq: this.entries.length, dropped: [] };
  }
}

async function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { server, url: `http://127.0.0.1:${port}` };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function closeServer(server: Server): () => Promise<void> {
  return () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
}

describe('ffmpeg source', () => {
  it('delivers JPEG frames from a lavfi test source', async () => {
    const [cam] = cameras([
      { id: 'lavfi', fps: 5, source: { type: 'ffmpeg', lavfi: 'testsrc=size=640x480:rate=5' } },
    ]);
    const source = createFrameSource(cam!, { logger });
    cleanups.push(() => source.stop());
    await source.start();
    const frames = await take(source, 3);
    for (const f of frames) {
      expect(f.camera).toBe('lavfi');
      const meta = await sharp(f.bytes).metadata();
      expect(meta).toMatchObject({ format: 'jpeg', width: 640, height: 480 });
    }
    expect(frames[2]!.capturedAt).toBeGreaterThanOrEqual(frames[0]!.capturedAt);
  });

  it('restarts ffmpeg when it exits, and reports it', async () => {
    const [cam] = cameras([
      { id: 'short', fps: 10, source: { type: 'ffmpeg', lavfi: 'testsrc=size=64x48:rate=10:duration=0.3' } },
    ]);
    const source = createFrameSource(cam!, { logger });
    const errors = errorsOf(source);
    cleanups.push(() => source.stop());
    await source.start();
    // One run gives about 3 frames: 8 need several runs.
    await take(source, 8);
    expect(errors.length).toBeGreaterThanOrEqual(1);
    expect(errors[0]!.message).toMatch(/ffmpeg for camera short exited \(code 0\) after \d+ frames/);
  });

  it('says which package to install when ffmpeg is missing, and keeps trying', async () => {
    const [cam] = cameras([
      { id: 'nofm', source: { type: 'ffmpeg', lavfi: 'testsrc', ffmpegPath: '/nonexistent/bin/ffmpeg' } },
    ]);
    const source = createFrameSource(cam!, { logger });
    const errors = errorsOf(source);
    cleanups.push(() => source.stop());
    await source.start();
    await eventually(() => (errors.length >= 2 ? true : undefined), 'two failed starts');
    expect(errors[0]!.name).toBe('FrameSourceError');
    expect(errors[0]!.message).toContain('ffmpeg not found (/nonexistent/bin/ffmpeg)');
    expect(errors[0]!.message).toContain('apt-get install ffmpeg');
  });

  it('restarts a stalled stream: no frame for stallAfterIntervals intervals', async () => {
    const frame = await patternFrame(160, 120, 1);
    let connections = 0;
    const { server, url } = await listen((_req, res) => {
      connections++;
      res.writeHead(200, { 'content-type': 'image/jpeg' });
      // A camera that sends a second of video (mjpeg at 25 fps), then nothing, keeping the connection.
      for (let i = 0; i < 25; i++) res.write(frame);
    });
    cleanups.push(closeServer(server));
    const [cam] = cameras([
      {
        id: 'stally',
        fps: 5,
        stallAfterIntervals: 4,
        changeThreshold: 0,
        masking: { faces: false },
        source: { type: 'ffmpeg', url: `${url}/video.mjpg`, inputArgs: ['-f', 'mjpeg'] },
      },
    ]);
    const statuses = new Set<string>();
    const service = FrameService.create(cam ? [cam] : [], {
      thing: 'gw-frames-it',
      sink: new MemorySink(),
      logger,
    });
    cleanups.push(() => service.stop());
    await service.start();
    const runner = service.cameras[0]!;
    await eventually(() => {
      statuses.add(runner.health.status);
      return runner.stalls >= 1 && connections >= 2 && runner.health.framesKept >= 2 ? true : undefined;
    }, 'a stall, a restart and frames after it');
    expect(statuses).toContain('stalled');
    expect(runner.health.lastError).toMatch(/no frame for \d+ ms; source restarted/);
  });
});

describe('HTTP snapshot source', () => {
  it('polls the snapshot URL with basic authentication', async () => {
    const frame = await patternFrame(320, 240, 2);
    const auths: (string | undefined)[] = [];
    const { server, url } = await listen((req, res) => {
      auths.push(req.headers.authorization);
      res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': frame.length });
      res.end(frame);
    });
    cleanups.push(closeServer(server));
    const [cam] = cameras([
      {
        id: 'snap',
        fps: 20,
        source: { type: 'http-snapshot', url: `${url}/snapshot.jpg`, username: 'cam', password: 's3cret' },
      },
    ]);
    const source = createFrameSource(cam!, { logger });
    cleanups.push(() => source.stop());
    await source.start();
    const frames = await take(source, 3);
    expect(frames.every((f) => Buffer.from(f.bytes).equals(frame))).toBe(true);
    expect(auths[0]).toBe(`Basic ${Buffer.from('cam:s3cret').toString('base64')}`);
  });

  it('reports failed polls and recovers; a corrupt JPEG is counted in the health and skipped', async () => {
    const good = await patternFrame(320, 240, 3);
    const corrupt = Buffer.concat([good.subarray(0, 300), Buffer.alloc(500, 0x42)]);
    let n = 0;
    const { server, url } = await listen((_req, res) => {
      n++;
      if (n === 2) {
        res.writeHead(503);
        res.end();
        return;
      }
      const body = n === 4 ? corrupt : n > 4 ? good : good;
      res.writeHead(200, { 'content-type': 'image/jpeg' });
      res.end(body);
    });
    cleanups.push(closeServer(server));
    const [cam] = cameras([
      { id: 'flaky', fps: 20, changeThreshold: 0, source: { type: 'http-snapshot', url: `${url}/s.jpg` } },
    ]);
    const sink = new MemorySink();
    const outcomes: FrameOutcome[] = [];
    const service = FrameService.create([cam!], {
      thing: 'gw-frames-it',
      sink,
      detector: noFaces,
      logger,
      onOutcome: (_c, o) => outcomes.push(o),
    });
    cleanups.push(() => service.stop());
    await service.start();
    const health = () => service.health().flaky!;
    const seen = new Set<string>();
    await eventually(() => {
      seen.add(health().status);
      return health().framesRejected >= 1 && health().framesKept >= 3 ? true : undefined;
    }, 'a rejected and later kept frames');
    expect(outcomes.find((o) => o.result === 'rejected')).toMatchObject({
      result: 'rejected',
      reason: 'decode',
    });
    expect(health().framesRejected).toBe(1);
    expect(health().status).toBe('ok');
    expect(health().lastError).toMatch(/frame rejected \(decode\)/);
    expect(seen).toContain('error');
    expect(sink.entries.length).toBe(health().framesKept);
  });
});

describe('directory source', () => {
  it('picks up each dropped image once, oldest first, and ignores partial and other files', async () => {
    const dir = tempDir('edgefleet-frames-dir-');
    cleanups.push(() => removeDir(dir));
    const [cam] = cameras([{ id: 'ftp', fps: 20, source: { type: 'directory', dir, settleMs: 0 } }]);
    const source = createFrameSource(cam!, { logger });
    cleanups.push(() => source.stop());
    await source.start();
    const a = await patternFrame(64, 48, 1);
    const b = await patternFrame(64, 48, 2);
    writeFileSync(join(dir, '.upload-in-progress.jpg'), a.subarray(0, 10));
    writeFileSync(join(dir, 'notes.txt'), 'not an image');
    writeFileSync(join(dir, '.a.tmp'), a);
    renameSync(join(dir, '.a.tmp'), join(dir, 'a.jpg'));
    const [first] = await take(source, 1);
    expect(Buffer.from(first!.bytes).equals(a)).toBe(true);
    writeFileSync(join(dir, '.b.tmp'), b);
    renameSync(join(dir, '.b.tmp'), join(dir, 'b.JPEG'));
    const [second] = await take(source, 1);
    expect(Buffer.from(second!.bytes).equals(b)).toBe(true);
    // Read files are removed; the rest stays.
    await eventually(
      () => (readdirSync(dir).sort().join(',') === '.upload-in-progress.jpg,notes.txt' ? true : undefined),
      'the read files removed',
    );
  });

  it('one bad camera (missing folder) does not stop another', async () => {
    const dir = tempDir('edgefleet-frames-dir-');
    cleanups.push(() => removeDir(dir));
    const missing = join(dir, 'missing');
    const good = join(dir, 'good');
    mkdirSync(good);
    const cams = cameras([
      {
        id: 'bad',
        fps: 20,
        stallAfterIntervals: 0,
        source: { type: 'directory', dir: missing, settleMs: 0 },
      },
      {
        id: 'good',
        fps: 20,
        masking: { faces: false },
        source: { type: 'directory', dir: good, settleMs: 0 },
      },
    ]);
    const service = FrameService.create(cams, { thing: 'gw-frames-it', sink: new MemorySink(), logger });
    cleanups.push(() => service.stop());
    await service.start();
    writeFileSync(join(good, 'x.jpg'), await patternFrame(64, 48, 5));
    await eventually(
      () => (service.health().good!.framesKept === 1 ? true : undefined),
      'the good camera works',
    );
    await eventually(
      () => (service.health().bad!.status === 'error' ? true : undefined),
      'the bad camera reported',
    );
    expect(service.health().bad!.lastError).toContain(
      `cannot read the folder ${missing} of camera bad (ENOENT)`,
    );
  });
});

describe('end to end to the local cloud', () => {
  const THING = 'gw-frames-e2e';
  let tc: TestCloud;
  let s3: S3Client;
  let data: IoTDataPlaneClient;

  beforeAll(async () => {
    tc = await startTestCloud();
    s3 = new S3Client({ ...tc.cloud.sdkConfig(), forcePathStyle: true });
    data = new IoTDataPlaneClient(tc.cloud.sdkConfig());
  });

  afterAll(async () => {
    s3?.destroy();
    data?.destroy();
    await tc?.stop();
    if (tc) removeDir(tc.dataDir);
  });

  function writeConfig(outDir: string): GatewayConfig {
    const file = join(outDir, 'gw-frames.json');
    writeFileSync(
      file,
      JSON.stringify(
        localGatewayConfig(tc.cloud, THING, {
          iot: { reconnect: { initialDelayMs: 50, maxDelayMs: 500 } },
          credentials: { requestTimeoutMs: 5000, maxAttempts: 3 },
          upload: { maxAttempts: 2, backoff: { initialDelayMs: 100, maxDelayMs: 500 } },
          spool: { dir: 'spool' },
          health: { intervalMs: 200 },
          cameras: [
            {
              id: 'lobby',
              fps: 4,
              changeThreshold: 0,
              maxWidth: 960,
              maxHeight: 540,
              quality: 90,
              source: { type: 'synthetic', pattern: 'faces', width: 1280, height: 720 },
            },
            {
              // Explicitly an identification camera: unmasked frames to the restricted prefix.
              id: 'staff-door',
              fps: 2,
              changeThreshold: 0,
              maxWidth: 640,
              maxHeight: 360,
              identification: true,
              source: { type: 'synthetic', pattern: 'faces', width: 1280, height: 720 },
            },
          ],
        }),
      ),
    );
    return loadGatewayConfig(file);
  }

  it(
    'uploads masked frames with their metadata sidecars and reports camera health',
    async () => {
      const dev = await tc.provision(THING);
      const config = writeConfig(dev.outDir);
      const channel = mqttChannelFromConfig(config.iot!, THING, { logger });
      const credentials = credentialProviderFromConfig(config, { channel, logger });
      const uploader = S3Uploader.fromConfig(config, credentials, { logger });
      const gateway = await Gateway.start(config, { channel, uploader, logger });
      try {
        // Three complete lobby frames (image and sidecar; the next one may be under way).
        const { keys, images } = await eventually(
          async () => {
            const list = await s3.send(
              new ListObjectsV2Command({ Bucket: LOCAL_DATA_BUCKET, Prefix: `frames/${THING}/` }),
            );
            const keys = (list.Contents ?? []).map((o) => o.Key!).sort();
            const images = keys.filter(
              (k) => k.endsWith('.jpg') && keys.includes(k.replace(/\.jpg$/, '.json')),
            );
            return images.length >= 3 ? { keys, images } : undefined;
          },
          'three lobby frames uploaded',
          FRAMES_E2E_MS - 30_000,
        );
        for (const key of images) {
          expect(key).toMatch(
            new RegExp(`^frames/${THING}/lobby/dt=\\d{4}-\\d{2}-\\d{2}/hour=\\d{2}/\\d{13}-\\d+\\.jpg$`),
          );
          const sidecarKey = key.replace(/\.jpg$/, '.json');
          const sidecar = JSON.parse(
            await (
              await s3.send(new GetObjectCommand({ Bucket: LOCAL_DATA_BUCKET, Key: sidecarKey }))
            ).Body!.transformToString(),
          ) as Record<string, unknown>;
          expect(sidecar).toMatchObject({
            thing: THING,
            camera: 'lobby',
            masking: 'blur',
            format: 'jpeg',
            key,
          });
          expect(sidecar.width).toBe(960);
          expect(sidecar.height).toBe(540);
          expect(typeof sidecar.faces).toBe('number');
          expect(Array.isArray(sidecar.boxes)).toBe(true);
          const img = await s3.send(new GetObjectCommand({ Bucket: LOCAL_DATA_BUCKET, Key: key }));
          expect(img.ContentType).toBe('image/jpeg');
          expect(img.Metadata).toMatchObject({ camera: 'lobby', masking: 'blur' });
          const meta = await sharp(Buffer.from(await img.Body!.transformToByteArray())).metadata();
          expect([meta.width, meta.height]).toEqual([960, 540]);
        }
        // The sample photos have faces, and they were found.
        const faces = await Promise.all(
          keys
            .filter((k) => k.endsWith('.json'))
            .map(async (k) => {
              const body = await (
                await s3.send(new GetObjectCommand({ Bucket: LOCAL_DATA_BUCKET, Key: k }))
              ).Body!.transformToString();
              return (JSON.parse(body) as { faces: number }).faces;
            }),
        );
        expect(faces.some((n) => n > 0)).toBe(true);

        const cameraHealth = await eventually(async () => {
          const out = await data.send(new GetThingShadowCommand({ thingName: THING, shadowName: 'health' }));
          const doc = JSON.parse(Buffer.from(out.payload!).toString()) as {
            state: { reported: { cameras?: Record<string, { status: string; framesKept: number }> } };
          };
          const lobby = doc.state.reported.cameras?.lobby;
          return lobby && lobby.framesKept >= 3 ? lobby : undefined;
        }, 'camera health in the shadow');
        expect(cameraHealth).toMatchObject({ status: 'ok', framesRejected: 0 });

        // The identification camera's frames went, unmasked, to frames-identify/ (the upload role and the
        // vended session allow that prefix too), never to frames/.
        const identify = await eventually(async () => {
          const out = await s3.send(
            new ListObjectsV2Command({
              Bucket: LOCAL_DATA_BUCKET,
              Prefix: `frames-identify/${THING}/staff-door/`,
            }),
          );
          const k = (out.Contents ?? []).map((o) => o.Key!).filter((x) => x.endsWith('.json'));
          return k.length > 0 ? k : undefined;
        }, 'an identification frame uploaded');
        const idSidecar = JSON.parse(
          await (
            await s3.send(new GetObjectCommand({ Bucket: LOCAL_DATA_BUCKET, Key: identify[0]! }))
          ).Body!.transformToString(),
        ) as Record<string, unknown>;
        expect(idSidecar).toMatchObject({ camera: 'staff-door', masking: 'identification' });
        const masked = await s3.send(
          new ListObjectsV2Command({ Bucket: LOCAL_DATA_BUCKET, Prefix: `frames/${THING}/staff-door/` }),
        );
        expect(masked.Contents ?? []).toHaveLength(0);
      } finally {
        await gateway.stop();
        uploader.destroy();
        await credentials.close();
        await channel.close();
      }
      // Face detection on every frame is CPU-bound: with the whole suite running beside it, it gets slow.
    },
    FRAMES_E2E_MS,
  );
});
