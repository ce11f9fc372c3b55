/**
 * The IoT control-plane API of the local cloud, used unchanged through @aws-sdk/client-iot. Behaviour as
 * documented in the AWS IoT API Reference (CreateThing, UpdateThing, DeleteThing, DeleteCertificate,
 * UpdateCertificate, RegisterCertificate, RegisterCACertificate, CreatePolicy, DeletePolicy, ...):
 * - CreateThing: "If this call is made multiple times using the same thing name and configuration, the
 *   call will succeed. If this call is made with the same thing name but different configuration a
 *   ResourceAlreadyExistsException is thrown."
 * - DeleteThing: "Returns successfully with no error if the deletion is successful or you specify a thing
 *   that doesn't exist."
 * - DeleteCertificate: "A certificate cannot be deleted if it has a policy or IoT thing attached to it or
 *   if its status is set to ACTIVE." forceDelete: "Forces the deletion of a certificate if it is inactive
 *   and is not attached to an IoT thing."
 * - AttributePayload.merge: "To remove an attribute, call UpdateThing with an empty attribute value."
 */
import { createPublicKey, X509Certificate } from 'node:crypto';
import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CertificateStateException,
  CreateCertificateFromCsrCommand,
  CreateKeysAndCertificateCommand,
  CreatePolicyCommand,
  CreateThingCommand,
  DeleteCACertificateCommand,
  DeleteCertificateCommand,
  DeletePolicyCommand,
  DeleteThingCommand,
  DescribeCACertificateCommand,
  DescribeCertificateCommand,
  DescribeEndpointCommand,
  DescribeThingCommand,
  DetachPolicyCommand,
  DetachThingPrincipalCommand,
  GetPolicyCommand,
  GetRegistrationCodeCommand,
  IoTClient,
  ListAttachedPoliciesCommand,
  ListCACertificatesCommand,
  ListCertificatesByCACommand,
  ListCertificatesCommand,
  ListPoliciesCommand,
  ListPrincipalThingsCommand,
  ListTargetsForPolicyCommand,
  ListThingPrincipalsCommand,
  ListThingsCommand,
  ListThingTypesCommand,
  paginateListThings,
  RegisterCACertificateCommand,
  RegisterCertificateCommand,
  RegisterCertificateWithoutCACommand,
  ResourceNotFoundException,
  UpdateCACertificateCommand,
  UpdateCertificateCommand,
  UpdateThingCommand,
} from '@aws-sdk/client-iot';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createCsr, createDeviceIdentity, createRootCa, type PemIdentity } from '../../certs-tooling/x509.js';
import { DEVICE_POLICY_NAME } from '../../cloud/rules/policies.js';
import {
  closed,
  connectDevice,
  removeDir,
  startTestCloud,
  type TestCloud,
  tryConnect,
} from '../helpers/cloud.js';

let tc: TestCloud;
let iot: IoTClient;
const ACCOUNT = '000000000000';

beforeAll(async () => {
  tc = await startTestCloud();
  iot = new IoTClient(tc.cloud.sdkConfig());
});

afterAll(async () => {
  iot?.destroy();
  await tc.stop();
  removeDir(tc.dataDir);
});

/** Expects the call to fail with the given SDK error type and HTTP status. */
async function fails(p: Promise<unknown>, name: string, status: number, message?: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } },
  );
  expect(err).toBeDefined();
  expect({ name: err?.name, status: err?.$metadata?.httpStatusCode }).toEqual({ name, status });
  if (message) expect(err?.message).toMatch(message);
}

const policyDoc = (action = 'iot:Connect') =>
  JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: action, Resource: '*' }] });

async function newCertificate(active = false) {
  const { csrPem, keyPem } = await createCsr('api-device');
  const out = await iot.send(
    new CreateCertificateFromCsrCommand({ certificateSigningRequest: csrPem, setAsActive: active }),
  );
  return { arn: out.certificateArn!, id: out.certificateId!, pem: out.certificatePem!, keyPem };
}

