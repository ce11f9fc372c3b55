// biome-ignore-all lint/suspicious/noTemplateCurlyInString: IoT policy variables like ${iot:ClientId} are literal text in policy documents
/**
 * The IoT policy engine (cloud/local/policy.ts). Page names in comments are pages of the AWS IoT
 * Core Developer Guide (or the IAM User Guide where marked) that the expectation comes from.
 */
import { describe, expect, it } from '@jest/globals';
import {
  checkIotTopicLimits,
  clientArn,
  evaluate,
  evaluateDetailed,
  isValidTopicFilter,
  isValidTopicName,
  type ParsedPolicy,
  type PolicyContext,
  PolicyDocumentError,
  parsePolicy,
  thingArn,
  topicArn,
  topicFilterArn,
  topicMatchesFilter,
} from '../../cloud/local/policy.js';
import { DEVICE_POLICY_NAME, devicePolicyDocument } from '../../cloud/rules/policies.js';

const REGION = 'us-east-1';
const ACCOUNT = '123456789012';
const A = { region: REGION, accountId: ACCOUNT };

/** A connection whose certificate is attached to a thing named like its client id. */
function thingCtx(thing: string, extra: Partial<PolicyContext> = {}): PolicyContext {
  return { ...A, clientId: thing, thingName: thing, isAttached: true, ...extra };
}

/** A connection with no thing resolved (unregistered device, or client id not matching the thing). */
function bareCtx(clientId: string, extra: Partial<PolicyContext> = {}): PolicyContext {
  return { ...A, clientId, isAttached: false, ...extra };
}

const doc = (...Statement: unknown[]) => ({ Version: '2012-10-17', Statement });
const allow = (Action: string | string[], Resource: string | string[], Condition?: unknown) => ({
  Effect: 'Allow',
  Action,
  Resource,
  ...(Condition === undefined ? {} : { Condition }),
});
const deny = (Action: string | string[], Resource: string | string[], Condition?: unknown) => ({
  Effect: 'Deny',
  Action,
  Resource,
  ...(Condition === undefined ? {} : { Condition }),
});
const topicRes = (t: string) => `arn:aws:iot:${REGION}:${ACCOUNT}:topic/${t}`;
const filterRes = (f: string) => `arn:aws:iot:${REGION}:${ACCOUNT}:topicfilter/${f}`;
const clientRes = (c: string) => `arn:aws:iot:${REGION}:${ACCOUNT}:client/${c}`;

function one(document: unknown): ParsedPolicy[] {
  return [parsePolicy('p', document)];
}
const pub = (ps: ParsedPolicy[], topic: string, ctx: PolicyContext) =>
  evaluate(ps, 'iot:Publish', topicArn(ctx, topic), ctx);
const recv = (ps: ParsedPolicy[], topic: string, ctx: PolicyContext) =>
  evaluate(ps, 'iot:Receive', topicArn(ctx, topic), ctx);
const sub = (ps: ParsedPolicy[], filter: string, ctx: PolicyContext) =>
  evaluate(ps, 'iot:Subscribe', topicFilterArn(ctx, filter), ctx);
const conn = (ps: ParsedPolicy[], ctx: PolicyContext) =>
  evaluate(ps, 'iot:Connect', clientArn(ctx, ctx.clientId), ctx);

describe('ARNs ("AWS IoT Core action resources")', () => {
  it('builds client, topic, topicfilter and thing ARNs', () => {
    expect(clientArn(A, 'myClientId')).toBe('arn:aws:iot:us-east-1:123456789012:client/myClientId');
    expect(topicArn(A, 'myTopicName')).toBe('arn:aws:iot:us-east-1:123456789012:topic/myTopicName');
    expect(topicFilterArn(A, 'a/+/#')).toBe('arn:aws:iot:us-east-1:123456789012:topicfilter/a/+/#');
    expect(thingArn(A, 'thingOne', 'shadowOne')).toBe(
      'arn:aws:iot:us-east-1:123456789012:thing/thingOne/shadowOne',
    );
  });
});

