/**
 * The values a lake query returns, independent of DuckDB's classes: what the output formats work on.
 *
 * - BOOLEAN → boolean; integers up to 32 bits, FLOAT, DOUBLE → number; BIGINT, HUGEINT and the unsigned
 *   64/128-bit types → bigint (exact); DECIMAL → number up to 15 digits, else its exact text.
 * - DATE → `YYYY-MM-DD`; TIMESTAMP → ISO 8601 without a zone (`2026-11-23T10:00:00.000`), TIMESTAMPTZ →
 *   ISO 8601 in UTC (`...Z`); sub-millisecond digits are kept when there are any; infinities as text.
 * - JSON → a {@link LakeJson} holding the JSON text as DuckDB returns it (valid JSON, numbers exact).
 * - LIST/ARRAY → arrays, STRUCT and MAP → objects, UNION → its member's value.
 * - Everything else (TIME, INTERVAL, UUID, BLOB, ...) → DuckDB's text for it.
 */
export type LakeValue = null | boolean | number | bigint | string | LakeJson | LakeValue[] | LakeObject;
export interface LakeObject {
  [key: string]: LakeValue;
}

/** A value of a JSON column, as its JSON text. */
export class LakeJson {
  constructor(readonly text: string) {}
}

export interface LakeColumnInfo {
  name: string;
  /** DuckDB's name of the type (`VARCHAR`, `BIGINT`, `JSON`, `STRUCT(...)`, ...). */
  type: string;
}

export interface LakeResult {
  columns: LakeColumnInfo[];
  rows: LakeValue[][];
}

export const isLakeObject = (v: LakeValue): v is LakeObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof LakeJson);