describe('things', () => {
  it('CreateThing, then DescribeThing with defaultClientId and version', async () => {
    const created = await iot.send(
      new CreateThingCommand({ thingName: 'pump-1', attributePayload: { attributes: { site: 'plant-a' } } }),
    );
    expect(created.thingArn).toBe(`arn:aws:iot:us-east-1:${ACCOUNT}:thing/pump-1`);
    expect(created.thingId).toMatch(/^[0-9a-f-]{36}$/);
    const d = await iot.send(new DescribeThingCommand({ thingName: 'pump-1' }));
    expect(d).toMatchObject({
      thingName: 'pump-1',
      defaultClientId: 'pump-1',
      thingId: created.thingId,
      thingArn: created.thingArn,
      attributes: { site: 'plant-a' },
      version: 1,
    });
  });

  it('CreateThing again with the same configuration succeeds; with other attributes it is a 409', async () => {
    const again = await iot.send(
      new CreateThingCommand({ thingName: 'pump-1', attributePayload: { attributes: { site: 'plant-a' } } }),
    );
    expect(again.thingName).toBe('pump-1');
    await fails(
      iot.send(
        new CreateThingCommand({
          thingName: 'pump-1',
          attributePayload: { attributes: { site: 'plant-b' } },
        }),
      ),
      'ResourceAlreadyExistsException',
      409,
    );
  });

  it('DescribeThing of a missing thing is ResourceNotFoundException (404)', async () => {
    const err = await iot.send(new DescribeThingCommand({ thingName: 'no-such-thing' })).catch((e) => e);
    expect(err).toBeInstanceOf(ResourceNotFoundException);
    expect((err as ResourceNotFoundException).$metadata.httpStatusCode).toBe(404);
  });

  it('refuses an invalid thing name, attribute name and more than three attributes, naming the field', async () => {
    await fails(
      iot.send(new CreateThingCommand({ thingName: 'bad name!' })),
      'InvalidRequestException',
      400,
      /thingName/,
    );
    await fails(
      iot.send(
        new CreateThingCommand({ thingName: 'ok-name', attributePayload: { attributes: { 'a b': 'x' } } }),
      ),
      'InvalidRequestException',
      400,
      /attributePayload\.attributes\.a b/,
    );
    await fails(
      iot.send(
        new CreateThingCommand({
          thingName: 'ok-name',
          attributePayload: { attributes: { a: '1', b: '2', c: '3', d: '4' } },
        }),
      ),
      'InvalidRequestException',
      400,
      /at most 3 attributes/,
    );
    await fails(
      iot.send(new CreateThingCommand({ thingName: 'ok-name', thingTypeName: 'gateway' })),
      'ResourceNotFoundException',
      404,
      /thing type gateway/,
    );
  });

  it('UpdateThing merges attributes (empty value removes), replaces without merge, and bumps the version', async () => {
    await iot.send(
      new CreateThingCommand({ thingName: 'valve-1', attributePayload: { attributes: { a: '1', b: '2' } } }),
    );
    await iot.send(
      new UpdateThingCommand({
        thingName: 'valve-1',
        attributePayload: { attributes: { b: '', c: '3' }, merge: true },
        expectedVersion: 1,
      }),
    );
    let d = await iot.send(new DescribeThingCommand({ thingName: 'valve-1' }));
    expect(d.attributes).toEqual({ a: '1', c: '3' });
    expect(d.version).toBe(2);
    await fails(
      iot.send(
        new UpdateThingCommand({
          thingName: 'valve-1',
          attributePayload: { attributes: { x: '1' } },
          expectedVersion: 1,
        }),
      ),
      'VersionConflictException',
      409,
    );
    await iot.send(
      new UpdateThingCommand({ thingName: 'valve-1', attributePayload: { attributes: { d: '4' } } }),
    );
    d = await iot.send(new DescribeThingCommand({ thingName: 'valve-1' }));
    expect(d.attributes).toEqual({ d: '4' });
    expect(d.version).toBe(3);
    await fails(
      iot.send(new UpdateThingCommand({ thingName: 'no-such-thing', attributePayload: { attributes: {} } })),
      'ResourceNotFoundException',
      404,
    );
  });

  it('ListThings pages with maxResults/nextToken and filters by attribute', async () => {
    for (let i = 0; i < 5; i++) {
      await iot.send(
        new CreateThingCommand({
          thingName: `list-${i}`,
          attributePayload: { attributes: { line: i < 3 ? 'line-1' : 'line-2' } },
        }),
      );
    }
    const first = await iot.send(
      new ListThingsCommand({ maxResults: 2, attributeName: 'line', attributeValue: 'line-1' }),
    );
    expect(first.things?.map((t) => t.thingName)).toEqual(['list-0', 'list-1']);
    expect(first.nextToken).toBeDefined();
    const second = await iot.send(
      new ListThingsCommand({
        maxResults: 2,
        attributeName: 'line',
        attributeValue: 'line-1',
        nextToken: first.nextToken,
      }),
    );
    expect(second.things?.map((t) => t.thingName)).toEqual(['list-2']);
    expect(second.nextToken).toBeUndefined();
    expect(second.things?.[0]).toMatchObject({
      thingArn: expect.stringMatching(/:thing\/list-2$/),
      version: 1,
    });

    const names: string[] = [];
    for await (const page of paginateListThings({ client: iot, pageSize: 2 }, {})) {
      expect((page.things ?? []).length).toBeLessThanOrEqual(2);
      names.push(...(page.things ?? []).map((t) => t.thingName!));
    }
    expect(names).toEqual(
      expect.arrayContaining(['list-0', 'list-1', 'list-2', 'list-3', 'list-4', 'pump-1']),
    );
    expect(new Set(names).size).toBe(names.length);

    const prefixed = await iot.send(
      new ListThingsCommand({
        attributeName: 'line',
        attributeValue: 'line-',
        usePrefixAttributeValue: true,
      }),
    );
    expect(prefixed.things).toHaveLength(5);
    await fails(
      iot.send(new ListThingsCommand({ maxResults: 251 })),
      'InvalidRequestException',
      400,
      /maxResults/,
    );
    await fails(
      iot.send(new ListThingsCommand({ nextToken: 'garbage' })),
      'InvalidRequestException',
      400,
      /nextToken/,
    );
  });

  it('DeleteThing: missing thing succeeds, a thing with principals is refused, expectedVersion is checked', async () => {
    await iot.send(new DeleteThingCommand({ thingName: 'never-existed' }));
    await iot.send(new CreateThingCommand({ thingName: 'to-delete' }));
    const cert = await newCertificate();
    await iot.send(new AttachThingPrincipalCommand({ thingName: 'to-delete', principal: cert.arn }));
    await fails(
      iot.send(new DeleteThingCommand({ thingName: 'to-delete' })),
      'InvalidRequestException',
      400,
      /still attached to one or more principals/,
    );
    await iot.send(new DetachThingPrincipalCommand({ thingName: 'to-delete', principal: cert.arn }));
    await fails(
      iot.send(new DeleteThingCommand({ thingName: 'to-delete', expectedVersion: 7 })),
      'VersionConflictException',
      409,
    );
    await iot.send(new DeleteThingCommand({ thingName: 'to-delete', expectedVersion: 1 }));
    await fails(
      iot.send(new DescribeThingCommand({ thingName: 'to-delete' })),
      'ResourceNotFoundException',
      404,
    );
  });
});

