// The dashboard's chart arithmetic, apart from the DOM: strategy colours, the
// accuracy axis, round ticks and the data-to-pixel scales.

// Margins of the plot inside the SVG, in pixels.
export const MARGIN = { l: 52, r: 18, t: 16, b: 38 };

// FNV-1a: a strategy's colour follows from its name, not from the order names arrived in
export function hashName(name) {
  let x = 0x811c9dc5;
  for (const ch of name) {
    x ^= ch.codePointAt(0);
    x = Math.imul(x, 0x01000193);
  }
  return x >>> 0;
}

// One colour per strategy, `var(--alaas-series-<slot>)` with slot < nSeries: the
// name's hash picks a slot; two names on one slot are parted in name order. The same
// names always get the same colours (a worker restart, a new kernel, another order of
// arrival), and a name keeps its colour in every session where it does not collide.
export function strategyColors(names, nSeries) {
  const slots = new Map();
  const taken = new Set();
  for (const name of [...new Set(names)].sort()) {
    let i = hashName(name) % nSeries;
    for (let n = 0; taken.has(i) && n < nSeries; n++) i = (i + 1) % nSeries;
    taken.add(i);
    slots.set(name, `var(--alaas-series-${i})`);
  }
  return slots;
}

// The accuracy axis [lo, hi]: the values with 2 points of room, widened to tenths,
// clamped to [0, 1] and at least 0.2 tall (so two close values are not drawn apart).
export function accuracyRange(values) {
  let lo = Math.max(0, Math.floor((Math.min(...values) - 0.02) * 10) / 10);
  let hi = Math.min(1, Math.ceil((Math.max(...values) + 0.02) * 10) / 10);
  if (hi - lo < 0.2) {
    if (hi >= 1) lo = Math.max(0, hi - 0.2);
    else hi = Math.min(1, lo + 0.2);
  }
  return [lo, hi];
}

// Grid lines of the accuracy axis: every 10 points on a tall axis, else every 5.
export function accuracyTicks(lo, hi) {
  const step = hi - lo > 0.45 ? 0.1 : 0.05;
  const n = Math.floor((hi - lo) / step + 1e-9);
  return Array.from({ length: n + 1 }, (_, i) => lo + i * step);
}

// The rounds axis [r0, r1]: at least one round wide.
export function roundRange(rounds) {
  const r0 = Math.min(...rounds);
  return [r0, Math.max(...rounds, r0 + 1)];
}

// Labelled rounds: every `k`-th from r0, so that labels stay >= 48 px apart.
export function roundTicks(r0, r1, plotWidth) {
  const every = Math.max(1, Math.ceil((r1 - r0 + 1) / Math.max(2, Math.floor(plotWidth / 48))));
  const ticks = [];
  for (let r = r0; r <= r1; r += every) ticks.push(r);
  return ticks;
}

// The SVG's size for a chart `width` px wide: at least 280 wide, 200-300 tall.
export function chartSize(width) {
  const W = Math.max(280, width);
  return { W, H: Math.round(Math.min(300, Math.max(200, W * 0.375))) };
}

// Round -> x and accuracy -> y, in pixels. Rounds get half a slot of room at each end.
export function scales({ r0, r1, lo, hi, W, H, margin = MARGIN }) {
  const x = (r) => margin.l + ((r - r0 + 0.35) / (r1 - r0 + 0.7)) * (W - margin.l - margin.r);
  const y = (v) => H - margin.b - ((v - lo) / (hi - lo)) * (H - margin.t - margin.b);
  return { x, y };
}

// An SVG path through `points` ([round, accuracy] pairs) drawn with `x` and `y`.
export function linePath(points, x, y) {
  return points.map(([a, b], i) => `${i ? "L" : "M"}${x(a).toFixed(1)},${y(b).toFixed(1)}`)
    .join("");
}
