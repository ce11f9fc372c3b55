/**
 * A pino destination that writes every line to the real output (stdout, the nucleus's log file) and also
 * hands it to a sink: the log shipper attaches there to ship the component's own lines. Entry points
 * create the root logger on it (`pino(options, new LogTee(process.stdout))`), so every line of the
 * component (gateway, spool, credentials, channel, uploader) passes through it.
 *
 * - Lines written while no sink is attached (before the gateway starts, between the runtimes of a
 *   reconfiguration) are kept, at most BUFFER_LINES / BUFFER_BYTES (the oldest go first), and handed to
 *   the next sink when it attaches; `idle()` drops them and keeps nothing until a sink attaches (the
 *   gateway runs without shipping its lines).
 * - The sink is called synchronously within the log call. A line that the sink's own work logs while it
 *   runs is written out but not handed to the sink again (no re-entry).
 * - The sink must not throw; if it does, the line is still written, and the error is swallowed.
 */
import type { DestinationStream } from 'pino';

export const BUFFER_LINES = 1000;
export const BUFFER_BYTES = 1024 * 1024;

/** Where the log shipper takes the component's lines from. */
export interface LogTap {
  /** Hands every line from now on (and the buffered ones, first) to `sink`; returns the detach function. */
  attach(sink: (line: string) => void): () => void;
  /** No sink will come for now: buffered lines are dropped and no more are kept until attach(). */
  idle(): void;
}

type Output = Pick<NodeJS.WritableStream, 'write'> & { flush?: (cb?: (err?: Error) => void) => void };

export class LogTee implements DestinationStream, LogTap {
  private sink: ((line: string) => void) | undefined;
  private buffer: string[] = [];
  private bufferedBytes = 0;
  private buffering = true;
  private inSink = false;

  constructor(private readonly out: Output) {}

  write(line: string): void {
    this.out.write(line);
    if (this.inSink) return;
    const sink = this.sink;
    if (sink) {
      this.inSink = true;
      try {
        sink(line);
      } catch {
        // The line is written; shipping it is best effort.
      } finally {
        this.inSink = false;
      }
      return;
    }
    if (!this.buffering) return;
    this.buffer.push(line);
    this.bufferedBytes += line.length;
    while (this.buffer.length > BUFFER_LINES || this.bufferedBytes > BUFFER_BYTES) {
      this.bufferedBytes -= this.buffer.shift()?.length ?? 0;
    }
  }

  /** pino's logger.flush() ends up here. */
  flush(cb?: (err?: Error) => void): void {
    if (this.out.flush) this.out.flush(cb);
    else cb?.();
  }

  attach(sink: (line: string) => void): () => void {
    const pending = this.buffer;
    this.buffer = [];
    this.bufferedBytes = 0;
    this.buffering = true;
    this.sink = sink;
    this.inSink = true;
    try {
      for (const line of pending) sink(line);
    } catch {
      // as in write()
    } finally {
      this.inSink = false;
    }
    return () => {
      if (this.sink === sink) this.sink = undefined;
    };
  }

  idle(): void {
    this.buffer = [];
    this.bufferedBytes = 0;
    this.buffering = false;
  }
}