describe('the default device policy (cloud/rules/policies.ts)', () => {
  const policies = [parsePolicy(DEVICE_POLICY_NAME, devicePolicyDocument(REGION, ACCOUNT))];
  const thingA = thingCtx('thingA');

  describe('iot:Connect', () => {
    it('lets thing A connect with client id A while its certificate is attached', () => {
      expect(conn(policies, thingA)).toBe('allow');
    });

    it('refuses client id A when no thing is attached ("Thing policy variables": the variable is not resolved)', () => {
      expect(conn(policies, bareCtx('thingA'))).toBe('implicit-deny');
    });

    it('refuses when IsAttached is false even with a thing name (Bool condition)', () => {
      expect(conn(policies, thingCtx('thingA', { isAttached: false }))).toBe('implicit-deny');
    });

    it('refuses another client id on thing A certificate', () => {
      const ctx = thingCtx('thingA', { clientId: 'thingB' });
      expect(conn(policies, ctx)).toBe('implicit-deny');
      expect(evaluate(policies, 'iot:Connect', clientArn(A, 'thingA'), bareCtx('thingB'))).toBe(
        'implicit-deny',
      );
    });

    it.each(['#', '+', '*', '?', 'thingA/x', 'thing*', 'thingA?', '${iot:Connection.Thing.ThingName}'])(
      'refuses the unregistered client id %j',
      (clientId) => {
        expect(conn(policies, bareCtx(clientId))).toBe('implicit-deny');
      },
    );
  });

  describe('iot:Publish and iot:Receive', () => {
    it.each([
      'things/thingA/credentials/request',
      'things/thingA/x/y/z',
      'dt/thingA/telemetry',
      '$aws/things/thingA/shadow/update',
      '$aws/things/thingA/shadow/name/firmware/update',
    ])('allows its own topic %s', (topic) => {
      expect(pub(policies, topic, thingA)).toBe('allow');
      expect(recv(policies, topic, thingA)).toBe('allow');
    });

    it.each([
      'things/thingB/credentials/request',
      'dt/thingB/telemetry',
      '$aws/things/thingB/shadow/update',
      'things/thingAB/x', // a prefix of another thing's name is not enough
      'things/thingA', // the policy needs a level below the thing
      'things/+/x',
      'things/#',
      'other/thingA/x',
    ])('denies %s', (topic) => {
      expect(pub(policies, topic, thingA)).toBe('implicit-deny');
      expect(recv(policies, topic, thingA)).toBe('implicit-deny');
    });

    it('does not grant iot:RetainPublish, iot:Connect on topics, or any other action', () => {
      expect(evaluate(policies, 'iot:RetainPublish', topicArn(A, 'things/thingA/x'), thingA)).toBe(
        'implicit-deny',
      );
      expect(evaluate(policies, 'iot:GetRetainedMessage', topicArn(A, 'things/thingA/x'), thingA)).toBe(
        'implicit-deny',
      );
      expect(evaluate(policies, 'iot:Connect', topicArn(A, 'things/thingA/x'), thingA)).toBe('implicit-deny');
    });

    it('grants nothing to a connection with no resolved thing', () => {
      expect(pub(policies, 'things/thingA/x', bareCtx('thingA'))).toBe('implicit-deny');
    });
  });

  describe('iot:Subscribe: MQTT wildcards are literal characters in policies', () => {
    it.each([
      'things/thingA/credentials/response',
      'things/thingA/#',
      'things/thingA/+',
      'things/thingA/+/ack',
    ])('allows its own filter %s', (filter) => {
      expect(sub(policies, filter, thingA)).toBe('allow');
    });

    it.each([
      '#',
      '+',
      'things/#',
      'things/+',
      'things/+/credentials/response',
      '+/thingA/x',
      'things/thingB/#',
      '$aws/#',
    ])('denies the filter %s', (filter) => {
      expect(sub(policies, filter, thingA)).toBe('implicit-deny');
    });

    it('checks topic filters against topicfilter/ ARNs, never topic/ ARNs', () => {
      expect(evaluate(policies, 'iot:Subscribe', topicArn(A, 'things/thingA/x'), thingA)).toBe(
        'implicit-deny',
      );
    });
  });

  describe('a thing name containing policy wildcard characters is substituted literally', () => {
    // Real thing names cannot contain these characters; the engine must still be safe if a
    // registry ever hands one over.
    it.each([
      ['*', 'things/*/x', 'things/thingB/x'],
      ['?', 'things/?/x', 'things/b/x'],
      ['a*', 'things/a*/x', 'things/abc/x'],
    ])('thing %j reaches %s but not %s', (thing, own, other) => {
      const ctx = thingCtx(thing);
      expect(pub(policies, own, ctx)).toBe('allow');
      expect(pub(policies, other, ctx)).toBe('implicit-deny');
      expect(conn(policies, ctx)).toBe('allow');
      expect(
        evaluate(policies, 'iot:Connect', clientArn(A, 'anything'), { ...ctx, clientId: 'anything' }),
      ).toBe('implicit-deny');
    });

    it('thing "#" may subscribe to the literal filter things/#/x only', () => {
      const ctx = thingCtx('#');
      expect(sub(policies, 'things/#/x', ctx)).toBe('allow');
      expect(sub(policies, 'things/#', ctx)).toBe('implicit-deny');
      expect(sub(policies, 'things/thingB/x', ctx)).toBe('implicit-deny');
    });
  });
});

describe('explicit deny and implicit deny ("AWS IoT Core policies": IAM evaluation logic)', () => {
  const allowAll = parsePolicy('allow-all', doc(allow('iot:*', '*')));
  const denyBar = parsePolicy('deny-bar', doc(deny('iot:Publish', topicRes('a/bar'))));

  it('an explicit deny in one policy beats an allow in another, in either order', () => {
    const ctx = bareCtx('c1');
    expect(pub([allowAll, denyBar], 'a/bar', ctx)).toBe('explicit-deny');
    expect(pub([denyBar, allowAll], 'a/bar', ctx)).toBe('explicit-deny');
    expect(pub([allowAll, denyBar], 'a/baz', ctx)).toBe('allow');
  });

  it('no matching statement is an implicit deny; a deny alone is explicit', () => {
    expect(pub([denyBar], 'a/baz', bareCtx('c1'))).toBe('implicit-deny');
    expect(pub([], 'a/baz', bareCtx('c1'))).toBe('implicit-deny');
    expect(pub([denyBar], 'a/bar', bareCtx('c1'))).toBe('explicit-deny');
  });

  it('reports which statement decided', () => {
    const p = parsePolicy(
      'named',
      doc({ Sid: 'ok', ...allow('iot:Publish', '*') }, { Sid: 'no', ...deny('iot:Publish', topicRes('x')) }),
    );
    expect(evaluateDetailed([p], 'iot:Publish', topicRes('y'), bareCtx('c'))).toEqual({
      decision: 'allow',
      policyName: 'named',
      statementIndex: 0,
      sid: 'ok',
    });
    expect(evaluateDetailed([p], 'iot:Publish', topicRes('x'), bareCtx('c'))).toEqual({
      decision: 'explicit-deny',
      policyName: 'named',
      statementIndex: 1,
      sid: 'no',
    });
    expect(evaluateDetailed([p], 'iot:Subscribe', filterRes('y'), bareCtx('c'))).toEqual({
      decision: 'implicit-deny',
    });
  });
});

describe('actions ("AWS IoT Core policy actions")', () => {
  const ctx = bareCtx('c');
  it.each([
    ['iot:*', 'iot:Publish', 'allow'],
    ['iot:*', 'iot:ListRetainedMessages', 'allow'],
    ['*', 'iot:Subscribe', 'allow'],
    ['iot:Pub*', 'iot:Publish', 'allow'],
    ['iot:Pub*', 'iot:RetainPublish', 'implicit-deny'],
    ['iot:*Publish', 'iot:RetainPublish', 'allow'],
    ['iot:Publish', 'iot:RetainPublish', 'implicit-deny'],
    ['iot:Publish', 'IOT:PUBLISH', 'allow'], // action names are case-insensitive, as in IAM
    ['iot:?eceive', 'iot:Receive', 'allow'],
    ['greengrass:*', 'iot:Publish', 'implicit-deny'],
  ])('Action %s against %s -> %s', (action, requested, expected) => {
    expect(evaluate(one(doc(allow(action, '*'))), requested, topicRes('t'), ctx)).toBe(expected);
  });

  it('NotAction applies the statement to every other action', () => {
    const ps = one(doc({ Effect: 'Allow', NotAction: 'iot:Subscribe', Resource: '*' }));
    expect(pub(ps, 't', ctx)).toBe('allow');
    expect(sub(ps, 't', ctx)).toBe('implicit-deny');
  });
});

