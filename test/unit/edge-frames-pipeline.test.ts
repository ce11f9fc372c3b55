/**
 * The frame pipeline: the change detector, face masking on face-api's sample photos with the real
 * detector (face-api on tfjs wasm), fail-closed behaviour when detection fails, privacy zones, the
 * identification mode, and the MJPEG stream splitter.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from '@jest/globals';
import sharp from 'sharp';
import type { RgbImage } from '../../analytics/vision/image.js';
import { type CameraConfig, parseGatewayConfig } from '../../edge-component/config.js';
import { ChangeDetector, grayThumbnail, thumbnailDifference } from '../../edge-component/frames/change.js';
import { FaceEngineDetector } from '../../edge-component/frames/face-engine.js';
import { JpegStreamSplitter } from '../../edge-component/frames/jpeg-splitter.js';
import { frameObjectKeys } from '../../edge-component/frames/keys.js';
import { type FrameOutcome, FramePipeline, type FrameSink } from '../../edge-component/frames/pipeline.js';
import type { DetectOptions, FaceDetector, FaceRegion } from '../../edge-component/frames/ports.js';
import { faceSamplePaths, patternFrame } from '../../edge-component/frames/sources/index.js';
import type { JsonValue } from '../../edge-component/spool/index.js';

const THING = 'gw-frames-unit';

function camera(extra: Record<string, unknown> = {}): CameraConfig {
  return parseGatewayConfig({
    thingName: THING,
    aws: { region: 'eu-central-1' },
    storage: { bucket: 'data-bucket' },
    credentials: { source: 'tes' },
    cameras: [{ id: 'cam-1', source: { type: 'synthetic' }, changeThreshold: 0, quality: 92, ...extra }],
  }).cameras[0]!;
}

class MemorySink implements FrameSink {
  readonly entries: { bytes: Uint8Array; metadata: JsonValue | undefined }[] = [];
  async appendFile(stream: string, bytes: Uint8Array, metadata?: JsonValue) {
    expect(stream).toBe('frames');
    this.entries.push({ bytes, metadata });
    return { seq: this.entries.length, dropped: [] };
  }
}

/** Packed RGB of an image, auto-oriented and fit into maxWidth x maxHeight like the pipeline does. */
async function pixels(bytes: Uint8Array, width?: number, height?: number) {
  let s = sharp(bytes).rotate();
  if (width !== undefined && height !== undefined) s = s.resize(width, height, { fit: 'fill' });
  else s = s.resize({ width: 1920, height: 1080, fit: 'inside', withoutEnlargement: true });
  const { data, info } = await s.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

type Px = Awaited<ReturnType<typeof pixels>>;
interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** Mean absolute difference per channel value inside `box`. */
function meanDiff(a: Px, b: Px, box: Box): number {
  let sum = 0;
  let n = 0;
  for (let y = box.top; y < box.top + box.height; y++) {
    for (let x = box.left; x < box.left + box.width; x++) {
      const i = (y * a.width + x) * 3;
      for (let c = 0; c < 3; c++) sum += Math.abs(a.data[i + c]! - b.data[i + c]!);
      n += 3;
    }
  }
  return sum / n;
}

/** High-frequency energy: mean absolute Laplacian inside `box` (borders excluded). */
function hfEnergy(p: Px, box: Box): number {
  let sum = 0;
  let n = 0;
  const row = p.width * 3;
  for (let y = box.top + 1; y < box.top + box.height - 1; y++) {
    for (let x = box.left + 1; x < box.left + box.width - 1; x++) {
      const i = (y * p.width + x) * 3;
      for (let c = 0; c < 3; c++) {
        const j = i + c;
        sum += Math.abs(
          4 * p.data[j]! - p.data[j - 3]! - p.data[j + 3]! - p.data[j - row]! - p.data[j + row]!,
        );
        n++;
      }
    }
  }
  return sum / n;
}

/** The detector the pipeline uses, recording its answers. */
class RecordingDetector implements FaceDetector {
  readonly answers: FaceRegion[][] = [];
  constructor(private readonly inner: FaceDetector) {}
  async detect(image: RgbImage, opts: DetectOptions): Promise<FaceRegion[]> {
    const faces = await this.inner.detect(image, opts);
    this.answers.push(faces);
    return faces;
  }
}

const failingDetector: FaceDetector = {
  async detect() {
    throw new Error('tfjs backend lost');
  },
};

const noFaces: FaceDetector = {
  async detect() {
    return [];
  },
};

const samples = faceSamplePaths();

describe('change detector', () => {
  it('keeps the first frame, skips near-duplicates and keeps real changes', async () => {
    const a = await pixels(await patternFrame(320, 240, 0));
    const same = await pixels(await patternFrame(320, 240, 0));
    const moved = await pixels(await patternFrame(320, 240, 9));
    const ta = grayThumbnail(a.data, a.width, a.height);
    expect(ta.width).toBe(64);
    expect(ta.height).toBe(48);
    const det = new ChangeDetector(0.02);
    expect(det.check(ta).changed).toBe(true);
    det.keep(ta);
    const tSame = grayThumbnail(same.data, same.width, same.height);
    expect(det.check(tSame)).toEqual({ changed: false, difference: 0 });
    const tMoved = grayThumbnail(moved.data, moved.width, moved.height);
    const r = det.check(tMoved);
    expect(r.changed).toBe(true);
    expect(r.difference).toBeGreaterThan(0.02);
    // Sensor-like noise of +-2 levels stays below the threshold.
    const noisy = Buffer.from(a.data);
    for (let i = 0; i < noisy.length; i++)
      noisy[i] = Math.max(0, Math.min(255, noisy[i]! + ((i * 7) % 5) - 2));
    expect(thumbnailDifference(ta, grayThumbnail(noisy, a.width, a.height))).toBeLessThan(0.005);
    // Threshold 0 keeps everything.
    const all = new ChangeDetector(0);
    all.keep(ta);
    expect(all.check(tSame).changed).toBe(true);
  });

  it('skips unchanged frames in the pipeline and spools only kept ones', async () => {
    const sink = new MemorySink();
    const p = new FramePipeline(camera({ changeThreshold: 0.01, masking: { faces: false } }), {
      thing: THING,
      sink,
    });
    const f0 = await patternFrame(320, 240, 0);
    const outcomes: FrameOutcome['result'][] = [];
    for (const bytes of [f0, f0, await patternFrame(320, 240, 20), f0]) {
      outcomes.push((await p.process({ camera: 'cam-1', bytes, capturedAt: Date.now() })).result);
    }
    expect(outcomes).toEqual(['kept', 'skipped', 'kept', 'kept']);
    expect(sink.entries).toHaveLength(3);
  });
});

describe('face masking on the face-api sample photos', () => {
  const detector = new RecordingDetector(new FaceEngineDetector());
  beforeAll(async () => {
    expect(samples).toHaveLength(6);
  });

  it('blurs every detected face region in the spooled frame and leaves the rest alone', async () => {
    const sink = new MemorySink();
    const p = new FramePipeline(camera(), { thing: THING, sink, detector });
    let totalFaces = 0;
    for (const [i, path] of samples.entries()) {
      const bytes = readFileSync(path);
      const outcome = await p.process({
        camera: 'cam-1',
        bytes,
        capturedAt: Date.UTC(2026, 10, 23, 9, 30) + i,
      });
      if (outcome.result !== 'kept') throw new Error(`sample ${i + 1}: ${JSON.stringify(outcome)}`);
      const meta = outcome.metadata;
      const found = detector.answers[detector.answers.length - 1]!;
      expect(meta.faces).toBe(found.length);
      expect(meta.boxes).toHaveLength(found.length);
      expect(meta).toMatchObject({
        thing: THING,
        camera: 'cam-1',
        masking: 'blur',
        format: 'jpeg',
        zones: 0,
      });
      expect(meta.width).toBeLessThanOrEqual(1920);
      expect(meta.height).toBeLessThanOrEqual(1080);
      expect(meta.faces).toBeGreaterThanOrEqual(2);
      totalFaces += meta.faces;

      const original = await pixels(bytes);
      const spooled = sink.entries[sink.entries.length - 1]!;
      const out = await pixels(spooled.bytes);
      expect([out.width, out.height]).toEqual([original.width, original.height]);
      for (const box of meta.boxes) {
        const diff = meanDiff(original, out, box);
        const hfBefore = hfEnergy(original, box);
        const hfAfter = hfEnergy(out, box);
        // Strongly changed, and smooth: the detail of the face is gone.
        expect(diff).toBeGreaterThan(8);
        expect(hfAfter).toBeLessThan(hfBefore * 0.45);
        expect(hfAfter).toBeLessThan(2.5);
      }
      // A region far from every face (padded boxes) is nearly unchanged.
      const far = farRegion(meta.boxes, out.width, out.height, 64);
      expect(far).toBeDefined();
      expect(meanDiff(original, out, far!)).toBeLessThan(3);
    }
    expect(totalFaces).toBeGreaterThanOrEqual(15);
  });

  it('pixelates with style pixelate', async () => {
    const sink = new MemorySink();
    const p = new FramePipeline(camera({ masking: { style: 'pixelate' } }), { thing: THING, sink, detector });
    const bytes = readFileSync(samples[0]!);
    const outcome = await p.process({ camera: 'cam-1', bytes, capturedAt: Date.now() });
    if (outcome.result !== 'kept') throw new Error(JSON.stringify(outcome));
    expect(outcome.metadata.masking).toBe('pixelate');
    const original = await pixels(bytes);
    const out = await pixels(sink.entries[0]!.bytes);
    for (const box of outcome.metadata.boxes) {
      expect(meanDiff(original, out, box)).toBeGreaterThan(8);
      expect(hfEnergy(out, box)).toBeLessThan(hfEnergy(original, box));
    }
  });

  it('uploads nothing when detection fails (fail closed)', async () => {
    const sink = new MemorySink();
    const p = new FramePipeline(camera(), { thing: THING, sink, detector: failingDetector });
    for (const path of samples.slice(0, 2)) {
      const outcome = await p.process({ camera: 'cam-1', bytes: readFileSync(path), capturedAt: Date.now() });
      expect(outcome).toMatchObject({ result: 'rejected', reason: 'detection' });
      if (outcome.result === 'rejected') expect(outcome.error.message).toContain('tfjs backend lost');
    }
    expect(sink.entries).toHaveLength(0);
    // Without any detector, a camera that masks faces spools nothing either.
    const none = new FramePipeline(camera(), { thing: THING, sink });
    expect(
      await none.process({ camera: 'cam-1', bytes: readFileSync(samples[0]!), capturedAt: 1 }),
    ).toMatchObject({
      result: 'rejected',
      reason: 'detection',
    });
    // A detector answering garbage counts as a failure too.
    const garbage = new FramePipeline(camera(), {
      thing: THING,
      sink,
      detector: { detect: async () => [{ left: Number.NaN, top: 0, width: 1, height: 1, confidence: 1 }] },
    });
    expect(
      await garbage.process({ camera: 'cam-1', bytes: readFileSync(samples[0]!), capturedAt: 1 }),
    ).toMatchObject({
      result: 'rejected',
      reason: 'detection',
    });
    expect(sink.entries).toHaveLength(0);
  });

  it('sends the unmasked frame, with the face boxes, only in identification mode', async () => {
    const sink = new MemorySink();
    const p = new FramePipeline(camera({ identification: true }), { thing: THING, sink, detector });
    const bytes = readFileSync(samples[2]!);
    const outcome = await p.process({ camera: 'cam-1', bytes, capturedAt: Date.UTC(2026, 0, 2, 3, 4, 5) });
    if (outcome.result !== 'kept') throw new Error(JSON.stringify(outcome));
    expect(outcome.metadata.masking).toBe('identification');
    expect(outcome.metadata.faces).toBeGreaterThan(0);
    const original = await pixels(bytes);
    const out = await pixels(sink.entries[0]!.bytes);
    for (const box of outcome.metadata.boxes) expect(meanDiff(original, out, box)).toBeLessThan(3);
    expect(frameObjectKeys(outcome.metadata, 7).key).toBe(
      `frames-identify/${THING}/cam-1/dt=2026-01-02/hour=03/${Date.UTC(2026, 0, 2, 3, 4, 5)}-7.jpg`,
    );
  });
});

describe('privacy zones and decoding', () => {
  it('masks rectangles and polygons (inside only) even without faces', async () => {
    const sink = new MemorySink();
    const p = new FramePipeline(
      camera({
        masking: {
          zones: [
            { rect: { left: 0, top: 0, width: 0.25, height: 0.5 } },
            {
              polygon: [
                { x: 0.5, y: 0.5 },
                { x: 1, y: 0.5 },
                { x: 1, y: 1 },
              ],
            },
          ],
        },
      }),
      { thing: THING, sink, detector: noFaces },
    );
    const bytes = await sharp(readFileSync(samples[3]!))
      .resize(800, 600, { fit: 'fill' })
      .jpeg({ quality: 95 })
      .toBuffer();
    const outcome = await p.process({ camera: 'cam-1', bytes, capturedAt: 5 });
    if (outcome.result !== 'kept') throw new Error(JSON.stringify(outcome));
    expect(outcome.metadata).toMatchObject({ faces: 0, zones: 2, width: 800, height: 600 });
    const original = await pixels(bytes);
    const out = await pixels(sink.entries[0]!.bytes);
    const rect = { left: 0, top: 0, width: 200, height: 300 };
    expect(hfEnergy(out, rect)).toBeLessThan(hfEnergy(original, rect) * 0.5);
    // The triangle (400,300) (800,300) (800,600) lies above the diagonal from (400,300) to (800,600).
    const inside = { left: 700, top: 320, width: 60, height: 60 };
    expect(hfEnergy(out, inside)).toBeLessThan(hfEnergy(original, inside) * 0.5);
    // Below the diagonal: outside the polygon, untouched.
    const outside = { left: 450, top: 500, width: 40, height: 60 };
    expect(meanDiff(original, out, outside)).toBeLessThan(3);
    // Far from both zones.
    expect(meanDiff(original, out, { left: 300, top: 20, width: 150, height: 150 })).toBeLessThan(3);
  });

  it('rejects a corrupt or truncated JPEG as a decode failure', async () => {
    const sink = new MemorySink();
    const p = new FramePipeline(camera({ masking: { faces: false } }), { thing: THING, sink });
    const good = await patternFrame(320, 240, 1);
    const truncated = good.subarray(0, Math.floor(good.length / 2));
    const garbage = Buffer.concat([good.subarray(0, 200), Buffer.alloc(2000, 0x55)]);
    for (const bytes of [truncated, garbage, Buffer.from('not an image')]) {
      expect(await p.process({ camera: 'cam-1', bytes, capturedAt: 1 })).toMatchObject({
        result: 'rejected',
        reason: 'decode',
      });
    }
    expect(sink.entries).toHaveLength(0);
    expect((await p.process({ camera: 'cam-1', bytes: good, capturedAt: 1 })).result).toBe('kept');
  });

  it('auto-orients, resizes to the maximum and encodes WebP', async () => {
    const sink = new MemorySink();
    const p = new FramePipeline(
      camera({ masking: { faces: false }, maxWidth: 400, maxHeight: 400, format: 'webp' }),
      {
        thing: THING,
        sink,
      },
    );
    // 600x300 stored, EXIF orientation 6 (rotate 90° clockwise to display): shown as 300x600.
    const bytes = await sharp(await patternFrame(600, 300, 3))
      .withMetadata({ orientation: 6 })
      .jpeg()
      .toBuffer();
    const outcome = await p.process({ camera: 'cam-1', bytes, capturedAt: 1 });
    if (outcome.result !== 'kept') throw new Error(JSON.stringify(outcome));
    expect(outcome.metadata).toMatchObject({ width: 200, height: 400, format: 'webp' });
    const meta = await sharp(sink.entries[0]!.bytes).metadata();
    expect(meta).toMatchObject({ format: 'webp', width: 200, height: 400 });
  });
});

describe('MJPEG stream splitter', () => {
  it('splits concatenated JPEGs however the bytes are chunked, skipping garbage', async () => {
    const a = await patternFrame(64, 48, 1);
    // An APP1 segment holding an embedded JPEG (like an EXIF thumbnail) must not end the image early.
    const thumb = await patternFrame(16, 16, 2);
    const app1 = Buffer.alloc(4 + thumb.length);
    app1[0] = 0xff;
    app1[1] = 0xe1;
    app1.writeUInt16BE(2 + thumb.length, 2);
    thumb.copy(app1, 4);
    const b = Buffer.concat([a.subarray(0, 2), app1, a.subarray(2)]);
    const stream = Buffer.concat([Buffer.from('junk'), a, b, Buffer.from([0x00, 0xff]), a]);
    for (const chunkSize of [1, 7, 100, stream.length]) {
      const s = new JpegStreamSplitter();
      const out: Buffer[] = [];
      for (let i = 0; i < stream.length; i += chunkSize)
        out.push(...s.push(stream.subarray(i, i + chunkSize)));
      expect(out.map((x) => x.length)).toEqual([a.length, b.length, a.length]);
      expect(out[0]!.equals(a)).toBe(true);
      expect(out[1]!.equals(b)).toBe(true);
    }
    expect((await sharp(b).metadata()).width).toBe(64);
  });
});

/** A `size` x `size` square at least a face's padded box away from every box, if any. */
function farRegion(boxes: Box[], width: number, height: number, size: number): Box | undefined {
  const margin = (b: Box) => Math.max(b.width, b.height) * 0.5 + 16;
  for (let top = 0; top + size <= height; top += 16) {
    for (let left = 0; left + size <= width; left += 16) {
      const ok = boxes.every(
        (b) =>
          left + size < b.left - margin(b) ||
          left > b.left + b.width + margin(b) ||
          top + size < b.top - margin(b) ||
          top > b.top + b.height + margin(b),
      );
      if (ok) return { left, top, width: size, height: size };
    }
  }
  return undefined;
}
