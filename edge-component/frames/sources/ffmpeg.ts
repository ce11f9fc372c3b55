/**
 * Frames from ffmpeg: a V4L2 device, an RTSP/HTTP stream or a lavfi test graph, decoded by an ffmpeg
 * child process and re-encoded as MJPEG on its stdout
 * (`ffmpeg -hide_banner -loglevel error <input> -vf fps=N -f image2pipe -vcodec mjpeg -`), split into
 * images on the JPEG markers. A child that exits (or cannot be started) is reported and started again
 * with jittered exponential backoff; a missing ffmpeg says which package to install.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { FrameSourceConfig } from '../../config.js';
import { FrameSourceError } from '../errors.js';
import { JpegStreamSplitter } from '../jpeg-splitter.js';
import { BaseFrameSource, type SourceDeps, type SourceOptions } from './base.js';

export type FfmpegSourceConfig = Extract<FrameSourceConfig, { type: 'ffmpeg' }>;

/** ffmpeg's input arguments for a source. */
export function ffmpegInputArgs(src: FfmpegSourceConfig): string[] {
  const extra = src.inputArgs ?? [];
  if (src.device !== undefined) return ['-f', 'v4l2', ...extra, '-i', src.device];
  if (src.lavfi !== undefined) return ['-re', '-f', 'lavfi', ...extra, '-i', src.lavfi];
  const url = src.url ?? '';
  const rtsp = /^rtsps?:/i.test(url) ? ['-rtsp_transport', 'tcp'] : [];
  return [...rtsp, ...extra, '-i', url];
}

/** The whole ffmpeg command line (without the executable). */
export function ffmpegArgs(src: FfmpegSourceConfig, fps: number): string[] {
  return [
    '-hide_banner',
    '-loglevel',
    'error',
    '-nostdin',
    ...ffmpegInputArgs(src),
    '-an',
    '-vf',
    `fps=${fps}`,
    '-f',
    'image2pipe',
    '-vcodec',
    'mjpeg',
    '-q:v',
    '3',
    '-',
  ];
}

export class FfmpegFrameSource extends BaseFrameSource {
  private child: ChildProcess | undefined;

  constructor(
    opts: SourceOptions,
    private readonly src: FfmpegSourceConfig,
    deps: SourceDeps = {},
  ) {
    super(opts, deps, 'ffmpeg');
  }

  /** The running child's pid (tests). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  protected run(signal: AbortSignal): Promise<void> {
    const args = ffmpegArgs(this.src, 1000 / this.intervalMs);
    const exe = this.src.ffmpegPath;
    return new Promise<void>((resolve, reject) => {
      let child: ChildProcess;
      try {
        child = spawn(exe, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      } catch (err) {
        reject(this.spawnError(exe, err));
        return;
      }
      this.child = child;
      const splitter = new JpegStreamSplitter();
      let stderr = '';
      let frames = 0;
      child.stdout!.on('data', (chunk: Buffer) => {
        for (const img of splitter.push(chunk)) {
          frames++;
          this.emit(img);
        }
      });
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr = (stderr + chunk.toString('utf8')).slice(-2000);
      });
      const onAbort = () => {
        child.kill('SIGKILL');
      };
      signal.addEventListener('abort', onAbort, { once: true });
      let settled = false;
      const done = () => {
        if (settled) return false;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        if (this.child === child) this.child = undefined;
        return true;
      };
      child.once('error', (err) => {
        // Only a failed spawn has no pid; other errors (kill failed) end in 'close' anyway.
        if (child.pid !== undefined || !done()) return;
        if (signal.aborted) resolve();
        else reject(this.spawnError(exe, err));
      });
      child.once('close', (code, sig) => {
        if (!done()) return;
        if (signal.aborted) {
          resolve();
          return;
        }
        const last = stderr.trim().split('\n').slice(-3).join(' | ');
        reject(
          new FrameSourceError(
            `ffmpeg for camera ${this.camera} exited (${sig ?? `code ${code}`}) after ${frames} frames${last ? `: ${last}` : ''}`,
            this.camera,
          ),
        );
      });
    });
  }

  private spawnError(exe: string, err: unknown): FrameSourceError {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'ENOENT') {
      return new FrameSourceError(
        `ffmpeg not found (${exe}): camera ${this.camera} needs ffmpeg; install it with \`apt-get install ffmpeg\` (Debian package ffmpeg) or set source.ffmpegPath`,
        this.camera,
        { cause: err },
      );
    }
    return new FrameSourceError(
      `cannot start ffmpeg (${exe}) for camera ${this.camera}: ${err instanceof Error ? err.message : String(err)}`,
      this.camera,
      { cause: err },
    );
  }
}