describe('resource wildcards ("Using wildcard characters in MQTT and AWS IoT Core policies")', () => {
  const ctx = bareCtx('c');
  it('* matches any run of characters, across "/" levels', () => {
    const ps = one(doc(allow('iot:Publish', topicRes('sensor/*'))));
    expect(pub(ps, 'sensor/temperature', ctx)).toBe('allow');
    expect(pub(ps, 'sensor/temperature/room1', ctx)).toBe('allow');
    expect(pub(ps, 'sensor/', ctx)).toBe('allow');
    expect(pub(ps, 'sensor', ctx)).toBe('implicit-deny');
    expect(pub(ps, 'Sensor/x', ctx)).toBe('implicit-deny'); // resources are case-sensitive
  });

  it('? matches exactly one character', () => {
    const ps = one(doc(allow('iot:Publish', topicRes('test/topic?/some'))));
    expect(pub(ps, 'test/topic1/some', ctx)).toBe('allow');
    expect(pub(ps, 'test/topic/some', ctx)).toBe('implicit-deny');
    expect(pub(ps, 'test/topic10/some', ctx)).toBe('implicit-deny');
    expect(pub(ps, 'test/topicé/some', ctx)).toBe('allow'); // one character, not one byte
  });

  it('"topicfilter/a/#" only matches the literal filter a/#', () => {
    const ps = one(doc(allow('iot:Subscribe', filterRes('a/#'))));
    expect(sub(ps, 'a/#', ctx)).toBe('allow');
    expect(sub(ps, 'a/b', ctx)).toBe('implicit-deny');
    expect(sub(ps, 'a/+', ctx)).toBe('implicit-deny');
    expect(sub(ps, '#', ctx)).toBe('implicit-deny');
  });

  it('a bare "*" resource covers every ARN', () => {
    const ps = one(doc(allow('iot:Connect', '*')));
    expect(conn(ps, bareCtx('anything'))).toBe('allow');
  });

  it('NotResource applies the statement to every other resource', () => {
    const ps = one(doc({ Effect: 'Allow', Action: 'iot:Publish', NotResource: topicRes('secret/*') }));
    expect(pub(ps, 'open/x', ctx)).toBe('allow');
    expect(pub(ps, 'secret/x', ctx)).toBe('implicit-deny');
  });

  it('"AWS IoT policy potentially misconfigured" (Device Defender): MQTT wildcards in a Deny do not deny what they look like', () => {
    const ps = one(
      doc(
        allow('iot:Subscribe', filterRes('building/*')),
        deny('iot:Subscribe', filterRes('building/control_room/#')),
      ),
    );
    expect(sub(ps, 'building/control_room/#', ctx)).toBe('explicit-deny');
    expect(sub(ps, 'building/control_room/+', ctx)).toBe('allow');
    expect(sub(ps, 'building/control_room/door', ctx)).toBe('allow');
  });
});

describe('"Publish/Subscribe policy examples" and "Connect policy examples"', () => {
  it('unregistered devices: connect as client1..3 and publish under the client id', () => {
    const ps = one(
      doc(
        allow('iot:Connect', [clientRes('client1'), clientRes('client2'), clientRes('client3')]),
        allow('iot:Publish', topicRes('${iot:ClientId}/*')),
      ),
    );
    expect(conn(ps, bareCtx('client2'))).toBe('allow');
    expect(conn(ps, bareCtx('client4'))).toBe('implicit-deny');
    expect(pub(ps, 'client2/anything', bareCtx('client2'))).toBe('allow');
    expect(pub(ps, 'client1/anything', bareCtx('client2'))).toBe('implicit-deny');
  });

  it('registered devices: subscribe to ${thing}/room* and receive on the matching topics', () => {
    const ps = one(
      doc(
        allow('iot:Connect', clientRes('${iot:Connection.Thing.ThingName}')),
        allow('iot:Subscribe', filterRes('${iot:Connection.Thing.ThingName}/room*')),
        allow('iot:Receive', topicRes('${iot:Connection.Thing.ThingName}/room*')),
      ),
    );
    const ctx = thingCtx('thing1');
    expect(sub(ps, 'thing1/room1', ctx)).toBe('allow');
    expect(sub(ps, 'thing1/room+', ctx)).toBe('allow');
    expect(recv(ps, 'thing1/room2', ctx)).toBe('allow');
    expect(recv(ps, 'thing2/room2', ctx)).toBe('implicit-deny');
  });

  it('topicfilter/some/+/topic only allows subscribing to that exact filter', () => {
    const ps = one(doc(allow('iot:Subscribe', filterRes('some/+/topic'))));
    expect(sub(ps, 'some/+/topic', bareCtx('client1'))).toBe('allow');
    expect(sub(ps, 'some/a/topic', bareCtx('client1'))).toBe('implicit-deny');
  });

  it('publish under the client id except ${iot:ClientId}/bar (Allow + Deny in one policy)', () => {
    const ps = one(
      doc(
        allow('iot:Connect', [clientRes('client1'), clientRes('client2')]),
        allow('iot:Publish', topicRes('${iot:ClientId}/*')),
        deny('iot:Publish', topicRes('${iot:ClientId}/bar')),
      ),
    );
    const ctx = bareCtx('client1');
    expect(pub(ps, 'client1/foo', ctx)).toBe('allow');
    expect(pub(ps, 'client1/bar', ctx)).toBe('explicit-deny');
    expect(pub(ps, 'client1/bar/baz', ctx)).toBe('allow');
    expect(pub(ps, 'client2/foo', ctx)).toBe('implicit-deny');
  });

  it('deny client1 and client2, allow a client id naming a registered thing', () => {
    const ps = one(
      doc(
        deny('iot:Connect', [clientRes('client1'), clientRes('client2')]),
        allow('iot:Connect', clientRes('${iot:Connection.Thing.ThingName}')),
      ),
    );
    expect(conn(ps, thingCtx('sensor-7'))).toBe('allow');
    expect(conn(ps, thingCtx('client1'))).toBe('explicit-deny');
    expect(conn(ps, bareCtx('unregistered'))).toBe('implicit-deny');
  });

  describe('iot:ConnectAttributes (MQTT persistent sessions policy examples)', () => {
    const onlyPersistent = one(
      doc(
        allow('iot:Connect', '*', {
          'ForAllValues:StringEquals': { 'iot:ConnectAttributes': ['PersistentConnect'] },
        }),
      ),
    );
    const onlyDefault = one(
      doc(allow('iot:Connect', '*', { 'ForAllValues:StringEquals': { 'iot:ConnectAttributes': [] } })),
    );
    const mustPersist = one(
      doc(
        allow('iot:Connect', '*', {
          'ForAnyValue:StringEquals': { 'iot:ConnectAttributes': ['PersistentConnect'] },
        }),
      ),
    );
    const noPersistent = one(
      doc(
        allow('iot:Connect', '*'),
        deny('iot:Connect', '*', {
          'ForAnyValue:StringEquals': { 'iot:ConnectAttributes': ['PersistentConnect'] },
        }),
      ),
    );
    const c = (attrs: string[]) => bareCtx('c', { connectAttributes: attrs });

    it('ForAllValues: every requested feature must be listed (an empty set passes)', () => {
      expect(conn(onlyPersistent, c(['PersistentConnect']))).toBe('allow');
      expect(conn(onlyPersistent, c([]))).toBe('allow');
      expect(conn(onlyPersistent, c(['PersistentConnect', 'LastWill']))).toBe('implicit-deny');
      expect(conn(onlyDefault, c([]))).toBe('allow');
      expect(conn(onlyDefault, c(['LastWill']))).toBe('implicit-deny');
    });

    it('ForAnyValue: one requested feature must be listed', () => {
      expect(conn(mustPersist, c(['LastWill', 'PersistentConnect']))).toBe('allow');
      expect(conn(mustPersist, c(['LastWill']))).toBe('implicit-deny');
      expect(conn(mustPersist, c([]))).toBe('implicit-deny');
    });

    it('a Deny with ForAnyValue removes just that feature', () => {
      expect(conn(noPersistent, c(['LastWill']))).toBe('allow');
      expect(conn(noPersistent, c(['PersistentConnect']))).toBe('explicit-deny');
    });
  });

  it('ArnEquals on iot:LastWillTopic', () => {
    const ps = one(
      doc(
        allow('iot:Connect', '*', { ArnEquals: { 'iot:LastWillTopic': topicRes('my/lastwill/topicName') } }),
      ),
    );
    expect(conn(ps, bareCtx('c', { lastWillTopic: 'my/lastwill/topicName' }))).toBe('allow');
    expect(conn(ps, bareCtx('c', { lastWillTopic: 'my/lastwill/other' }))).toBe('implicit-deny');
    expect(conn(ps, bareCtx('c'))).toBe('implicit-deny');
    const like = one(
      doc(allow('iot:Connect', '*', { ArnLike: { 'iot:LastWillTopic': 'arn:aws:iot:*:*:topic/my/*' } })),
    );
    expect(conn(like, bareCtx('c', { lastWillTopic: 'my/lastwill/other' }))).toBe('allow');
  });
});

