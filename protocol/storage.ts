/**
 * Where a thing's objects live in the data bucket. The session policy the cloud attaches to a thing's
 * temporary credentials allows exactly these prefixes.
 *
 * KEEP IN SYNC: the cloud has its own copy, `thingPrefixes()` in cloud/rules/resources.ts (the edge
 * component may not import cloud code). Both must produce identical prefixes, in the same order;
 * test/unit/edge-protocol.test.ts checks that they do.
 */

/** The S3 key prefixes of one thing: raw data batches and camera frames. */
export function thingStoragePrefixes(thingName: string): { raw: string; frames: string } {
  return { raw: `raw/${thingName}/`, frames: `frames/${thingName}/` };
}

/** The same prefixes as a list: `[raw/{thing}/, frames/{thing}/]`. */
export function thingKeyPrefixes(thingName: string): string[] {
  const p = thingStoragePrefixes(thingName);
  return [p.raw, p.frames];
}

/** S3's limit on the length of an object key, in bytes of UTF-8. */
export const MAX_OBJECT_KEY_BYTES = 1024;

/**
 * Why `key` is not a key the thing may write, or undefined if it is: it must lie under one of the
 * thing's prefixes with a non-empty rest, have no empty, `.` or `..` path segments after the prefix, no
 * control characters, and at most 1024 bytes.
 */
export function checkThingObjectKey(thingName: string, key: string): string | undefined {
  const prefixes = thingKeyPrefixes(thingName);
  const prefix = prefixes.find((p) => key.startsWith(p));
  if (prefix === undefined) return `must start with ${prefixes.map((p) => `'${p}'`).join(' or ')}`;
  const rest = key.slice(prefix.length);
  if (rest === '') return `must name an object under '${prefix}', not the prefix itself`;
  if (Buffer.byteLength(key, 'utf8') > MAX_OBJECT_KEY_BYTES) {
    return `must be at most ${MAX_OBJECT_KEY_BYTES} bytes of UTF-8`;
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(key)) return 'must not contain control characters';
  if (rest.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    return "must not contain empty, '.' or '..' path segments";
  }
  return undefined;
}
