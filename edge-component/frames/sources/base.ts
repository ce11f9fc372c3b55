/**
 * What every frame source shares: a small queue that keeps only the newest frames (a slow pipeline
 * sees fresh frames, not a backlog), the async iteration, error listeners, and stop/restart plumbing.
 * Subclasses implement `run(signal)`: capture until the signal aborts, calling `emit()` per frame and
 * `report()` per problem; `restart()` aborts the current run's inner signal and the loop runs it again.
 */
import pino, { type Logger } from 'pino';
import { type Backoff, backoffDelay } from '../../backoff.js';
import { systemClock } from '../../clock.js';
import type { Clock } from '../../ports.js';
import { FrameSourceError } from '../errors.js';
import type { Frame, FrameSource } from '../ports.js';

export interface SourceDeps {
  logger?: Logger;
  clock?: Clock;
  /** Random numbers in [0, 1), for the backoff jitter. */
  random?: () => number;
}

export interface SourceOptions {
  camera: string;
  fps: number;
  /** Between restarts after a failure. */
  backoff: Backoff;
  /** Frames kept while the consumer is busy (older ones are dropped). */
  queueSize?: number;
}

export abstract class BaseFrameSource implements FrameSource {
  readonly camera: string;
  /** Frames dropped because the consumer was slower than the source. */
  droppedFrames = 0;
  protected readonly log: Logger;
  protected readonly clock: Clock;
  protected readonly random: () => number;
  protected readonly intervalMs: number;
  protected readonly backoff: Backoff;
  private readonly queueSize: number;
  private readonly queue: Frame[] = [];
  private waiter: (() => void) | undefined;
  private roomWaiter: (() => void) | undefined;
  private readonly listeners = new Set<(err: FrameSourceError) => void>();
  private readonly stopCtrl = new AbortController();
  private runCtrl: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private stopped = false;

  constructor(opts: SourceOptions, deps: SourceDeps, kind: string) {
    this.camera = opts.camera;
    this.intervalMs = 1000 / opts.fps;
    this.backoff = opts.backoff;
    this.queueSize = opts.queueSize ?? 2;
    this.clock = deps.clock ?? systemClock;
    this.random = deps.random ?? Math.random;
    this.log = (deps.logger ?? pino({ level: 'silent' })).child({
      component: 'frame-source',
      camera: opts.camera,
      kind,
    });
  }

  /**
   * Captures until `signal` aborts. Resolves normally or rejects when the capture ended (a process
   * exited, a connection closed): the base class reports a rejection and runs it again after a
   * jittered exponential backoff, which a frame resets.
   */
  protected abstract run(signal: AbortSignal): Promise<void>;

  private failures = 0;

  async start(): Promise<void> {
    if (this.loop || this.stopped) return;
    this.loop = this.runLoop();
  }

  private async runLoop(): Promise<void> {
    while (!this.stopCtrl.signal.aborted) {
      const ctrl = new AbortController();
      this.runCtrl = ctrl;
      const signal = AbortSignal.any([ctrl.signal, this.stopCtrl.signal]);
      let failed = false;
      try {
        await this.run(signal);
        if (!signal.aborted) failed = true; // ended by itself: a failure worth a backoff
      } catch (err) {
        if (!signal.aborted) {
          failed = true;
          this.report(err);
        }
      }
      if (this.stopCtrl.signal.aborted) break;
      if (failed || ctrl.signal.aborted) {
        this.failures++;
        const delay = backoffDelay(this.failures, this.backoff, this.random);
        this.log.debug({ delayMs: delay, failures: this.failures }, 'restarting the source');
        try {
          await this.clock.sleep(delay, this.stopCtrl.signal);
        } catch {
          break;
        }
      }
    }
  }

  restart(reason: string): void {
    this.log.warn({ reason }, 'restarting the source');
    this.runCtrl?.abort();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.stopCtrl.abort();
    await this.loop?.catch(() => {});
    this.wake();
  }

  onError(listener: (err: FrameSourceError) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Reports a problem to the listeners (and the log). */
  protected report(err: unknown): void {
    const e =
      err instanceof FrameSourceError
        ? err
        : new FrameSourceError(
            `camera ${this.camera}: ${err instanceof Error ? err.message : String(err)}`,
            this.camera,
            {
              cause: err,
            },
          );
    this.log.warn({ err: e.message }, 'frame source problem');
    for (const l of this.listeners) l(e);
  }

  /** Hands a frame to the consumer, dropping the oldest if the queue is full. */
  protected emit(bytes: Uint8Array, capturedAt = this.clock.now()): void {
    if (this.stopped) return;
    this.failures = 0;
    this.queue.push({ camera: this.camera, bytes, capturedAt });
    while (this.queue.length > this.queueSize) {
      this.queue.shift();
      this.droppedFrames++;
    }
    this.wake();
  }

  /** Waits until the queue has room (sources that must not drop frames, e.g. files); false if aborted. */
  protected async waitForRoom(signal: AbortSignal): Promise<boolean> {
    while (this.queue.length >= this.queueSize) {
      if (signal.aborted || this.stopped) return false;
      await new Promise<void>((resolve) => {
        const done = () => {
          signal.removeEventListener('abort', done);
          resolve();
        };
        this.roomWaiter = done;
        signal.addEventListener('abort', done, { once: true });
      });
    }
    return !signal.aborted && !this.stopped;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Frame> {
    for (;;) {
      const f = this.queue.shift();
      if (f) {
        const r = this.roomWaiter;
        this.roomWaiter = undefined;
        r?.();
        yield f;
        continue;
      }
      if (this.stopped) return;
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }
}
