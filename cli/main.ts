/** The `edgefleet` command. */
import { Command, CommanderError } from 'commander';
import pino from 'pino';
import { z } from 'zod';
import { LocalCloud } from '../cloud/local/index.js';
import { provisionThing } from '../cloud/local/provision.js';
import { registerCertsCommands } from './certs.js';
import { runDemo } from './demo.js';
import { CliError } from './errors.js';
import { registerFacesCommands } from './faces.js';
import { registerFleetCommands } from './fleet.js';
import { registerGatewayCommands } from './gateway.js';
import { registerLakeCommands } from './lake.js';
import { parseFlags, portFlag } from './options.js';
import { runSql } from './sql.js';

/** Flags shared by the commands that address a local cloud's data dir and endpoints. */
const CloudFlags = z.object({
  dataDir: z.string().min(1).default('.edgefleet'),
  host: z.string().min(1).default('127.0.0.1'),
  mqttPort: portFlag.default(8883),
  httpPort: portFlag.default(4566),
  region: z.string().min(1).default('us-east-1'),
});

const LocalFlags = CloudFlags.extend({
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

async function localUp(raw: unknown): Promise<void> {
  const flags = parseFlags(LocalFlags, raw);
  const logger = pino({ level: flags.logLevel }, pino.destination(2));
  const cloud = await LocalCloud.start(flags, logger);
  // Handlers first: a supervisor may send the signal as soon as it reads the banner.
  const stopped = new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  const e = cloud.endpoints;
  const c = cloud.sdkConfig();
  process.stdout.write(
    [
      'edgefleet local cloud is up',
      `  data dir     ${cloud.options.dataDir}`,
      `  MQTT (mTLS)  ${e.mqttUrl}   root CA: ${cloud.options.dataDir}/ca/root-ca.crt`,
      `  HTTP (AWS)   ${e.httpUrl}   services: iot, iotdata, sts, s3, rekognition, sns, firehose (path-style)`,
      `  region       ${c.region}`,
      '  credentials for AWS SDK clients:',
      `    export AWS_ACCESS_KEY_ID=${c.credentials.accessKeyId}`,
      `    export AWS_SECRET_ACCESS_KEY=${c.credentials.secretAccessKey}`,
      `    export AWS_REGION=${c.region} AWS_ENDPOINT_URL=${e.httpUrl}`,
      'Press Ctrl-C to stop.',
      '',
    ].join('\n'),
  );
  await stopped;
  await cloud.stop();
  process.stdout.write('edgefleet local cloud stopped\n');
}

const ProvisionFlags = CloudFlags.extend({
  thing: z.string(),
  out: z.string().min(1, 'is required'),
});

async function localProvision(thing: string, raw: Record<string, unknown>): Promise<void> {
  const flags = parseFlags(ProvisionFlags, { ...raw, thing });
  const device = await provisionThing({ ...flags, thingName: flags.thing, outDir: flags.out });
  process.stdout.write(
    [
      `provisioned thing ${device.thingName}`,
      `  certificate  ${device.certificateId} (ACTIVE)`,
      `  files        ${device.files.cert}`,
      `               ${device.files.key} (0600)`,
      `               ${device.files.rootCa}`,
      `               ${device.files.endpoint}`,
      '',
    ].join('\n'),
  );
}

const DemoFlags = z.object({
  dataDir: z.string().min(1).default('.edgefleet/demo'),
  duration: z.coerce.number().min(0, 'must be 0 (until Ctrl-C) or more seconds').default(5),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('warn'),
});

export function buildProgram(): Command {
  const program = new Command('edgefleet')
    .description('Edge gateway component and cloud side for AWS IoT, with an embedded local cloud.')
    .showHelpAfterError()
    .exitOverride();
  const local = program.command('local').description('the embedded local cloud');
  local
    .command('up')
    .description('start the local cloud and print its endpoints; Ctrl-C stops it')
    .option('--data-dir <dir>', 'state directory', '.edgefleet')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--mqtt-port <port>', 'MQTT over TLS port (0: any free port)', '8883')
    .option('--http-port <port>', 'HTTP port for all AWS services (0: any free port)', '4566')
    .option('--region <region>', 'AWS region the local cloud reports', 'us-east-1')
    .option('--log-level <level>', 'log level (JSON logs on stderr)', 'info')
    .action((o) => localUp(o));
  local
    .command('provision')
    .description(
      'create a thing, its key and certificate (signed by the local CA) and write the device files (through its IoT API while the local cloud runs)',
    )
    .argument('<thing>', 'thing name')
    .requiredOption('--out <dir>', 'directory for device.crt, device.key, root-ca.crt, endpoint.json')
    .option('--data-dir <dir>', 'state directory of the local cloud', '.edgefleet')
    .option('--host <host>', 'host for endpoint.json (if the cloud is not running)', '127.0.0.1')
    .option('--mqtt-port <port>', 'MQTT port for endpoint.json (if the cloud is not running)', '8883')
    .option('--http-port <port>', 'HTTP port for endpoint.json (if the cloud is not running)', '4566')
    .option('--region <region>', 'AWS region', 'us-east-1')
    .action((thing: string, o: Record<string, unknown>) => localProvision(thing, o));
  program
    .command('sql')
    .description('evaluate an AWS IoT SQL statement against one message and print the rule output')
    .argument('<sql>', 'the statement, e.g. "SELECT color AS rgb FROM \'a/b\' WHERE temperature > 50"')
    .requiredOption('--topic <topic>', 'topic the message is published on')
    .option('--payload <json>', 'message payload (JSON, or any text)', '{}')
    .option('--clientid <id>', 'client id of the publisher, for clientid()')
    .option('--principal <id>', 'principal of the publisher, for principal()')
    .option('--sql-version <version>', 'AWS IoT SQL version: 2015-10-08, 2016-03-23 or beta', '2016-03-23')
    .action((sql: string, o: Record<string, unknown>) => {
      process.exitCode = runSql({ ...o, sql }, process.stdout, process.stderr);
    });
  program
    .command('demo')
    .description('run the local end-to-end demo (what `npm start` runs)')
    .option('--data-dir <dir>', 'state directory for the demo', '.edgefleet/demo')
    .option('--duration <seconds>', 'how long the gateway runs after setup (0: until Ctrl-C)', '5')
    .option('--log-level <level>', 'log level of the local cloud (JSON logs on stderr)', 'warn')
    .action(async (o) => {
      const flags = parseFlags(DemoFlags, o);
      await runDemo({
        ...flags,
        logger: pino({ level: flags.logLevel }, pino.destination(2)),
        out: process.stdout,
      });
    });
  registerGatewayCommands(program);
  registerFacesCommands(program);
  registerCertsCommands(program);
  registerLakeCommands(program);
  registerFleetCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`edgefleet: ${message}\n`);
    process.exitCode = err instanceof CliError ? err.exitCode : 1;
  }
}
