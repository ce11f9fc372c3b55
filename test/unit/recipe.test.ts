/**
 * The Greengrass component recipe (recipes/recipe.yaml) and the GDK CLI configuration
 * (recipes/gdk-config.json), validated against the structure that the Greengrass v2 component recipe
 * reference, the IPC authorization documentation and the GDK CLI configuration reference describe.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { z } from 'zod';
import { devicePolicyDocument } from '../../cloud/rules/policies.js';
import { parseGatewayConfig } from '../../edge-component/config.js';
import { COMPONENT_NODE_OPTIONS } from '../../edge-component/heap.js';

const recipesFile = (name: string) => new URL(`../../recipes/${name}`, import.meta.url);

const COMPONENT_NAME = 'com.edgefleet.Gateway';
const ARTIFACT_ZIP = 'edgefleet.zip';
/** Strict semantic version (semver.org). */
const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;
const THING = '{iot:thingName}';
const IOT_THING_VARIABLE = '${iot:Connection.Thing.ThingName}';

// --- recipe schema ---------------------------------------------------------------------------------

/** One authorization policy whose operations must be IPC operations of its service. */
const policyOf = <const Ops extends readonly [string, ...string[]]>(operations: Ops) =>
  z.strictObject({
    policyDescription: z.string().min(1),
    operations: z.array(z.enum(operations)).min(1),
    resources: z.array(z.string().min(1)).min(1),
  });

const policiesOf = <const Ops extends readonly [string, ...string[]]>(operations: Ops) =>
  z.record(z.string().regex(/^[^\s]+$/, 'policy ids contain no whitespace'), policyOf(operations));

/** IPC service identifiers and their operations, as the Greengrass IPC documentation lists them. */
const AccessControl = z.strictObject({
  'aws.greengrass.ipc.mqttproxy': policiesOf([
    'aws.greengrass#PublishToIoTCore',
    'aws.greengrass#SubscribeToIoTCore',
    '*',
  ]).optional(),
  'aws.greengrass.ShadowManager': policiesOf([
    'aws.greengrass#GetThingShadow',
    'aws.greengrass#UpdateThingShadow',
    'aws.greengrass#DeleteThingShadow',
    'aws.greengrass#ListNamedShadowsForThing',
    '*',
  ]).optional(),
  'aws.greengrass.SecretManager': policiesOf(['aws.greengrass#GetSecretValue', '*']).optional(),
  'aws.greengrass.ipc.pubsub': policiesOf([
    'aws.greengrass#PublishToTopic',
    'aws.greengrass#SubscribeToTopic',
    '*',
  ]).optional(),
});

/** The nucleus's accessControl, plus the gateway configuration (checked with the gateway's own schema). */
const DefaultConfiguration = z.looseObject({ accessControl: AccessControl });

const LifecycleStep = z.union([
  z.string().min(1),
  z.strictObject({
    Script: z.string().min(1),
    RequiresPrivilege: z.boolean().optional(),
    Skipif: z
      .string()
      .regex(/^(onpath|exists)\s+\S/)
      .optional(),
    Timeout: z.number().int().positive().optional(),
    Setenv: z.record(z.string(), z.string()).optional(),
  }),
]);

const Lifecycle = z
  .strictObject({
    Setenv: z.record(z.string(), z.string()).optional(),
    Bootstrap: LifecycleStep.optional(),
    Install: LifecycleStep.optional(),
    Startup: LifecycleStep.optional(),
    Run: LifecycleStep,
    Shutdown: LifecycleStep.optional(),
    Recover: LifecycleStep.optional(),
  })
  .refine((l) => l.Startup === undefined, { message: 'define only one of Startup and Run' });

const Permission = z.enum(['NONE', 'OWNER', 'ALL']);

const Artifact = z.strictObject({
  URI: z.string().regex(/^s3:\/\/[^/\s]+\/\S+$/, 'artifact URIs are s3://bucket/key'),
  Unarchive: z.enum(['NONE', 'ZIP']),
  Permission: z.strictObject({ Read: Permission.optional(), Execute: Permission.optional() }).optional(),
});

const Manifest = z.strictObject({
  Name: z.string().min(1).optional(),
  Platform: z.looseObject({
    os: z.string().min(1),
    architecture: z.string().min(1).optional(),
  }),
  Lifecycle,
  Artifacts: z.array(Artifact).min(1),
});

