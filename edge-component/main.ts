/**
 * The component's entry point under Greengrass (the recipe's Run step:
 * `node --max-semi-space-size=4 {artifacts:decompressedPath}/edgefleet/dist/edge-component/main.js`;
 * heap.ts says why). It runs until the nucleus stops it (SIGTERM), then stops the gateway cleanly: open
 * batches are cut and spooled, nothing accepted is lost. Standalone runs use
 * `npx edgefleet gateway run --config FILE` instead.
 */
import pino from 'pino';
import { GreengrassComponent } from './greengrass.js';
import { tuneHeap } from './heap.js';

tuneHeap();

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** Start-up and fatal errors; the component logs with its own logger at the configured level. */
const logger = pino({ level: 'info' });

async function main(): Promise<number> {
  let component: GreengrassComponent;
  try {
    component = await GreengrassComponent.start();
  } catch (err) {
    logger.fatal({ err }, 'the gateway component cannot start');
    return 1;
  }
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  logger.info({ signal }, 'stopping the gateway component');
  await component.stop();
  logger.info('gateway component stopped');
  return 0;
}

process.exitCode = await main();
