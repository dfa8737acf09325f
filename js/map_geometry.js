// The pool map's pure parts: the hover index, the lasso, the colour ramp, the draw order.
// No DOM: js/pool_map.js draws; tests/js/map_geometry.test.mjs checks these against
// brute force.

// Even-odd rule: is (x, y) inside the polygon `poly` ([[x, y], ...], closed implicitly)?
export function pointInPolygon(x, y, poly) {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i], [xj, yj] = poly[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

// The points inside a lasso: `n` points whose position is `at(k)` → [x, y] (the same
// space as `poly`); a bounding-box test first. Returns {selected: Uint8Array(n), count}.
export function lassoSelect(n, at, poly) {
  const selected = new Uint8Array(n);
  let count = 0;
  if (poly.length < 3) return { selected, count };
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const [x, y] of poly) {
    x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
  }
  for (let k = 0; k < n; k++) {
    const [x, y] = at(k);
    if (x < x0 || x > x1 || y < y0 || y > y1) continue;
    if (pointInPolygon(x, y, poly)) { selected[k] = 1; count++; }
  }
  return { selected, count };
}

// A uniform grid over `n` points (`xy`: x0, y0, x1, y1, ...) for hover look-ups: `bounds`
// [x0, x1, y0, y1] (padded 2 %), and per cell (row-major, `grid` per side) the points in
// it: `cellItems[cellStart[c] .. cellStart[c + 1])`.
export function gridIndex(xy, n, grid = 128) {
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let k = 0; k < n; k++) {
    const x = xy[2 * k], y = xy[2 * k + 1];
    if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
  }
  if (!n) { x0 = 0; x1 = 1; y0 = 0; y1 = 1; }
  const pad = 1e-6 + 0.02 * Math.max(x1 - x0, y1 - y0);
  const index = { grid, bounds: [x0 - pad, x1 + pad, y0 - pad, y1 + pad] };
  const cell = new Uint32Array(n);
  const counts = new Uint32Array(grid * grid + 1);
  for (let k = 0; k < n; k++) {
    const c = cellOf(index, xy[2 * k], xy[2 * k + 1]);
    cell[k] = c; counts[c + 1]++;
  }
  for (let c = 1; c <= grid * grid; c++) counts[c] += counts[c - 1];
  index.cellStart = counts.slice();
  const fill = counts.slice();
  index.cellItems = new Uint32Array(n);
  for (let k = 0; k < n; k++) index.cellItems[fill[cell[k]]++] = k;
  return index;
}

function cellCoord(v, lo, hi, grid) {
  return Math.min(grid - 1, Math.max(0, Math.floor(((v - lo) / (hi - lo)) * grid)));
}

// the cell of a data point
export function cellOf(index, x, y) {
  const [x0, x1, y0, y1] = index.bounds;
  return cellCoord(y, y0, y1, index.grid) * index.grid + cellCoord(x, x0, x1, index.grid);
}

// The point nearest (x, y) within `reach` (data units), or -1: only the cells the reach
// touches are searched.
export function nearestPoint(index, xy, x, y, reach) {
  const { grid, bounds, cellStart, cellItems } = index;
  if (!cellItems.length) return -1;
  const cx0 = cellCoord(x - reach, bounds[0], bounds[1], grid);
  const cx1 = cellCoord(x + reach, bounds[0], bounds[1], grid);
  const cy0 = cellCoord(y - reach, bounds[2], bounds[3], grid);
  const cy1 = cellCoord(y + reach, bounds[2], bounds[3], grid);
  let best = -1, bestD = reach * reach;
  for (let cy = cy0; cy <= cy1; cy++) {
    for (let cx = cx0; cx <= cx1; cx++) {
      const c = cy * grid + cx;
      for (let j = cellStart[c]; j < cellStart[c + 1]; j++) {
        const k = cellItems[j];
        const d = (xy[2 * k] - x) ** 2 + (xy[2 * k + 1] - y) ** 2;
        if (d <= bestD) { bestD = d; best = k; }
      }
    }
  }
  return best;
}

// Which of `steps` ramp colours an uncertainty `u` (1 - max p) takes: 0 certain, the last
// at the most uncertain a head over `nClasses` can be (1 - 1/C); -1 for none (NaN).
export function rampIndex(u, nClasses, steps = 64) {
  if (!(u >= 0)) return -1;
  const most = 1 - 1 / Math.max(2, nClasses || 2);
  return Math.min(steps - 1, Math.round((u / most) * (steps - 1)));
}

// The draw order: points by state code, lowest first (unlabeled below, the rest on top),
// stable within a state. `state`: Uint8Array of n codes.
export function drawOrder(state, n = state.length) {
  const counts = new Uint32Array(257);
  for (let k = 0; k < n; k++) counts[state[k] + 1]++;
  for (let s = 1; s < 257; s++) counts[s] += counts[s - 1];
  const order = new Uint32Array(n);
  for (let k = 0; k < n; k++) order[counts[state[k]]++] = k;
  return order;
}