const Recipe = z.strictObject({
  RecipeFormatVersion: z.literal('2020-01-25'),
  ComponentName: z
    .string()
    .max(128)
    .regex(/^[a-zA-Z0-9-_.]+$/)
    .refine(
      (n) => !n.startsWith('aws.greengrass'),
      'the aws.greengrass prefix is reserved for AWS components',
    ),
  ComponentVersion: z.union([z.literal('{COMPONENT_VERSION}'), z.string().regex(SEMVER)]),
  ComponentDescription: z.string().min(1),
  ComponentPublisher: z.string().min(1),
  ComponentConfiguration: z.strictObject({ DefaultConfiguration }),
  ComponentDependencies: z.record(
    z.string().regex(/^[a-zA-Z0-9-_.]+$/),
    z.strictObject({
      VersionRequirement: z.string().min(1),
      DependencyType: z.enum(['SOFT', 'HARD']).optional(),
    }),
  ),
  Manifests: z.array(Manifest).min(1),
});
type Recipe = z.infer<typeof Recipe>;

// --- gdk-config.json schema ------------------------------------------------------------------------

const GdkComponent = z.strictObject({
  author: z.string().min(1),
  version: z.union([z.literal('NEXT_PATCH'), z.string().regex(SEMVER)]),
  build: z.strictObject({
    build_system: z.literal('custom'),
    custom_build_command: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
  }),
  publish: z.strictObject({
    bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/),
    region: z.string().regex(/^[a-z]{2}(-gov)?-[a-z]+-\d$/),
    options: z.strictObject({ file_upload_args: z.record(z.string(), z.unknown()) }).optional(),
  }),
});

const GdkConfig = z.strictObject({
  component: z
    .record(z.string().regex(/^[a-zA-Z0-9-_.]+$/), GdkComponent)
    .refine((c) => Object.keys(c).length === 1, 'GDK supports exactly one component per project'),
  gdk_version: z.string().regex(SEMVER),
});

// --- helpers ---------------------------------------------------------------------------------------

function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new Error(z.prettifyError(result.error));
  return result.data;
}

const rawRecipe: unknown = parse(readFileSync(recipesFile('recipe.yaml'), 'utf8'));
const rawGdk: unknown = JSON.parse(readFileSync(recipesFile('gdk-config.json'), 'utf8'));
const DELETE = Symbol('delete');

/** A deep copy of `value` with the property at `path` replaced by `change`, or removed for DELETE. */
function withChange(value: unknown, path: string[], change: unknown): unknown {
  const copy = structuredClone(value);
  let node = copy as Record<string, unknown>;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (next === null || typeof next !== 'object')
      throw new Error(`no object at ${key} in ${path.join('.')}`);
    node = next as Record<string, unknown>;
  }
  const last = path[path.length - 1] ?? '';
  if (!(last in node)) throw new Error(`nothing at ${path.join('.')}`);
  if (change === DELETE) delete node[last];
  else node[last] = change;
  return copy;
}

/** Greengrass authorization resources use `*` as "any characters" (nucleus >= 2.6.0). */
const globMatches = (pattern: string, value: string) =>
  new RegExp(`^${pattern.split('*').map(escapeRegExp).join('.*')}$`).test(value);
function escapeRegExp(s: string) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const runScript = (m: Recipe['Manifests'][number]) =>
  typeof m.Lifecycle.Run === 'string' ? m.Lifecycle.Run : m.Lifecycle.Run.Script;

// --- tests -----------------------------------------------------------------------------------------

