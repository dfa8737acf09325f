import assert from "node:assert/strict";
import { test } from "node:test";

import {
  accuracyRange, accuracyTicks, chartSize, hashName, linePath, MARGIN, roundRange, roundTicks,
  scales, strategyColors,
} from "../../js/chart.js";

const close = (a, b) => assert.ok(Math.abs(a - b) < 1e-9, `${a} != ${b}`);

test("hashName is 32-bit FNV-1a", () => {
  assert.equal(hashName(""), 0x811c9dc5);
  assert.equal(hashName("a"), 0xe40c292c);  // the published FNV-1a test vector
  assert.equal(hashName("foobar"), 0xbf9cf968);
});

test("strategy colours follow the names, not their order, and never share a slot", () => {
  const names = ["random", "margin", "entropy", "least_confidence", "kcenter", "badge",
    "typiclust", "bald"];
  const a = strategyColors(names, 8);
  const b = strategyColors([...names].reverse().concat(["margin"]), 8);
  assert.deepEqual([...a.entries()].sort(), [...b.entries()].sort());
  assert.equal(new Set(a.values()).size, 8);
  for (const c of a.values()) assert.match(c, /^var\(--alaas-series-[0-7]\)$/);
  // alone, a name sits on its hash's slot
  assert.equal(strategyColors(["margin"], 8).get("margin"),
    `var(--alaas-series-${hashName("margin") % 8})`);
});

test("the accuracy axis pads to tenths, stays in [0, 1] and is at least 0.2 tall", () => {
  const cases = [
    [[0.55, 0.81], [0.5, 0.9]],
    [[0.0, 1.0], [0, 1]],
    [[0.91, 0.93], [0.8, 1]],     // near the top: widened downwards
    [[0.05, 0.06], [0, 0.2]],     // near the bottom: widened upwards
    [[0.5], [0.4, 0.6]],
  ];
  for (const [values, [lo, hi]] of cases) {
    const [a, b] = accuracyRange(values);
    close(a, lo);
    close(b, hi);
  }
});

test("accuracy ticks: every 5 points on a short axis, every 10 on a tall one, ends included", () => {
  const short = accuracyTicks(0.5, 0.7);
  assert.equal(short.length, 5);
  short.forEach((v, i) => close(v, 0.5 + 0.05 * i));
  const tall = accuracyTicks(0, 1);
  assert.equal(tall.length, 11);
  assert.deepEqual(tall.map((v) => Math.round(v * 100)), [0, 10, 20, 30, 40, 50, 60, 70, 80, 90,
    100]);
});

test("rounds: at least one round wide; labels at least 48 px apart", () => {
  assert.deepEqual(roundRange([3]), [3, 4]);
  assert.deepEqual(roundRange([2, 7, 4]), [2, 7]);
  assert.deepEqual(roundTicks(1, 5, 700), [1, 2, 3, 4, 5]);
  const ticks = roundTicks(1, 40, 480);  // room for 10 labels
  assert.deepEqual(ticks, [1, 5, 9, 13, 17, 21, 25, 29, 33, 37]);
  assert.ok(ticks.length <= 480 / 48);
});

test("the chart is 280 px wide at least and 200-300 px tall", () => {
  assert.deepEqual(chartSize(100), { W: 280, H: 200 });
  assert.deepEqual(chartSize(640), { W: 640, H: 240 });
  assert.deepEqual(chartSize(2000), { W: 2000, H: 300 });
});

test("scales map the data box onto the plot inside the margins", () => {
  const W = 800, H = 300;
  const { x, y } = scales({ r0: 1, r1: 5, lo: 0.5, hi: 0.9, W, H });
  close(y(0.5), H - MARGIN.b);
  close(y(0.9), MARGIN.t);
  close(y(0.7), (H - MARGIN.b + MARGIN.t) / 2);
  // half a slot of room on each side, rounds evenly spaced
  close(x(1) - MARGIN.l, W - MARGIN.r - x(5));
  close(x(2) - x(1), x(5) - x(4));
  assert.ok(x(1) > MARGIN.l && x(5) < W - MARGIN.r);
});

test("linePath moves to the first point and draws lines to the rest", () => {
  const d = linePath([[1, 0.5], [2, 0.25]], (r) => r * 10, (v) => v * 100);
  assert.equal(d, "M10.0,50.0L20.0,25.0");
  assert.equal(linePath([], (r) => r, (v) => v), "");
});
