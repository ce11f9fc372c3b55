/** Errors of the fleet operator side (firmware publishing and rollouts). */
export class FleetError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A firmware version cannot be published (already published, unreadable file, bad key, ...). */
export class FirmwarePublishError extends FleetError {}

/** A published manifest is missing, malformed, expired or does not verify. */
export class ManifestError extends FleetError {}

/** A rollout cannot start (unknown things or group, bad options). */
export class RolloutError extends FleetError {}
