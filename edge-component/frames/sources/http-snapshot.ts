/**
 * Frames from a camera's JPEG snapshot URL, polled `fps` times a second (each poll scheduled from the
 * start of the previous one; a slow camera is never asked twice at once). A failed poll (network
 * error, timeout, HTTP status other than 200, empty body) is reported; polling goes on after a jittered
 * exponential backoff, and at the normal rate again after the next good frame.
 */
import type { FrameSourceConfig } from '../../config.js';
import { FrameSourceError } from '../errors.js';
import { BaseFrameSource, type SourceDeps, type SourceOptions } from './base.js';

export type HttpSnapshotSourceConfig = Extract<FrameSourceConfig, { type: 'http-snapshot' }>;

/** Largest snapshot accepted. */
const MAX_SNAPSHOT_BYTES = 32 * 1024 * 1024;

export class HttpSnapshotFrameSource extends BaseFrameSource {
  private readonly headers: Record<string, string>;

  constructor(
    opts: SourceOptions,
    private readonly src: HttpSnapshotSourceConfig,
    deps: SourceDeps = {},
  ) {
    super(opts, deps, 'http-snapshot');
    this.headers = { accept: 'image/jpeg, image/*' };
    if (src.username !== undefined) {
      const token = Buffer.from(`${src.username}:${src.password ?? ''}`).toString('base64');
      this.headers.authorization = `Basic ${token}`;
    }
  }

  /** Polls until aborted; a failed poll ends the run (the base class backs off and runs it again). */
  protected async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const started = this.clock.now();
      const bytes = await this.poll(signal);
      if (signal.aborted) return;
      this.emit(bytes, started);
      const wait = started + this.intervalMs - this.clock.now();
      try {
        await this.clock.sleep(Math.max(0, wait), signal);
      } catch {
        return;
      }
    }
  }

  private async poll(signal: AbortSignal): Promise<Uint8Array> {
    const url = this.src.url;
    let res: Response;
    try {
      res = await fetch(url, {
        headers: this.headers,
        signal: AbortSignal.any([signal, AbortSignal.timeout(this.src.timeoutMs)]),
        redirect: 'follow',
      });
    } catch (err) {
      if (signal.aborted) return new Uint8Array(0);
      const timedOut = err instanceof Error && err.name === 'TimeoutError';
      throw new FrameSourceError(
        timedOut
          ? `snapshot of camera ${this.camera} timed out after ${this.src.timeoutMs} ms`
          : `snapshot of camera ${this.camera} failed: ${describeFetchError(err)}`,
        this.camera,
        { cause: err },
      );
    }
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => {});
      throw new FrameSourceError(
        `snapshot of camera ${this.camera} answered HTTP ${res.status}`,
        this.camera,
      );
    }
    const length = Number(res.headers.get('content-length') ?? '0');
    if (length > MAX_SNAPSHOT_BYTES) {
      await res.body?.cancel().catch(() => {});
      throw new FrameSourceError(
        `snapshot of camera ${this.camera} is too large (${length} bytes)`,
        this.camera,
      );
    }
    let body: ArrayBuffer;
    try {
      body = await res.arrayBuffer();
    } catch (err) {
      if (signal.aborted) return new Uint8Array(0);
      throw new FrameSourceError(
        `snapshot of camera ${this.camera} broke off: ${describeFetchError(err)}`,
        this.camera,
        {
          cause: err,
        },
      );
    }
    if (body.byteLength === 0)
      throw new FrameSourceError(`snapshot of camera ${this.camera} is empty`, this.camera);
    return new Uint8Array(body);
  }
}

function describeFetchError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause as NodeJS.ErrnoException | undefined;
  return cause?.code ? `${err.message} (${cause.code})` : err.message;
}
