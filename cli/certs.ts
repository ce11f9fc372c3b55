/**
 * `edgefleet certs ...`: the installers' certificate tooling. A CA directory (root CA, optional
 * intermediate), AWS IoT's verification certificate and CA registration (against the running local
 * cloud or, with `--aws`, AWS with the default credential chain), device certificates for JITR,
 * revocation, and the JITR documents (allow-list and CRL) the activation function reads.
 */
import { writeFile } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import {
  GetRegistrationCodeCommand,
  IoTClient,
  IoTServiceException,
  RegisterCACertificateCommand,
} from '@aws-sdk/client-iot';
import { PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import type { Command } from 'commander';
import { z } from 'zod';
import { createCa, createVerificationCertificate, KEY_TYPES, loadCa } from '../certs-tooling/ca.js';
import { REVOCATION_REASONS, readCrlFile, revokeCertificate } from '../certs-tooling/crl.js';
import { issueDevice, THING_NAME } from '../certs-tooling/device.js';
import { CertToolingError } from '../certs-tooling/errors.js';
import { certificateId } from '../certs-tooling/x509.js';
import {
  JITR_ALLOW_LIST_KEY,
  type JitrAllowList,
  JitrAllowListSchema,
  jitrCrlKey,
} from '../cloud/rules/jitr.js';
import { LOCAL_RESULTS_BUCKET } from '../cloud/rules/resources.js';
import { CliError } from './errors.js';
import { parseFlags } from './options.js';
import { checkTarget, clientConfigFor, readFlagFile, type TargetFlags } from './target.js';

const dirFlag = z.string().min(1, 'is required');

const CaCreateFlags = z.object({
  out: dirFlag,
  cn: z
    .string()
    .min(1, 'must not be empty')
    .max(64, 'must be at most 64 characters')
    .default('edgefleet root CA'),
  keyType: z.enum(KEY_TYPES, { message: `must be one of ${KEY_TYPES.join(', ')}` }).default('ec-p256'),
  intermediate: z.boolean().default(false),
  force: z.boolean().default(false),
});

const VerificationFlags = z.object({
  ca: dirFlag,
  registrationCode: z
    .string()
    .min(1, 'is required')
    .max(64, 'must be at most 64 characters')
    .regex(/^[0-9a-zA-Z]+$/, 'must be letters and digits (what GetRegistrationCode returns)'),
  out: z.string().min(1).optional(),
});

const RegisterFlags = z.object({
  ca: dirFlag,
  local: z.boolean().default(false),
  aws: z.boolean().default(false),
  autoRegistration: z.boolean().default(false),
  dataDir: z.string().min(1).default('.edgefleet'),
  region: z.string().min(1).optional(),
});

const JitrPublishFlags = RegisterFlags.omit({ autoRegistration: true }).extend({
  cnPattern: JitrAllowListSchema.shape.cnPattern,
  serial: JitrAllowListSchema.shape.serials,
  resultsBucket: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name')
    .optional(),
});

const DeviceIssueFlags = z.object({
  ca: dirFlag,
  out: dirFlag,
  thing: z.string().regex(THING_NAME, 'must be a thing name: 1..128 letters, digits, : _ -').optional(),
  csr: z.string().min(1).optional(),
  days: z.coerce.number().int('must be a whole number of days').min(1).max(3650).default(365),
});

const RevokeFlags = z.object({
  ca: dirFlag,
  cert: z.string().min(1, 'is required'),
  reason: z
    .enum(REVOCATION_REASONS, { message: `must be one of ${REVOCATION_REASONS.join(', ')}` })
    .default('unspecified'),
});

export interface CertsIo {
  out: Writable;
  /** A client to use instead of the one the flags describe (tests). */
  client?: IoTClient;
  /** An S3 client to use instead of the one the flags describe (tests). */
  s3?: S3Client;
}

/** Errors of the certificate tooling become exit 1 with their message. */
async function tooling<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof CertToolingError) throw new CliError(err.message, 1, { cause: err });
    throw err;
  }
}

