import assert from "node:assert/strict";
import { test } from "node:test";

import { beatTimeoutMs } from "../../js/heartbeat.js";

test("three beats missed plus a second, never under 6 s", () => {
  assert.equal(beatTimeoutMs(2), 7000);
  assert.equal(beatTimeoutMs(5), 16000);
  assert.equal(beatTimeoutMs(0.5), 6000); // a fast beat still waits 6 s
  assert.equal(beatTimeoutMs(1.6), 6000);
  assert.equal(beatTimeoutMs(1.75), 6250);
});

test("a missing or odd heartbeat_s counts as the kernel's default, 2 s", () => {
  for (const v of [undefined, null, 0, -1, NaN, "2", Infinity]) assert.equal(beatTimeoutMs(v), 7000);
});
