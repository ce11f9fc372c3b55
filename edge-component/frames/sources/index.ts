/** Builds the frame source a camera's configuration asks for. */
import type { CameraConfig } from '../../config.js';
import type { FrameSource } from '../ports.js';
import type { SourceDeps } from './base.js';
import { DirectoryFrameSource } from './directory.js';
import { FfmpegFrameSource } from './ffmpeg.js';
import { HttpSnapshotFrameSource } from './http-snapshot.js';
import { SyntheticFrameSource } from './synthetic.js';

export { BaseFrameSource, type SourceDeps, type SourceOptions } from './base.js';
export { DirectoryFrameSource } from './directory.js';
export { FfmpegFrameSource, ffmpegArgs } from './ffmpeg.js';
export { HttpSnapshotFrameSource } from './http-snapshot.js';
export { faceSamplePaths, patternFrame, SyntheticFrameSource } from './synthetic.js';

export function createFrameSource(camera: CameraConfig, deps: SourceDeps = {}): FrameSource {
  const opts = { camera: camera.id, fps: camera.fps, backoff: camera.restartBackoff };
  const src = camera.source;
  switch (src.type) {
    case 'ffmpeg':
      return new FfmpegFrameSource(opts, src, deps);
    case 'http-snapshot':
      return new HttpSnapshotFrameSource(opts, src, deps);
    case 'directory':
      return new DirectoryFrameSource(opts, src, deps);
    case 'synthetic':
      return new SyntheticFrameSource(opts, src, deps);
  }
}