/** `certs ca create --out DIR [--cn NAME] [--key-type T] [--intermediate] [--force]`. */
export async function caCreate(raw: Record<string, unknown>, io: CertsIo = { out: process.stdout }) {
  const flags = parseFlags(CaCreateFlags, raw);
  const created = await tooling(() =>
    createCa({
      dir: flags.out,
      commonName: flags.cn,
      keyType: flags.keyType,
      intermediate: flags.intermediate,
      force: flags.force,
    }),
  );
  const issuing = created.intermediateCertPem ?? created.rootCertPem;
  io.out.write(
    [
      `created ${flags.intermediate ? 'root and intermediate CA' : 'root CA'} (${flags.keyType}) in ${flags.out}`,
      `  issuing CA certificate id  ${certificateId(issuing)}`,
      ...created.files.map((f) => `  ${f}${f.endsWith('.key') ? ' (0600)' : ''}`),
      '',
    ].join('\n'),
  );
}

/** `certs ca verification-cert --ca DIR --registration-code CODE [--out FILE]`. */
export async function caVerificationCert(
  raw: Record<string, unknown>,
  io: CertsIo = { out: process.stdout },
) {
  const flags = parseFlags(VerificationFlags, raw);
  const pem = await tooling(async () => {
    const ca = await loadCa(flags.ca);
    return createVerificationCertificate(ca.issuing, flags.registrationCode);
  });
  if (flags.out === undefined) {
    io.out.write(`${pem}\n`);
    return;
  }
  await writeFile(flags.out, `${pem}\n`);
  io.out.write(`wrote verification certificate (CN=${flags.registrationCode}) to ${flags.out}\n`);
}

/** The IoT client the flags ask for. */
function clientFor(flags: TargetFlags): IoTClient {
  return new IoTClient(clientConfigFor(flags));
}

/** The S3 client the flags ask for (the local S3 serves path-style URLs only). */
function s3ClientFor(flags: TargetFlags): S3Client {
  return new S3Client({ ...clientConfigFor(flags), ...(flags.local ? { forcePathStyle: true } : {}) });
}

/** Service errors become exit 1 with the exception's name and message. */
async function call<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof IoTServiceException || err instanceof S3ServiceException) {
      throw new CliError(`${what} failed: ${err.name}: ${err.message}`, 1, { cause: err });
    }
    throw err;
  }
}

/**
 * `certs ca register --ca DIR (--local | --aws) [--auto-registration] [--data-dir D] [--region R]`:
 * registers the issuing CA as ACTIVE, with its verification certificate.
 */
export async function caRegister(raw: Record<string, unknown>, io: CertsIo = { out: process.stdout }) {
  const flags = parseFlags(RegisterFlags, raw);
  checkTarget(flags);
  const ca = await tooling(() => loadCa(flags.ca));
  const client = io.client ?? clientFor(flags);
  try {
    const { registrationCode } = await call('GetRegistrationCode', () =>
      client.send(new GetRegistrationCodeCommand({})),
    );
    if (!registrationCode) throw new CliError('GetRegistrationCode returned no registration code', 1);
    const verificationCertificate = await tooling(() =>
      createVerificationCertificate(ca.issuing, registrationCode),
    );
    const out = await call('RegisterCACertificate', () =>
      client.send(
        new RegisterCACertificateCommand({
          caCertificate: ca.issuing.certPem,
          verificationCertificate,
          setAsActive: true,
          allowAutoRegistration: flags.autoRegistration,
        }),
      ),
    );
    io.out.write(
      [
        `registered CA ${ca.issuingCertFile} with ${flags.aws ? 'AWS IoT' : `the local cloud of ${flags.dataDir}`}`,
        `  certificate id     ${out.certificateId}`,
        `  certificate ARN    ${out.certificateArn}`,
        `  status             ACTIVE`,
        `  auto-registration  ${flags.autoRegistration ? 'ENABLE' : 'DISABLE'}`,
        '',
      ].join('\n'),
    );
  } finally {
    if (!io.client) client.destroy();
  }
}

/**
 * `certs jitr publish --ca DIR (--local | --aws) [--cn-pattern RE] [--serial HEX ...] [--results-bucket NAME]
 * [--data-dir D] [--region R]`: writes the JITR allow-list (one document for every CA) and uploads the
 * CA's crl.pem, when it has one, as the CRL of its issuing CA, into the results bucket.
 */
