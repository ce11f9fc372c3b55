/**
 * Configuration of pseudonymization, to become the `pseudonymization` section of the gateway
 * configuration (edge-component/config.ts). Paths are checked here already, so a bad one is reported
 * as `pseudonymization.fields.2: invalid JSON path "..." at position 4: ...`.
 */
import { z } from 'zod';
import { JsonPathError } from './errors.js';
import { parseJsonPath } from './json-path.js';

function typeError(what: string) {
  return {
    error: (iss: { input?: unknown }) => (iss.input === undefined ? 'is required' : `must be ${what}`),
  };
}

const text = z.string(typeError('a string')).min(1, 'must not be empty');

export const PseudonymizationConfigSchema = z
  .strictObject(
    {
      /** JSON paths of the fields to replace by pseudonyms. */
      fields: z
        .array(z.string(typeError('a string')), typeError('an array of JSON paths'))
        .superRefine((fields, ctx) => {
          const seen = new Set<string>();
          fields.forEach((f, i) => {
            try {
              parseJsonPath(f);
            } catch (err) {
              if (!(err instanceof JsonPathError)) throw err;
              ctx.addIssue({ code: 'custom', path: [i], message: err.message });
              return;
            }
            if (seen.has(f)) ctx.addIssue({ code: 'custom', path: [i], message: 'is listed twice' });
            seen.add(f);
          });
        }),
      /**
       * The key file (mode 0600, created on first use); relative paths resolve against the configuration
       * file's directory (under Greengrass: the component's work folder). Exactly one of keyFile and
       * keySecretId.
       */
      keyFile: text.optional(),
      /**
       * Under Greengrass: the ARN (or name) of the AWS Secrets Manager secret that holds the key document,
       * read over IPC from the aws.greengrass.SecretManager component. Exactly one of keyFile and keySecretId.
       */
      keySecretId: text.optional(),
      /** The re-identification map (JSON lines, mode 0600); relative like keyFile. */
      mapFile: text,
    },
    typeError('an object'),
  )
  .superRefine((c, ctx) => {
    if (c.keyFile !== undefined && c.keySecretId !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['keySecretId'],
        message: 'must not be set together with keyFile',
      });
    } else if (c.keyFile === undefined && c.keySecretId === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['keyFile'],
        message: 'is required (or keySecretId under Greengrass)',
      });
    }
  });

export type PseudonymizationConfig = z.output<typeof PseudonymizationConfigSchema>;
