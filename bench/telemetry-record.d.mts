/** A sensor record padded to `bytes` bytes of JSON. */
export declare function telemetryRecord(i: number, bytes: number): string;
