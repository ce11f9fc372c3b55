/**
 * The real FaceDetector: face-api (`@vladmandic/face-api`) on the tfjs wasm backend through
 * analytics/vision's FaceEngine. The models ship in the npm package; nothing is downloaded. They load
 * on first use (about a second); a load failure rejects detections, so frames are dropped, never sent
 * unmasked.
 */
import { FaceEngine } from '../../analytics/vision/faces.js';
import type { RgbImage } from '../../analytics/vision/image.js';
import { FaceDetectionError } from './errors.js';
import type { DetectOptions, FaceDetector, FaceRegion } from './ports.js';

export class FaceEngineDetector implements FaceDetector {
  private readonly engines = new Map<DetectOptions['detector'], Promise<FaceEngine>>();

  private engine(detector: DetectOptions['detector']): Promise<FaceEngine> {
    let e = this.engines.get(detector);
    if (!e) {
      e = FaceEngine.load({ detector, tinyInputSize: 512 });
      // A failed load is tried again on the next frame.
      e.catch(() => this.engines.delete(detector));
      this.engines.set(detector, e);
    }
    return e;
  }

  /** Loads the models now (instead of on the first frame). */
  async warmUp(detector: DetectOptions['detector']): Promise<void> {
    await this.engine(detector);
  }

  async detect(image: RgbImage, opts: DetectOptions): Promise<FaceRegion[]> {
    try {
      const engine = await this.engine(opts.detector);
      const faces = await engine.detect(image, { minConfidence: opts.minConfidence });
      return faces.map((f) => ({ ...f.box, confidence: f.confidence }));
    } catch (err) {
      throw new FaceDetectionError(
        `face detection failed: ${err instanceof Error ? err.message : String(err)}`,
        {
          cause: err,
        },
      );
    }
  }
}
