/** A standalone gateway as `edgefleet gateway run` wires it: MQTT over mutual TLS, vended credentials, S3. */
import type { Logger } from 'pino';
import { type MqttChannel, mqttChannelFromConfig } from '../../edge-component/adapters/mqtt-channel.js';
import type { GatewayConfig } from '../../edge-component/config.js';
import { credentialProviderFromConfig } from '../../edge-component/credentials.js';
import { Gateway } from '../../edge-component/gateway.js';
import { S3Uploader } from '../../edge-component/uploader.js';

export interface StandaloneGateway {
  gateway: Gateway;
  channel: MqttChannel;
  /** Stops the gateway, then its uploader, credentials and MQTT connection. */
  stop(): Promise<void>;
}

export async function startStandaloneGateway(
  config: GatewayConfig,
  logger: Logger,
): Promise<StandaloneGateway> {
  const channel = mqttChannelFromConfig(config.iot!, config.thingName, { logger });
  const credentials = credentialProviderFromConfig(config, { channel, logger });
  const uploader = S3Uploader.fromConfig(config, credentials, { logger });
  const gateway = await Gateway.start(config, { channel, uploader, logger });
  return {
    gateway,
    channel,
    async stop() {
      await gateway.stop();
      uploader.destroy();
      await credentials.close();
      await channel.close();
    },
  };
}
