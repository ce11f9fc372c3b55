/**
 * Exponential backoff with full jitter (a random delay between 0 and the capped exponential), as the
 * AWS Architecture Blog's "Exponential Backoff And Jitter" recommends for clients that retry together.
 */
import { z } from 'zod';

export interface Backoff {
  /** Cap of the first retry's delay, ms. */
  initialDelayMs: number;
  /** Cap of any delay, ms. */
  maxDelayMs: number;
}

const delayMs = z
  .number({ error: (iss) => (iss.input === undefined ? 'is required' : 'must be a number') })
  .int('must be an integer')
  .min(1, 'must be at least 1')
  .max(3_600_000, 'must be at most 3600000 (one hour)');

/** Schema of a backoff setting with the given defaults; errors name the field. */
export function backoffSchema(defaults: Backoff) {
  return z
    .strictObject(
      {
        initialDelayMs: delayMs.default(defaults.initialDelayMs),
        maxDelayMs: delayMs.default(defaults.maxDelayMs),
      },
      { error: (iss) => (iss.input === undefined ? 'is required' : 'must be an object') },
    )
    .refine((b) => b.initialDelayMs <= b.maxDelayMs, {
      path: ['initialDelayMs'],
      message: 'must not exceed maxDelayMs',
    })
    .prefault({});
}

/**
 * Delay before retry number `retry` (1 for the first retry): uniformly random in
 * [0, min(maxDelayMs, initialDelayMs * 2^(retry-1))). `random` returns values in [0, 1).
 */
export function backoffDelay(retry: number, backoff: Backoff, random: () => number = Math.random): number {
  const cap = Math.min(
    backoff.maxDelayMs,
    backoff.initialDelayMs * 2 ** Math.min(30, Math.max(0, retry - 1)),
  );
  return Math.floor(Math.min(1, Math.max(0, random())) * cap);
}
