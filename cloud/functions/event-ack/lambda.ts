/** AWS Lambda entry point of the event acknowledgement function. */
import { runtimeFromEnvironment } from '../runtime.js';
import { createEventAckHandler } from './handler.js';

export const handler = createEventAckHandler(runtimeFromEnvironment());
