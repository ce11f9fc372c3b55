/**
 * The re-identification map (pseudonym -> real value). It never leaves the gateway.
 *
 * {@link FileReidentificationStore} keeps it in a local append-only file of JSON lines
 * (`{"t":"k1.…","k":"string","v":"4711"}`), mode 0600, loaded at start. A pseudonym that has been
 * handed out is durable:
 *
 * - put() (synchronous) appends the new entries of a batch and fsyncs once before returning;
 * - putDurable() (asynchronous, for the ingest path) is a group commit: the entries of every call made
 *   while a write is in flight are appended together by the next write, with one fdatasync, on the
 *   thread pool; each call resolves once its entries are durable.
 *
 * Every append goes to an offset reserved in the same bookkeeping (`#tail`), so put() and putDurable()
 * never interleave bytes. A torn last line (a crash in the middle of an append) is ignored on load,
 * reported through the logger and `loadReport`, and cut off so that later appends start on a clean line;
 * a failed append is cut off at once. Any other bad line is an error naming its line number. The same
 * pseudonym is stored once (a put() racing a group write of the same entry may repeat its line, which
 * load accepts).
 */
import {
  closeSync,
  constants,
  fdatasync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readFileSync,
  write,
  writeSync,
} from 'node:fs';
import pino, { type Logger } from 'pino';
import { z } from 'zod';
import { ReidentificationStoreError } from './errors.js';
import { type PseudonymizableValue, TOKEN_PATTERN, type ValueType } from './token.js';

export interface ReidentificationEntry {
  token: string;
  value: PseudonymizableValue;
}

/** Where pseudonyms are mapped back to the values they replace. */
export interface ReidentificationStore {
  /** The original value (with its type) of `token`, or undefined. Sees durable entries only. */
  get(token: string): PseudonymizableValue | undefined;
  has(token: string): boolean;
  /** Stores the entries whose token is not known yet, durably, as one batch; durable on return. */
  put(entries: readonly ReidentificationEntry[]): void;
  /**
   * Stores the entries whose token is not known yet; resolves once every one of them is durable
   * (at once if all are known). Concurrent calls are written together. Rejects with
   * ReidentificationStoreError if the write fails or the store is closed.
   */
  putDurable(entries: readonly ReidentificationEntry[]): Promise<void>;
  readonly size: number;
  /** Closes the store; entries passed to putDurable() before are not lost. */
  close(): void;
  /** Waits for every pending putDurable() write, then closes. */
  closeAsync(): Promise<void>;
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
  putDurable(entries: readonly ReidentificationEntry[]): Promise<void> {
    this.put(entries);
    return Promise.resolve();
  }
  get size() {
    return this.#map.size;
  }
  close() {}
  closeAsync(): Promise<void> {
    return Promise.resolve();
  }
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

export interface FileStoreOptions {
  logger?: Logger;
  /**
   * Flushes the file after a group write of putDurable() (default: `fs.fdatasync` on the thread pool).
   * Tests inject one to count group commits or to make them fail.
   */
  fdatasync?: (fd: number) => Promise<void>;
}

/** Entries waiting for (or in) one group write, and the callers waiting for them. */
interface Group {
  readonly entries: Map<string, PseudonymizableValue>;
  readonly done: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

function newGroup(): Group {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const done = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  done.catch(() => {}); // the callers see the rejection; never an unhandled one
  return { entries: new Map(), done, resolve, reject };
}

/** The group being written: its bytes and where they go. */
interface InFlight {
  readonly group: Group;
  readonly start: number;
  readonly bytes: Buffer;
  /** A synchronous put() rewrote these bytes and fsynced: the group is durable whatever the write says. */
  covered: boolean;
}

/** JSON lines of the entries that are in neither `skip` nor `skip2`. */
function encode(
  entries: Iterable<[string, PseudonymizableValue]>,
  skip: Map<string, unknown>,
  skip2?: Map<string, unknown>,
): Buffer {
  let text = '';
  for (const [t, v] of entries) {
    if (!skip.has(t) && !skip2?.has(t)) text += `${JSON.stringify({ t, k: typeof v, v })}\n`;
  }
  return Buffer.from(text, 'utf8');
}

function defaultFdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

function writeAt(fd: number, buf: Buffer, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (off: number) => {
      write(fd, buf, off, buf.length - off, position + off, (err, n) => {
        if (err) reject(err);
        else if (off + n < buf.length) step(off + n);
        else resolve();
      });
    };
    step(0);
  });
}

