/**
 * A clock that only moves when told to: `advance()` fires the sleeps that fall due, in time order.
 * `whenSleeping()` resolves once someone sleeps, so tests wait on that event instead of on time.
 */
import type { Clock } from '../ports.js';

interface Sleeper {
  at: number;
  seq: number;
  resolve: () => void;
}

export class ManualClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly sleepers: Sleeper[] = [];
  private readonly watchers: { count: number; resolve: () => void }[] = [];

  constructor(start = Date.UTC(2025, 0, 1)) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  /** Sleeps not yet due (and not aborted). */
  get pendingSleeps(): number {
    return this.sleepers.length;
  }

  /** Durations of the pending sleeps, from now, soonest first. */
  pendingDelays(): number[] {
    return this.sleepers.map((s) => s.at - this.t).sort((a, b) => a - b);
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const sleeper: Sleeper = {
        at: this.t + Math.max(0, ms),
        seq: this.seq++,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        const i = this.sleepers.indexOf(sleeper);
        if (i >= 0) this.sleepers.splice(i, 1);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.sleepers.push(sleeper);
      this.sleepers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      this.notifyWatchers();
    });
  }

  /** Moves time forward by `ms`, waking every sleeper that falls due. */
  advance(ms: number): void {
    this.set(this.t + ms);
  }

  /** Sets the time (never backwards), waking every sleeper that falls due. */
  set(t: number): void {
    const target = Math.max(this.t, t);
    for (;;) {
      const next = this.sleepers[0];
      if (!next || next.at > target) break;
      this.sleepers.shift();
      this.t = Math.max(this.t, next.at);
      next.resolve();
    }
    this.t = target;
  }

  /** Resolves when at least `count` sleeps are pending. */
  whenSleeping(count = 1): Promise<void> {
    if (this.sleepers.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.watchers.push({ count, resolve }));
  }

  private notifyWatchers(): void {
    for (const w of [...this.watchers]) {
      if (this.sleepers.length >= w.count) {
        this.watchers.splice(this.watchers.indexOf(w), 1);
        w.resolve();
      }
    }
  }
}
