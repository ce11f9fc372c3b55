/** AWS Lambda entry point of the anomaly detection function. */
import { runtimeFromEnvironment } from '../runtime.js';
import { createAnomalyDetectionHandler } from './handler.js';

export const handler = createAnomalyDetectionHandler(runtimeFromEnvironment());
