/**
 * Camera frame pipeline throughput, one camera, one frame at a time, on 1920x1080 JPEGs made in the
 * same run from face-api's sample photos (resized/cropped to 1920x1080):
 * - baseline: bare sharp decode + JPEG encode of the same frames (quality 80);
 * - pipeline without detection: decode/auto-orient/resize → encode → an in-memory sink (capture →
 *   resize → encode; changeThreshold 0), and the same with the change detector on (a grayscale
 *   thumbnail per frame; every frame still differs enough to be kept);
 * - pipeline with detection: the same plus face detection (face-api tiny detector on tfjs wasm, on a
 *   640 px copy) and blurring of every face found.
 * Rounds alternate baseline and pipeline so that both see the same machine load. Peak RSS is this
 * process's VmHWM (run with BENCH_ONLY=frames to measure this benchmark alone).
 */
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { parseGatewayConfig } from '../edge-component/config.js';
import { FaceEngineDetector } from '../edge-component/frames/face-engine.js';
import { FramePipeline, type FrameSink } from '../edge-component/frames/pipeline.js';
import { faceSamplePaths } from '../edge-component/frames/sources/index.js';
import { median } from './stats.js';

export interface FramesBenchResult {
  frames: number;
  rounds: number;
  width: number;
  height: number;
  bareFps: number;
  pipelineFps: number;
  /** pipeline without detection / bare sharp. */
  ratio: number;
  /** The same with the change detector on (its grayscale thumbnail per frame). */
  changeDetectorFps: number;
  changeDetectorRatio: number;
  detectionFps: number;
  /** Faces found per frame with detection (mean). */
  facesPerFrame: number;
  peakRssMB: number;
  /** VmHWM before the face models were loaded (bench process, frames and sharp only). */
  rssBeforeModelsMB: number;
  targets: {
    ratio: number;
    detectionFps: number;
    rssMB: number;
    ratioMet: boolean;
    detectionMet: boolean;
    rssMet: boolean;
  };
}

function vmHwmMB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : process.memoryUsage().rss / 1024 / 1024;
}

const sink: FrameSink = {
  async appendFile() {
    return { seq: 1, dropped: [] };
  },
};

function camera(faces: boolean, changeThreshold = 0) {
  return parseGatewayConfig({
    thingName: 'bench',
    aws: { region: 'eu-central-1' },
    storage: { bucket: 'bench-bucket' },
    credentials: { source: 'tes' },
    cameras: [
      { id: 'bench', source: { type: 'synthetic' }, changeThreshold, quality: 80, masking: { faces } },
    ],
  }).cameras[0]!;
}

export async function benchFrames(
  opts: { frames: number; rounds: number },
  log: (s: string) => void,
): Promise<FramesBenchResult> {
  const width = 1920;
  const height = 1080;
  const samples = faceSamplePaths().map((p) => readFileSync(p));
  if (samples.length === 0) throw new Error('face-api sample photos not found');
  const frames: Buffer[] = [];
  // sharp's operation cache off, as in the gateway (frames never repeat).
  sharp.cache(false);
  for (let i = 0; i < opts.frames; i++) {
    const src = samples[i % samples.length]!;
    const position = (['centre', 'north', 'south'] as const)[Math.floor(i / samples.length) % 3];
    frames.push(
      await sharp(src)
        .rotate()
        .resize(width, height, { fit: 'cover', position })
        .jpeg({ quality: 90 })
        .toBuffer(),
    );
  }
  log(`frames benchmark: ${frames.length} JPEGs of ${width}x${height}, ${opts.rounds} rounds`);

  const bareOne = (f: Buffer) => sharp(f).jpeg({ quality: 80 }).toBuffer();
  const bare = async () => {
    const t = performance.now();
    for (const f of frames) await bareOne(f);
    return frames.length / ((performance.now() - t) / 1000);
  };
  const plain = new FramePipeline(camera(false), { thing: 'bench', sink });
  // With the change detector on (every frame differs from the last, so every frame is still kept).
  const withChange = new FramePipeline(camera(false, 0.0001), { thing: 'bench', sink });
  const detector = new FaceEngineDetector();
  const masked = new FramePipeline(camera(true), { thing: 'bench', sink, detector });
  let faces = 0;
  const run = async (p: FramePipeline, count = false) => {
    const t = performance.now();
    for (const [i, f] of frames.entries()) {
      const o = await p.process({ camera: 'bench', bytes: f, capturedAt: i });
      if (o.result !== 'kept') throw new Error(`frame ${i} not kept: ${JSON.stringify(o)}`);
      if (count) faces += o.metadata.faces;
    }
    return frames.length / ((performance.now() - t) / 1000);
  };

  // Warm-up (JIT, then the face models).
  await bare();
  await run(plain);
  const rssBeforeModelsMB = vmHwmMB();
  await detector.warmUp('tiny');
  await run(masked);

  const bareFps: number[] = [];
  const pipelineFps: number[] = [];
  const changeFps: number[] = [];
  const ratios: number[] = [];
  for (let r = 0; r < opts.rounds; r++) {
    // Frame by frame, alternating, so that both see the same load of the machine.
    let bareMs = 0;
    let pipelineMs = 0;
    let changeMs = 0;
    for (const [i, f] of frames.entries()) {
      let t = performance.now();
      await bareOne(f);
      bareMs += performance.now() - t;
      t = performance.now();
      const o = await plain.process({ camera: 'bench', bytes: f, capturedAt: i });
      pipelineMs += performance.now() - t;
      if (o.result !== 'kept') throw new Error(`frame ${i} not kept: ${JSON.stringify(o)}`);
      t = performance.now();
      const c = await withChange.process({ camera: 'bench', bytes: f, capturedAt: i });
      changeMs += performance.now() - t;
      if (c.result !== 'kept') throw new Error(`frame ${i} not kept with the change detector`);
    }
    const b = frames.length / (bareMs / 1000);
    const p = frames.length / (pipelineMs / 1000);
    bareFps.push(b);
    changeFps.push(frames.length / (changeMs / 1000));
    pipelineFps.push(p);
    ratios.push(p / b);
    log(
      `  round ${r + 1}: bare sharp ${b.toFixed(1)} fps, pipeline ${p.toFixed(1)} fps (${((p / b) * 100).toFixed(1)}%)`,
    );
  }
  const detectionFps: number[] = [];
  for (let r = 0; r < opts.rounds; r++) {
    faces = 0;
    const d = await run(masked, true);
    detectionFps.push(d);
    log(`  round ${r + 1}: pipeline with face masking ${d.toFixed(2)} fps, ${faces} faces`);
  }
  const result = {
    frames: frames.length,
    rounds: opts.rounds,
    width,
    height,
    bareFps: median(bareFps),
    pipelineFps: median(pipelineFps),
    ratio: median(ratios),
    changeDetectorFps: median(changeFps),
    changeDetectorRatio: median(changeFps) / median(bareFps),
    detectionFps: median(detectionFps),
    facesPerFrame: faces / frames.length,
    peakRssMB: vmHwmMB(),
    rssBeforeModelsMB,
  };
  return {
    ...result,
    targets: {
      ratio: 0.8,
      detectionFps: 3,
      rssMB: 400,
      ratioMet: result.ratio >= 0.8,
      detectionMet: result.detectionFps >= 3,
      rssMet: result.peakRssMB < 400,
    },
  };
}
