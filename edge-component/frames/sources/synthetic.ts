/**
 * Generated frames for demos and tests, `fps` times a second: `pattern` is a moving box on a gradient
 * (every frame differs); `faces` cycles through the sample photos with faces that
 * `@vladmandic/face-api` ships in its npm package (demo/sample1.jpg .. sample6.jpg), cropped to the
 * configured size.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import type { FrameSourceConfig } from '../../config.js';
import { FrameSourceError } from '../errors.js';
import { BaseFrameSource, type SourceDeps, type SourceOptions } from './base.js';

export type SyntheticSourceConfig = Extract<FrameSourceConfig, { type: 'synthetic' }>;

/** Paths of face-api's sample photos (sample1.jpg .. sample6.jpg) in node_modules. */
export function faceSamplePaths(): string[] {
  const require = createRequire(import.meta.url);
  const dir = join(dirname(require.resolve('@vladmandic/face-api/package.json')), 'demo');
  return [1, 2, 3, 4, 5, 6].map((i) => join(dir, `sample${i}.jpg`)).filter((p) => existsSync(p));
}

/** A JPEG of the moving test pattern, frame `n`. */
export async function patternFrame(width: number, height: number, n: number): Promise<Buffer> {
  const data = Buffer.alloc(width * height * 3);
  const box = Math.max(4, Math.round(Math.min(width, height) / 5));
  const bx = Math.round(((n * 7) % Math.max(1, width - box)) | 0);
  const by = Math.round(((n * 5) % Math.max(1, height - box)) | 0);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const inBox = x >= bx && x < bx + box && y >= by && y < by + box;
      data[i] = inBox ? 240 : (x * 255) / width;
      data[i + 1] = inBox ? 40 : (y * 255) / height;
      data[i + 2] = inBox ? 40 : (n * 3) & 0xff;
    }
  }
  return sharp(data, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 85 })
    .toBuffer();
}

export class SyntheticFrameSource extends BaseFrameSource {
  private n = 0;
  private samples: Buffer[] | undefined;

  constructor(
    opts: SourceOptions,
    private readonly src: SyntheticSourceConfig,
    deps: SourceDeps = {},
  ) {
    super(opts, deps, 'synthetic');
  }

  private async loadSamples(): Promise<Buffer[]> {
    if (this.samples) return this.samples;
    const paths = faceSamplePaths();
    if (paths.length === 0) {
      throw new FrameSourceError(
        'the face-api sample photos are missing from node_modules/@vladmandic/face-api/demo',
        this.camera,
      );
    }
    const { width, height } = this.src;
    this.samples = await Promise.all(
      paths.map(async (p) =>
        sharp(await readFile(p))
          .rotate()
          .resize(width, height, { fit: 'cover' })
          .jpeg({ quality: 90 })
          .toBuffer(),
      ),
    );
    return this.samples;
  }

  protected async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const started = this.clock.now();
      const n = this.n++;
      let frame: Buffer;
      if (this.src.pattern === 'faces') {
        const samples = await this.loadSamples();
        frame = samples[n % samples.length]!;
      } else {
        frame = await patternFrame(this.src.width, this.src.height, n);
      }
      if (signal.aborted) return;
      this.emit(frame, started);
      try {
        await this.clock.sleep(Math.max(0, started + this.intervalMs - this.clock.now()), signal);
      } catch {
        return;
      }
    }
  }
}
