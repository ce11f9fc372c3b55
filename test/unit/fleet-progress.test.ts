/** How `fleet firmware rollout` shows progress: a redrawn bar on a terminal, plain lines otherwise. */
import { Writable } from 'node:stream';
import { expect, it } from '@jest/globals';
import type { RolloutEvent } from '../../cli/fleet/rollout.js';
import { progressPrinter, statusTable } from '../../cli/fleet.js';

function sink(isTTY: boolean) {
  let text = '';
  const out = Object.assign(
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        text += chunk.toString();
        cb();
      },
    }),
    { isTTY },
  );
  return { out, text: () => text };
}

const events: RolloutEvent[] = [
  { kind: 'wave-start', wave: 1, waves: 2, things: ['a', 'b'], total: 3 },
  {
    kind: 'thing-done',
    wave: 1,
    thing: 'a',
    outcome: { status: 'succeeded', report: { version: '1.0.0', state: 'succeeded' } },
  },
  { kind: 'thing-done', wave: 1, thing: 'b', outcome: { status: 'failed', reason: 'failed: boom' } },
  {
    kind: 'wave-end',
    wave: 1,
    waves: 2,
    result: { things: ['a', 'b'], succeeded: ['a'], failed: ['b'] },
    failureRate: 0.5,
  },
];

it('prints plain lines when the output is not a terminal', () => {
  const s = sink(false);
  const print = progressPrinter(s.out, 3);
  for (const e of events) print(e);
  expect(s.text()).toBe(
    'wave 1/2: started for 2 things\n  b: failed (failed: boom)\nwave 1/2: 2 things, 1 succeeded, 1 failed\n',
  );
});

it('redraws one line with a bar on a terminal', () => {
  const s = sink(true);
  const print = progressPrinter(s.out, 3);
  for (const e of events) print(e);
  const text = s.text();
  expect(text).not.toMatch(/\n.*\n.*\n/);
  expect(text).toContain(`\r[${'#'.repeat(20)}${'-'.repeat(10)}] 2/3 done, 1 succeeded, 1 failed (wave 1/2)`);
  expect(text.endsWith('\r\x1b[2Kwave 1/2: 2 things, 1 succeeded, 1 failed\n')).toBe(true);
});

it('formats the status table with a dash for what a thing has not reported', () => {
  expect(statusTable([{ thing: 'gw-1', version: '1.0.0', state: 'succeeded' }, { thing: 'gw-22' }])).toBe(
    [
      'thing  version  state      targetVersion  progress  error  previousVersion  updatedAt',
      'gw-1   1.0.0    succeeded  -              -         -      -                -',
      'gw-22  -        -          -              -         -      -                -',
      '',
    ].join('\n'),
  );
});