describe('certificates', () => {
  it('CreateCertificateFromCsr issues a certificate of the local CA for the CSR key, INACTIVE by default', async () => {
    const cert = await newCertificate();
    expect(cert.arn).toBe(`arn:aws:iot:us-east-1:${ACCOUNT}:cert/${cert.id}`);
    const x = new X509Certificate(cert.pem);
    expect(x.verify(new X509Certificate(tc.cloud.pki.rootCa.certPem).publicKey)).toBe(true);
    expect(x.publicKey.export({ type: 'spki', format: 'pem' })).toBe(
      createPublicKey(cert.keyPem).export({ type: 'spki', format: 'pem' }),
    );
    const d = await iot.send(new DescribeCertificateCommand({ certificateId: cert.id }));
    expect(d.certificateDescription).toMatchObject({
      certificateArn: cert.arn,
      certificateId: cert.id,
      status: 'INACTIVE',
      ownedBy: ACCOUNT,
      certificateMode: 'DEFAULT',
    });
    expect(d.certificateDescription?.creationDate).toBeInstanceOf(Date);
    expect(d.certificateDescription?.validity?.notAfter?.getTime()).toBe(new Date(x.validTo).getTime());
    await fails(
      iot.send(new CreateCertificateFromCsrCommand({ certificateSigningRequest: 'not a csr' })),
      'InvalidRequestException',
      400,
      /certificateSigningRequest/,
    );
  });

  it('CreateKeysAndCertificate returns an ECDSA P-256 key pair made by the server', async () => {
    const out = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    const priv = out.keyPair?.PrivateKey ?? '';
    expect(createPublicKey(priv).asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(createPublicKey(priv).export({ type: 'spki', format: 'pem' })).toBe(out.keyPair?.PublicKey);
    expect(
      new X509Certificate(out.certificatePem ?? '').publicKey.export({ type: 'spki', format: 'pem' }),
    ).toBe(out.keyPair?.PublicKey);
    const d = await iot.send(new DescribeCertificateCommand({ certificateId: out.certificateId }));
    expect(d.certificateDescription?.status).toBe('ACTIVE');
  });

  it('UpdateCertificate and DeleteCertificate follow the documented state rules', async () => {
    const cert = await newCertificate(true);
    await fails(
      iot.send(new DeleteCertificateCommand({ certificateId: cert.id })),
      'CertificateStateException',
      406,
      /deactivated/,
    );
    await iot.send(new UpdateCertificateCommand({ certificateId: cert.id, newStatus: 'INACTIVE' }));
    await iot.send(new AttachPolicyCommand({ policyName: DEVICE_POLICY_NAME, target: cert.arn }));
    await fails(
      iot.send(new DeleteCertificateCommand({ certificateId: cert.id })),
      'DeleteConflictException',
      409,
    );
    await iot.send(new CreateThingCommand({ thingName: 'cert-holder' }));
    await iot.send(new AttachThingPrincipalCommand({ thingName: 'cert-holder', principal: cert.arn }));
    // forceDelete does not override a thing attachment...
    await fails(
      iot.send(new DeleteCertificateCommand({ certificateId: cert.id, forceDelete: true })),
      'DeleteConflictException',
      409,
    );
    await iot.send(new DetachThingPrincipalCommand({ thingName: 'cert-holder', principal: cert.arn }));
    // ...but removes the policy attachments.
    await iot.send(new DeleteCertificateCommand({ certificateId: cert.id, forceDelete: true }));
    await fails(
      iot.send(new DescribeCertificateCommand({ certificateId: cert.id })),
      'ResourceNotFoundException',
      404,
    );
    await fails(
      iot.send(new UpdateCertificateCommand({ certificateId: cert.id, newStatus: 'ACTIVE' })),
      'ResourceNotFoundException',
      404,
    );

    const revoked = await newCertificate();
    await iot.send(new UpdateCertificateCommand({ certificateId: revoked.id, newStatus: 'REVOKED' }));
    const err = await iot
      .send(new UpdateCertificateCommand({ certificateId: revoked.id, newStatus: 'ACTIVE' }))
      .catch((e) => e);
    expect(err).toBeInstanceOf(CertificateStateException);
    await fails(
      iot.send(new UpdateCertificateCommand({ certificateId: revoked.id, newStatus: 'PENDING_TRANSFER' })),
      'InvalidRequestException',
      400,
      /newStatus/,
    );
    await fails(
      iot.send(new UpdateCertificateCommand({ certificateId: revoked.id, newStatus: 'BOGUS' as 'ACTIVE' })),
      'InvalidRequestException',
      400,
      /newStatus/,
    );
    await fails(
      iot.send(new DescribeCertificateCommand({ certificateId: 'abc' })),
      'InvalidRequestException',
      400,
      /certificateId/,
    );
  });

  it('ListCertificates pages with pageSize/marker, newest first unless ascendingOrder', async () => {
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await newCertificate()).id);
    const all: string[] = [];
    let marker: string | undefined;
    do {
      const page = await iot.send(
        new ListCertificatesCommand({ pageSize: 2, ...(marker ? { marker } : {}) }),
      );
      expect((page.certificates ?? []).length).toBeLessThanOrEqual(2);
      all.push(...(page.certificates ?? []).map((c) => c.certificateId!));
      marker = page.nextMarker;
    } while (marker);
    expect(new Set(all).size).toBe(all.length);
    expect(all).toEqual(expect.arrayContaining(ids));
    const ascending = await iot.send(new ListCertificatesCommand({ pageSize: 250, ascendingOrder: true }));
    expect(ascending.certificates?.map((c) => c.certificateId)).toEqual([...all].reverse());
    expect(ascending.certificates?.[0]?.creationDate).toBeInstanceOf(Date);
    await fails(
      iot.send(new ListCertificatesCommand({ pageSize: 0 })),
      'InvalidRequestException',
      400,
      /pageSize/,
    );
  });
});

