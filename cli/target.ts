/**
 * Where a command sends its AWS requests: AWS itself (the default credential chain) or the local cloud
 * running on a data dir (its endpoint and root credentials); and reading files named by flags.
 */
import { readFile } from 'node:fs/promises';
import { readRootCredentials } from '../cloud/local/credentials.js';
import { runningLocalCloud } from '../cloud/local/index.js';
import { CliError } from './errors.js';

/** The target flags of a command: `--aws`, or the local cloud of `--data-dir` (`--local` when asked). */
export interface TargetFlags {
  local?: boolean;
  aws: boolean;
  dataDir: string;
  region?: string | undefined;
}

/** For commands that take `--local` or `--aws`: exactly one of them. */
export function checkTarget(flags: TargetFlags): void {
  if ((flags.local ?? false) === flags.aws) {
    throw new CliError(
      'invalid --local/--aws: give exactly one of --local (the running local cloud) or --aws',
    );
  }
}

/** SDK client settings for the target: AWS (default chain) or the running local cloud of the data dir. */
export function clientConfigFor(flags: TargetFlags) {
  if (flags.aws) return flags.region ? { region: flags.region } : {};
  const running = runningLocalCloud(flags.dataDir);
  if (!running) {
    throw new CliError(
      `no local cloud is running on ${flags.dataDir}; start one with \`npx edgefleet local up --data-dir ${flags.dataDir}\` or use --aws`,
      1,
    );
  }
  const credentials = readRootCredentials(flags.dataDir);
  if (!credentials) throw new CliError(`${flags.dataDir}/credentials.json is missing`, 1);
  return {
    region: flags.region ?? 'us-east-1',
    endpoint: `http://${running.host}:${running.httpPort}`,
    credentials,
    maxAttempts: 1,
  };
}

/** The text of a file a flag names; an unreadable one is a flag error (exit 2) naming the flag. */
export async function readFlagFile(path: string, flag: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new CliError(
      `invalid ${flag}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      2,
      { cause: err },
    );
  }
}
