/**
 * How the gateway's process sets V8's heap, so that its memory stays small under load.
 *
 * Records pass through Buffers (ingest chunks, spool reads, batches, gzip bodies). A Buffer's memory is
 * freed only when V8 collects its small JS wrapper, and a wrapper that lived a few milliseconds (a
 * record waiting for its commit, a batch waiting for its upload) is promoted to the old generation,
 * which V8 by default lets grow a lot before it collects it: tens of MB of dead Buffers wait there.
 *
 * - A young generation of {@link SEMI_SPACE_MB} MB semi-spaces (Node's default is 16): the new space is
 *   sized when the process starts, so the recipe's Run step passes `--max-semi-space-size` to node.
 * - The old generation grows by {@link HEAP_GROWING_PERCENT}% after a full collection (V8's default
 *   factor is 1.1 to 4): set by {@link tuneHeap} at start (V8 reads it at each collection). It is not
 *   a limit: a gateway whose live heap is larger simply collects more often. A V8 that no longer knows
 *   the flag prints "unrecognized flag" and keeps its default.
 */
import { setFlagsFromString } from 'node:v8';

export const SEMI_SPACE_MB = 4;
export const HEAP_GROWING_PERCENT = 20;

/** The node options for the component's process (the recipe's Run step passes them). */
export const COMPONENT_NODE_OPTIONS = [`--max-semi-space-size=${SEMI_SPACE_MB}`] as const;

/** Sets the old generation's growth (once, at start, before the gateway starts). */
export function tuneHeap(): void {
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