describe('CA certificates and RegisterCertificate', () => {
  let ca: PemIdentity;
  let caId: string;

  beforeAll(async () => {
    ca = await createRootCa('factory CA');
  });

  it('RegisterCACertificate needs a verification certificate whose CN is the registration code', async () => {
    const { registrationCode } = await iot.send(new GetRegistrationCodeCommand({}));
    expect(registrationCode).toMatch(/^[0-9a-f]{64}$/);
    const wrong = await createDeviceIdentity(ca, 'not-the-code');
    await fails(
      iot.send(
        new RegisterCACertificateCommand({
          caCertificate: ca.certPem,
          verificationCertificate: wrong.certPem,
        }),
      ),
      'RegistrationCodeValidationException',
      400,
    );
    const other = await createRootCa('someone else');
    const foreign = await createDeviceIdentity(other, registrationCode!);
    await fails(
      iot.send(
        new RegisterCACertificateCommand({
          caCertificate: ca.certPem,
          verificationCertificate: foreign.certPem,
        }),
      ),
      'CertificateValidationException',
      400,
      /verificationCertificate/,
    );
    await fails(
      iot.send(new RegisterCACertificateCommand({ caCertificate: ca.certPem })),
      'InvalidRequestException',
      400,
      /verificationCertificate/,
    );
    const verification = await createDeviceIdentity(ca, registrationCode!);
    const out = await iot.send(
      new RegisterCACertificateCommand({
        caCertificate: ca.certPem,
        verificationCertificate: verification.certPem,
        setAsActive: true,
        allowAutoRegistration: true,
      }),
    );
    caId = out.certificateId!;
    expect(out.certificateArn).toBe(`arn:aws:iot:us-east-1:${ACCOUNT}:cacert/${caId}`);
    const d = await iot.send(new DescribeCACertificateCommand({ certificateId: caId }));
    expect(d.certificateDescription).toMatchObject({
      status: 'ACTIVE',
      autoRegistrationStatus: 'ENABLE',
      ownedBy: ACCOUNT,
      certificateMode: 'DEFAULT',
    });
    await fails(
      iot.send(
        new RegisterCACertificateCommand({
          caCertificate: ca.certPem,
          verificationCertificate: verification.certPem,
        }),
      ),
      'ResourceAlreadyExistsException',
      409,
    );
    const list = await iot.send(new ListCACertificatesCommand({}));
    const listed = list.certificates?.map((c) => c.certificateId);
    expect(listed).toContain(caId);
    // The local root CA is registered too.
    expect(list.certificates?.length).toBeGreaterThanOrEqual(2);
  });

  it('RegisterCertificate verifies the chain to a registered CA; a device with it connects', async () => {
    const device = await createDeviceIdentity(ca, 'factory-device');
    const out = await iot.send(
      new RegisterCertificateCommand({
        certificatePem: device.certPem,
        caCertificatePem: ca.certPem,
        status: 'ACTIVE',
      }),
    );
    const d = await iot.send(new DescribeCertificateCommand({ certificateId: out.certificateId }));
    expect(d.certificateDescription).toMatchObject({ caCertificateId: caId, status: 'ACTIVE' });
    const byCa = await iot.send(new ListCertificatesByCACommand({ caCertificateId: caId }));
    expect(byCa.certificates?.map((c) => c.certificateId)).toEqual([out.certificateId]);
    await fails(
      iot.send(
        new RegisterCertificateCommand({ certificatePem: device.certPem, caCertificatePem: ca.certPem }),
      ),
      'ResourceAlreadyExistsException',
      409,
    );

    // Without caCertificatePem the registered CA that signed it is found.
    const second = await createDeviceIdentity(ca, 'factory-device-2');
    const out2 = await iot.send(
      new RegisterCertificateCommand({ certificatePem: second.certPem, setAsActive: true }),
    );
    const d2 = await iot.send(new DescribeCertificateCommand({ certificateId: out2.certificateId }));
    expect(d2.certificateDescription).toMatchObject({ caCertificateId: caId, status: 'ACTIVE' });

    const stranger = await createDeviceIdentity(await createRootCa('unregistered CA'), 'stranger');
    await fails(
      iot.send(new RegisterCertificateCommand({ certificatePem: stranger.certPem })),
      'CertificateValidationException',
      400,
    );
    await fails(
      iot.send(
        new RegisterCertificateCommand({ certificatePem: stranger.certPem, caCertificatePem: ca.certPem }),
      ),
      'CertificateValidationException',
      400,
    );
    await fails(
      iot.send(new RegisterCertificateCommand({ certificatePem: 'garbage' })),
      'CertificateValidationException',
      400,
    );

    // Registered, attached and ACTIVE: the device connects with its own name.
    await iot.send(new CreateThingCommand({ thingName: 'factory-device' }));
    await iot.send(new AttachPolicyCommand({ policyName: DEVICE_POLICY_NAME, target: out.certificateArn }));
    await iot.send(
      new AttachThingPrincipalCommand({ thingName: 'factory-device', principal: out.certificateArn }),
    );
    const c = await connectDevice(
      tc.cloud,
      { cert: device.certPem, key: device.keyPem, ca: tc.cloud.pki.rootCa.certPem },
      'factory-device',
    );
    c.end(true);
  });

  it('RegisterCertificateWithoutCA registers in SNI_ONLY mode', async () => {
    const stranger = await createDeviceIdentity(await createRootCa('own CA'), 'no-ca');
    const out = await iot.send(
      new RegisterCertificateWithoutCACommand({ certificatePem: stranger.certPem, status: 'ACTIVE' }),
    );
    const d = await iot.send(new DescribeCertificateCommand({ certificateId: out.certificateId }));
    expect(d.certificateDescription).toMatchObject({ status: 'ACTIVE', certificateMode: 'SNI_ONLY' });
    expect(d.certificateDescription?.caCertificateId).toBeUndefined();
  });

  it('UpdateCACertificate and DeleteCACertificate', async () => {
    const other = await createRootCa('short-lived CA');
    const { registrationCode } = await iot.send(new GetRegistrationCodeCommand({}));
    const verification = await createDeviceIdentity(other, registrationCode!);
    const { certificateId } = await iot.send(
      new RegisterCACertificateCommand({
        caCertificate: other.certPem,
        verificationCertificate: verification.certPem,
        setAsActive: true,
      }),
    );
    await fails(
      iot.send(new DeleteCACertificateCommand({ certificateId })),
      'CertificateStateException',
      406,
    );
    await iot.send(
      new UpdateCACertificateCommand({
        certificateId,
        newStatus: 'INACTIVE',
        newAutoRegistrationStatus: 'ENABLE',
      }),
    );
    const d = await iot.send(new DescribeCACertificateCommand({ certificateId }));
    expect(d.certificateDescription).toMatchObject({ status: 'INACTIVE', autoRegistrationStatus: 'ENABLE' });
    const device = await createDeviceIdentity(other, 'under-inactive-ca');
    await fails(
      iot.send(
        new RegisterCertificateCommand({ certificatePem: device.certPem, caCertificatePem: other.certPem }),
      ),
      'CertificateStateException',
      406,
    );
    await iot.send(new DeleteCACertificateCommand({ certificateId }));
    await fails(
      iot.send(new DescribeCACertificateCommand({ certificateId })),
      'ResourceNotFoundException',
      404,
    );
  });
});

