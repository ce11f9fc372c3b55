/** `edgefleet gateway reidentify`: the pseudonym map stays on the gateway and answers lookups there. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, expect, it } from '@jest/globals';
import { gatewayReidentify } from '../../cli/gateway.js';
import { KeyRing } from '../../edge-component/pseudonymize/keyring.js';
import { Pseudonymizer } from '../../edge-component/pseudonymize/pseudonymizer.js';
import { FileReidentificationStore } from '../../edge-component/pseudonymize/store.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefleet-reid-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sink() {
  let text = '';
  const stream = new Writable({
    write(chunk, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return { stream, text: () => text };
}

it('prints the original value of a pseudonym, and refuses unknown or malformed tokens', async () => {
  const keyFile = join(dir, 'keys.json');
  const mapFile = join(dir, 'map.jsonl');
  const keys = await KeyRing.create(keyFile);
  const store = FileReidentificationStore.open(mapFile);
  const p = new Pseudonymizer({ fields: ['$.operatorId'], keys, store });
  const { record } = p.apply({ operatorId: 'OP-4711', temp: 20 });
  store.close();
  const token = (record as { operatorId: string }).operatorId;
  expect(token).toMatch(/^k1\.[a-z2-7]{32}$/);

  const config = join(dir, 'gw.json');
  writeFileSync(
    config,
    JSON.stringify({
      thingName: 'gw-1',
      credentials: { source: 'tes' },
      aws: { region: 'us-east-1' },
      storage: { bucket: 'edgefleet-data' },
      pseudonymization: { fields: ['$.operatorId'], keyFile: 'keys.json', mapFile: 'map.jsonl' },
    }),
  );
  const out = sink();
  const err = sink();
  gatewayReidentify({ token, config }, { out: out.stream, err: err.stream });
  expect(JSON.parse(out.text())).toBe('OP-4711');
  expect(() => gatewayReidentify({ token: `k1.${'a'.repeat(32)}`, config })).toThrow(/unknown token/);
  expect(() => gatewayReidentify({ token: 'OP-4711', config })).toThrow(/--token/);
});
