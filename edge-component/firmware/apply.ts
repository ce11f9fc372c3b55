/** Switching versions: the atomic `current` symlink, and running the apply and self-test commands. */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readlink, rename, symlink, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { syncDir } from './state.js';

/**
 * Points `current` at `target` (relative, e.g. `versions/1.2.0`): a temp link is written beside it and
 * renamed over it, so `current` is always either the old or the new link.
 */
export async function switchLink(current: string, target: string): Promise<void> {
  const dir = dirname(current);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(current)}.${randomBytes(6).toString('hex')}.tmp`);
  await symlink(target, tmp);
  try {
    await rename(tmp, current);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await syncDir(dir);
}

/** The target of `current`, or undefined when there is no link. */
export async function readLink(current: string): Promise<string | undefined> {
  try {
    return await readlink(current);
  } catch {
    return undefined;
  }
}

export interface CommandResult {
  /** Exit code, or null when killed. */
  code: number | null;
  timedOut: boolean;
  /** The end of stderr, for error messages. */
  stderr: string;
}

/**
 * Runs `argv` with `env` added to the agent's environment. A command that outlives `timeoutMs` is killed
 * (SIGKILL) and counts as timed out; `signal` kills it too (the agent stops) and rejects.
 */
export function runCommand(
  argv: readonly string[],
  env: Record<string, string>,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv;
    if (cmd === undefined) {
      reject(new Error('empty command'));
      return;
    }
    let stderr = '';
    let timedOut = false;
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    const onAbort = () => child.kill('SIGKILL');
    signal.addEventListener('abort', onAbort, { once: true });
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    };
    child.once('error', (err) => {
      done();
      reject(err);
    });
    child.once('close', (code) => {
      done();
      if (signal.aborted) reject(signal.reason);
      else resolve({ code, timedOut, stderr: stderr.trim() });
    });
  });
}

/** `exit 1: <stderr>` / `timed out after N ms` for an error message. */
export function describeFailure(r: CommandResult, timeoutMs: number): string {
  if (r.timedOut) return `timed out after ${timeoutMs} ms`;
  const why = r.code === null ? 'killed' : `exit ${r.code}`;
  return r.stderr ? `${why}: ${r.stderr.slice(-300)}` : why;
}
