/**
 * Face detection and face descriptors with face-api (`@vladmandic/face-api`) on the tfjs wasm backend.
 * The models and the wasm binaries ship in node_modules: nothing is downloaded at run time.
 *
 * The tfjs runtime and the models are process-wide singletons (tfjs keeps one global engine): the first
 * `FaceEngine.load` loads them, concurrent and later calls share that load. Inference calls are
 * serialized, so concurrent requests do not interleave their intermediate tensors.
 */

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as TfApi from '@tensorflow/tfjs';
import type * as TfWasmApi from '@tensorflow/tfjs-backend-wasm';
import type * as FaceApi from '@vladmandic/face-api';
import { ModelLoadError, VisionError } from './errors.js';
import type { RgbImage } from './image.js';

/** A face's bounding box in pixels of the image it was detected in (clipped to the image). */
export interface FaceBox {
  left: number;
  top: number;
  width: number;
  height: number;
}

export interface DetectedFace {
  box: FaceBox;
  /** Detector score, 0..1. */
  confidence: number;
  /** The 68 face-api landmarks (iBUG 300-W order), pixels of the image; set by `describe`. */
  landmarks?: { x: number; y: number }[];
  /** 128-d face descriptor; set by `describe`. */
  descriptor?: Float32Array;
}

export interface FaceEngineOptions {
  /** Detector of `detect`: `ssd` (SSD MobileNet v1, accurate, default) or `tiny` (Tiny Face Detector, fast). */
  detector?: 'ssd' | 'tiny';
  /** Default minimum detector score, 0..1 (default 0.5). */
  minConfidence?: number;
  /** Input size of the tiny detector, a multiple of 32 (default 416). */
  tinyInputSize?: number;
}

interface Runtime {
  faceapi: typeof FaceApi;
  tf: typeof TfApi;
  modelDir: string;
}

type NetName = 'ssd' | 'tiny' | 'landmarks' | 'recognition';
/** Each model is loaded once, when first needed: a gateway that only detects never loads the others. */
const nets = new Map<NetName, Promise<void>>();

function ensureNets(rt: Runtime, names: readonly NetName[]): Promise<unknown> {
  return Promise.all(
    names.map((name) => {
      let p = nets.get(name);
      if (!p) {
        const n = rt.faceapi.nets;
        const net =
          name === 'ssd'
            ? n.ssdMobilenetv1
            : name === 'tiny'
              ? n.tinyFaceDetector
              : name === 'landmarks'
                ? n.faceLandmark68Net
                : n.faceRecognitionNet;
        p = net.loadFromDisk(rt.modelDir).catch((err: unknown) => {
          nets.delete(name); // a later call may retry
          throw new ModelLoadError(
            `cannot load the face model ${name}: ${err instanceof Error ? err.message : err}`,
            {
              cause: err,
            },
          );
        });
        nets.set(name, p);
      }
      return p;
    }),
  );
}

const require = createRequire(import.meta.url);
let runtime: Promise<Runtime> | undefined;

function loadRuntime(): Promise<Runtime> {
  runtime ??= (async () => {
    try {
      const tf = require('@tensorflow/tfjs') as typeof TfApi;
      const wasm = require('@tensorflow/tfjs-backend-wasm') as typeof TfWasmApi;
      // The wasm binaries sit next to the backend's entry file (its dist/ directory).
      wasm.setWasmPaths(`${dirname(require.resolve('@tensorflow/tfjs-backend-wasm'))}/`);
      const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js') as typeof FaceApi;
      if (!(await tf.setBackend('wasm'))) throw new ModelLoadError('tfjs wasm backend did not initialize');
      await tf.ready();
      const modelDir = join(dirname(require.resolve('@vladmandic/face-api/package.json')), 'model');
      return { faceapi, tf, modelDir };
    } catch (err) {
      runtime = undefined; // a later call may retry
      if (err instanceof VisionError) throw err;
      throw new ModelLoadError(`cannot load the face models: ${err instanceof Error ? err.message : err}`, {
        cause: err,
      });
    }
  })();
  return runtime;
}

/** Serializes inference on the one tfjs engine. */
let queue: Promise<unknown> = Promise.resolve();
function serialized<T>(fn: () => Promise<T>): Promise<T> {
  const run = queue.then(fn, fn);
  queue = run.catch(() => undefined);
  return run;
}

function checkConfidence(value: number, field: string): number {
  if (!Number.isFinite(value) || value < 0 || value > 1) {
    throw new RangeError(`${field} must be within 0..1, got ${value}`);
  }
  return value;
}

function clipBox(b: { x: number; y: number; width: number; height: number }, image: RgbImage): FaceBox {
  const left = Math.max(0, Math.min(image.width, b.x));
  const top = Math.max(0, Math.min(image.height, b.y));
  const right = Math.max(left, Math.min(image.width, b.x + b.width));
  const bottom = Math.max(top, Math.min(image.height, b.y + b.height));
  return { left, top, width: right - left, height: bottom - top };
}

