/** What an AWS IoT SQL statement is evaluated against: the message and the rule's environment. */
import type { SqlValue } from './values.js';

export type SqlVersion = '2015-10-08' | '2016-03-23' | 'beta';
export const DEFAULT_SQL_VERSION: SqlVersion = '2016-03-23';

export interface MessageContext {
  topic: string;
  payload: Uint8Array;
  /** Client id of the publisher; absent for messages the service itself publishes. */
  clientId?: string;
  /** The publisher's principal: the certificate id for X.509 clients. */
  principal?: string;
  sourceIp?: string;
  /** Arrival time, epoch milliseconds. */
  timestamp: number;
  traceId?: string;
  /** MQTT 5 user properties of the message, if any. */
  userProperties?: readonly (readonly [string, string])[];
  /** Other MQTT 5 properties (`content_type`, `format_indicator`, `response_topic`, `correlation_data`, ...). */
  mqttProperties?: Readonly<Record<string, SqlValue>>;
}

/** Services the SQL functions may call; absent ones make their functions return Undefined. */
export interface SqlServices {
  /** `get_thing_shadow(thingName, roleArn)` / named: the shadow document, or undefined if there is none. */
  getThingShadow?(thingName: string, shadowName: string | undefined): SqlValue | undefined;
}

export interface EvalContext {
  message: MessageContext;
  sqlVersion: SqlVersion;
  accountId: string;
  region: string;
  services: SqlServices;
  /** Epoch milliseconds; injectable for tests. */
  now(): number;
  random(): number;
  uuid(): string;
}

/** A SQL function: arguments already evaluated; bad arguments give Undefined, as documented. */
export type SqlFunction = (args: readonly SqlValue[], ctx: EvalContext) => SqlValue;

export interface FunctionSpec {
  /** Lower-case name as written in SQL. */
  name: string;
  minArgs: number;
  /** `Infinity` for variadic functions. */
  maxArgs: number;
  fn: SqlFunction;
}