describe('policy variables ("AWS IoT Core policy variables")', () => {
  it('"Basic AWS IoT Core policy variables": ${iot:ClientId} in a topic and aws:SourceIp in IpAddress', () => {
    const ps = one(
      doc(
        allow('iot:Connect', clientRes('clientid1')),
        allow('iot:Publish', topicRes('my/topic/${iot:ClientId}'), {
          IpAddress: { 'aws:SourceIp': '123.45.167.89' },
        }),
      ),
    );
    const ctx = bareCtx('clientid1', { sourceIp: '123.45.167.89' });
    expect(conn(ps, ctx)).toBe('allow');
    expect(pub(ps, 'my/topic/clientid1', ctx)).toBe('allow');
    expect(pub(ps, 'my/topic/clientid1', { ...ctx, sourceIp: '::ffff:123.45.167.89' })).toBe('allow');
    expect(pub(ps, 'my/topic/clientid1', { ...ctx, sourceIp: '123.45.167.90' })).toBe('implicit-deny');
    expect(pub(ps, 'my/topic/clientid1', bareCtx('clientid1'))).toBe('implicit-deny');
    expect(pub(ps, 'my/topic/other', ctx)).toBe('implicit-deny');
  });

  it('IpAddress and NotIpAddress take CIDR blocks, IPv4 and IPv6', () => {
    const ps = one(
      doc(
        allow('iot:Publish', '*', { IpAddress: { 'aws:SourceIp': ['10.0.0.0/8', '2001:db8::/32'] } }),
        deny('iot:Publish', '*', { NotIpAddress: { 'aws:SourceIp': ['10.0.0.0/8', '2001:db8::/32'] } }),
      ),
    );
    expect(pub(ps, 't', bareCtx('c', { sourceIp: '10.1.2.3' }))).toBe('allow');
    expect(pub(ps, 't', bareCtx('c', { sourceIp: '2001:db8::1' }))).toBe('allow');
    expect(pub(ps, 't', bareCtx('c', { sourceIp: '11.1.2.3' }))).toBe('explicit-deny');
    // NotIpAddress with the key missing is true ("IAM JSON policy elements: Condition operators")
    expect(pub(ps, 't', bareCtx('c'))).toBe('explicit-deny');
  });

  it('the "+" client id of "Basic AWS IoT Core policy variables" reaches the literal filter my/+/topic, and Connect stops it', () => {
    const subscribeOnly = parsePolicy(
      'sub',
      doc(allow('iot:Subscribe', filterRes('my/${iot:ClientId}/topic'))),
    );
    // The documented gap: substitution is literal, so "+" yields the filter my/+/topic.
    expect(sub([subscribeOnly], 'my/+/topic', bareCtx('+'))).toBe('allow');
    expect(sub([subscribeOnly], 'my/x/topic', bareCtx('+'))).toBe('implicit-deny');
    // The documented fix: control which client ids may connect.
    const connectPolicy = parsePolicy('connect', doc(allow('iot:Connect', clientRes('clientid1'))));
    expect(conn([connectPolicy, subscribeOnly], bareCtx('+'))).toBe('implicit-deny');
  });

  describe('a substituted value is literal text: its * and ? are not wildcards', () => {
    const ps = one(
      doc(
        allow(
          ['iot:Publish', 'iot:Subscribe'],
          [topicRes('${iot:ClientId}/*'), filterRes('${iot:ClientId}/*')],
        ),
      ),
    );
    it.each([
      ['*', '*/x', 'victim/x'],
      ['?', '?/x', 'a/x'],
      ['v*', 'v*/x', 'victim/x'],
      ['#', '#/x', 'victim/x'],
      ['a/b', 'a/b/x', 'a/c/x'],
    ])('client id %j may use %s but not %s', (clientId, own, other) => {
      const ctx = bareCtx(clientId);
      expect(pub(ps, own, ctx)).toBe('allow');
      expect(pub(ps, other, ctx)).toBe('implicit-deny');
      expect(sub(ps, other, ctx)).toBe('implicit-deny');
    });
  });

  it('"Thing policy examples": thing type, attribute and IsAttached conditions', () => {
    const ps = one(
      doc(
        allow('iot:Publish', topicRes('device/stats'), {
          StringEquals: {
            'iot:Connection.Thing.Attributes[attributeName]': 'attributeValue',
            'iot:Connection.Thing.ThingTypeName': 'Thing_Type_Name',
          },
          Bool: { 'iot:Connection.Thing.IsAttached': 'true' },
        }),
      ),
    );
    const good = thingCtx('t1', {
      thingTypeName: 'Thing_Type_Name',
      thingAttributes: { attributeName: 'attributeValue' },
    });
    expect(pub(ps, 'device/stats', good)).toBe('allow');
    expect(pub(ps, 'device/stats', { ...good, thingTypeName: 'Other' })).toBe('implicit-deny');
    expect(pub(ps, 'device/stats', { ...good, thingAttributes: { attributeName: 'x' } })).toBe(
      'implicit-deny',
    );
    expect(pub(ps, 'device/stats', { ...good, thingAttributes: { AttributeName: 'attributeValue' } })).toBe(
      'implicit-deny',
    ); // attribute names are case-sensitive
    expect(pub(ps, 'device/stats', { ...good, isAttached: false })).toBe('implicit-deny');
    // No thing resolved: the thing variables have no value, the StringEquals conditions are false.
    expect(
      pub(ps, 'device/stats', bareCtx('t1', { thingTypeName: 'Thing_Type_Name', isAttached: true })),
    ).toBe('implicit-deny');
  });

  it('"Thing policy examples": an unresolved thing attribute in a resource leads to access denied', () => {
    const ps = one(
      doc(allow('iot:Publish', topicRes('${iot:Connection.Thing.Attributes[attributeName]}/*'))),
    );
    const withAttr = thingCtx('t1', { thingAttributes: { attributeName: 'floor3' } });
    expect(pub(ps, 'floor3/x', withAttr)).toBe('allow');
    expect(pub(ps, 'floor3/x', thingCtx('t1'))).toBe('implicit-deny');
    expect(pub(ps, 'floor3/x', bareCtx('t1', { thingAttributes: { attributeName: 'floor3' } }))).toBe(
      'implicit-deny',
    );
    // The unresolved text is not matched literally either.
    expect(pub(ps, '${iot:Connection.Thing.Attributes[attributeName]}/x', thingCtx('t1'))).toBe(
      'implicit-deny',
    );
  });

  it('an unresolved variable only disables the resource entry that holds it', () => {
    const ps = one(
      doc(allow('iot:Publish', [topicRes('${iot:Connection.Thing.ThingName}/*'), topicRes('public/*')])),
    );
    expect(pub(ps, 'public/x', bareCtx('c'))).toBe('allow');
    expect(pub(ps, 'c/x', bareCtx('c'))).toBe('implicit-deny');
  });

  it('a Deny whose only resource cannot be resolved does not apply (decision made where the docs are silent)', () => {
    const ps = one(
      doc(
        allow('iot:Publish', '*'),
        deny('iot:Publish', topicRes('${iot:Connection.Thing.ThingTypeName}/*')),
      ),
    );
    expect(pub(ps, 'x/y', bareCtx('c'))).toBe('allow');
    expect(pub(ps, 'gateway/y', thingCtx('c', { thingTypeName: 'gateway' }))).toBe('explicit-deny');
  });

  it('NotResource with an unresolvable entry does not apply at all (it must not widen access)', () => {
    const ps = one(
      doc({
        Effect: 'Allow',
        Action: 'iot:Publish',
        NotResource: topicRes('${iot:Connection.Thing.ThingName}/*'),
      }),
    );
    expect(pub(ps, 'x/y', thingCtx('t'))).toBe('allow');
    expect(pub(ps, 't/y', thingCtx('t'))).toBe('implicit-deny');
    expect(pub(ps, 'x/y', bareCtx('t'))).toBe('implicit-deny');
  });

  it('a condition value with an unresolvable variable is false, whatever the operator', () => {
    const ps = one(
      doc(
        allow('iot:Publish', '*', {
          StringNotEquals: { 'iot:ClientId': '${iot:Connection.Thing.ThingName}' },
        }),
      ),
    );
    expect(pub(ps, 't', bareCtx('c'))).toBe('implicit-deny');
    expect(pub(ps, 't', thingCtx('c', { clientId: 'other' }))).toBe('allow');
    expect(pub(ps, 't', thingCtx('c'))).toBe('implicit-deny');
  });

  it('variables in condition values are substituted (StringEquals against another key)', () => {
    const ps = one(
      doc(
        allow('iot:Publish', '*', { StringEquals: { 'iot:ClientId': '${iot:Connection.Thing.ThingName}' } }),
      ),
    );
    expect(pub(ps, 't', thingCtx('t1'))).toBe('allow');
    expect(pub(ps, 't', thingCtx('t1', { clientId: 't2' }))).toBe('implicit-deny');
  });

  it('variable and key names are case-insensitive', () => {
    const ps = one(
      doc(allow('iot:Publish', topicRes('${IOT:clientid}/*'), { StringEquals: { 'IOT:CLIENTID': 'c' } })),
    );
    expect(pub(ps, 'c/x', bareCtx('c'))).toBe('allow');
  });

  it('${*}, ${?} and ${$} stand for literal characters ("IAM policy elements: Variables and tags")', () => {
    const ps = one(doc(allow('iot:Publish', topicRes('a/${*}/${?}/${$}/*'))));
    expect(pub(ps, 'a/*/?/$/x', bareCtx('c'))).toBe('allow');
    expect(pub(ps, 'a/b/c/$/x', bareCtx('c'))).toBe('implicit-deny');
  });

  it('variables are plain text unless Version is 2012-10-17 ("IAM JSON policy elements: Version")', () => {
    const old = one({
      Version: '2008-10-17',
      Statement: [allow('iot:Publish', topicRes('${iot:ClientId}/*'))],
    });
    expect(pub(old, 'c/x', bareCtx('c'))).toBe('implicit-deny');
    expect(pub(old, '${iot:ClientId}/x', bareCtx('c'))).toBe('allow');
  });

  it('${iot:DomainName} and ${iot:CertificateId}', () => {
    const ps = one(
      doc(
        allow('iot:Publish', topicRes('${iot:CertificateId}/*'), {
          StringEquals: { 'iot:DomainName': 'd.example.com' },
        }),
      ),
    );
    const ctx = bareCtx('c', { certificateId: 'abc123', domainName: 'd.example.com' });
    expect(pub(ps, 'abc123/x', ctx)).toBe('allow');
    expect(pub(ps, 'abc123/x', { ...ctx, domainName: 'other' })).toBe('implicit-deny');
  });
});

