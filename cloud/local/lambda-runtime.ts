/**
 * The local Lambda runtime: each project function runs in-process with its execution role's session
 * credentials and the local cloud's endpoint, as the same handler code runs on AWS Lambda.
 */
import type { AwsCredentialIdentity } from '@smithy/types';
import type { Logger } from 'pino';
import { type Handler, HandlerRegistry } from '../functions/index.js';
import type { FunctionDefinition } from '../functions/runtime.js';
import type { CredentialRecord } from './credentials.js';

export interface LocalLambdaOptions {
  functions: readonly FunctionDefinition[];
  region: string;
  /** The local cloud's HTTP endpoint; asked on first invocation, when it is listening. */
  endpoint: () => string;
  /** A fresh session of an execution role. */
  roleSession: (roleName: string, sessionName: string) => CredentialRecord;
  /** Configuration variables by function name. */
  environment: (fn: FunctionDefinition) => Record<string, string>;
  logger: Logger;
}

/** Sessions are renewed this long before they expire. */
const RENEW_BEFORE_MS = 5 * 60_000;

/** A registry whose handlers build the real handler on first use, with the local runtime. */
export function localFunctionRegistry(opts: LocalLambdaOptions): HandlerRegistry {
  const registry = new HandlerRegistry();
  for (const fn of opts.functions) {
    let session: CredentialRecord | undefined;
    const credentials = async (): Promise<AwsCredentialIdentity> => {
      const expires = session?.expiration ? Date.parse(session.expiration) : 0;
      if (!session || expires - Date.now() < RENEW_BEFORE_MS)
        session = opts.roleSession(fn.roleName, fn.name);
      return {
        accessKeyId: session.accessKeyId,
        secretAccessKey: session.secretAccessKey,
        ...(session.sessionToken ? { sessionToken: session.sessionToken } : {}),
        ...(session.expiration ? { expiration: new Date(session.expiration) } : {}),
      };
    };
    let handler: Handler | undefined;
    registry.registerHandler(fn.name, (event, context) => {
      handler ??= fn.create({
        region: opts.region,
        clientConfig: { endpoint: opts.endpoint(), credentials },
        env: opts.environment(fn),
        logger: opts.logger.child({ function: fn.name }),
      });
      return handler(event, context);
    });
  }
  return registry;
}
