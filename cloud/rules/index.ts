/**
 * The single source of truth of the cloud side's IoT configuration: rule definitions and their actions,
 * and IoT policies. The SQL engine lives in `./sql` and is imported from there.
 */
export * from './actions.js';
export * from './definitions.js';
export * from './policies.js';
