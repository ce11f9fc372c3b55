/** Errors of the certificate tooling. */
export class CertToolingError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A PEM input is not a certificate or key of the expected kind. */
export class InvalidPemError extends CertToolingError {}

/** A CA directory holds no CA, or its files do not belong together. */
export class CaNotFoundError extends CertToolingError {}

/** A CA already exists where a new one would be written. */
export class CaExistsError extends CertToolingError {}

/** A certificate signing request cannot be signed (bad signature, no usable common name). */
export class InvalidCsrError extends CertToolingError {}

/** A certificate was not issued by the CA that is asked to act on it. */
export class NotIssuedByCaError extends CertToolingError {}