describe('"X.509 Certificate AWS IoT Core policy variables"', () => {
  const certCtx = (subject: Record<string, string | string[]>, extra: Partial<PolicyContext> = {}) =>
    thingCtx('thing1', {
      certificate: { subject, issuer: { CommonName: 'Primary CA' }, serialNumber: '921285cb' },
      ...extra,
    });

  it('ForAllValues:StringEquals on Certificate.Subject.Organization.List (Registered devices (2))', () => {
    const ps = one(
      doc(
        allow('iot:Connect', clientRes('${iot:Connection.Thing.ThingName}')),
        allow('iot:Publish', topicRes('my/topic/${iot:Connection.Thing.ThingName}'), {
          'ForAllValues:StringEquals': {
            'iot:Certificate.Subject.Organization.List': ['Example Corp', 'AnyCompany'],
          },
        }),
      ),
    );
    expect(pub(ps, 'my/topic/thing1', certCtx({ Organization: ['Example Corp'] }))).toBe('allow');
    expect(pub(ps, 'my/topic/thing1', certCtx({ Organization: ['AnyCompany', 'Example Corp'] }))).toBe(
      'allow',
    );
    expect(pub(ps, 'my/topic/thing1', certCtx({ Organization: ['Example Corp', 'Evil Inc'] }))).toBe(
      'implicit-deny',
    );
  });

  it('substitutes the first value by default, .N the N-th, and fails past the last value', () => {
    const ps = one(
      doc(
        allow('iot:Publish', [
          topicRes('cn/${iot:Certificate.Subject.CommonName}'),
          topicRes('c1/${iot:Certificate.Subject.Country.1}'),
          topicRes('c2/${iot:Certificate.Subject.Country.2}'),
          topicRes('issuer/${iot:Certificate.Issuer.CommonName}'),
          topicRes('serial/${iot:Certificate.SerialNumber}'),
        ]),
      ),
    );
    const ctx = certCtx({ commonName: 'LightBulb', Country: ['US', 'CA'] });
    expect(pub(ps, 'cn/LightBulb', ctx)).toBe('allow');
    expect(pub(ps, 'c1/CA', ctx)).toBe('allow');
    expect(pub(ps, 'c1/US', ctx)).toBe('implicit-deny');
    expect(pub(ps, 'c2/', ctx)).toBe('implicit-deny');
    expect(pub(ps, 'issuer/Primary CA', ctx)).toBe('allow');
    expect(pub(ps, 'serial/921285cb', ctx)).toBe('allow');
  });

  it('does not substitute an attribute holding a wildcard character, or longer than 1024 characters', () => {
    const ps = one(doc(allow('iot:Publish', topicRes('cn/${iot:Certificate.Subject.CommonName}/*'))));
    expect(pub(ps, 'cn/dev*/x', certCtx({ CommonName: 'dev*' }))).toBe('implicit-deny');
    expect(pub(ps, 'cn/dev?/x', certCtx({ CommonName: 'dev?' }))).toBe('implicit-deny');
    const long = 'x'.repeat(1025);
    expect(pub(ps, `cn/${long}/x`, certCtx({ CommonName: long }))).toBe('implicit-deny');
    expect(pub(ps, 'cn/dev/x', certCtx({ CommonName: 'dev' }))).toBe('allow');
  });

  it('subject alternative names are available too', () => {
    const ps = one(
      doc(allow('iot:Publish', topicRes('dns/${iot:Certificate.Subject.AlternativeName.DNSName}'))),
    );
    const ctx = thingCtx('t', {
      certificate: { subjectAlternativeName: { DNSName: ['example.com', 'b.example.com'] } },
    });
    expect(pub(ps, 'dns/example.com', ctx)).toBe('allow');
  });
});

