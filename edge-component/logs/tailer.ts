/**
 * Follows one log file by name, like `tail -F`, one `poll()` at a time (the shipper polls every
 * `logs.pollIntervalMs`).
 *
 * - Position: the file's identity (device and inode) and the byte offset of the first line not yet
 *   stored. The offset always sits at the start of a line: a last line without its newline is left in
 *   the file until the newline comes. Lines are handed to `emit()` a chunk at a time, and the new
 *   position is handed to `save()` only after `emit()` resolved (the lines are durable): a restart resumes
 *   there, so nothing is lost, and at worst a chunk is read twice (at least once).
 * - Rotation (the name now leads to another inode, or to nothing): the old file, still open, is read to
 *   its end (its last line even without a newline), then the new file is read from 0. A rotation while
 *   the gateway was stopped: the old file is looked for by its inode in the same directory (logrotate's
 *   rename) and finished from the saved offset, then the new one is read from 0.
 * - Truncation (the file is now shorter than the offset, as `copytruncate` leaves it): reading restarts
 *   at 0. Lines written after a truncation but before the next poll that reach beyond the old offset
 *   cannot be told from appended ones (as with `tail -F`).
 * - A missing file is waited for (each poll looks again); it is read from 0 when it appears.
 * - A line whose JSON string would exceed `maxLineJsonBytes` is cut into pieces that fit, at UTF-8
 *   character boundaries; every piece but the last is marked `cut` (it goes on in the next one). A long
 *   line still being written is cut as soon as a full piece is there.
 * - `startAt: 'end'`: a file found at the first poll with no saved position is followed from its end
 *   (what it held before is not shipped); otherwise every file is read from its start.
 */