export async function jitrPublish(raw: Record<string, unknown>, io: CertsIo = { out: process.stdout }) {
  const flags = parseFlags(JitrPublishFlags, raw);
  checkTarget(flags);
  if (flags.cnPattern === undefined && flags.serial === undefined) {
    throw new CliError(
      'invalid --cn-pattern/--serial: give --cn-pattern, --serial or both (an allow-list that admits nothing revokes every new certificate)',
    );
  }
  const bucket = flags.resultsBucket ?? (flags.local ? LOCAL_RESULTS_BUCKET : undefined);
  if (bucket === undefined) {
    throw new CliError(
      'invalid --results-bucket: is required with --aws (the stack output ResultsBucketName)',
    );
  }
  const allowList: JitrAllowList = JitrAllowListSchema.parse({
    version: 1,
    ...(flags.cnPattern !== undefined ? { cnPattern: flags.cnPattern } : {}),
    ...(flags.serial !== undefined ? { serials: flags.serial } : {}),
  });
  const { ca, crl } = await tooling(async () => {
    const loaded = await loadCa(flags.ca);
    return { ca: loaded, crl: await readCrlFile(loaded) };
  });
  const caCertificateId = certificateId(ca.issuing.certPem);
  const s3 = io.s3 ?? s3ClientFor(flags);
  try {
    await call('PutObject (allow-list)', () =>
      s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: JITR_ALLOW_LIST_KEY,
          Body: `${JSON.stringify(allowList, null, 2)}\n`,
          ContentType: 'application/json',
        }),
      ),
    );
    if (crl) {
      await call('PutObject (CRL)', () =>
        s3.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: jitrCrlKey(caCertificateId),
            Body: crl.pem,
            ContentType: 'application/x-pem-file',
          }),
        ),
      );
    }
    const admits = [
      ...(allowList.cnPattern !== undefined ? [`CN matching ^(?:${allowList.cnPattern})$`] : []),
      ...(allowList.serials !== undefined ? [`${allowList.serials.length} serial(s)`] : []),
    ];
    io.out.write(
      [
        `published the JITR documents to ${flags.aws ? 'AWS' : `the local cloud of ${flags.dataDir}`}`,
        `  allow-list         s3://${bucket}/${JITR_ALLOW_LIST_KEY} (${admits.join(' or ')})`,
        `  CA certificate id  ${caCertificateId} (${ca.issuingCertFile})`,
        crl
          ? `  CRL                s3://${bucket}/${jitrCrlKey(caCertificateId)} (${crl.revoked} revoked, from ${crl.path})`
          : `  CRL                none: ${flags.ca} has no crl.pem, so no certificate of this CA is taken as revoked`,
        '',
      ].join('\n'),
    );
  } finally {
    if (!io.s3) s3.destroy();
  }
}

/** `certs device issue --ca DIR (--thing NAME | --csr FILE) --out DIR [--days N]`. */
export async function deviceIssue(raw: Record<string, unknown>, io: CertsIo = { out: process.stdout }) {
  const flags = parseFlags(DeviceIssueFlags, raw);
  if ((flags.thing === undefined) === (flags.csr === undefined)) {
    throw new CliError('invalid --thing/--csr: give exactly one of --thing NAME or --csr FILE');
  }
  const csrPem = flags.csr !== undefined ? await readFlagFile(flags.csr, '--csr') : undefined;
  const issued = await tooling(async () => {
    const ca = await loadCa(flags.ca);
    return issueDevice(
      ca,
      csrPem !== undefined ? { csrPem } : { thingName: flags.thing! },
      flags.out,
      flags.days,
    );
  });
  io.out.write(
    [
      `issued device certificate for thing ${issued.thingName}${csrPem !== undefined ? ` from ${flags.csr}` : ''}`,
      `  serial          ${issued.serialNumber.toLowerCase()}`,
      `  certificate id  ${certificateId(issued.certPem)}`,
      `  files           ${issued.files.cert}`,
      ...(issued.files.key ? [`                  ${issued.files.key} (0600)`] : []),
      `                  ${issued.files.chain} (device + CA, for JITR)`,
      '',
    ].join('\n'),
  );
}

/** `certs device revoke --ca DIR --cert FILE [--reason R]`. */
export async function deviceRevoke(raw: Record<string, unknown>, io: CertsIo = { out: process.stdout }) {
  const flags = parseFlags(RevokeFlags, raw);
  const certPem = await readFlagFile(flags.cert, '--cert');
  const r = await tooling(async () => revokeCertificate(await loadCa(flags.ca), certPem, flags.reason));
  io.out.write(
    [
      r.added ? `revoked ${r.entry.subject}` : `already revoked: ${r.entry.subject}`,
      `  serial          ${r.entry.serialNumber}`,
      `  certificate id  ${r.entry.certificateId}`,
      `  reason          ${r.entry.reason}`,
      `  revoked at      ${r.entry.revokedAt}`,
      `  files           ${r.files.list}`,
      `                  ${r.files.crl}`,
      '',
    ].join('\n'),
  );
}