describe('policies', () => {
  it('CreatePolicy, GetPolicy, duplicates and malformed documents', async () => {
    const created = await iot.send(
      new CreatePolicyCommand({ policyName: 'ops-policy', policyDocument: policyDoc() }),
    );
    expect(created).toMatchObject({
      policyName: 'ops-policy',
      policyArn: `arn:aws:iot:us-east-1:${ACCOUNT}:policy/ops-policy`,
      policyVersionId: '1',
    });
    const got = await iot.send(new GetPolicyCommand({ policyName: 'ops-policy' }));
    expect(got).toMatchObject({
      policyName: 'ops-policy',
      defaultVersionId: '1',
      policyDocument: policyDoc(),
    });
    expect(got.creationDate).toBeInstanceOf(Date);
    await fails(
      iot.send(new CreatePolicyCommand({ policyName: 'ops-policy', policyDocument: policyDoc() })),
      'ResourceAlreadyExistsException',
      409,
    );
    await fails(
      iot.send(new CreatePolicyCommand({ policyName: 'broken', policyDocument: '{"Statement": [' })),
      'MalformedPolicyException',
      400,
    );
    await fails(
      iot.send(
        new CreatePolicyCommand({
          policyName: 'broken',
          policyDocument: JSON.stringify({
            Version: '2012-10-17',
            Statement: [{ Effect: 'Maybe', Action: 'iot:*', Resource: '*' }],
          }),
        }),
      ),
      'MalformedPolicyException',
      400,
      /Effect/,
    );
    await fails(
      iot.send(new CreatePolicyCommand({ policyName: 'bad name', policyDocument: policyDoc() })),
      'InvalidRequestException',
      400,
      /policyName/,
    );
    await fails(iot.send(new GetPolicyCommand({ policyName: 'broken' })), 'ResourceNotFoundException', 404);
  });

  it('AttachPolicy, ListAttachedPolicies, ListTargetsForPolicy, DetachPolicy, DeletePolicy', async () => {
    const cert = await newCertificate();
    await iot.send(new AttachPolicyCommand({ policyName: 'ops-policy', target: cert.arn }));
    await iot.send(new AttachPolicyCommand({ policyName: DEVICE_POLICY_NAME, target: cert.arn }));
    const attached = await iot.send(new ListAttachedPoliciesCommand({ target: cert.arn }));
    expect(attached.policies?.map((p) => p.policyName).sort()).toEqual([DEVICE_POLICY_NAME, 'ops-policy']);
    const targets = await iot.send(new ListTargetsForPolicyCommand({ policyName: 'ops-policy' }));
    expect(targets.targets).toEqual([cert.arn]);
    await fails(
      iot.send(new DeletePolicyCommand({ policyName: 'ops-policy' })),
      'DeleteConflictException',
      409,
      /attached/,
    );
    await fails(
      iot.send(
        new AttachPolicyCommand({
          policyName: 'ops-policy',
          target: `arn:aws:iot:us-east-1:${ACCOUNT}:cert/${'0'.repeat(64)}`,
        }),
      ),
      'ResourceNotFoundException',
      404,
    );
    await fails(
      iot.send(new AttachPolicyCommand({ policyName: 'no-such-policy', target: cert.arn })),
      'ResourceNotFoundException',
      404,
    );
    await fails(
      iot.send(new AttachPolicyCommand({ policyName: 'ops-policy', target: 'not-an-arn' })),
      'InvalidRequestException',
      400,
      /target/,
    );
    await iot.send(new DetachPolicyCommand({ policyName: 'ops-policy', target: cert.arn }));
    const after = await iot.send(new ListAttachedPoliciesCommand({ target: cert.arn }));
    expect(after.policies?.map((p) => p.policyName)).toEqual([DEVICE_POLICY_NAME]);
    await iot.send(new DeletePolicyCommand({ policyName: 'ops-policy' }));
    await fails(
      iot.send(new GetPolicyCommand({ policyName: 'ops-policy' })),
      'ResourceNotFoundException',
      404,
    );
  });

  it('ListPolicies pages with pageSize/marker', async () => {
    for (let i = 0; i < 3; i++) {
      await iot.send(new CreatePolicyCommand({ policyName: `paged-${i}`, policyDocument: policyDoc() }));
    }
    const names: string[] = [];
    let marker: string | undefined;
    do {
      const page = await iot.send(new ListPoliciesCommand({ pageSize: 2, ...(marker ? { marker } : {}) }));
      expect((page.policies ?? []).length).toBeLessThanOrEqual(2);
      names.push(...(page.policies ?? []).map((p) => p.policyName!));
      marker = page.nextMarker;
    } while (marker);
    expect(names).toEqual(expect.arrayContaining([DEVICE_POLICY_NAME, 'paged-0', 'paged-1', 'paged-2']));
    expect(new Set(names).size).toBe(names.length);
  });
});

