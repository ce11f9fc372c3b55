/** AWS Lambda entry point of the JITR activation function. */
import { runtimeFromEnvironment } from '../runtime.js';
import { createJitrActivationHandler } from './handler.js';

export const handler = createJitrActivationHandler(runtimeFromEnvironment());