export function registerCertsCommands(program: Command): void {
  const certs = program
    .command('certs')
    .description('CA, verification and device certificates; CA registration; JITR documents');
  const ca = certs.command('ca').description('the CA that signs device certificates');
  ca.command('create')
    .description('create a root CA (and an intermediate signed by it) in a directory')
    .requiredOption(
      '--out <dir>',
      'directory for ca.crt, ca.key (and intermediate.crt, intermediate.key), ca-chain.crt',
    )
    .option('--cn <name>', 'common name of the root CA', 'edgefleet root CA')
    .option('--key-type <type>', `key type: ${KEY_TYPES.join(' or ')}`, 'ec-p256')
    .option('--intermediate', 'also create an intermediate CA; it signs the devices', false)
    .option('--force', 'replace a CA that already exists in the directory', false)
    .action((o: Record<string, unknown>) => caCreate(o));
  ca.command('verification-cert')
    .description("the verification certificate of AWS IoT's RegisterCACertificate (CN = registration code)")
    .requiredOption('--ca <dir>', 'CA directory')
    .requiredOption('--registration-code <code>', 'the code GetRegistrationCode returns')
    .option('--out <file>', 'file to write (default: standard output)')
    .action((o: Record<string, unknown>) => caVerificationCert(o));
  ca.command('register')
    .description(
      'register the issuing CA as ACTIVE with the running local cloud (--local) or AWS IoT (--aws)',
    )
    .requiredOption('--ca <dir>', 'CA directory')
    .option('--local', 'the local cloud running on --data-dir', false)
    .option('--aws', 'AWS IoT with the default credential chain', false)
    .option('--auto-registration', 'allow JITR: auto-register device certificates this CA signed', false)
    .option('--data-dir <dir>', 'state directory of the running local cloud', '.edgefleet')
    .option('--region <region>', 'AWS region (local cloud: us-east-1)')
    .action((o: Record<string, unknown>) => caRegister(o));
  const device = certs.command('device').description('device certificates signed by the CA');
  device
    .command('issue')
    .description('issue a device certificate: a new key for --thing, or sign the CSR made on the device')
    .requiredOption('--ca <dir>', 'CA directory')
    .requiredOption('--out <dir>', 'directory for device.crt, device.key (new key only), device-chain.crt')
    .option('--thing <name>', 'thing name (the certificate CN); a new key pair is made')
    .option('--csr <file>', 'PKCS#10 request made on the device; its CN is the thing name')
    .option('--days <n>', 'validity in days', '365')
    .action((o: Record<string, unknown>) => deviceIssue(o));
  device
    .command('revoke')
    .description("record a device certificate in the CA's revoked.json and re-sign crl.pem")
    .requiredOption('--ca <dir>', 'CA directory')
    .requiredOption('--cert <file>', 'the device certificate (PEM)')
    .option('--reason <reason>', `one of ${REVOCATION_REASONS.join(', ')}`, 'unspecified')
    .action((o: Record<string, unknown>) => deviceRevoke(o));
  const jitr = certs.command('jitr').description('the documents the JITR activation function reads');
  jitr
    .command('publish')
    .description(
      "write the allow-list (for every CA) and upload the CA's crl.pem into the results bucket of the running local cloud (--local) or AWS (--aws)",
    )
    .requiredOption('--ca <dir>', 'CA directory (its crl.pem, if any, is the CRL of its issuing CA)')
    .option('--local', 'the local cloud running on --data-dir', false)
    .option('--aws', 'AWS with the default credential chain', false)
    .option('--cn-pattern <regex>', 'certificates whose CN matches (anchored) may join')
    .option('--serial <hex...>', 'serial numbers (hex) of certificates that may join')
    .option('--results-bucket <name>', `results bucket (local cloud: ${LOCAL_RESULTS_BUCKET})`)
    .option('--data-dir <dir>', 'state directory of the running local cloud', '.edgefleet')
    .option('--region <region>', 'AWS region (local cloud: us-east-1)')
    .action((o: Record<string, unknown>) => jitrPublish(o));
}