import type { BigIntStats } from 'node:fs';
import { type FileHandle, open, readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import pino, { type Logger } from 'pino';
import { LogFileError } from './errors.js';
import { fitsJson, fittingPrefix, MAX_LINE_JSON_BYTES } from './records.js';

/** Where reading resumes: the file's identity and the offset of its first line not yet stored. */
export interface TailPosition {
  dev: string;
  ino: string;
  offset: number;
}

/** One line (or a piece of a long one, `cut: true`, continued by the next). */
export interface TailLine {
  text: string;
  cut: boolean;
}

export interface FileTailerOptions {
  path: string;
  /** The saved position, if any. */
  position?: TailPosition | undefined;
  /** Stores lines durably; resolves once they are. */
  emit(lines: TailLine[]): Promise<void>;
  /** Stores the position durably (called only after the lines before it were emitted). */
  save(position: TailPosition): Promise<void>;
  startAt?: 'beginning' | 'end';
  /** Default MAX_LINE_JSON_BYTES (a Kinesis record's worth). */
  maxLineJsonBytes?: number;
  /** Bytes read at a time; default 1 MiB (at least maxLineJsonBytes + 1). */
  readChunkBytes?: number;
  logger?: Logger;
}

const NL = 0x0a;

function isEnoent(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

function identity(st: BigIntStats): { dev: string; ino: string } {
  return { dev: String(st.dev), ino: String(st.ino) };
}

export class FileTailer {
  readonly path: string;
  private fd: FileHandle | undefined;
  private dev = '';
  private ino = '';
  private offset = 0;
  private saved: TailPosition | undefined;
  private firstPoll = true;
  private waitingLogged = false;
  private readonly maxJson: number;
  private readonly chunkBytes: number;
  private readonly log: Logger;
  /** Lines emitted so far (for tests and health). */
  emittedLines = 0;

  constructor(private readonly opts: FileTailerOptions) {
    this.path = opts.path;
    this.saved = opts.position;
    this.maxJson = opts.maxLineJsonBytes ?? MAX_LINE_JSON_BYTES;
    this.chunkBytes = Math.max(opts.readChunkBytes ?? 1024 * 1024, this.maxJson + 1);
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ file: opts.path });
  }

  /** The position reading would resume at now (undefined before the file was first opened). */
  get position(): TailPosition | undefined {
    return this.fd ? { dev: this.dev, ino: this.ino, offset: this.offset } : this.saved;
  }

  /**
   * Reads what the file holds now: new lines, rotation, truncation. Resolves once every complete line
   * found is emitted and the position saved. Rejects (LogFileError) if the file cannot be read; the
   * next poll tries again from the last saved position.
   */
  async poll(): Promise<void> {
    const first = this.firstPoll;
    this.firstPoll = false;
    try {
      if (!this.fd && !(await this.openCurrent(first))) return;
      let now: BigIntStats | undefined;
      try {
        now = await stat(this.path, { bigint: true });
      } catch (err) {
        if (!isEnoent(err)) throw err;
      }
      if (!now || String(now.ino) !== this.ino || String(now.dev) !== this.dev) {
        // Rotated (or removed): finish the old file, then start on the new one, if there is one.
        await this.drain(true);
        this.log.info({ offset: this.offset }, now ? 'log file rotated' : 'log file removed');
        await this.closeFd();
        // The old file is done: the next one is new, read from 0.
        this.saved = undefined;
        if (now && (await this.openCurrent(false))) await this.drain(false);
        return;
      }
      await this.drain(false);
    } catch (err) {
      // Reading resumes from the last saved position.
      await this.closeFd();
      if (err instanceof LogFileError) throw err;
      throw new LogFileError(`cannot read ${this.path}: ${(err as Error).message}`, this.path, {
        cause: err,
      });
    }
  }

  /** Closes the file. */
  async close(): Promise<void> {
    await this.closeFd();
  }

  private async closeFd(): Promise<void> {
    const fd = this.fd;
    this.fd = undefined;
    await fd?.close().catch(() => {});
  }

  /** Opens the file the path names now; false if there is none. */
  private async openCurrent(first: boolean): Promise<boolean> {
    let fd: FileHandle;
    try {
      fd = await open(this.path, 'r');
    } catch (err) {
      if (!isEnoent(err)) throw err;
      if (!this.waitingLogged) this.log.info('log file missing; waiting for it');
      this.waitingLogged = true;
      return false;
    }
    this.waitingLogged = false;
    try {
      const st = await fd.stat({ bigint: true });
      const id = identity(st);
      const saved = this.saved;
      let offset = 0;
      if (saved && saved.dev === id.dev && saved.ino === id.ino) {
        offset = saved.offset;
        if (st.size < BigInt(offset)) {
          this.log.info({ offset, size: Number(st.size) }, 'log file truncated; reading it from the start');
          offset = 0;
        }
      } else {
        if (saved) await this.finishRotatedAway(saved);
        else if (first && this.opts.startAt === 'end') offset = Number(st.size);
        await this.savePosition({ ...id, offset });
      }
      this.fd = fd;
      this.dev = id.dev;
      this.ino = id.ino;
      this.offset = offset;
      return true;
    } catch (err) {
      await fd.close().catch(() => {});
      throw err;
    }
  }

  /** After a restart: the file of the saved position, renamed in the same directory, read to its end. */
  private async finishRotatedAway(saved: TailPosition): Promise<void> {
    const dir = dirname(this.path);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      names = [];
    }
    for (const name of names) {
      const p = join(dir, name);
      let st: BigIntStats;
      try {
        st = await stat(p, { bigint: true });
      } catch {
        continue;
      }
      if (!st.isFile() || String(st.dev) !== saved.dev || String(st.ino) !== saved.ino) continue;
      const fd = await open(p, 'r');
      this.fd = fd;
      this.dev = saved.dev;
      this.ino = saved.ino;
      this.offset = Math.min(saved.offset, Number(st.size));
      try {
        await this.drain(true);
      } finally {
        this.fd = undefined;
        await fd.close().catch(() => {});
      }
      this.log.info({ renamedTo: p }, 'finished the log file rotated while the gateway was stopped');
      return;
    }
    this.log.warn(
      { offset: saved.offset },
      'log file replaced while the gateway was stopped and the old one is gone; its unread lines are not shipped',
    );
  }

  private async savePosition(position: TailPosition): Promise<void> {
    await this.opts.save(position);
    this.saved = position;
  }

  /**
   * Reads from the offset to the end of the open file, a chunk at a time; each chunk's lines are emitted
   * and the position saved before the next chunk is read. `final`: the file gets no more lines (it was
   * rotated away), so a last line without a newline is emitted too.
   */
  private async drain(final: boolean): Promise<void> {
    const fd = this.fd;
    if (!fd) return;
    for (;;) {
      const size = Number((await fd.stat({ bigint: true })).size);
      if (size < this.offset) {
        this.log.info({ offset: this.offset, size }, 'log file truncated; reading it from the start');
        this.offset = 0;
        await this.savePosition({ dev: this.dev, ino: this.ino, offset: 0 });
      }
      const length = Math.min(size - this.offset, this.chunkBytes);
      if (length <= 0) return;
      const buf = Buffer.allocUnsafe(length);
      const { bytesRead } = await fd.read(buf, 0, length, this.offset);
      if (bytesRead === 0) return;
      const atEnd = this.offset + bytesRead >= size;
      const { lines, consumed } = this.split(buf.subarray(0, bytesRead), final && atEnd);
      if (consumed === 0) return;
      if (lines.length > 0) {
        await this.opts.emit(lines);
        this.emittedLines += lines.length;
      }
      this.offset += consumed;
      await this.savePosition({ dev: this.dev, ino: this.ino, offset: this.offset });
    }
  }

  /**
   * The lines (and pieces of long lines) in `buf`, and how many bytes they took. A last line without a
   * newline is taken only if `takeRest`, or in full pieces if it is already too long for one record.
   */
  private split(buf: Buffer, takeRest: boolean): { lines: TailLine[]; consumed: number } {
    const lines: TailLine[] = [];
    const max = this.maxJson;
    let pos = 0;
    while (pos < buf.length) {
      const nl = buf.indexOf(NL, pos);
      const end = nl === -1 ? buf.length : nl;
      // Full pieces of a line too long for one record.
      while (!fitsJson(buf, pos, end, max)) {
        const n = fittingPrefix(buf, pos, end, max);
        lines.push({ text: buf.toString('utf8', pos, pos + n), cut: true });
        pos += n;
      }
      if (nl === -1) {
        if (takeRest && pos < buf.length) {
          lines.push({ text: buf.toString('utf8', pos), cut: false });
          pos = buf.length;
        }
        break;
      }
      lines.push({ text: buf.toString('utf8', pos, nl), cut: false });
      pos = nl + 1;
    }
    return { lines, consumed: pos };
  }
}
