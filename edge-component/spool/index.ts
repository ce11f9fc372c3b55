export * from './errors.js';
export * from './spool.js';
