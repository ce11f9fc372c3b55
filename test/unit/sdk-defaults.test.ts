/**
 * Production code uses the AWS SDK clients with their default settings: no checksum workarounds
 * (`requestChecksumCalculation` / `responseChecksumValidation`), so the local cloud is exercised by the
 * same requests AWS receives.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from '@jest/globals';

const PRODUCTION = ['edge-component', 'cloud/functions', 'cloud/rules', 'cli', 'protocol'];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

it('no production module overrides the SDK checksum behaviour', () => {
  const offenders = PRODUCTION.flatMap((d) => files(d)).filter((f) =>
    /requestChecksumCalculation|responseChecksumValidation|WHEN_REQUIRED/.test(readFileSync(f, 'utf8')),
  );
  expect(offenders).toEqual([]);
});
