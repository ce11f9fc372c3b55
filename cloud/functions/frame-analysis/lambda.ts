/** AWS Lambda entry point of the frame analysis function. */
import { runtimeFromEnvironment } from '../runtime.js';
import { createFrameAnalysisHandler } from './handler.js';

export const handler = createFrameAnalysisHandler(runtimeFromEnvironment());