describe('recipes/recipe.yaml', () => {
  const recipe = parseOrThrow(Recipe, rawRecipe);
  const access = recipe.ComponentConfiguration.DefaultConfiguration.accessControl;

  test('is a valid recipe for com.edgefleet.Gateway with a GDK version placeholder', () => {
    expect(recipe.RecipeFormatVersion).toBe('2020-01-25');
    expect(recipe.ComponentName).toBe(COMPONENT_NAME);
    expect(recipe.ComponentVersion).toBe('{COMPONENT_VERSION}');
  });

  test('depends on the token exchange service and the shadow manager (and a nucleus with {iot:thingName} policies)', () => {
    const deps = recipe.ComponentDependencies;
    expect(Object.keys(deps)).toEqual(
      expect.arrayContaining(['aws.greengrass.TokenExchangeService', 'aws.greengrass.ShadowManager']),
    );
    expect(deps['aws.greengrass.Nucleus']?.VersionRequirement).toMatch(/>=2\.6\.0/);
  });

  test('has a Linux manifest that runs the unpacked zip artifact from S3', () => {
    const linux = recipe.Manifests.find((m) => m.Platform.os === 'linux');
    expect(linux).toBeDefined();
    const zip = linux?.Artifacts.find((a) => a.Unarchive === 'ZIP');
    expect(zip?.URI).toBe(`s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/${ARTIFACT_ZIP}`);
    // Greengrass unpacks a ZIP artifact into a folder named after the archive.
    const unpacked = `{artifacts:decompressedPath}/${ARTIFACT_ZIP.replace(/\.zip$/, '')}/`;
    expect(linux && runScript(linux)).toBe(
      `node ${COMPONENT_NODE_OPTIONS.join(' ')} ${unpacked}dist/edge-component/main.js`,
    );
  });

  test('every authorization policy has a unique id prefixed by the component name', () => {
    const ids = Object.values(access).flatMap((policies) => Object.keys(policies ?? {}));
    expect(ids.length).toBeGreaterThan(0);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id.startsWith(`${COMPONENT_NAME}:`)).toBe(true);
  });

  test('no authorization policy grants every resource', () => {
    const resources = Object.values(access).flatMap((p) =>
      Object.values(p ?? {}).flatMap((x) => x.resources),
    );
    expect(resources).not.toContain('*');
  });

  test('MQTT proxy access covers the thing’s own topics and shadows, with publish and subscribe', () => {
    const policies = Object.values(access['aws.greengrass.ipc.mqttproxy'] ?? {});
    const granted = (op: string) =>
      policies
        .filter((p) => p.operations.includes(op as never) || p.operations.includes('*'))
        .flatMap((p) => p.resources);
    for (const op of ['aws.greengrass#PublishToIoTCore', 'aws.greengrass#SubscribeToIoTCore']) {
      expect(granted(op)).toEqual(
        expect.arrayContaining([`things/${THING}/*`, `dt/${THING}/*`, `$aws/things/${THING}/shadow/*`]),
      );
    }
    for (const r of policies.flatMap((p) => p.resources)) expect(r).toContain(THING);
  });

  test('MQTT proxy access stays within what the cloud IoT device policy allows', () => {
    const doc = devicePolicyDocument('REGION', 'ACCOUNT');
    const allowed = (action: string) =>
      doc.Statement.filter((s) => s.Effect === 'Allow' && [s.Action].flat().includes(action)).flatMap((s) =>
        [s.Resource].flat(),
      );
    const toArn = (kind: 'topic' | 'topicfilter', resource: string) =>
      `arn:aws:iot:REGION:ACCOUNT:${kind}/${resource.replaceAll(THING, IOT_THING_VARIABLE)}`;
    for (const p of Object.values(access['aws.greengrass.ipc.mqttproxy'] ?? {})) {
      for (const r of p.resources) {
        if (p.operations.some((o) => o === 'aws.greengrass#PublishToIoTCore' || o === '*')) {
          expect(allowed('iot:Publish')).toContain(toArn('topic', r));
        }
        if (p.operations.some((o) => o === 'aws.greengrass#SubscribeToIoTCore' || o === '*')) {
          expect(allowed('iot:Subscribe')).toContain(toArn('topicfilter', r));
          expect(allowed('iot:Receive')).toContain(toArn('topic', r));
        }
      }
    }
  });

  test('shadow manager access: get, update and delete of the thing’s classic and named shadows only', () => {
    const policies = Object.values(access['aws.greengrass.ShadowManager'] ?? {});
    for (const op of [
      'aws.greengrass#GetThingShadow',
      'aws.greengrass#UpdateThingShadow',
      'aws.greengrass#DeleteThingShadow',
    ] as const) {
      const resources = policies.filter((p) => p.operations.includes(op)).flatMap((p) => p.resources);
      expect(resources).toEqual(
        expect.arrayContaining([`$aws/things/${THING}/shadow`, `$aws/things/${THING}/shadow/name/*`]),
      );
    }
    for (const r of policies.flatMap((p) => p.resources)) expect(r).toContain(THING);
  });

  const deployed = (extra: Record<string, unknown>) =>
    parseGatewayConfig(
      { ...recipe.ComponentConfiguration.DefaultConfiguration, ...extra },
      { runtime: 'greengrass', coreThingName: 'core-1', coreRegion: 'eu-central-1' },
    );

  test('the default configuration is a gateway configuration once a deployment names the bucket', () => {
    const config = deployed({ storage: { bucket: 'edgefleet-data' } });
    expect(config.thingName).toBe('core-1');
    expect(config.aws.region).toBe('eu-central-1');
    expect(config.iot).toBeUndefined();
    expect(config.ingest.localPubSub?.topics.length).toBeGreaterThan(0);
    expect(() => deployed({})).toThrow(/storage: is required/);
  });

  test('local pub/sub access lets the component subscribe to every configured sensor topic', () => {
    const subscribable = Object.values(access['aws.greengrass.ipc.pubsub'] ?? {})
      .filter((p) => p.operations.some((o) => o === 'aws.greengrass#SubscribeToTopic' || o === '*'))
      .flatMap((p) => p.resources);
    const topics = deployed({ storage: { bucket: 'edgefleet-data' } }).ingest.localPubSub?.topics ?? [];
    expect(topics.length).toBeGreaterThan(0);
    for (const topic of topics) {
      expect(subscribable.some((pattern) => globMatches(pattern, topic))).toBe(true);
    }
  });

  describe('the schema rejects broken recipes', () => {
    const accessControl = ['ComponentConfiguration', 'DefaultConfiguration', 'accessControl'];
    const mqtt1 = [...accessControl, 'aws.greengrass.ipc.mqttproxy', 'com.edgefleet.Gateway:mqttproxy:1'];
    const shadow1 = [...accessControl, 'aws.greengrass.ShadowManager', 'com.edgefleet.Gateway:shadow:1'];
    const manifest0 = ['Manifests', '0'];

    test.each<[string, string[], unknown, string]>([
      ['wrong format version', ['RecipeFormatVersion'], '2021-01-01', 'RecipeFormatVersion'],
      ['non-semver version', ['ComponentVersion'], 'v1', 'ComponentVersion'],
      ['unknown IPC operation', [...mqtt1, 'operations', '0'], 'aws.greengrass#PublishToTopic', 'operations'],
      ['policy without description', [...shadow1, 'policyDescription'], DELETE, 'policyDescription'],
      ['missing Run', [...manifest0, 'Lifecycle', 'Run'], DELETE, 'Run'],
      ['manifest without os', [...manifest0, 'Platform', 'os'], DELETE, 'os'],
      ['non-S3 artifact', [...manifest0, 'Artifacts', '0', 'URI'], 'https://example.com/a.zip', 'URI'],
      ['bad unarchive type', [...manifest0, 'Artifacts', '0', 'Unarchive'], 'TAR', 'Unarchive'],
      ['reserved component name', ['ComponentName'], 'aws.greengrass.Gateway', 'ComponentName'],
    ])('%s', (_name, path, value, field) => {
      const result = Recipe.safeParse(withChange(rawRecipe, path, value));
      expect(result.success).toBe(false);
      expect(result.error && z.prettifyError(result.error)).toContain(field);
    });
  });
});

