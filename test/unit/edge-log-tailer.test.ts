/**
 * The log file tailer (edge-component/logs/tailer.ts), like `tail -F`: complete lines only (a partial
 * last line waits for its newline), the position saved only after the lines were stored, a restart
 * resuming there, rotation (the old file finished, then the new one from 0, also across a restart),
 * truncation, a file that appears later, and lines too long for one record cut into marked pieces.
 */

import { appendFileSync, renameSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { LogFileError } from '../../edge-component/logs/errors.js';
import { FileTailer, type TailLine, type TailPosition } from '../../edge-component/logs/tailer.js';
import { removeDir, tempDir } from '../helpers/cloud.js';

let dir: string;
let file: string;

beforeEach(() => {
  dir = tempDir('edgefleet-tailer-');
  file = join(dir, 'app.log');
});
afterEach(() => removeDir(dir));

/** A tailer whose lines and positions are recorded in order (what the spool and its meta would hold). */
function recorder(
  opts: { position?: TailPosition; maxLineJsonBytes?: number; startAt?: 'beginning' | 'end' } = {},
) {
  const lines: TailLine[] = [];
  const events: string[] = [];
  let position = opts.position;
  const tailer = new FileTailer({
    path: file,
    position,
    ...(opts.maxLineJsonBytes !== undefined ? { maxLineJsonBytes: opts.maxLineJsonBytes } : {}),
    ...(opts.startAt ? { startAt: opts.startAt } : {}),
    async emit(ls) {
      lines.push(...ls);
      events.push(`emit ${ls.length}`);
    },
    async save(p) {
      position = p;
      events.push(`save ${p.offset}`);
    },
  });
  return {
    tailer,
    lines,
    events,
    texts: () => lines.map((l) => l.text),
    get position() {
      return position;
    },
  };
}

describe('FileTailer', () => {
  it('emits complete lines and leaves a partial last line until its newline comes', async () => {
    writeFileSync(file, 'one\ntwo\nthr');
    const r = recorder();
    await r.tailer.poll();
    expect(r.texts()).toEqual(['one', 'two']);
    expect(r.position?.offset).toBe(8);
    appendFileSync(file, 'ee\n\nfour\n');
    await r.tailer.poll();
    expect(r.texts()).toEqual(['one', 'two', 'three', '', 'four']);
    expect(r.lines.every((l) => !l.cut)).toBe(true);
    expect(r.position?.offset).toBe(Buffer.byteLength('one\ntwo\nthree\n\nfour\n'));
    // Nothing new: nothing emitted.
    const before = r.events.length;
    await r.tailer.poll();
    expect(r.events.slice(before).filter((e) => e.startsWith('emit'))).toEqual([]);
    await r.tailer.close();
  });

  it('saves the position only after the lines are stored, and not at all when storing fails', async () => {
    writeFileSync(file, 'a\nb\n');
    let fail = true;
    const saved: number[] = [];
    const stored: string[] = [];
    let emitted!: () => void;
    const emitCalled = new Promise<void>((resolve) => {
      emitted = resolve;
    });
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tailer = new FileTailer({
      path: file,
      emit: async (ls) => {
        if (fail) throw new Error('disk full');
        emitted();
        await released;
        stored.push(...ls.map((l) => l.text));
      },
      save: async (p) => {
        saved.push(p.offset);
      },
    });
    await expect(tailer.poll()).rejects.toThrow(LogFileError);
    expect(saved.filter((o) => o > 0)).toEqual([]);
    fail = false;
    const polled = tailer.poll();
    await emitCalled;
    // The lines are being stored: the position has not moved yet.
    expect(saved.filter((o) => o > 0)).toEqual([]);
    release();
    await polled;
    // The same lines as the failed attempt, once.
    expect(stored).toEqual(['a', 'b']);
    expect(saved[saved.length - 1]).toBe(4);
    await tailer.close();
  });

  it('resumes at the saved offset after a restart (nothing again, nothing lost)', async () => {
    writeFileSync(file, 'l1\nl2\n');
    const first = recorder();
    await first.tailer.poll();
    await first.tailer.close();
    expect(first.texts()).toEqual(['l1', 'l2']);
    appendFileSync(file, 'l3\nl4');
    const second = recorder({ position: first.position! });
    await second.tailer.poll();
    expect(second.texts()).toEqual(['l3']);
    appendFileSync(file, '\n');
    await second.tailer.poll();
    expect(second.texts()).toEqual(['l3', 'l4']);
    await second.tailer.close();
  });

  it('on rotation finishes the old file (its last line too), then reads the new one from 0', async () => {
    writeFileSync(file, 'old-1\n');
    const r = recorder();
    await r.tailer.poll();
    // Written after the last poll, then the file is renamed away (logrotate) and a new one created.
    appendFileSync(file, 'old-2\nold-3 without newline');
    renameSync(file, `${file}.1`);
    writeFileSync(file, 'new-1\nnew-2\n');
    await r.tailer.poll();
    expect(r.texts()).toEqual(['old-1', 'old-2', 'old-3 without newline', 'new-1', 'new-2']);
    expect(r.position?.offset).toBe(12);
    appendFileSync(file, 'new-3\n');
    await r.tailer.poll();
    expect(r.texts().slice(-1)).toEqual(['new-3']);
    await r.tailer.close();
  });

  it('after a rotation while stopped, finishes the renamed file from the saved offset first', async () => {
    writeFileSync(file, 'a-1\n');
    const first = recorder();
    await first.tailer.poll();
    await first.tailer.close();
    appendFileSync(file, 'a-2\n');
    renameSync(file, `${file}.1`);
    writeFileSync(file, 'b-1\n');
    const second = recorder({ position: first.position! });
    await second.tailer.poll();
    expect(second.texts()).toEqual(['a-2', 'b-1']);
    await second.tailer.close();
  });

  it('restarts at 0 after a truncation (copytruncate), while running and across a restart', async () => {
    writeFileSync(file, 'first line\nsecond line\n');
    const r = recorder();
    await r.tailer.poll();
    truncateSync(file, 0);
    appendFileSync(file, 'after\n');
    await r.tailer.poll();
    expect(r.texts()).toEqual(['first line', 'second line', 'after']);
    await r.tailer.close();
    truncateSync(file, 0);
    appendFileSync(file, 'x\n');
    const again = recorder({ position: r.position! });
    await again.tailer.poll();
    expect(again.texts()).toEqual(['x']);
    await again.tailer.close();
  });

  it('waits for a missing file and reads it from its start once it appears; follows it when removed and re-created', async () => {
    const r = recorder();
    await r.tailer.poll();
    await r.tailer.poll();
    expect(r.lines).toEqual([]);
    writeFileSync(file, 'hello\n');
    await r.tailer.poll();
    expect(r.texts()).toEqual(['hello']);
    unlinkSync(file);
    await r.tailer.poll();
    writeFileSync(file, 'again\n');
    await r.tailer.poll();
    expect(r.texts()).toEqual(['hello', 'again']);
    await r.tailer.close();
  });

  it('startAt end skips what a file held when first seen, not what comes later', async () => {
    writeFileSync(file, 'history\n');
    const r = recorder({ startAt: 'end' });
    await r.tailer.poll();
    appendFileSync(file, 'live\n');
    await r.tailer.poll();
    expect(r.texts()).toEqual(['live']);
    await r.tailer.close();
  });

  it('cuts a line too long for one record into marked pieces at character boundaries', async () => {
    // 40 bytes of JSON per piece at most; "é" is 2 bytes and "😀" 4 in UTF-8.
    const long = `${'a'.repeat(30)}é${'😀'.repeat(10)}"quoted"${'z'.repeat(25)}`;
    writeFileSync(file, `short\n${long}\nend\n`);
    const r = recorder({ maxLineJsonBytes: 40 });
    await r.tailer.poll();
    const texts = r.texts();
    expect(texts[0]).toBe('short');
    expect(texts[texts.length - 1]).toBe('end');
    const pieces = r.lines.slice(1, -1);
    expect(pieces.length).toBeGreaterThan(2);
    expect(pieces.slice(0, -1).every((p) => p.cut)).toBe(true);
    expect(pieces[pieces.length - 1]!.cut).toBe(false);
    expect(pieces.map((p) => p.text).join('')).toBe(long);
    for (const p of pieces) {
      expect(Buffer.byteLength(JSON.stringify(p.text))).toBeLessThanOrEqual(40);
      expect(p.text).not.toContain('\uFFFD');
    }
    await r.tailer.close();
  });

  it('cuts a long line still being written as soon as a full piece is there, and keeps the rest', async () => {
    writeFileSync(file, 'x'.repeat(50));
    const r = recorder({ maxLineJsonBytes: 22 });
    await r.tailer.poll();
    // Two full pieces of 20 characters; the last 10 wait for the rest of the line.
    expect(r.lines).toEqual([
      { text: 'x'.repeat(20), cut: true },
      { text: 'x'.repeat(20), cut: true },
    ]);
    expect(r.position?.offset).toBe(40);
    appendFileSync(file, 'yy\n');
    await r.tailer.poll();
    expect(r.lines[2]).toEqual({ text: `${'x'.repeat(10)}yy`, cut: false });
    await r.tailer.close();
  });
});
