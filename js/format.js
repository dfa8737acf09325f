// Number formatting shared by the views: one place decides how a missing value
// reads ("–") and how counts, shares and rates are written.

// A finite number?
export const num = (v) => typeof v === "number" && Number.isFinite(v);

// `1234.5` -> "1,234.5" (the browser's locale), at most `digits` decimals; "–" when
// `v` is not a finite number.
export const fmt = (v, digits = 0) => (num(v)
  ? v.toLocaleString(undefined, { maximumFractionDigits: digits }) : "–");

// `plural(1, "push", "pushes")` -> "1 push"; `plural(3, "item")` -> "3 items".
export const plural = (n, one, many = `${one}s`) => `${fmt(n)} ${n === 1 ? one : many}`;

// A share in [0, 1] as a percentage with one decimal: 0.8114 -> "81.1%"; "–" when
// missing (null or undefined).
export const pct = (v) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(1)}%`);
