/**
 * Functions that call another AWS service: aws_lambda, get_dynamodb, get_registry_data, get_secret,
 * machinelearning_predict. The local cloud has no such service behind the rules engine, so calling one
 * fails the rule evaluation loudly (a SqlEvaluationError, which AWS would also report as a rule error
 * when the call fails) instead of quietly producing Undefined.
 */
import type { FunctionSpec } from '../context.js';
import { SqlEvaluationError } from '../errors.js';
import { define } from './define.js';

function unavailable(name: string, minArgs: number, maxArgs: number, service: string): FunctionSpec {
  return define(name, minArgs, maxArgs, () => {
    throw new SqlEvaluationError(
      `${name}() is not available in the local cloud: it needs ${service}, which the local rules engine does not call`,
    );
  });
}

export const EXTERNAL_FUNCTIONS: readonly FunctionSpec[] = [
  unavailable('aws_lambda', 2, 2, 'AWS Lambda'),
  // get_dynamodb(tableName, partitionKeyName, partitionKeyValue[, sortKeyName, sortKeyValue], roleArn)
  unavailable('get_dynamodb', 4, 6, 'Amazon DynamoDB'),
  unavailable('get_registry_data', 3, 3, 'the AWS IoT registry API'),
  // get_secret(secretId, secretType[, key], roleArn)
  unavailable('get_secret', 3, 4, 'AWS Secrets Manager'),
  unavailable('machinelearning_predict', 3, 3, 'Amazon Machine Learning'),
];
