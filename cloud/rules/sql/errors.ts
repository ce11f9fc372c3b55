/** Errors of the AWS IoT SQL engine. */
export class SqlError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A statement does not parse; `position` is the 0-based character offset, `line`/`column` 1-based. */
export class SqlParseError extends SqlError {
  constructor(
    message: string,
    readonly position: number,
    readonly line: number,
    readonly column: number,
  ) {
    super(`${message} (line ${line}, column ${column})`);
  }
}

/** Evaluation failed in a way AWS reports as a rule error (not as Undefined). */
export class SqlEvaluationError extends SqlError {}
