/** The camera frames benchmark in a process of its own (see bench/child.ts); started by bench/index.ts. */
import { benchFrames } from './frames.js';

const arg = process.argv[2];
if (!arg || !process.send) throw new Error('bench/frames-child.ts is started by bench/index.ts');
const result = await benchFrames(JSON.parse(arg) as Parameters<typeof benchFrames>[0], (s) =>
  process.stderr.write(`${s}\n`),
);
await new Promise<void>((resolve, reject) =>
  process.send!(result, undefined, {}, (err) => (err ? reject(err) : resolve())),
);
process.disconnect();
