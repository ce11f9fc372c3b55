import { z } from 'zod';
import { CliError } from './errors.js';

/** Parses CLI flags with a zod schema; a bad flag is reported by its name. */
export function parseFlags<S extends z.ZodType>(schema: S, raw: unknown): z.output<S> {
  const r = schema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const flag =
      issue.path.length > 0
        ? `--${String(issue.path[0]).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`
        : 'arguments';
    throw new CliError(`invalid ${flag}: ${issue.message}`);
  }
  return r.data;
}

export const portFlag = z.coerce.number().int('must be an integer').min(0).max(65535);
