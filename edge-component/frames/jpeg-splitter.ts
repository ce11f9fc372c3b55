/**
 * Splits a byte stream of concatenated JPEG images (ffmpeg `-f image2pipe -vcodec mjpeg`) into images.
 * It follows the JPEG marker structure instead of searching for the first FF D9: segments with a length
 * are skipped whole (an EXIF thumbnail holds its own SOI/EOI), and after SOS the entropy-coded data is
 * scanned for the next marker (FF 00 is a stuffed byte, FF D0..D7 are restart markers).
 */

const SOI = 0xd8;
const EOI = 0xd9;
const SOS = 0xda;

export class JpegStreamSplitter {
  private buf: Buffer = Buffer.alloc(0);
  /** Where parsing resumes within `buf` (0: looking for SOI). */
  private pos = 0;
  /** Inside entropy-coded data (after an SOS header). */
  private entropy = false;
  /** Bytes skipped because they were not part of a JPEG. */
  skippedBytes = 0;

  constructor(private readonly maxFrameBytes = 64 * 1024 * 1024) {}

  /** Adds bytes; returns the images completed by them. */
  push(chunk: Uint8Array): Buffer[] {
    this.buf = this.buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buf, chunk]);
    const out: Buffer[] = [];
    for (;;) {
      const img = this.next();
      if (!img) break;
      out.push(img);
    }
    if (this.buf.length > this.maxFrameBytes) {
      // No end in sight: drop what we have and look for the next image.
      this.skippedBytes += this.buf.length;
      this.reset();
    }
    return out;
  }

  private reset(): void {
    this.buf = Buffer.alloc(0);
    this.pos = 0;
    this.entropy = false;
  }

  /** Drops bytes before the next SOI; false if there is none yet. */
  private sync(): boolean {
    const b = this.buf;
    let i = 0;
    while (i + 1 < b.length && !(b[i] === 0xff && b[i + 1] === SOI)) i++;
    if (i + 1 >= b.length) {
      // Keep a trailing FF: it may be the start of the next SOI.
      const keep = b.length > 0 && b[b.length - 1] === 0xff ? 1 : 0;
      this.skippedBytes += b.length - keep;
      this.buf = b.subarray(b.length - keep);
      return false;
    }
    if (i > 0) {
      this.skippedBytes += i;
      this.buf = b.subarray(i);
    }
    this.pos = 2;
    this.entropy = false;
    return true;
  }

  private next(): Buffer | undefined {
    if (this.pos === 0 && !this.sync()) return undefined;
    const b = this.buf;
    let p = this.pos;
    for (;;) {
      if (this.entropy) {
        // Scan for FF xx with xx neither 00 (stuffing) nor D0..D7 (restart markers).
        for (;;) {
          const ff = b.indexOf(0xff, p);
          if (ff < 0 || ff + 1 >= b.length) {
            this.pos = ff < 0 ? b.length : ff;
            return undefined;
          }
          const m = b[ff + 1]!;
          if (m === 0x00 || (m >= 0xd0 && m <= 0xd7) || m === 0xff) {
            p = m === 0xff ? ff + 1 : ff + 2;
            continue;
          }
          p = ff;
          this.entropy = false;
          break;
        }
      }
      // At a marker: FF (fill FFs) marker [length].
      if (p + 1 >= b.length) {
        this.pos = p;
        return undefined;
      }
      if (b[p] !== 0xff) {
        // Not a JPEG after all: resynchronize after this SOI.
        this.skippedBytes += 2;
        this.buf = b.subarray(2);
        this.pos = 0;
        return this.next();
      }
      let q = p + 1;
      while (q < b.length && b[q] === 0xff) q++;
      if (q >= b.length) {
        this.pos = p;
        return undefined;
      }
      const marker = b[q]!;
      if (marker === EOI) {
        const img = Buffer.from(b.subarray(0, q + 1));
        this.buf = b.subarray(q + 1);
        this.pos = 0;
        this.entropy = false;
        return img;
      }
      if (marker === SOI) {
        // A new image starts before this one ended: drop the broken one.
        this.skippedBytes += p;
        this.buf = b.subarray(p);
        this.pos = 0;
        return this.next();
      }
      if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
        p = q + 1;
        continue;
      }
      if (q + 2 >= b.length) {
        this.pos = p;
        return undefined;
      }
      const len = b.readUInt16BE(q + 1);
      if (q + 1 + len > b.length) {
        this.pos = p;
        return undefined;
      }
      p = q + 1 + len;
      if (marker === SOS) this.entropy = true;
    }
  }
}
