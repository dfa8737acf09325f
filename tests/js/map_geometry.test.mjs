import assert from "node:assert/strict";
import { test } from "node:test";

import {
  cellOf, drawOrder, gridIndex, lassoSelect, nearestPoint, pointInPolygon, rampIndex,
} from "../../js/map_geometry.js";

// a seeded generator (mulberry32), so a failure repeats
function rng(seed) {
  return () => {
    seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test("point in polygon: a square, a concave L, points outside", () => {
  const square = [[0, 0], [2, 0], [2, 2], [0, 2]];
  assert.equal(pointInPolygon(1, 1, square), true);
  assert.equal(pointInPolygon(3, 1, square), false);
  assert.equal(pointInPolygon(-0.1, 1, square), false);
  const L = [[0, 0], [3, 0], [3, 1], [1, 1], [1, 3], [0, 3]];
  assert.equal(pointInPolygon(0.5, 2.5, L), true);
  assert.equal(pointInPolygon(2, 2, L), false); // in the notch
  assert.equal(pointInPolygon(2, 0.5, L), true);
});

test("the lasso selects what the polygon test selects, a count with it", () => {
  const r = rng(3);
  const pts = Array.from({ length: 500 }, () => [4 * r(), 4 * r()]);
  const tri = [[0.5, 0.5], [3.5, 1], [1, 3.5]];
  const { selected, count } = lassoSelect(pts.length, (k) => pts[k], tri);
  const expected = pts.map(([x, y]) => (pointInPolygon(x, y, tri) ? 1 : 0));
  assert.deepEqual(Array.from(selected), expected);
  assert.equal(count, expected.reduce((a, b) => a + b, 0));
  assert.ok(count > 50 && count < 450);
  assert.equal(lassoSelect(3, (k) => pts[k], [[0, 0], [1, 1]]).count, 0); // a stroke, no area
});

test("the grid index finds the nearest point within reach, as brute force does", () => {
  const r = rng(11);
  const n = 2000;
  const xy = new Float32Array(2 * n);
  for (let i = 0; i < 2 * n; i++) xy[i] = 10 * r() - 5;
  const index = gridIndex(xy, n, 32);
  assert.equal(index.cellStart[32 * 32], n);
  assert.deepEqual(Array.from(index.cellItems).sort((a, b) => a - b), Array.from({ length: n }, (_, k) => k));
  for (let k = 0; k < n; k++) {
    const c = cellOf(index, xy[2 * k], xy[2 * k + 1]);
    const members = Array.from(index.cellItems.slice(index.cellStart[c], index.cellStart[c + 1]));
    assert.ok(members.includes(k));
  }
  for (let t = 0; t < 200; t++) {
    const x = 12 * r() - 6, y = 12 * r() - 6, reach = 0.4 * r();
    let best = -1, bestD = reach * reach;
    for (let k = 0; k < n; k++) {
      const d = (xy[2 * k] - x) ** 2 + (xy[2 * k + 1] - y) ** 2;
      if (d <= bestD) { bestD = d; best = k; }
    }
    const got = nearestPoint(index, xy, x, y, reach);
    if (best < 0) assert.equal(got, -1);
    else assert.equal((xy[2 * got] - x) ** 2 + (xy[2 * got + 1] - y) ** 2, bestD);
  }
  assert.equal(nearestPoint(gridIndex(new Float32Array(0), 0), new Float32Array(0), 0, 0, 1), -1);
});

test("the uncertainty ramp spans certain to the most uncertain a head can be", () => {
  assert.equal(rampIndex(0, 10), 0);
  assert.equal(rampIndex(0.9, 10), 63); // 1 - 1/10
  assert.equal(rampIndex(0.5, 2), 63);
  assert.equal(rampIndex(0.25, 2), 32);
  assert.equal(rampIndex(0.99, 10), 63);
  assert.equal(rampIndex(NaN, 10), -1);
  assert.equal(rampIndex(0.45, 10, 11), 5);
});

test("the draw order puts higher states on top, stable within a state", () => {
  const order = drawOrder(Uint8Array.from([2, 0, 1, 0, 2, 3]));
  assert.deepEqual(Array.from(order), [1, 3, 2, 0, 4, 5]);
});
