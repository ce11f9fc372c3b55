/**
 * What the activation function reads from certificates and CRLs, and the decision it takes on them.
 * Pure functions over @peculiar/x509 (WebCrypto), so the same code runs on Lambda and in tests.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { JitrAllowList } from '../../rules/jitr.js';

/** AWS IoT thing names (CreateThing): 1 to 128 of letters, digits, `:`, `_`, `-`. */
export const THING_NAME = /^[a-zA-Z0-9:_-]{1,128}$/;

/** A reason the function refuses a certificate, or cannot read one of its inputs. */
export class JitrRefusal extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A serial number as compared everywhere: lower-case hex without separators or leading zeros. */
export function normalizeSerial(hex: string): string {
  const s = hex.replace(/[\s:]/g, '').toLowerCase().replace(/^0+/, '');
  return s === '' ? '0' : s;
}

export interface DeviceCertificate {
  cert: x509.X509Certificate;
  /** The subject's common name, when it has exactly one. */
  commonName?: string;
  /** Normalized ({@link normalizeSerial}). */
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

export function parsePem(pem: string, what: string): x509.X509Certificate {
  try {
    return new x509.X509Certificate(pem);
  } catch (err) {
    throw new JitrRefusal(`the ${what} is not an X.509 certificate in PEM`, { cause: err });
  }
}

export function readDeviceCertificate(pem: string): DeviceCertificate {
  const cert = parsePem(pem, 'device certificate');
  const cns = cert.subjectName.getField('CN');
  return {
    cert,
    ...(cns.length === 1 && cns[0] !== undefined ? { commonName: cns[0] } : {}),
    serial: normalizeSerial(cert.serialNumber),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
  };
}

/** Whether `ca` signed `cert` (signature and issuer name; validity is checked separately). */
export async function issuedBy(cert: x509.X509Certificate, ca: x509.X509Certificate): Promise<boolean> {
  if (cert.issuer !== ca.subject) return false;
  try {
    return await cert.verify({ publicKey: ca, signatureOnly: true });
  } catch {
    return false;
  }
}

export interface RevocationList {
  /** Normalized serial numbers of the revoked certificates. */
  serials: ReadonlySet<string>;
  thisUpdate: Date;
  nextUpdate?: Date;
}

/**
 * Parses a CRL (PEM or DER) and checks that the CA issued it: issuer name and signature.
 * @throws JitrRefusal when it cannot be parsed or was not signed by the CA.
 */
export async function readCrl(text: string, ca: x509.X509Certificate): Promise<RevocationList> {
  let crl: x509.X509Crl;
  try {
    crl = new x509.X509Crl(text.trim());
  } catch (err) {
    throw new JitrRefusal('the CRL is not an X.509 CRL in PEM', { cause: err });
  }
  if (crl.issuer !== ca.subject) {
    throw new JitrRefusal(`the CRL is issued by '${crl.issuer}', not by the CA '${ca.subject}'`);
  }
  let valid = false;
  try {
    valid = await crl.verify({ publicKey: ca });
  } catch (err) {
    throw new JitrRefusal('the CRL signature cannot be checked against the CA certificate', { cause: err });
  }
  if (!valid) throw new JitrRefusal("the CRL signature does not verify with the CA certificate's key");
  return {
    serials: new Set(crl.entries.map((e) => normalizeSerial(e.serialNumber))),
    thisUpdate: crl.thisUpdate,
    ...(crl.nextUpdate ? { nextUpdate: crl.nextUpdate } : {}),
  };
}

/** The allow-list's CN pattern, anchored: it must match the whole CN. */
export function anchoredPattern(pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`);
}

export type Decision = { accept: true; thingName: string } | { accept: false; reason: string };

/**
 * The activation decision: the certificate joins when it is within its validity, its serial is not on
 * the CA's CRL, and its CN matches the allow-list's pattern or its serial is allow-listed; its CN is
 * the thing name, so it must be one.
 */
export function decide(
  device: DeviceCertificate,
  allowList: JitrAllowList,
  crl: RevocationList,
  now: Date,
): Decision {
  if (crl.serials.has(device.serial)) {
    return { accept: false, reason: `serial ${device.serial} is on the CA's certificate revocation list` };
  }
  if (now < device.notBefore) {
    return { accept: false, reason: `the certificate is not valid before ${device.notBefore.toISOString()}` };
  }
  if (now > device.notAfter) {
    return { accept: false, reason: `the certificate expired at ${device.notAfter.toISOString()}` };
  }
  const cn = device.commonName;
  const cnAllowed =
    cn !== undefined && allowList.cnPattern !== undefined && anchoredPattern(allowList.cnPattern).test(cn);
  const serialAllowed = (allowList.serials ?? []).some((s) => normalizeSerial(s) === device.serial);
  if (!cnAllowed && !serialAllowed) {
    return {
      accept: false,
      reason: `neither the CN '${cn ?? '(none)'}' nor the serial ${device.serial} is on the allow-list`,
    };
  }
  if (cn === undefined) {
    return { accept: false, reason: 'the certificate subject has no single CN to name the thing with' };
  }
  if (!THING_NAME.test(cn)) {
    return { accept: false, reason: `the CN '${cn}' is not a thing name (1..128 letters, digits, : _ -)` };
  }
  return { accept: true, thingName: cn };
}
