/**
 * The AWS IoT SQL function library: every documented function that needs no external AWS service,
 * and get_thing_shadow against the services in the evaluation context.
 */
import type { FunctionSpec } from '../context.js';

const ALL: FunctionSpec[] = [];

/** Functions by lower-case name. */
export const FUNCTIONS: ReadonlyMap<string, FunctionSpec> = new Map(ALL.map((f) => [f.name, f]));
