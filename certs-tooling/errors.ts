/** Errors of the certificate tooling. */
export class CertToolingError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A PEM input is not a certificate or key of the expected kind. */
export class InvalidPemError extends CertToolingError {}