function checkImage(image: RgbImage): void {
  if (image.channels !== 3 || image.data.length !== image.width * image.height * 3) {
    throw new VisionError(`image data does not match ${image.width}x${image.height}x3`);
  }
}

export class FaceEngine {
  readonly #rt: Runtime;
  readonly #detector: 'ssd' | 'tiny';
  readonly #minConfidence: number;
  readonly #tinyInputSize: number;

  private constructor(rt: Runtime, opts: FaceEngineOptions) {
    this.#rt = rt;
    this.#detector = opts.detector ?? 'ssd';
    this.#minConfidence = checkConfidence(opts.minConfidence ?? 0.5, 'minConfidence');
    this.#tinyInputSize = opts.tinyInputSize ?? 416;
    if (
      !Number.isInteger(this.#tinyInputSize) ||
      this.#tinyInputSize <= 0 ||
      this.#tinyInputSize % 32 !== 0
    ) {
      throw new RangeError(`tinyInputSize must be a positive multiple of 32, got ${opts.tinyInputSize}`);
    }
  }

  /** Loads tfjs (wasm backend, from node_modules) and the face-api models once per process (concurrent calls share one load). */
  static async load(opts: FaceEngineOptions = {}): Promise<FaceEngine> {
    const engine = new FaceEngine(await loadRuntime(), opts);
    await ensureNets(engine.#rt, [engine.#detector]);
    return engine;
  }

  /** Face boxes and scores only (fast), with the configured detector. */
  detect(image: RgbImage, opts: { minConfidence?: number } = {}): Promise<DetectedFace[]> {
    checkImage(image);
    const minConfidence = checkConfidence(opts.minConfidence ?? this.#minConfidence, 'minConfidence');
    const { faceapi } = this.#rt;
    const options =
      this.#detector === 'tiny'
        ? new faceapi.TinyFaceDetectorOptions({
            inputSize: this.#tinyInputSize,
            scoreThreshold: minConfidence,
          })
        : new faceapi.SsdMobilenetv1Options({ minConfidence });
    return this.#withTensor(image, async (input) => {
      const detections = await faceapi.detectAllFaces(input, options);
      return detections.map((d) => ({ box: clipBox(d.box, image), confidence: d.score }));
    });
  }

  /** Boxes, 68 landmarks and 128-d descriptors (SSD detector, whatever `detector` says). */
  async describe(image: RgbImage, opts: { minConfidence?: number } = {}): Promise<DetectedFace[]> {
    checkImage(image);
    const minConfidence = checkConfidence(opts.minConfidence ?? this.#minConfidence, 'minConfidence');
    const { faceapi } = this.#rt;
    await ensureNets(this.#rt, ['ssd', 'landmarks', 'recognition']);
    return this.#withTensor(image, async (input) => {
      const results = await faceapi
        .detectAllFaces(input, new faceapi.SsdMobilenetv1Options({ minConfidence }))
        .withFaceLandmarks()
        .withFaceDescriptors();
      return results.map((r) => ({
        box: clipBox(r.detection.box, image),
        confidence: r.detection.score,
        landmarks: r.landmarks.positions.map((p) => ({ x: p.x, y: p.y })),
        descriptor: r.descriptor,
      }));
    });
  }

  #withTensor<T>(image: RgbImage, fn: (input: FaceApi.tf.Tensor3D) => Promise<T>): Promise<T> {
    const { tf } = this.#rt;
    return serialized(async () => {
      const input = tf.tensor3d(image.data, [image.height, image.width, 3], 'int32');
      try {
        return await fn(input as unknown as FaceApi.tf.Tensor3D);
      } finally {
        input.dispose();
      }
    });
  }
}

/** Euclidean distance of two descriptors (face-api's metric). */
export function descriptorDistance(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new RangeError(`descriptor lengths differ: ${a.length} vs ${b.length}`);
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    sum += d * d;
  }
  return Math.sqrt(sum);
}

/** Steepness and midpoint of the logistic in `similarityFromDistance`. */
const SIMILARITY_SLOPE = 12;
const SIMILARITY_MIDPOINT = 0.6 + Math.log(4) / SIMILARITY_SLOPE; // ≈ 0.7155

/**
 * Rekognition-style similarity 0..100 from a face-api euclidean distance.
 *
 * Mapping: a logistic `100 / (1 + exp(12 * (d - 0.7155)))`, chosen so that face-api's usual same-person
 * threshold, distance 0.6, lands exactly on Rekognition's default FaceMatchThreshold of 80. Smaller
 * distances climb fast towards 100 (0.4 → ~97.8, 0.3 → ~99.3, 0 → ~99.98) and larger ones fall fast
 * towards 0 (0.8 → ~26.6, 1.0 → ~3.2), like Rekognition's scores for clear matches and non-matches.
 * Strictly decreasing in d, so thresholds on similarity are thresholds on distance.
 */
export function similarityFromDistance(d: number): number {
  if (Number.isNaN(d) || d < 0) throw new RangeError(`distance must be >= 0, got ${d}`);
  return 100 / (1 + Math.exp(SIMILARITY_SLOPE * (d - SIMILARITY_MIDPOINT)));
}
