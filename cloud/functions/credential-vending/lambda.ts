/** AWS Lambda entry point of the credential vending function. */
import { runtimeFromEnvironment } from '../runtime.js';
import { createVendingHandler } from './handler.js';

export const handler = createVendingHandler(runtimeFromEnvironment());