function writeAtSync(fd: number, buf: Buffer, position: number): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off, position + off);
}

export class FileReidentificationStore implements ReidentificationStore {
  /** Durable entries only. */
  readonly #map = new Map<string, PseudonymizableValue>();
  readonly #file: string;
  readonly #log: Logger;
  readonly #fdatasync: (fd: number) => Promise<void>;
  #fd: number | undefined;
  /** End of the file as far as appends are concerned: the next append starts here. */
  #tail: number;
  /** Entries of putDurable() calls for the next group write. */
  #queued: Group | undefined;
  /** The group write on the thread pool, if any. */
  #inFlight: InFlight | undefined;
  /** A drain of the queue is scheduled or running. */
  #draining = false;
  /** close()/closeAsync() was called: no new writes; the fd closes once the drain is over. */
  #closing = false;
  readonly #closeWaiters: (() => void)[] = [];
  /** What open() found. */
  readonly loadReport: StoreLoadReport;

  private constructor(
    file: string,
    fd: number,
    size: number,
    log: Logger,
    report: StoreLoadReport,
    sync: (fd: number) => Promise<void>,
  ) {
    this.#file = file;
    this.#fd = fd;
    this.#tail = size;
    this.#log = log;
    this.loadReport = report;
    this.#fdatasync = sync;
  }

