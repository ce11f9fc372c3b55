/**
 * Benchmarks that measure a process's memory run in a child: the code under test compiled to JavaScript
 * (as the component runs from compiled code, without a TypeScript loader in the process),
 * with packages loaded from node_modules as on a gateway.
 */
import { fork } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

/**
 * The environment the Greengrass recipe sets for the component (recipes/recipe.yaml, Lifecycle.Setenv):
 * the children run with it too, so that what is measured is what runs on a gateway.
 */
export const COMPONENT_ENV = { NODE_ENV: 'production', MALLOC_ARENA_MAX: '2' } as const;

/**
 * Compiles `entry` (a bench/*.ts file) into bench/results/.build/{name}/ and returns the path of its main
 * file. Code the component loads on demand (`await import(...)`: the frames pipeline and sharp, the
 * firmware agent, the log shipper and the Kinesis client) goes into chunks of its own that load only
 * when imported, as with the compiled component; one file would load all of them at start.
 */
export async function bundleScript(entry: URL, name: string): Promise<string> {
  // Inside the repository, so that the bundle's package imports resolve to its node_modules.
  const outdir = fileURLToPath(new URL(`./results/.build/${name}/`, import.meta.url));
  rmSync(outdir, { recursive: true, force: true });
  await build({
    entryPoints: { [name]: fileURLToPath(entry) },
    outdir,
    bundle: true,
    splitting: true,
    outExtension: { '.js': '.mjs' },
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'warning',
  });
  return join(outdir, `${name}.mjs`);
}

/** Runs a bundled script with `arg` (JSON) as argv[2]; resolves with the one message it sends back. */
export function runScript<T>(script: string, arg: unknown, execArgv: string[] = []): Promise<T> {
  const child = fork(script, [JSON.stringify(arg)], {
    execArgv,
    env: { ...process.env, ...COMPONENT_ENV },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise<T>((resolve, reject) => {
    let result: T | undefined;
    child.once('message', (m) => {
      result = m as T;
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (result !== undefined && code === 0) resolve(result);
      else reject(new Error(`benchmark child ${script} exited with ${signal ?? code}`));
    });
  });
}