describe('condition operators ("IAM JSON policy elements: Condition operators")', () => {
  const ctx = bareCtx('dev-42', {
    isAttached: true,
    extraKeys: { 'custom:Count': '7', 'custom:Tags': ['a', 'b'] },
  });
  const check = (Condition: unknown, c: PolicyContext = ctx) =>
    pub(one(doc(allow('iot:Publish', '*', Condition))), 't', c);

  it.each([
    [{ StringEquals: { 'iot:ClientId': 'dev-42' } }, 'allow'],
    [{ StringEquals: { 'iot:ClientId': ['x', 'dev-42'] } }, 'allow'], // values of one key are ORed
    [{ StringEquals: { 'iot:ClientId': 'DEV-42' } }, 'implicit-deny'],
    [{ StringEqualsIgnoreCase: { 'iot:ClientId': 'DEV-42' } }, 'allow'],
    [{ StringNotEquals: { 'iot:ClientId': ['x', 'y'] } }, 'allow'],
    [{ StringNotEquals: { 'iot:ClientId': ['x', 'dev-42'] } }, 'implicit-deny'],
    [{ StringNotEqualsIgnoreCase: { 'iot:ClientId': 'DEV-42' } }, 'implicit-deny'],
    [{ StringLike: { 'iot:ClientId': 'dev-*' } }, 'allow'],
    [{ StringLike: { 'iot:ClientId': 'dev-?' } }, 'implicit-deny'],
    [{ StringEquals: { 'iot:ClientId': 'dev-*' } }, 'implicit-deny'], // no wildcards in StringEquals
    [{ StringNotLike: { 'iot:ClientId': 'sensor-*' } }, 'allow'],
    [{ Bool: { 'iot:Connection.Thing.IsAttached': 'true' } }, 'allow'],
    [{ Bool: { 'iot:Connection.Thing.IsAttached': true } }, 'allow'], // JSON booleans are accepted
    [{ Bool: { 'iot:Connection.Thing.IsAttached': 'false' } }, 'implicit-deny'],
    [{ NumericGreaterThan: { 'custom:Count': '5' } }, 'allow'],
    [{ NumericLessThanEquals: { 'custom:Count': 6 } }, 'implicit-deny'],
    [{ NumericEquals: { 'custom:Count': '7' } }, 'allow'],
    [{ StringEquals: { 'iot:ClientId': 'dev-42', 'iot:Connection.Thing.IsAttached': 'true' } }, 'allow'], // keys ANDed
    [
      { StringEquals: { 'iot:ClientId': 'dev-42' }, Bool: { 'iot:Connection.Thing.IsAttached': 'false' } },
      'implicit-deny',
    ], // operators ANDed
    [{ 'ForAnyValue:StringEquals': { 'custom:Tags': 'b' } }, 'allow'],
    [{ 'ForAllValues:StringLike': { 'custom:Tags': ['a', 'c*'] } }, 'implicit-deny'],
  ])('%j -> %s', (condition, expected) => {
    expect(check(condition)).toBe(expected);
  });

  it('a missing key makes positive operators false and negated operators true', () => {
    expect(check({ StringEquals: { 'iot:Connection.Thing.ThingName': 'x' } })).toBe('implicit-deny');
    expect(check({ StringNotEquals: { 'iot:Connection.Thing.ThingName': 'x' } })).toBe('allow');
    expect(check({ StringNotLike: { 'aws:SourceIp': '10.*' } })).toBe('allow');
    expect(check({ ArnNotLike: { 'iot:LastWillTopic': 'arn:aws:iot:*:*:topic/x' } })).toBe('allow');
  });

  it('...IfExists passes when the key is missing and checks it when present', () => {
    expect(check({ StringEqualsIfExists: { 'iot:Connection.Thing.ThingTypeName': 'gateway' } })).toBe(
      'allow',
    );
    expect(check({ StringEqualsIfExists: { 'iot:ClientId': 'other' } })).toBe('implicit-deny');
    expect(check({ StringEqualsIfExists: { 'iot:ClientId': 'dev-42' } })).toBe('allow');
  });

  it('Null checks whether a key is present', () => {
    expect(check({ Null: { 'iot:Connection.Thing.ThingName': 'true' } })).toBe('allow');
    expect(check({ Null: { 'iot:Connection.Thing.ThingName': 'false' } })).toBe('implicit-deny');
    expect(check({ Null: { 'iot:ClientId': 'false' } })).toBe('allow');
  });

  it('Date operators compare aws:CurrentTime', () => {
    const now = new Date('2025-06-01T00:00:00Z');
    expect(check({ DateLessThan: { 'aws:CurrentTime': '2026-01-01T00:00:00Z' } }, { ...ctx, now })).toBe(
      'allow',
    );
    expect(check({ DateGreaterThan: { 'aws:CurrentTime': '2026-01-01T00:00:00Z' } }, { ...ctx, now })).toBe(
      'implicit-deny',
    );
    expect(check({ DateLessThan: { 'aws:CurrentTime': '2026-01-01T00:00:00Z' } })).toBe('implicit-deny');
  });
});