describe('thing principals', () => {
  it('AttachThingPrincipal, ListThingPrincipals, ListPrincipalThings, DetachThingPrincipal', async () => {
    const cert = await newCertificate();
    await iot.send(new CreateThingCommand({ thingName: 'shared-1' }));
    await iot.send(new CreateThingCommand({ thingName: 'shared-2' }));
    await iot.send(new AttachThingPrincipalCommand({ thingName: 'shared-1', principal: cert.arn }));
    await iot.send(new AttachThingPrincipalCommand({ thingName: 'shared-2', principal: cert.arn }));
    expect((await iot.send(new ListThingPrincipalsCommand({ thingName: 'shared-1' }))).principals).toEqual([
      cert.arn,
    ]);
    const p1 = await iot.send(new ListPrincipalThingsCommand({ principal: cert.arn, maxResults: 1 }));
    expect(p1.things).toEqual(['shared-1']);
    const p2 = await iot.send(
      new ListPrincipalThingsCommand({ principal: cert.arn, maxResults: 1, nextToken: p1.nextToken }),
    );
    expect(p2.things).toEqual(['shared-2']);
    expect(p2.nextToken).toBeUndefined();

    const exclusive = await newCertificate();
    await iot.send(new AttachThingPrincipalCommand({ thingName: 'shared-1', principal: exclusive.arn }));
    await fails(
      iot.send(
        new AttachThingPrincipalCommand({
          thingName: 'shared-2',
          principal: exclusive.arn,
          thingPrincipalType: 'EXCLUSIVE_THING',
        }),
      ),
      'InvalidRequestException',
      400,
      /principal/,
    );

    await iot.send(new DetachThingPrincipalCommand({ thingName: 'shared-2', principal: cert.arn }));
    expect((await iot.send(new ListPrincipalThingsCommand({ principal: cert.arn }))).things).toEqual([
      'shared-1',
    ]);
    await fails(
      iot.send(new ListThingPrincipalsCommand({ thingName: 'no-such-thing' })),
      'ResourceNotFoundException',
      404,
    );
    await fails(
      iot.send(new AttachThingPrincipalCommand({ thingName: 'no-such-thing', principal: cert.arn })),
      'ResourceNotFoundException',
      404,
    );
    await fails(
      iot.send(
        new AttachThingPrincipalCommand({
          thingName: 'shared-1',
          principal: `arn:aws:iot:us-east-1:${ACCOUNT}:cert/${'f'.repeat(64)}`,
        }),
      ),
      'ResourceNotFoundException',
      404,
    );
    await fails(
      iot.send(new ListPrincipalThingsCommand({ principal: 'not-an-arn' })),
      'InvalidRequestException',
      400,
      /principal/,
    );
  });
});

