/** A loop's sleep that another part of the component can cut short (new work, a reconnection). */
import type { Clock } from './ports.js';

/** Sleep that `kick()` ends early (a kick before the sleep ends the next sleep at once). */
export class Wakeup {
  private ctrl = new AbortController();
  constructor(
    private readonly clock: Clock,
    private readonly stop: AbortSignal,
  ) {}
  kick(): void {
    // abort() makes its default reason (a DOMException, with a stack) even when already aborted.
    if (!this.ctrl.signal.aborted) this.ctrl.abort();
  }
  /** Forgets a kick that has not ended a sleep yet. */
  clear(): void {
    if (this.ctrl.signal.aborted) this.ctrl = new AbortController();
  }
  async sleep(ms: number): Promise<void> {
    const ctrl = this.ctrl;
    if (!ctrl.signal.aborted && !this.stop.aborted) {
      try {
        await this.clock.sleep(Math.max(0, ms), AbortSignal.any([ctrl.signal, this.stop]));
      } catch {
        // woken up
      }
    }
    if (this.ctrl === ctrl && ctrl.signal.aborted) this.ctrl = new AbortController();
  }
}
