/**
 * The authorization seam between the local cloud's services and its IAM: a service asks whether the
 * caller (the credentials that signed the request) may perform an action on a resource.
 */
import type { CredentialRecord } from './credentials.js';

export interface AccessRequest {
  /** IAM action, e.g. `s3:PutObject`. */
  action: string;
  /** Resource ARN, e.g. `arn:aws:s3:::bucket/key`. */
  resource: string;
  /** Request condition keys, e.g. `{ 's3:prefix': 'raw/gw-1/' }`. */
  context?: Record<string, string | string[]>;
}

export type AccessDecision = { allowed: true } | { allowed: false; reason: string };

export interface Authorizer {
  authorize(caller: CredentialRecord, request: AccessRequest): AccessDecision;
}

/** Allows the account's root credentials everything; anything else needs a real IAM authorizer. */
export const rootOnlyAuthorizer: Authorizer = {
  authorize(caller) {
    return /:root$/.test(caller.principalArn)
      ? { allowed: true }
      : { allowed: false, reason: `no IAM policy evaluation for ${caller.principalArn}` };
  },
};
