/** The local data lake: DuckDB views over the local S3 (the local Athena of `edgefleet lake`). */
export {
  LakeEngine,
  type LakeEngineOptions,
  type LakeSourceInfo,
  type LakeTableInfo,
  type LakeViewInfo,
} from './engine.js';
export {
  LakeClosedError,
  LakeConfigError,
  LakeError,
  LakeLayoutError,
  LakeOpenError,
  LakeQueryError,
} from './errors.js';
export {
  formatCsv,
  formatJson,
  formatResult,
  formatTable,
  LAKE_FORMATS,
  type LakeFormat,
  rowCountText,
} from './format.js';
export { type LakeColumnInfo, LakeJson, type LakeObject, type LakeResult, type LakeValue } from './values.js';
