/** A standalone gateway as `edgefleet gateway run` wires it: MQTT over mutual TLS, vended credentials, S3. */
import type { Logger } from 'pino';
import { KinesisDataStream } from '../../edge-component/adapters/kinesis-log-stream.js';
import { type MqttChannel, mqttChannelFromConfig } from '../../edge-component/adapters/mqtt-channel.js';
import type { GatewayConfig } from '../../edge-component/config.js';
import { credentialProviderFromConfig } from '../../edge-component/credentials.js';
import { Gateway } from '../../edge-component/gateway.js';
import type { LogTap } from '../../edge-component/logs/tee.js';
import { S3Uploader } from '../../edge-component/uploader.js';

export interface StandaloneGateway {
  gateway: Gateway;
  channel: MqttChannel;
  /** Stops the gateway, then its uploader, credentials and MQTT connection. */
  stop(): Promise<void>;
}

/** `logTap`: the LogTee the logger writes to, for a `logs` section that ships the component's lines. */
export async function startStandaloneGateway(
  config: GatewayConfig,
  logger: Logger,
  opts: { logTap?: LogTap } = {},
): Promise<StandaloneGateway> {
  const channel = mqttChannelFromConfig(config.iot!, config.thingName, { logger });
  const credentials = credentialProviderFromConfig(config, { channel, logger });
  const uploader = S3Uploader.fromConfig(config, credentials, { logger });
  const logStream = await KinesisDataStream.fromConfig(config, credentials);
  const gateway = await Gateway.start(config, {
    channel,
    uploader,
    logger,
    ...(opts.logTap ? { logTap: opts.logTap } : {}),
    ...(logStream ? { logStream } : {}),
  });
  return {
    gateway,
    channel,
    async stop() {
      await gateway.stop();
      uploader.destroy();
      logStream?.destroy();
      await credentials.close();
      await channel.close();
    },
  };
}
