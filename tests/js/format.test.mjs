import assert from "node:assert/strict";
import { test } from "node:test";

import { fmt, num, pct, plural } from "../../js/format.js";

const sep = (1000).toLocaleString().charAt(1);  // the locale's thousands separator

test("num is true for finite numbers only", () => {
  assert.deepEqual([0, -1.5, NaN, Infinity, "3", null, undefined].map(num),
    [true, true, false, false, false, false, false]);
});

test("fmt rounds to the digits asked for and writes a dash for a missing value", () => {
  assert.equal(fmt(1234.567), `1${sep}235`);
  assert.equal(fmt(2.25, 1), (2.3).toLocaleString());
  assert.equal(fmt(3, 2), "3");
  for (const v of [null, undefined, NaN, "12"]) assert.equal(fmt(v), "–");
});

test("plural picks the form from the count", () => {
  assert.equal(plural(1, "push", "pushes"), "1 push");
  assert.equal(plural(0, "push", "pushes"), "0 pushes");
  assert.equal(plural(3, "item"), "3 items");
});

test("pct writes a share with one decimal, a dash when missing", () => {
  assert.equal(pct(0.8114), "81.1%");
  assert.equal(pct(1), "100.0%");
  assert.equal(pct(0), "0.0%");
  assert.equal(pct(null), "–");
  assert.equal(pct(undefined), "–");
});
