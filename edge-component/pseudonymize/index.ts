/** Sensitive-ID pseudonymization for the gateway: keyed pseudonyms, key ring, re-identification map. */
export { type PseudonymizationConfig, PseudonymizationConfigSchema } from './config.js';
export * from './errors.js';
export { formatJsonPath, type JsonPath, type PathSegment, parseJsonPath } from './json-path.js';
export {
  KeyRing,
  MIN_KEY_BYTES,
  NEW_KEY_BYTES,
  type SecretSource,
  TOKEN_CACHE_ENTRIES,
  TOKEN_CACHE_MAX_STRING,
} from './keyring.js';
export {
  type ApplyOptions,
  type PseudonymizedRecord,
  Pseudonymizer,
  type PseudonymizerOptions,
} from './pseudonymizer.js';
export {
  FileReidentificationStore,
  type FileStoreOptions,
  MemoryReidentificationStore,
  type ReidentificationEntry,
  type ReidentificationStore,
  type StoreLoadReport,
} from './store.js';
export {
  base32,
  canonical,
  computeToken,
  KEY_VERSION_PATTERN,
  type PseudonymizableValue,
  TOKEN_BYTES,
  TOKEN_PATTERN,
  type ValueType,
} from './token.js';
