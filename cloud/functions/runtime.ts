/**
 * What a function gets from the runtime it runs in. On AWS Lambda that is the environment (region,
 * execution-role credentials picked up by the SDK's default chain, configuration variables); in the
 * local cloud it is the local endpoint and a session of the function's execution role. The handler code
 * is the same in both: it only builds its SDK clients from `clientConfig`.
 */
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import pino, { type Logger } from 'pino';
import type { Handler } from './index.js';

export interface FunctionRuntime {
  region: string;
  /** Spread into every SDK client the function creates: empty on AWS. */
  clientConfig: {
    endpoint?: string;
    credentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  };
  /** The function's configuration (Lambda environment variables). */
  env: Readonly<Record<string, string | undefined>>;
  logger: Logger;
}

export interface FunctionDefinition {
  /** Lambda function name. */
  name: string;
  /** Name of the execution role (cloud/rules/resources.ts). */
  roleName: string;
  /** Environment variables the function reads, for the CDK app and the local runtime. */
  environment: readonly string[];
  /** Builds the handler for a runtime. */
  create(runtime: FunctionRuntime): Handler;
}

/** The runtime on AWS Lambda: everything comes from the process environment. */
export function runtimeFromEnvironment(env: NodeJS.ProcessEnv = process.env): FunctionRuntime {
  const region = env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  if (!region) throw new Error('AWS_REGION is not set');
  return { region, clientConfig: {}, env, logger: pino({ level: env.LOG_LEVEL ?? 'info' }) };
}

/** Reads a required configuration variable, naming it when it is missing. */
export function requireEnv(runtime: FunctionRuntime, name: string): string {
  const v = runtime.env[name];
  if (v === undefined || v === '') throw new Error(`environment variable ${name} is not set`);
  return v;
}