  /**
   * Opens (creating with mode 0600) and loads the store. Refuses a file that group or others may access.
   */
  static open(file: string, opts: FileStoreOptions = {}): FileReidentificationStore {
    const log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'reidentification-store' });
    let fd: number;
    try {
      // Not O_APPEND: every append is a positional write at an offset reserved in #tail.
      fd = openSync(file, constants.O_RDWR | constants.O_CREAT, 0o600);
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
      const store = new FileReidentificationStore(
        file,
        fd,
        size,
        log,
        { entries: map.size, tornBytes },
        opts.fdatasync ?? defaultFdatasync,
      );
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

  #closedError(): ReidentificationStoreError {
    return new ReidentificationStoreError('the re-identification map is closed', this.#file);
  }

  /** Synchronous: appends the new entries and fsyncs before returning (blocks the event loop). */
  put(entries: readonly ReidentificationEntry[]): void {
    if (this.#closing || this.#fd === undefined) throw this.#closedError();
    const fresh = new Map<string, PseudonymizableValue>();
    for (const e of entries) {
      if (!this.#map.has(e.token) && !fresh.has(e.token)) fresh.set(e.token, e.value);
    }
    if (fresh.size > 0) this.#appendSync(this.#fd, fresh);
  }

  /**
   * Appends `fresh` at the tail and fsyncs. If a group write is in flight, its bytes are written again
   * first (the same bytes at the same offsets, so the order against the thread pool does not matter):
   * the file never has a gap before our line, and our fsync makes that group durable too.
   */
  #appendSync(fd: number, fresh: Map<string, PseudonymizableValue>): void {
    const flight = this.#inFlight;
    const buf = encode(fresh, this.#map, flight?.covered === false ? flight.group.entries : undefined);
    if (buf.length === 0 && flight?.covered !== false) return;
    const start = this.#tail;
    this.#tail += buf.length;
    try {
      if (flight !== undefined && !flight.covered) writeAtSync(fd, flight.bytes, flight.start);
      writeAtSync(fd, buf, start);
      fsyncSync(fd);
    } catch (err) {
      // Cut off whatever part of the batch got written, so the next append starts on a clean line. The
      // group in flight (before `start`) is left to its own write.
      try {
        ftruncateSync(fd, start);
      } catch {
        // open() cuts off a torn line next time
      }
      this.#tail = start;
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
    if (flight !== undefined && !flight.covered) {
      flight.covered = true;
      for (const [t, v] of flight.group.entries) if (!this.#map.has(t)) this.#map.set(t, v);
    }
    for (const [t, v] of fresh) if (!this.#map.has(t)) this.#map.set(t, v);
  }

  putDurable(entries: readonly ReidentificationEntry[]): Promise<void> {
    if (this.#closing || this.#fd === undefined) return Promise.reject(this.#closedError());
    const flight = this.#inFlight;
    let waitFlight = false;
    let queued: Group | undefined;
    for (const e of entries) {
      if (this.#map.has(e.token)) continue;
      if (flight?.group.entries.has(e.token)) {
        waitFlight = true;
        continue;
      }
      if (this.#queued === undefined) this.#queued = newGroup();
      queued = this.#queued;
      if (!queued.entries.has(e.token)) queued.entries.set(e.token, e.value);
    }
    if (queued !== undefined && !this.#draining) {
      this.#draining = true;
      // A promise job rather than a timer: every call of this turn joins the group, and fake timers in
      // tests cannot hold it back.
      void Promise.resolve().then(() => this.#drain());
    }
    if (waitFlight && flight !== undefined) {
      return queued === undefined
        ? flight.group.done
        : Promise.all([flight.group.done, queued.done]).then(() => {});
    }
    return queued?.done ?? Promise.resolve();
  }

  /** Writes the queued groups one after the other until the queue is empty. */
  async #drain(): Promise<void> {
    try {
      for (;;) {
        const group = this.#queued;
        const fd = this.#fd;
        if (group === undefined || fd === undefined) break;
        this.#queued = undefined;
        const bytes = encode(group.entries, this.#map); // put() may have stored some meanwhile
        if (bytes.length === 0) {
          group.resolve();
          continue;
        }
        const flight: InFlight = { group, start: this.#tail, bytes, covered: false };
        this.#tail += bytes.length;
        this.#inFlight = flight;
        try {
          await writeAt(fd, bytes, flight.start);
          await this.#fdatasync(fd);
        } catch (err) {
          this.#inFlight = undefined;
          if (!flight.covered) {
            this.#failed(fd, flight, err);
            continue;
          }
          // put() wrote and fsynced the same bytes: they are durable.
          this.#log.warn({ file: this.#file, err }, 'a group write failed but put() had made it durable');
        }
        this.#inFlight = undefined;
        for (const [t, v] of group.entries) if (!this.#map.has(t)) this.#map.set(t, v);
        group.resolve();
      }
    } finally {
      this.#draining = false;
      if (this.#closing) this.#finishClose();
    }
  }

  /** A group write failed: cut it off (nothing was appended after it) and reject its callers. */
  #failed(fd: number, flight: InFlight, err: unknown): void {
    try {
      ftruncateSync(fd, flight.start);
    } catch {
      // open() cuts off a torn line next time
    }
    this.#tail = flight.start;
    this.#log.error(
      { file: this.#file, entries: flight.group.entries.size, err },
      'cannot append to the re-identification map',
    );
    flight.group.reject(
      new ReidentificationStoreError(`cannot append to re-identification map ${this.#file}`, this.#file, {
        cause: err,
      }),
    );
  }

  /**
   * Closes the store. Entries queued by putDurable() are written synchronously first; a group write in
   * flight finishes on its own, and the file is closed after it.
   */
  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    const group = this.#queued;
    const fd = this.#fd;
    if (group !== undefined && fd !== undefined) {
      this.#queued = undefined;
      try {
        this.#appendSync(fd, group.entries);
        group.resolve();
      } catch (err) {
        group.reject(err);
      }
    }
    if (!this.#draining) this.#finishClose();
  }

  /** Waits for every pending putDurable() write (whether it succeeds or not), then closes. */
  closeAsync(): Promise<void> {
    this.#closing = true;
    if (!this.#draining) {
      this.#finishClose();
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#closeWaiters.push(resolve));
  }

  #finishClose(): void {
    const fd = this.#fd;
    this.#fd = undefined;
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch (err) {
        this.#log.warn({ file: this.#file, err }, 'cannot close the re-identification map');
      }
    }
    for (const resolve of this.#closeWaiters.splice(0)) resolve();
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
