/** Errors of the local data lake (`edgefleet lake`). */
export class LakeError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** An option of the engine is invalid (data dir, bucket name); the message names it. */
export class LakeConfigError extends LakeError {}

/** A table of the lake layout cannot be turned into a view (a bug in `cloud/rules/lake.ts`). */
export class LakeLayoutError extends LakeError {}

/** DuckDB could not be opened or the views could not be created. */
export class LakeOpenError extends LakeError {}

/** A statement failed: the message is DuckDB's (it names the file for bad data). */
export class LakeQueryError extends LakeError {
  constructor(
    message: string,
    readonly sql: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The engine was used after close(). */
export class LakeClosedError extends LakeError {}
