/**
 * `edgefleet lake query|tables`: the analysts' local Athena. DuckDB views `telemetry`, `events`, `frames`
 * and `analysis` (the tables of cloud/rules/lake.ts) over the local S3's files in the data dir; the
 * local cloud need not be running. The same SQL runs in Athena against the Glue tables of the layout.
 */
import type { Writable } from 'node:stream';
import type { Command } from 'commander';
import { z } from 'zod';
import {
  formatResult,
  formatTable,
  LAKE_FORMATS,
  LakeConfigError,
  LakeEngine,
  LakeError,
  LakeQueryError,
  type LakeResult,
} from '../cloud/local/lake/index.js';
import { LOCAL_DATA_BUCKET, LOCAL_RESULTS_BUCKET } from '../cloud/rules/resources.js';
import { CliError } from './errors.js';
import { parseFlags } from './options.js';

const bucketFlag = z
  .string()
  .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a bucket name (3-63 of a-z 0-9 . -)');

const LakeFlags = z.object({
  dataDir: z.string().min(1, 'is required').default('.edgefleet'),
  dataBucket: bucketFlag.default(LOCAL_DATA_BUCKET),
  resultsBucket: bucketFlag.default(LOCAL_RESULTS_BUCKET),
  format: z.enum(LAKE_FORMATS, { error: `must be one of ${LAKE_FORMATS.join(', ')}` }).default('table'),
});
type LakeFlags = z.output<typeof LakeFlags>;

export interface LakeIo {
  out: Writable;
}

/** Writes all of `text`; a reader that went away (`| head`) ends the output quietly. */
function write(out: Writable, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    out.write(text, (err) => {
      if (!err) return resolve();
      // The stream emits the error as well, after this callback: it is handled here.
      out.on('error', () => {});
      if ((err as NodeJS.ErrnoException).code === 'EPIPE') resolve();
      else reject(err);
    });
  });
}

async function withEngine<T>(flags: LakeFlags, fn: (engine: LakeEngine) => Promise<T>): Promise<T> {
  let engine: LakeEngine;
  try {
    engine = await LakeEngine.open(flags);
  } catch (err) {
    if (err instanceof LakeConfigError) throw new CliError(err.message, 2, { cause: err });
    if (err instanceof LakeError) throw new CliError(err.message, 1, { cause: err });
    throw err;
  }
  try {
    return await fn(engine);
  } catch (err) {
    if (err instanceof LakeQueryError) throw new CliError(`query failed: ${err.message}`, 1, { cause: err });
    if (err instanceof LakeError) throw new CliError(err.message, 1, { cause: err });
    throw err;
  } finally {
    engine.close();
  }
}

/** `lake query SQL`: runs the statement and prints its result in the chosen format. */
export async function lakeQuery(
  sql: string,
  raw: Record<string, unknown>,
  io: LakeIo = { out: process.stdout },
) {
  const flags = parseFlags(LakeFlags, raw);
  if (sql.trim() === '') throw new CliError('invalid arguments: the SQL statement is empty');
  const result = await withEngine(flags, (engine) => engine.query(sql));
  await write(io.out, formatResult(result, flags.format));
}

/** `lake tables`: every view with its description and row count. */
export async function lakeTables(raw: Record<string, unknown>, io: LakeIo = { out: process.stdout }) {
  const flags = parseFlags(LakeFlags, raw);
  const tables = await withEngine(flags, (engine) => engine.tables());
  const result: LakeResult = {
    columns: [
      { name: 'name', type: 'VARCHAR' },
      { name: 'description', type: 'VARCHAR' },
      { name: 'rows', type: 'BIGINT' },
    ],
    rows: tables.map((t) => [t.name, t.description, t.rows]),
  };
  const text =
    flags.format === 'table'
      ? formatTable(result, { maxCellWidth: 200 })
      : formatResult(result, flags.format);
  await write(io.out, text);
}

export function registerLakeCommands(program: Command): void {
  const lake = program
    .command('lake')
    .description(
      'query the data lake in the local S3 with DuckDB (views telemetry, events, frames, analysis; Athena SQL)',
    );
  const common = (c: Command) =>
    c
      .option('--data-dir <dir>', 'state directory of the local cloud (need not be running)', '.edgefleet')
      .option('--format <format>', `output format: ${LAKE_FORMATS.join(', ')}`, 'table')
      .option('--data-bucket <bucket>', 'bucket of the lake (telemetry, events, frames)', LOCAL_DATA_BUCKET)
      .option('--results-bucket <bucket>', 'bucket of the analysis results', LOCAL_RESULTS_BUCKET);
  common(lake.command('query'))
    .description('run a SQL statement against the lake views and print the result')
    .argument('<sql>', 'e.g. "SELECT thing, count(*) FROM telemetry GROUP BY thing"')
    .action((sql: string, o: Record<string, unknown>) => lakeQuery(sql, o));
  common(lake.command('tables'))
    .description('list the lake views with their descriptions and row counts')
    .action((o: Record<string, unknown>) => lakeTables(o));
}
