/**
 * Just-in-time registration (JITR): the names, the event and the documents shared by the broker of the
 * local cloud (which registers a new device certificate and publishes the event), the activation
 * function (cloud/functions/jitr-activation), its rule and the CDK app.
 *
 * "Just-in-time registration": when a device connects for the first time with a certificate signed by a
 * registered CA whose auto-registration is on, AWS IoT registers the certificate as PENDING_ACTIVATION,
 * publishes a message on `$aws/events/certificates/registered/{caCertificateId}` and closes the
 * connection; it publishes again on each later attempt while the certificate is still pending.
 */
import { z } from 'zod';

/** The activation function and its execution role. */
export const JITR_ACTIVATION_FUNCTION_NAME = 'edgefleet-jitr-activation';
export const JITR_ACTIVATION_ROLE_NAME = 'edgefleet-jitr-activation';

/** MQTT filter (and rule `FROM` topic) of the registration events of every CA. */
export const JITR_EVENTS_FILTER = '$aws/events/certificates/registered/+';
export const jitrEventTopic = (caCertificateId: string): string =>
  `$aws/events/certificates/registered/${caCertificateId}`;

/** The message AWS IoT publishes when it registers a device certificate just in time. */
export const JitrEventSchema = z.object({
  certificateId: z.string().regex(/^[0-9a-f]{64}$/, 'must be a certificate id (64 hex characters)'),
  caCertificateId: z.string().regex(/^[0-9a-f]{64}$/, 'must be a certificate id (64 hex characters)'),
  /** Epoch milliseconds of the event. */
  timestamp: z.number().int().nonnegative(),
  certificateStatus: z.literal('PENDING_ACTIVATION'),
  awsAccountId: z.string().regex(/^\d{12}$/, 'must be 12 digits'),
  /** Epoch milliseconds of the certificate's registration. */
  certificateRegistrationTimestamp: z.union([z.number().int().nonnegative(), z.string().min(1)]),
});
export type JitrEvent = z.infer<typeof JitrEventSchema>;

/**
 * The installers' allow-list, a JSON document in the results bucket: a certificate may join when its
 * subject CN matches `cnPattern` (an anchored regular expression) or its serial number (hex, any case,
 * without separators) is in `serials`. Without the document no certificate joins (fail closed).
 */
export const JITR_ALLOW_LIST_KEY = 'config/jitr/allow-list.json';

export const JitrAllowListSchema = z
  .object({
    version: z.literal(1),
    cnPattern: z
      .string()
      .min(1)
      .max(1024)
      .refine(
        (p) => {
          try {
            new RegExp(p);
            return true;
          } catch {
            return false;
          }
        },
        { message: 'must be a valid regular expression' },
      )
      .optional(),
    serials: z
      .array(z.string().regex(/^[0-9a-fA-F]{1,40}$/, 'must be a serial number in hex'))
      .max(100_000)
      .optional(),
  })
  .strict();
export type JitrAllowList = z.infer<typeof JitrAllowListSchema>;

/** The CRL (PEM) each registered CA's installer publishes, in the results bucket. */
export const JITR_CRL_PREFIX = 'config/jitr/crl/';
export const jitrCrlKey = (caCertificateId: string): string => `${JITR_CRL_PREFIX}${caCertificateId}.pem`;

/**
 * The activation function's permissions: read the certificate and its CA, create the thing and the
 * device policy, attach them, set the certificate's status; read the allow-list and the CRLs. (Its
 * logs, and KMS for the results bucket, are granted by the CDK app.)
 *
 * Resources as the Service Authorization Reference ("Actions, resources, and condition keys for AWS
 * IoT") lists them: DescribeCertificate and UpdateCertificate take the certificate (`cert`),
 * DescribeCACertificate the CA certificate (`cacert`), CreateThing the thing; AttachPolicy takes its
 * target (`cert` or `thinggroup`), not the policy, and AttachThingPrincipal the principal (`cert`, with
 * the `iot:thingArn` condition key), not the thing; CreatePolicy and GetPolicy take the policy, which is
 * the device policy only. Certificate, CA and thing ids are known only per event, hence the wildcards.
 */
export function jitrActivationRolePolicy(opts: {
  resultsBucket: string;
  region: string;
  account: string;
  partition?: string;
  /** The IoT policy attached to activated certificates (DEVICE_POLICY_NAME unless renamed). */
  devicePolicyName: string;
}) {
  const p = opts.partition ?? 'aws';
  const iot = `arn:${p}:iot:${opts.region}:${opts.account}`;
  const results = `arn:${p}:s3:::${opts.resultsBucket}`;
  return {
    Version: '2012-10-17' as const,
    Statement: [
      {
        Effect: 'Allow' as const,
        Action: [
          'iot:DescribeCertificate',
          'iot:UpdateCertificate',
          'iot:AttachPolicy',
          'iot:AttachThingPrincipal',
        ],
        Resource: `${iot}:cert/*`,
      },
      { Effect: 'Allow' as const, Action: 'iot:DescribeCACertificate', Resource: `${iot}:cacert/*` },
      { Effect: 'Allow' as const, Action: 'iot:CreateThing', Resource: `${iot}:thing/*` },
      {
        Effect: 'Allow' as const,
        Action: ['iot:GetPolicy', 'iot:CreatePolicy'],
        Resource: `${iot}:policy/${opts.devicePolicyName}`,
      },
      {
        Effect: 'Allow' as const,
        Action: 's3:GetObject',
        Resource: [`${results}/${JITR_ALLOW_LIST_KEY}`, `${results}/${JITR_CRL_PREFIX}*`],
      },
    ],
  };
}
