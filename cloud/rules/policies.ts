/**
 * IoT policies: the single source of truth used by the CDK app (as AWS::IoT::Policy) and by the local
 * cloud (attached by `edgefleet local provision` and by JITR activation).
 */

export interface IotPolicyStatement {
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource: string | string[];
  /** IAM-style condition block, e.g. `{ Bool: { 'iot:Connection.Thing.IsAttached': 'true' } }`. */
  Condition?: Record<string, Record<string, string | string[]>>;
}

export interface IotPolicyDocument {
  Version: '2012-10-17';
  Statement: IotPolicyStatement[];
}

/** Name of the policy attached to every gateway certificate. */
export const DEVICE_POLICY_NAME = 'edgefleet-device';

const THING = '${iot:Connection.Thing.ThingName}';

/**
 * The default device policy: a thing may connect only with its own name as client id, and only
 * while the certificate is attached to that thing; it may publish, subscribe and receive only on its
 * own application topics (`things/{thing}/*`, `dt/{thing}/*`) and its own shadows.
 *
 * `region` and `account` are either concrete values (local cloud) or CloudFormation pseudo
 * parameters rendered by the caller (for example `${AWS::Region}` inside Fn::Sub).
 */
export function devicePolicyDocument(region: string, account: string): IotPolicyDocument {
  const arn = (kind: string, rest: string) => `arn:aws:iot:${region}:${account}:${kind}/${rest}`;
  const topics = [`things/${THING}/*`, `dt/${THING}/*`, `$aws/things/${THING}/shadow/*`];
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Action: 'iot:Connect',
        Resource: arn('client', THING),
        Condition: { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } },
      },
      {
        Effect: 'Allow',
        Action: ['iot:Publish', 'iot:Receive'],
        Resource: topics.map((t) => arn('topic', t)),
      },
      {
        Effect: 'Allow',
        Action: 'iot:Subscribe',
        Resource: topics.map((t) => arn('topicfilter', t)),
      },
    ],
  };
}