describe('parsePolicy validation', () => {
  const fails = (document: unknown, pattern: RegExp) => {
    expect(() => parsePolicy('bad', document)).toThrow(PolicyDocumentError);
    expect(() => parsePolicy('bad', document)).toThrow(pattern);
  };

  it('names the offending field', () => {
    fails(
      doc(allow('iot:Publish', '*'), { Effect: 'Permit', Action: 'iot:Publish', Resource: '*' }),
      /Statement\[1\]\.Effect: /,
    );
    fails(
      doc({ Effect: 'Allow', Action: 'iot:Publish', Resources: '*' }),
      /Statement\[0\]\.Resources: is not a policy element/,
    );
    fails(
      doc({ Effect: 'Allow', Action: 'iot:Publish' }),
      /Statement\[0\]\.Resource: .*exactly one of Resource or NotResource/,
    );
    fails(
      doc({ Effect: 'Allow', Action: 'iot:Publish', NotAction: 'iot:Connect', Resource: '*' }),
      /Statement\[0\]\.Action: .*exactly one of Action or NotAction/,
    );
    fails(doc(allow('publish', '*')), /Statement\[0\]\.Action\[0\]: /);
    fails(doc(allow('iot:Publish', 'topic/x')), /Statement\[0\]\.Resource\[0\]: must be "\*" or an ARN/);
    fails(doc(allow('iot:Publish', [])), /Statement\[0\]\.Resource: must name at least one resource/);
    fails({ Version: '2012-10-17', Statement: [] }, /Statement: must contain at least one statement/);
    fails({ Version: '2019-01-01', Statement: [allow('iot:*', '*')] }, /Version: /);
    fails({ Statement: [allow('iot:*', '*')], Principal: '*' }, /Principal: is not a policy element/);
    fails(
      doc(allow('iot:*', '*', { StringSortOf: { 'iot:ClientId': 'x' } })),
      /Condition\.StringSortOf\.iot:ClientId: unknown condition operator/,
    );
    fails(
      doc(allow('iot:*', '*', { IpAddress: { 'aws:SourceIp': '10.0.0.0/33' } })),
      /not an IP address or CIDR block/,
    );
    fails(
      doc(allow('iot:*', '*', { Bool: { 'iot:Connection.Thing.IsAttached': 'yes' } })),
      /is not true or false/,
    );
    fails(doc(allow('iot:*', '*', { NumericEquals: { 'custom:n': 'seven' } })), /is not a number/);
    fails('{"Version": "2012-10-17", ', /\(document\): not valid JSON/);
    fails(42, /\(document\): /);
  });

  it('accepts JSON text, a single statement object and scalar Action/Resource', () => {
    const p = parsePolicy(
      'text',
      JSON.stringify({
        Version: '2012-10-17',
        Statement: { Effect: 'Allow', Action: 'iot:Connect', Resource: '*' },
      }),
    );
    expect(p.name).toBe('text');
    expect(p.statements).toHaveLength(1);
    expect(p.document.Statement).toEqual([{ Effect: 'Allow', Action: ['iot:Connect'], Resource: ['*'] }]);
    expect(conn([p], bareCtx('c'))).toBe('allow');
  });

  it('parses the default device policy document with CloudFormation-style pseudo parameters', () => {
    // The CDK renders ${AWS::Region}; those are not policy variables the broker knows, and the
    // document still parses.
    expect(() =>
      parsePolicy(DEVICE_POLICY_NAME, devicePolicyDocument('${AWS::Region}', '${AWS::AccountId}')),
    ).not.toThrow();
  });
});

