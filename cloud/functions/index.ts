/**
 * The project's Lambda handlers by function name. On AWS each is deployed as a function (cloud/cdk);
 * in the local cloud, a rule's lambda action calls the same handler in-process.
 *
 * Handlers have the Node.js runtime's async signature: `(event, context) => Promise<result>`.
 */

import { anomalyDetection } from './anomaly-detection/handler.js';
import { credentialVending } from './credential-vending/handler.js';
import { eventAck } from './event-ack/handler.js';
import { frameAnalysis } from './frame-analysis/handler.js';
import { jitrActivation } from './jitr-activation/handler.js';
import type { FunctionDefinition } from './runtime.js';

/** The subset of the Node.js Lambda runtime's context object that handlers may rely on. */
export interface LambdaContext {
  functionName: string;
  functionVersion: string;
  invokedFunctionArn: string;
  memoryLimitInMB: string;
  awsRequestId: string;
  logGroupName: string;
  logStreamName: string;
  /** Milliseconds left before the invocation times out. */
  getRemainingTimeInMillis(): number;
}

export type Handler = (event: unknown, context: LambdaContext) => Promise<unknown>;

/** Lambda function names (the Lambda API's pattern for a plain name, 1 to 64 characters). */
export const FUNCTION_NAME_PATTERN = /^[a-zA-Z0-9_-]{1,64}$/;

/** The project's functions. Each is deployed by the CDK app and run in-process by the local cloud. */
export const FUNCTIONS: readonly FunctionDefinition[] = Object.freeze([
  credentialVending,
  eventAck,
  frameAnalysis,
  jitrActivation,
  anomalyDetection,
]);

/** Names of the project's functions (what lambda rule actions may name). */
export const FUNCTION_NAMES: readonly string[] = FUNCTIONS.map((f) => f.name);

export class HandlerRegistryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Handlers by function name: the project's handlers plus any registered at run time (tests). */
export class HandlerRegistry {
  private readonly handlers = new Map<string, Handler>();

  constructor(initial: Readonly<Record<string, Handler>> = {}) {
    for (const [name, handler] of Object.entries(initial)) this.registerHandler(name, handler);
  }

  /** Adds a handler; returns a function that removes it again. Names are unique. */
  registerHandler(name: string, handler: Handler): () => void {
    if (!FUNCTION_NAME_PATTERN.test(name)) {
      throw new HandlerRegistryError(`function name '${name}' must match ${FUNCTION_NAME_PATTERN.source}`);
    }
    if (this.handlers.has(name)) {
      throw new HandlerRegistryError(`a handler named '${name}' is already registered`);
    }
    this.handlers.set(name, handler);
    return () => {
      if (this.handlers.get(name) === handler) this.handlers.delete(name);
    };
  }

  get(name: string): Handler | undefined {
    return this.handlers.get(name);
  }

  has(name: string): boolean {
    return this.handlers.has(name);
  }

  names(): string[] {
    return [...this.handlers.keys()].sort();
  }
}

/** A registry holding the given handlers; tests register their own handlers on it. */
export function createHandlerRegistry(extra: Readonly<Record<string, Handler>> = {}): HandlerRegistry {
  const registry = new HandlerRegistry();
  for (const [name, handler] of Object.entries(extra)) registry.registerHandler(name, handler);
  return registry;
}
