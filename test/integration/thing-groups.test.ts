/**
 * Static thing groups on the local IoT control plane, through @aws-sdk/client-iot unchanged. Behaviour as
 * documented in the AWS IoT API Reference:
 * - CreateThingGroup: "If the ThingGroup that you create has the exact same attributes as an existing
 *   ThingGroup, you will get a 200 success response." Different properties: ResourceAlreadyExistsException.
 * - DeleteThingGroup of a group that does not exist succeeds; a group with child groups cannot be deleted.
 * - ListThingsInThingGroup pages with nextToken / maxResults.
 * - IAM: iot:{Operation} on the `thinggroup` resource (and, for Add/RemoveThingToThingGroup, the `thing`).
 */
import {
  AddThingToThingGroupCommand,
  CreateThingCommand,
  CreateThingGroupCommand,
  DeleteThingCommand,
  DeleteThingGroupCommand,
  DescribeThingGroupCommand,
  InvalidRequestException,
  IoTClient,
  ListThingGroupsCommand,
  ListThingsInThingGroupCommand,
  paginateListThingsInThingGroup,
  RemoveThingFromThingGroupCommand,
  ResourceAlreadyExistsException,
  ResourceNotFoundException,
} from '@aws-sdk/client-iot';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Registry } from '../../cloud/local/registry.js';
import { removeDir, startTestCloud, type TestCloud } from '../helpers/cloud.js';

let tc: TestCloud;
let iot: IoTClient;

beforeAll(async () => {
  tc = await startTestCloud();
  iot = new IoTClient({ ...tc.cloud.sdkConfig(), maxAttempts: 1 });
  for (const name of ['tg-a', 'tg-b', 'tg-c', 'tg-d', 'tg-e']) {
    await iot.send(new CreateThingCommand({ thingName: name }));
  }
});
afterAll(async () => {
  iot?.destroy();
  await tc?.stop();
  if (tc) removeDir(tc.dataDir);
});