describe('MQTT topic names and filters (MQTT 3.1.1 section 4.7)', () => {
  it.each([
    'a',
    'a/b',
    '/',
    '/a',
    'a/',
    'a//b',
    'sport/tennis/player1',
    '$aws/things/t/shadow/update',
    'ünïcödé/😀',
  ])('valid topic name %j', (t) => {
    expect(isValidTopicName(t)).toBe(true);
  });

  it.each(['', 'a/+', 'a/#', '#', '+', 'a+b', 'a\u0000b', 'a\uD800b', 'x'.repeat(65536)])(
    'invalid topic name %j',
    (t) => {
      expect(isValidTopicName(t)).toBe(false);
    },
  );

  it.each([
    '#',
    '+',
    '+/+',
    '/+',
    'sport/#',
    'sport/tennis/#',
    'sport/+/player1',
    '+/tennis/#',
    'a',
    '$aws/things/+/shadow/#',
  ])('valid topic filter %j', (f) => {
    expect(isValidTopicFilter(f)).toBe(true);
  });

  it.each([
    '',
    'sport/tennis#',
    'sport/tennis/#/ranking',
    'sport+',
    'sport/+x',
    '#/a',
    'a/##',
    'a\u0000',
    '\uDC00',
  ])('invalid topic filter %j', (f) => {
    expect(isValidTopicFilter(f)).toBe(false);
  });

  it.each([
    ['sport/tennis/player1/#', 'sport/tennis/player1', true],
    ['sport/tennis/player1/#', 'sport/tennis/player1/ranking', true],
    ['sport/tennis/player1/#', 'sport/tennis/player1/score/wimbledon', true],
    ['sport/#', 'sport', true],
    ['sport/tennis/+', 'sport/tennis/player1', true],
    ['sport/tennis/+', 'sport/tennis/player1/ranking', false],
    ['sport/+', 'sport', false],
    ['sport/+', 'sport/', true],
    ['+/+', '/finance', true],
    ['/+', '/finance', true],
    ['+', '/finance', false],
    ['#', 'anything/at/all', true],
    ['#', '$SYS/x', false],
    ['+/monitor/Clients', '$SYS/monitor/Clients', false],
    ['$SYS/#', '$SYS/monitor/Clients', true],
    ['$SYS/monitor/+', '$SYS/monitor/Clients', true],
    ['$aws/things/+/shadow/update/accepted', '$aws/things/t1/shadow/update/accepted', true],
    ['a/b', 'a/b', true],
    ['a/b', 'A/b', false],
    ['a/+/c', 'a/b/c/d', false],
    ['a/#', 'a/+', false], // not a topic name
    ['a/b#', 'a/b', false], // not a filter
  ])('filter %j vs topic %j -> %s', (filter, topic, expected) => {
    expect(topicMatchesFilter(filter, topic)).toBe(expected);
  });
});

describe('IoT Core topic quotas ("AWS IoT Core message broker and protocol limits and quotas")', () => {
  it('allows 256 bytes of UTF-8 and refuses 257', () => {
    expect(checkIotTopicLimits('a'.repeat(256))).toEqual({ ok: true });
    expect(checkIotTopicLimits('a'.repeat(257))).toMatchObject({ ok: false, code: 'TOPIC_TOO_LONG' });
    // counted in bytes, not characters: 128 two-byte characters are 256 bytes
    expect(checkIotTopicLimits('é'.repeat(128))).toEqual({ ok: true });
    expect(checkIotTopicLimits(`${'é'.repeat(128)}a`)).toMatchObject({ ok: false, code: 'TOPIC_TOO_LONG' });
  });

  it('allows 7 forward slashes and refuses 8', () => {
    expect(checkIotTopicLimits('a/b/c/d/e/f/g/h')).toEqual({ ok: true });
    expect(checkIotTopicLimits('a/b/c/d/e/f/g/h/i')).toMatchObject({ ok: false, code: 'TOO_MANY_SLASHES' });
    expect(checkIotTopicLimits('things/t/+/a/b/c/d/e/#')).toMatchObject({
      ok: false,
      code: 'TOO_MANY_SLASHES',
    });
  });

  it('does not count the $aws/rules/rule-name/ prefix of Basic Ingest topics', () => {
    expect(
      checkIotTopicLimits('$aws/rules/BuildingManager/Buildings/Building5/Floor2/Room201/Lights'),
    ).toEqual({
      ok: true,
    });
    expect(checkIotTopicLimits('$aws/rules/r/a/b/c/d/e/f/g/h')).toEqual({ ok: true });
    expect(checkIotTopicLimits('$aws/rules/r/a/b/c/d/e/f/g/h/i')).toMatchObject({
      ok: false,
      code: 'TOO_MANY_SLASHES',
    });
    expect(checkIotTopicLimits(`$aws/rules/r/${'a'.repeat(256)}`)).toEqual({ ok: true });
    expect(checkIotTopicLimits(`$aws/rules/r/${'a'.repeat(257)}`)).toMatchObject({
      ok: false,
      code: 'TOPIC_TOO_LONG',
    });
  });

  it('counts other reserved $aws topics in full (named shadow topics stay within the limit)', () => {
    expect(checkIotTopicLimits('$aws/things/t/shadow/name/s/update/accepted')).toEqual({ ok: true });
    expect(checkIotTopicLimits('$aws/things/t/shadow/name/s/update/accepted/x')).toMatchObject({
      ok: false,
      code: 'TOO_MANY_SLASHES',
    });
  });
});
