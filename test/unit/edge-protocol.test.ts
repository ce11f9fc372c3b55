/** The temporary-token protocol schemas and the storage prefixes shared by the edge and the cloud. */
import { randomUUID } from 'node:crypto';
import { thingPrefixes } from '../../cloud/rules/resources.js';
import { topicMatches } from '../../edge-component/topic-filter.js';
import {
  CREDENTIALS_REQUEST_FILTER,
  credentialsTopics,
  decodeCredentialsRequest,
  decodeCredentialsResponse,
  isCredentialsDenial,
  parseCredentialsTopic,
  peekRequestId,
} from '../../protocol/credentials.js';
import { checkThingObjectKey, thingKeyPrefixes, thingStoragePrefixes } from '../../protocol/storage.js';

describe('credentials topics', () => {
  test('are under the thing root and parse back', () => {
    const t = credentialsTopics('gw-1');
    expect(t).toEqual({
      request: 'things/gw-1/credentials/request',
      response: 'things/gw-1/credentials/response',
    });
    expect(parseCredentialsTopic(t.request)).toEqual({ thingName: 'gw-1', kind: 'request' });
    expect(parseCredentialsTopic(t.response)).toEqual({ thingName: 'gw-1', kind: 'response' });
    expect(parseCredentialsTopic('things/gw-1/credentials/other')).toBeUndefined();
    expect(topicMatches(CREDENTIALS_REQUEST_FILTER, t.request)).toBe(true);
    expect(topicMatches(CREDENTIALS_REQUEST_FILTER, t.response)).toBe(false);
  });
});

describe('credentials messages', () => {
  const requestId = randomUUID();
  const grant = {
    requestId,
    accessKeyId: 'ASIAEXAMPLE',
    secretAccessKey: 'secret',
    sessionToken: 'token',
    expiration: '2025-01-01T01:00:00Z',
  };

  test('a request needs a UUID', () => {
    expect(decodeCredentialsRequest(JSON.stringify({ requestId }))).toEqual({
      ok: true,
      value: { requestId },
    });
    expect(decodeCredentialsRequest('{"requestId":"abc"}')).toEqual({
      ok: false,
      error: 'requestId: must be a UUID',
    });
    expect(decodeCredentialsRequest('{}')).toMatchObject({
      ok: false,
      error: expect.stringMatching(/^requestId: /),
    });
    expect(decodeCredentialsRequest('not json')).toEqual({ ok: false, error: 'payload: is not JSON' });
  });

  test('a grant has all credential fields and an ISO 8601 expiration', () => {
    const ok = decodeCredentialsResponse(Buffer.from(JSON.stringify(grant)));
    expect(ok).toEqual({ ok: true, value: grant });
    expect(ok.ok && isCredentialsDenial(ok.value)).toBe(false);
    expect(decodeCredentialsResponse(JSON.stringify({ ...grant, expiration: 'tomorrow' }))).toEqual({
      ok: false,
      error: 'expiration: must be an ISO 8601 date-time, e.g. 2025-01-31T12:00:00Z',
    });
    expect(decodeCredentialsResponse(JSON.stringify({ ...grant, sessionToken: '' }))).toEqual({
      ok: false,
      error: 'sessionToken: must not be empty',
    });
    const { secretAccessKey: _omit, ...noSecret } = grant;
    expect(decodeCredentialsResponse(JSON.stringify(noSecret))).toMatchObject({
      ok: false,
      error: expect.stringMatching(/^secretAccessKey: /),
    });
    expect(
      decodeCredentialsResponse(JSON.stringify({ ...grant, expiration: '2025-01-01T02:00:00+01:00' })).ok,
    ).toBe(true);
  });

  test('a denial carries an error', () => {
    const r = decodeCredentialsResponse(JSON.stringify({ requestId, error: 'AccessDenied' }));
    expect(r).toEqual({ ok: true, value: { requestId, error: 'AccessDenied' } });
    expect(r.ok && isCredentialsDenial(r.value)).toBe(true);
    expect(decodeCredentialsResponse(JSON.stringify({ requestId, error: 5 }))).toEqual({
      ok: false,
      error: 'error: must be a string',
    });
  });

  test('peekRequestId reads the id of any JSON object', () => {
    expect(peekRequestId('{"requestId":"x","junk":1}')).toBe('x');
    expect(peekRequestId('[1]')).toBeUndefined();
    expect(peekRequestId('nope')).toBeUndefined();
  });
});

describe('storage prefixes', () => {
  test('are identical to the cloud copy in cloud/rules/resources.ts', () => {
    for (const thing of ['gw-1', 'Factory:Line_7-gw', 'x']) {
      expect(thingKeyPrefixes(thing)).toEqual(thingPrefixes(thing));
    }
    expect(thingStoragePrefixes('gw-1')).toEqual({ raw: 'raw/gw-1/', frames: 'frames/gw-1/' });
  });

  test.each([
    ['raw/gw-1/2025/01/01/batch.ndjson.gz', undefined],
    ['frames/gw-1/cam-1/000001.jpg', undefined],
    ['raw/gw-2/x', /must start with 'raw\/gw-1\/' or 'frames\/gw-1\/'/],
    ['raw/gw-10/x', /must start with/],
    ['other/gw-1/x', /must start with/],
    ['raw/gw-1/', /not the prefix itself/],
    ['raw/gw-1/../gw-2/x', /'\.\.' path segments/],
    ['raw/gw-1/a//b', /empty/],
    ['raw/gw-1/dir/', /empty/],
    ['raw/gw-1/a\nb', /control characters/],
    [`raw/gw-1/${'x'.repeat(1020)}`, /at most 1024 bytes/],
  ])('key %j', (key, problem) => {
    const r = checkThingObjectKey('gw-1', key);
    if (problem === undefined) expect(r).toBeUndefined();
    else expect(r).toMatch(problem);
  });
});

describe('topicMatches', () => {
  test.each([
    ['a/b', 'a/b', true],
    ['a/+', 'a/b', true],
    ['a/+', 'a/b/c', false],
    ['a/#', 'a', true],
    ['a/#', 'a/b/c', true],
    ['+/b', 'a/b', true],
    ['#', '$aws/x', false],
    ['+/x', '$aws/x', false],
    ['$aws/#', '$aws/x', true],
    ['a/b', 'a/c', false],
  ])('%s vs %s', (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected);
  });
});
