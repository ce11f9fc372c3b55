/** Gateway configuration tests: the error a configuration is refused with. */
import { parseGatewayConfig } from '../../edge-component/config.js';
import { GatewayConfigError } from '../../edge-component/errors.js';

/** The GatewayConfigError `input` is refused with; fails the test if it is accepted. */
export function gatewayConfigError(input: unknown): GatewayConfigError {
  try {
    parseGatewayConfig(input);
  } catch (err) {
    if (err instanceof GatewayConfigError) return err;
    throw err;
  }
  throw new Error('expected a GatewayConfigError');
}