describe('thing groups', () => {
  it('creates, describes (idempotently) and refuses a different configuration', async () => {
    const created = await iot.send(
      new CreateThingGroupCommand({
        thingGroupName: 'line-1',
        thingGroupProperties: {
          thingGroupDescription: 'press line 1',
          attributePayload: { attributes: { site: 'hh' } },
        },
      }),
    );
    expect(created.thingGroupArn).toBe(
      `arn:aws:iot:us-east-1:${tc.cloud.options.accountId}:thinggroup/line-1`,
    );
    const again = await iot.send(
      new CreateThingGroupCommand({
        thingGroupName: 'line-1',
        thingGroupProperties: {
          thingGroupDescription: 'press line 1',
          attributePayload: { attributes: { site: 'hh' } },
        },
      }),
    );
    expect(again.thingGroupId).toBe(created.thingGroupId);
    await expect(
      iot.send(
        new CreateThingGroupCommand({
          thingGroupName: 'line-1',
          thingGroupProperties: { thingGroupDescription: 'x' },
        }),
      ),
    ).rejects.toBeInstanceOf(ResourceAlreadyExistsException);

    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'line-1-east', parentGroupName: 'line-1' }));
    const child = await iot.send(new DescribeThingGroupCommand({ thingGroupName: 'line-1-east' }));
    expect(child.thingGroupMetadata?.parentGroupName).toBe('line-1');
    expect(child.thingGroupMetadata?.rootToParentThingGroups).toEqual([
      { groupName: 'line-1', groupArn: created.thingGroupArn },
    ]);
    const d = await iot.send(new DescribeThingGroupCommand({ thingGroupName: 'line-1' }));
    expect(d.thingGroupProperties).toEqual({
      thingGroupDescription: 'press line 1',
      attributePayload: { attributes: { site: 'hh' } },
    });
    expect(d.thingGroupMetadata?.creationDate).toBeInstanceOf(Date);

    await expect(iot.send(new DescribeThingGroupCommand({ thingGroupName: 'nope' }))).rejects.toBeInstanceOf(
      ResourceNotFoundException,
    );
    await expect(
      iot.send(new CreateThingGroupCommand({ thingGroupName: 'orphan', parentGroupName: 'nope' })),
    ).rejects.toBeInstanceOf(ResourceNotFoundException);
    await expect(
      iot.send(new CreateThingGroupCommand({ thingGroupName: 'bad name!' })),
    ).rejects.toBeInstanceOf(InvalidRequestException);

    const roots = await iot.send(new ListThingGroupsCommand({ recursive: false }));
    expect(roots.thingGroups?.map((g) => g.groupName)).toEqual(['line-1']);
    const children = await iot.send(new ListThingGroupsCommand({ parentGroup: 'line-1' }));
    expect(children.thingGroups?.map((g) => g.groupName)).toEqual(['line-1-east']);

    await expect(iot.send(new DeleteThingGroupCommand({ thingGroupName: 'line-1' }))).rejects.toBeInstanceOf(
      InvalidRequestException,
    );
    await iot.send(new DeleteThingGroupCommand({ thingGroupName: 'line-1-east' }));
    await iot.send(new DeleteThingGroupCommand({ thingGroupName: 'line-1-east' }));
    await iot.send(new DeleteThingGroupCommand({ thingGroupName: 'line-1' }));
    const none = await iot.send(new ListThingGroupsCommand({}));
    expect(none.thingGroups).toEqual([]);
  });

  it('adds and removes things (by name or ARN) and pages through them', async () => {
    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'fleet' }));
    for (const thingName of ['tg-e', 'tg-a', 'tg-c', 'tg-b', 'tg-d']) {
      await iot.send(new AddThingToThingGroupCommand({ thingGroupName: 'fleet', thingName }));
    }
    // Adding twice is not an error.
    await iot.send(new AddThingToThingGroupCommand({ thingGroupName: 'fleet', thingName: 'tg-a' }));
    const first = await iot.send(
      new ListThingsInThingGroupCommand({ thingGroupName: 'fleet', maxResults: 2 }),
    );
    expect(first.things).toEqual(['tg-a', 'tg-b']);
    expect(first.nextToken).toBeDefined();
    const all: string[] = [];
    for await (const page of paginateListThingsInThingGroup(
      { client: iot, pageSize: 2 },
      { thingGroupName: 'fleet' },
    )) {
      all.push(...(page.things ?? []));
    }
    expect(all).toEqual(['tg-a', 'tg-b', 'tg-c', 'tg-d', 'tg-e']);

    const thingArn = `arn:aws:iot:us-east-1:${tc.cloud.options.accountId}:thing/tg-c`;
    const { thingGroupArn } = await iot.send(new DescribeThingGroupCommand({ thingGroupName: 'fleet' }));
    await iot.send(new RemoveThingFromThingGroupCommand({ thingGroupArn, thingArn }));
    await iot.send(new DeleteThingCommand({ thingName: 'tg-d' }));
    const left = await iot.send(new ListThingsInThingGroupCommand({ thingGroupName: 'fleet' }));
    expect(left.things).toEqual(['tg-a', 'tg-b', 'tg-e']);

    await expect(
      iot.send(new AddThingToThingGroupCommand({ thingGroupName: 'fleet', thingName: 'ghost' })),
    ).rejects.toBeInstanceOf(ResourceNotFoundException);
    await expect(
      iot.send(new AddThingToThingGroupCommand({ thingGroupName: 'ghosts', thingName: 'tg-a' })),
    ).rejects.toBeInstanceOf(ResourceNotFoundException);
    await expect(iot.send(new AddThingToThingGroupCommand({ thingName: 'tg-a' }))).rejects.toThrow(
      /thingGroupName: is required/,
    );
    await expect(
      iot.send(new ListThingsInThingGroupCommand({ thingGroupName: 'fleet', nextToken: 'garbage' })),
    ).rejects.toBeInstanceOf(InvalidRequestException);
    await expect(
      iot.send(new ListThingsInThingGroupCommand({ thingGroupName: 'ghosts' })),
    ).rejects.toBeInstanceOf(ResourceNotFoundException);

    // Persisted in the registry file.
    const reread = new Registry(tc.dataDir, { region: 'us-east-1', accountId: tc.cloud.options.accountId });
    expect(reread.listThingsInThingGroup('fleet').sort()).toEqual(['tg-a', 'tg-b', 'tg-e']);
  });

  it('authorizes role sessions on the thing group and the thing', async () => {
    const account = tc.cloud.options.accountId;
    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'ops-allowed' }));
    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'ops-denied' }));
    tc.cloud.iam.putRole({
      roleName: 'thing-group-operator',
      trustPolicy: {
        Version: '2012-10-17',
        Statement: [
          { Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${account}:root` }, Action: 'sts:AssumeRole' },
        ],
      },
      policies: {
        groups: {
          Version: '2012-10-17',
          Statement: [
            {
              Effect: 'Allow',
              Action: ['iot:AddThingToThingGroup', 'iot:ListThingsInThingGroup', 'iot:DescribeThingGroup'],
              Resource: [
                `arn:aws:iot:us-east-1:${account}:thinggroup/ops-allowed`,
                `arn:aws:iot:us-east-1:${account}:thing/tg-a`,
              ],
            },
          ],
        },
      },
    });
    const session = tc.cloud.iam.issueRoleSession('thing-group-operator', 'ops');
    const asRole = new IoTClient({
      ...tc.cloud.sdkConfig(),
      maxAttempts: 1,
      credentials: {
        accessKeyId: session.accessKeyId,
        secretAccessKey: session.secretAccessKey,
        ...(session.sessionToken ? { sessionToken: session.sessionToken } : {}),
      },
    });
    try {
      await asRole.send(
        new AddThingToThingGroupCommand({ thingGroupName: 'ops-allowed', thingName: 'tg-a' }),
      );
      const listed = await asRole.send(new ListThingsInThingGroupCommand({ thingGroupName: 'ops-allowed' }));
      expect(listed.things).toEqual(['tg-a']);
      const denied = { name: 'AccessDeniedException' };
      await expect(
        asRole.send(new AddThingToThingGroupCommand({ thingGroupName: 'ops-allowed', thingName: 'tg-b' })),
      ).rejects.toMatchObject(denied);
      await expect(
        asRole.send(new AddThingToThingGroupCommand({ thingGroupName: 'ops-denied', thingName: 'tg-a' })),
      ).rejects.toMatchObject(denied);
      await expect(
        asRole.send(new ListThingsInThingGroupCommand({ thingGroupName: 'ops-denied' })),
      ).rejects.toMatchObject(denied);
      await expect(
        asRole.send(new CreateThingGroupCommand({ thingGroupName: 'ops-new' })),
      ).rejects.toMatchObject(denied);
      await expect(asRole.send(new ListThingGroupsCommand({}))).rejects.toMatchObject(denied);
    } finally {
      asRole.destroy();
    }
  });
});
