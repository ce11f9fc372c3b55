/** Running the `edgefleet` command as a user does: a child process of bin/edgefleet.js. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

export const BIN = join(process.cwd(), 'bin', 'edgefleet.js');

/** A test that spawns the CLI several times: each start loads the TypeScript sources through tsx. */
export const SPAWNING_TEST_MS = 120_000;

export interface CliRun {
  code: number | null;
  out: string;
  err: string;
}

/** Runs `edgefleet ...args` to its end; resolves with its exit code and output. */
export function runCli(args: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('close', (code) => resolve({ code, out, err }));
  });
}
