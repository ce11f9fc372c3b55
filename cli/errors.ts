/** Errors of the command-line interface. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 2,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}