describe('DescribeEndpoint', () => {
  it("answers the local cloud's host for every documented endpoint type", async () => {
    for (const endpointType of ['iot:Data-ATS', 'iot:Data', 'iot:CredentialProvider', 'iot:Jobs']) {
      const out = await iot.send(new DescribeEndpointCommand({ endpointType }));
      expect(out.endpointAddress).toBe(tc.cloud.endpoints.host);
    }
    await fails(
      iot.send(new DescribeEndpointCommand({ endpointType: 'iot:Nope' })),
      'InvalidRequestException',
      400,
      /endpointType/,
    );
  });
});

describe('operations outside the subset', () => {
  it('are answered 501 NotImplementedException, naming the request', async () => {
    await fails(iot.send(new ListThingTypesCommand({})), 'NotImplementedException', 501, /GET \/thing-types/);
  });
});

describe('a device provisioned through the API', () => {
  it('connects over MQTT, and is disconnected and refused once its certificate is deactivated', async () => {
    const thingName = 'api-gateway-1';
    await iot.send(new CreateThingCommand({ thingName }));
    const { csrPem, keyPem } = await createCsr(thingName);
    const cert = await iot.send(
      new CreateCertificateFromCsrCommand({ certificateSigningRequest: csrPem, setAsActive: true }),
    );
    await iot.send(new AttachPolicyCommand({ policyName: DEVICE_POLICY_NAME, target: cert.certificateArn }));
    await iot.send(new AttachThingPrincipalCommand({ thingName, principal: cert.certificateArn }));
    const dev = { cert: cert.certificatePem!, key: keyPem, ca: tc.cloud.pki.rootCa.certPem };
    const client = await connectDevice(tc.cloud, dev, thingName);
    await client.publishAsync(`things/${thingName}/hello`, 'hi', { qos: 1 });
    await iot.send(
      new UpdateCertificateCommand({ certificateId: cert.certificateId, newStatus: 'INACTIVE' }),
    );
    await closed(client);
    const again = await tryConnect(tc.cloud, dev, thingName);
    expect(again.connected).toBe(false);
  });
});
