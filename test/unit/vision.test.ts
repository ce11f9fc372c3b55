import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as TfApi from '@tensorflow/tfjs';
import sharp from 'sharp';
import {
  type DetectedFace,
  descriptorDistance,
  FaceEngine,
  similarityFromDistance,
} from '../../analytics/vision/faces.js';
import { decodeImage, InvalidImageError, type RgbImage } from '../../analytics/vision/image.js';

const require = createRequire(import.meta.url);
const DEMO = join(dirname(require.resolve('@vladmandic/face-api/package.json')), 'demo');
const sample = (n: number): Promise<Buffer> => readFile(join(DEMO, `sample${n}.jpg`));

const center = (f: DetectedFace) => ({ x: f.box.left + f.box.width / 2, y: f.box.top + f.box.height / 2 });
const area = (f: DetectedFace) => f.box.width * f.box.height;
/** The face whose box centre is nearest to (x, y). */
function faceAt(faces: DetectedFace[], x: number, y: number): DetectedFace {
  const dist = (f: DetectedFace) => Math.hypot(center(f).x - x, center(f).y - y);
  const best = [...faces].sort((a, b) => dist(a) - dist(b))[0];
  if (!best) throw new Error('no face');
  return best;
}

describe('decodeImage', () => {
  it('decodes a JPEG to packed RGB', async () => {
    const img = await decodeImage(await sample(1));
    expect(img).toMatchObject({ width: 1920, height: 1280, channels: 3 });
    expect(img.data.length).toBe(1920 * 1280 * 3);
  });

  it('downsizes so that the longer side is at most maxSide, keeping the aspect ratio', async () => {
    const img = await decodeImage(await sample(1), { maxSide: 960 });
    expect(img).toMatchObject({ width: 960, height: 640 });
    const small = await decodeImage(await sample(1), { maxSide: 4000 });
    expect(small.width).toBe(1920); // never enlarged
  });

  it('decodes PNG and WebP, drops alpha, and applies the EXIF orientation', async () => {
    const rgba = {
      width: 4,
      height: 2,
      channels: 4 as const,
      background: { r: 255, g: 0, b: 0, alpha: 0.5 },
    };
    const png = await sharp({ create: rgba }).png().toBuffer();
    expect(await decodeImage(png)).toMatchObject({ width: 4, height: 2, channels: 3 });
    const webp = await sharp({ create: rgba }).webp().toBuffer();
    expect(await decodeImage(webp)).toMatchObject({ width: 4, height: 2 });
    // Orientation 6: the stored 4x2 pixels are shown rotated by 90°, i.e. 2x4.
    const rotated = await sharp({ create: rgba }).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    expect(await decodeImage(rotated)).toMatchObject({ width: 2, height: 4 });
  });

  it('rejects corrupt, truncated, empty and unsupported bytes with InvalidImageError', async () => {
    const jpeg = await sample(2);
    await expect(decodeImage(new TextEncoder().encode('not an image at all'))).rejects.toBeInstanceOf(
      InvalidImageError,
    );
    await expect(decodeImage(jpeg.subarray(0, 2000))).rejects.toBeInstanceOf(InvalidImageError);
    await expect(decodeImage(new Uint8Array())).rejects.toBeInstanceOf(InvalidImageError);
    const gif = await sharp({ create: { width: 2, height: 2, channels: 3, background: '#fff' } })
      .gif()
      .toBuffer();
    await expect(decodeImage(gif)).rejects.toThrow(/unsupported image format: gif/);
  });
});

describe('similarityFromDistance', () => {
  it('maps face-api distance 0.6 to 80 and decreases strictly', () => {
    expect(similarityFromDistance(0.6)).toBeCloseTo(80, 6);
    expect(similarityFromDistance(0)).toBeGreaterThan(99.9);
    expect(similarityFromDistance(0.4)).toBeGreaterThan(95);
    expect(similarityFromDistance(1)).toBeLessThan(5);
    for (let d = 0; d < 2; d += 0.05) {
      expect(similarityFromDistance(d + 0.05)).toBeLessThan(similarityFromDistance(d));
    }
    expect(() => similarityFromDistance(-1)).toThrow(RangeError);
  });

  it('descriptorDistance is euclidean', () => {
    expect(descriptorDistance(new Float32Array([0, 0]), new Float32Array([3, 4]))).toBeCloseTo(5);
    expect(() => descriptorDistance(new Float32Array(2), new Float32Array(3))).toThrow(RangeError);
  });
});