describe('recipes/gdk-config.json', () => {
  const gdk = parseOrThrow(GdkConfig, rawGdk);
  const entry = Object.entries(gdk.component)[0];

  test('configures the recipe’s component with a custom build and an S3 publish target', () => {
    expect(entry?.[0]).toBe(COMPONENT_NAME);
    expect(entry?.[1].version).toBe('NEXT_PATCH');
    expect(entry?.[1].build.build_system).toBe('custom');
  });

  test('the custom build command is a script in recipes/ that produces the artifact the recipe names', () => {
    const command = [entry?.[1].build.custom_build_command ?? []].flat();
    expect(command).toEqual(['sh', 'build.sh']);
    const script = recipesFile('build.sh');
    expect(existsSync(script)).toBe(true);
    const text = readFileSync(script, 'utf8');
    expect(text).toContain(`component=${COMPONENT_NAME}`);
    expect(text).toContain(ARTIFACT_ZIP);
    expect(text).toContain('greengrass-build/recipes');
  });

  test('the schema rejects a custom build without a command', () => {
    const path = ['component', COMPONENT_NAME, 'build', 'custom_build_command'];
    const result = GdkConfig.safeParse(withChange(rawGdk, path, DELETE));
    expect(result.success).toBe(false);
    expect(result.error && z.prettifyError(result.error)).toContain('custom_build_command');
  });
});
