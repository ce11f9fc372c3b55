#!/usr/bin/env node
// Entry point of the `edgefleet` command: loads the TypeScript CLI through tsx.
import { register } from 'tsx/esm/api';

// The gateways run Node 20 (see README); the SDK's notice about its future Node floor is not for them.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
register();
const { main } = await import('../cli/main.ts');
await main(process.argv);
