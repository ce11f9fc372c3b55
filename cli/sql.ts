/**
 * `edgefleet sql`: evaluates one AWS IoT SQL statement against one message and prints the rule's
 * output, or says that the message does not match.
 */
import type { Writable } from 'node:stream';
import { z } from 'zod';
import {
  compile,
  SQL_VERSIONS,
  SqlError,
  SqlParseError,
  type SqlVersion,
  serializeOutput,
} from '../cloud/rules/sql/index.js';
import { topicMatches } from '../cloud/rules/sql/topic.js';
import { CliError } from './errors.js';
import { parseFlags } from './options.js';

export const SqlFlags = z.object({
  sql: z.string().min(1, 'is empty'),
  topic: z.string().min(1, 'is required'),
  payload: z.string().default('{}'),
  clientid: z.string().optional(),
  principal: z.string().optional(),
  sqlVersion: z.enum(SQL_VERSIONS as [SqlVersion, ...SqlVersion[]]).default('2016-03-23'),
  account: z
    .string()
    .regex(/^\d{12}$/, 'must be 12 digits')
    .default('000000000000'),
  region: z.string().min(1).default('us-east-1'),
});

/** Runs the playground; returns the exit code (0 match or no match, 2 parse/evaluation error). */
export function runSql(raw: unknown, out: Writable, err: Writable): number {
  const flags = parseFlags(SqlFlags, raw);
  try {
    const statement = compile(flags.sql, flags.sqlVersion);
    const result = statement.evaluate(
      {
        topic: flags.topic,
        payload: Buffer.from(flags.payload),
        timestamp: Date.now(),
        ...(flags.clientid !== undefined ? { clientId: flags.clientid } : {}),
        ...(flags.principal !== undefined ? { principal: flags.principal } : {}),
      },
      { accountId: flags.account, region: flags.region },
    );
    if (!result.matched) {
      out.write(
        topicMatches(statement.topicFilter, flags.topic)
          ? 'no match: the WHERE clause is not true for this message\n'
          : `no match: topic '${flags.topic}' is not selected by FROM '${statement.topicFilter}'\n`,
      );
      return 0;
    }
    const bytes = serializeOutput(result.output);
    out.write(`${bytes.toString('utf8')}\n`);
    return 0;
  } catch (e) {
    if (e instanceof SqlParseError) {
      const line = flags.sql.split('\n')[e.line - 1] ?? '';
      err.write(`parse error: ${e.message}\n  ${line}\n  ${' '.repeat(e.column - 1)}^\n`);
      return 2;
    }
    if (e instanceof SqlError) {
      err.write(`evaluation error: ${e.message}\n`);
      return 2;
    }
    throw new CliError(e instanceof Error ? e.message : String(e), 1, { cause: e });
  }
}
