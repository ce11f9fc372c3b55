/**
 * The re-identification map (pseudonym -> real value). It never leaves the gateway.
 *
 * {@link FileReidentificationStore} keeps it in a local append-only file of JSON lines
 * (`{"t":"k1.…","k":"string","v":"4711"}`), mode 0600, loaded at start. Each put() appends the new
 * entries of a batch and fsyncs once before returning, so a pseudonym that has been handed out is
 * durable. A torn last line (a crash in the middle of an append) is ignored on load, reported through
 * the logger and `loadReport`, and cut off so that later appends start on a clean line; any other bad
 * line is an error naming its line number. The same pseudonym is stored once.
 */
import { closeSync, fstatSync, fsyncSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import pino, { type Logger } from 'pino';
import { z } from 'zod';
import { ReidentificationStoreError } from './errors.js';
import { type PseudonymizableValue, TOKEN_PATTERN, type ValueType } from './token.js';

export interface ReidentificationEntry {
  token: string;
  value: PseudonymizableValue;
}

/** Where pseudonyms are mapped back to the values they replace. Synchronous: put() is durable on return. */
export interface ReidentificationStore {
  /** The original value (with its type) of `token`, or undefined. */
  get(token: string): PseudonymizableValue | undefined;
  has(token: string): boolean;
  /** Stores the entries whose token is not known yet, durably, as one batch. */
  put(entries: readonly ReidentificationEntry[]): void;
  readonly size: number;
  close(): void;
}

/** An in-memory store (tests; gateways that must not keep the map). */
export class MemoryReidentificationStore implements ReidentificationStore {
  readonly #map = new Map<string, PseudonymizableValue>();
  get(token: string) {
    return this.#map.get(token);
  }
  has(token: string) {
    return this.#map.has(token);
  }
  put(entries: readonly ReidentificationEntry[]) {
    for (const e of entries) if (!this.#map.has(e.token)) this.#map.set(e.token, e.value);
  }
  get size() {
    return this.#map.size;
  }
  close() {}
}

const LineSchema = z.strictObject({
  t: z.string().regex(TOKEN_PATTERN),
  k: z.enum(['string', 'number'] satisfies ValueType[]),
  v: z.union([z.string(), z.number()]),
});

export interface StoreLoadReport {
  /** Entries loaded. */
  entries: number;
  /** Bytes of a torn last line that were ignored and cut off (0 if none). */
  tornBytes: number;
}

export class FileReidentificationStore implements ReidentificationStore {
  readonly #map = new Map<string, PseudonymizableValue>();
  readonly #file: string;
  readonly #log: Logger;
  #fd: number | undefined;
  #size: number;
  /** What open() found. */
  readonly loadReport: StoreLoadReport;

  private constructor(file: string, fd: number, size: number, log: Logger, report: StoreLoadReport) {
    this.#file = file;
    this.#fd = fd;
    this.#size = size;
    this.#log = log;
    this.loadReport = report;
  }

  /**
   * Opens (creating with mode 0600) and loads the store. Refuses a file that group or others may access.
   */
  static open(file: string, opts: { logger?: Logger } = {}): FileReidentificationStore {
    const log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'reidentification-store' });
    let fd: number;
    try {
      fd = openSync(file, 'a+', 0o600);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new ReidentificationStoreError(
        `cannot open re-identification map ${file}${code ? ` (${code})` : ''}`,
        file,
        {
          cause: err,
        },
      );
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile())
        throw new ReidentificationStoreError(`re-identification map ${file} is not a regular file`, file);
      if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
        throw new ReidentificationStoreError(
          `re-identification map ${file} is accessible by group or others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); refusing to use it: run chmod 600 ${file}`,
          file,
        );
      }
      const data = readFileSync(fd);
      const map = new Map<string, PseudonymizableValue>();
      const lastNewline = data.lastIndexOf(0x0a);
      const complete = lastNewline + 1;
      let tornBytes = data.length - complete;
      const lines = data.subarray(0, complete).toString('utf8').split('\n');
      lines.pop(); // after the last '\n'
      // A last line that ends in '\n' but does not parse is also torn (a crash between write and fsync
      // can leave garbage); any earlier bad line means the file is damaged.
      for (let n = 0; n < lines.length; n++) {
        const line = lines[n] as string;
        const entry = parseLine(line);
        if (entry === undefined) {
          if (n === lines.length - 1 && tornBytes === 0) {
            tornBytes = Buffer.byteLength(line, 'utf8') + 1;
            break;
          }
          throw new ReidentificationStoreError(
            `re-identification map ${file} is damaged: line ${n + 1} is not a valid entry`,
            file,
          );
        }
        const known = map.get(entry.token);
        if (known !== undefined && known !== entry.value) {
          throw new ReidentificationStoreError(
            `re-identification map ${file} is damaged: line ${n + 1} maps ${entry.token} to a different value than an earlier line`,
            file,
          );
        }
        map.set(entry.token, entry.value);
      }
      const size = data.length - tornBytes;
      if (tornBytes > 0) {
        log.warn(
          { file, tornBytes, line: lines.length },
          'ignored a torn last line of the re-identification map',
        );
        ftruncateSync(fd, size);
        fsyncSync(fd);
      }
      const store = new FileReidentificationStore(file, fd, size, log, { entries: map.size, tornBytes });
      for (const [t, v] of map) store.#map.set(t, v);
      log.debug({ file, entries: map.size }, 'loaded the re-identification map');
      return store;
    } catch (err) {
      closeSync(fd);
      if (err instanceof ReidentificationStoreError) throw err;
      throw new ReidentificationStoreError(`cannot load re-identification map ${file}`, file, { cause: err });
    }
  }

  get(token: string): PseudonymizableValue | undefined {
    return this.#map.get(token);
  }

  has(token: string): boolean {
    return this.#map.has(token);
  }

  get size(): number {
    return this.#map.size;
  }

  put(entries: readonly ReidentificationEntry[]): void {
    const fd = this.#fd;
    if (fd === undefined)
      throw new ReidentificationStoreError('the re-identification map is closed', this.#file);
    const fresh = new Map<string, PseudonymizableValue>();
    for (const e of entries) {
      if (!this.#map.has(e.token) && !fresh.has(e.token)) fresh.set(e.token, e.value);
    }
    if (fresh.size === 0) return;
    let text = '';
    for (const [t, v] of fresh) text += `${JSON.stringify({ t, k: typeof v, v })}\n`;
    const buf = Buffer.from(text, 'utf8');
    try {
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } catch (err) {
      // Cut off whatever part of the batch got written, so the next append starts on a clean line.
      try {
        ftruncateSync(fd, this.#size);
      } catch {
        // open() cuts off a torn line next time
      }
      this.#log.error(
        { file: this.#file, entries: fresh.size, err },
        'cannot append to the re-identification map',
      );
      throw new ReidentificationStoreError(
        `cannot append to re-identification map ${this.#file}`,
        this.#file,
        {
          cause: err,
        },
      );
    }
    this.#size += buf.length;
    for (const [t, v] of fresh) this.#map.set(t, v);
  }

  close(): void {
    if (this.#fd === undefined) return;
    const fd = this.#fd;
    this.#fd = undefined;
    closeSync(fd);
  }
}

function parseLine(line: string): ReidentificationEntry | undefined {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return undefined;
  }
  const r = LineSchema.safeParse(json);
  if (!r.success || typeof r.data.v !== r.data.k) return undefined;
  return { token: r.data.t, value: r.data.v };
}
