/**
 * Frames from a folder that a camera pushes images to (FTP). The folder is scanned `fps` times a
 * second; an image file (`.jpg`, `.jpeg`, `.png`, `.webp`; not hidden) is taken once it has not
 * changed for `settleMs` (its upload is complete), oldest first, each once: then it is removed
 * (`afterRead: 'delete'`) or remembered by name, size and mtime (`'keep'`). Files are never dropped
 * for a slow pipeline: the scan waits. Its capture time is the file's mtime.
 */
import { readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { FrameSourceConfig } from '../../config.js';
import { FrameSourceError } from '../errors.js';
import { BaseFrameSource, type SourceDeps, type SourceOptions } from './base.js';

export type DirectorySourceConfig = Extract<FrameSourceConfig, { type: 'directory' }>;

const IMAGE_FILE = /^[^.].*\.(jpe?g|png|webp)$/i;

export class DirectoryFrameSource extends BaseFrameSource {
  /** Files read with `afterRead: 'keep'`: `name size mtime`. */
  private readonly seen = new Set<string>();

  constructor(
    opts: SourceOptions,
    private readonly src: DirectorySourceConfig,
    deps: SourceDeps = {},
  ) {
    super({ ...opts, queueSize: opts.queueSize ?? 4 }, deps, 'directory');
  }

  protected async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const started = this.clock.now();
      await this.scan(signal);
      try {
        await this.clock.sleep(Math.max(0, started + this.intervalMs - this.clock.now()), signal);
      } catch {
        return;
      }
    }
  }

  private async scan(signal: AbortSignal): Promise<void> {
    const dir = this.src.dir;
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new FrameSourceError(
        `cannot read the folder ${dir} of camera ${this.camera}${code ? ` (${code})` : ''}`,
        this.camera,
        {
          cause: err,
        },
      );
    }
    const now = this.clock.now();
    const ready: { name: string; mtime: number; key: string }[] = [];
    for (const name of names) {
      if (!IMAGE_FILE.test(name)) continue;
      try {
        const st = await stat(join(dir, name));
        const key = `${name} ${st.size} ${st.mtimeMs}`;
        if (!st.isFile() || st.size === 0 || this.seen.has(key)) continue;
        if (now - st.mtimeMs < this.src.settleMs) continue;
        ready.push({ name, mtime: st.mtimeMs, key });
      } catch {
        // removed meanwhile
      }
    }
    ready.sort((a, b) => a.mtime - b.mtime || a.name.localeCompare(b.name));
    for (const f of ready) {
      if (!(await this.waitForRoom(signal))) return;
      const path = join(dir, f.name);
      let bytes: Buffer;
      try {
        bytes = await readFile(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw new FrameSourceError(`cannot read ${path} of camera ${this.camera}`, this.camera, {
          cause: err,
        });
      }
      if (this.src.afterRead === 'delete') {
        await unlink(path).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') {
            // Not removable: remember it so that it is not read again.
            this.seen.add(f.key);
            this.report(
              new FrameSourceError(`cannot remove ${path}: ${err.message}`, this.camera, { cause: err }),
            );
          }
        });
      } else {
        this.seen.add(f.key);
      }
      this.emit(bytes, Math.round(f.mtime));
    }
  }
}