describe('FaceEngine', () => {
  let engine: FaceEngine;
  const images = new Map<number, RgbImage>();

  beforeAll(async () => {
    // Concurrent loads share one model load.
    const [a, b] = await Promise.all([FaceEngine.load(), FaceEngine.load({ detector: 'tiny' })]);
    engine = a;
    expect(b).toBeInstanceOf(FaceEngine);
    for (const n of [1, 2, 5]) images.set(n, await decodeImage(await sample(n)));
  }, 60_000);

  it('finds the faces of the sample photos, with boxes inside the image', async () => {
    const img = images.get(1)!;
    const faces = await engine.detect(img);
    expect(faces).toHaveLength(3);
    for (const f of faces) {
      expect(f.confidence).toBeGreaterThanOrEqual(0.5);
      expect(f.confidence).toBeLessThanOrEqual(1);
      expect(f.box.left).toBeGreaterThanOrEqual(0);
      expect(f.box.top).toBeGreaterThanOrEqual(0);
      expect(f.box.left + f.box.width).toBeLessThanOrEqual(img.width);
      expect(f.box.top + f.box.height).toBeLessThanOrEqual(img.height);
      expect(f.box.width).toBeGreaterThan(100); // faces are ~180-200 px wide in sample1
      expect(f.descriptor).toBeUndefined();
    }
    expect((await engine.detect(images.get(5)!)).length).toBe(5);
  });

  it('the tiny detector finds the same faces', async () => {
    const tiny = await FaceEngine.load({ detector: 'tiny', tinyInputSize: 608 });
    const faces = await tiny.detect(images.get(1)!);
    expect(faces.length).toBeGreaterThanOrEqual(2);
  });

  it('describe adds 68 landmarks inside the box and a 128-d descriptor', async () => {
    const faces = await engine.describe(images.get(1)!);
    expect(faces).toHaveLength(3);
    for (const f of faces) {
      expect(f.descriptor).toBeInstanceOf(Float32Array);
      expect(f.descriptor).toHaveLength(128);
      expect(f.landmarks).toHaveLength(68);
      const nose = f.landmarks![30]!;
      expect(nose.x).toBeGreaterThan(f.box.left);
      expect(nose.x).toBeLessThan(f.box.left + f.box.width);
    }
  });

  it('the same person across two photos is closer than different people', async () => {
    // Picked by inspection: the dark-haired woman in the middle of sample1 (face centre ≈ 930,535) is the
    // woman on the right of sample2 (its largest face); nobody in sample5 is her.
    const one = await engine.describe(images.get(1)!);
    const two = await engine.describe(images.get(2)!);
    const five = await engine.describe(images.get(5)!);
    const her = faceAt(one, 930, 535).descriptor!;
    const again = [...two].sort((a, b) => area(b) - area(a))[0]!;
    expect(center(again).x).toBeGreaterThan(1400);
    const same = descriptorDistance(her, again.descriptor!);
    expect(same).toBeLessThan(0.6);
    expect(similarityFromDistance(same)).toBeGreaterThan(80);
    expect(five).toHaveLength(5);
    for (const other of five) {
      const d = descriptorDistance(her, other.descriptor!);
      expect(d).toBeGreaterThan(same);
      expect(d).toBeGreaterThan(0.6);
    }
  });

  it('does not leak tensors over repeated calls', async () => {
    const tf = require('@tensorflow/tfjs') as typeof TfApi;
    const small = await decodeImage(await sample(2), { maxSide: 640 });
    await engine.describe(small); // warm-up: lazily created tensors are allocated once
    await engine.detect(small);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      await engine.detect(small);
      await engine.describe(small);
    }
    expect(tf.getBackend()).toBe('wasm');
    expect(tf.memory().numTensors).toBe(before);
  });

  it('concurrent calls are answered correctly', async () => {
    const img = images.get(1)!;
    const results = await Promise.all([engine.detect(img), engine.describe(img), engine.detect(img)]);
    expect(results.map((r) => r.length)).toEqual([3, 3, 3]);
  });

  it('validates its options', async () => {
    await expect(FaceEngine.load({ minConfidence: 2 })).rejects.toThrow(RangeError);
    await expect(FaceEngine.load({ tinyInputSize: 100 })).rejects.toThrow(/multiple of 32/);
    expect(() => engine.detect({ data: new Uint8Array(5), width: 2, height: 2, channels: 3 })).toThrow();
  });
});
