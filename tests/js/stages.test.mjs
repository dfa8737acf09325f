import assert from "node:assert/strict";
import { test } from "node:test";

import { hitRate, itemsDone, stageRows } from "../../js/stages.js";

const STAGES = [
  { name: "fetch", workers: 4, items_in: 100, items_out: 100, busy_s: 2, queue_depth: 0,
    queue_capacity: 64 },
  { name: "decode", workers: 1, items_in: 100, items_out: 100, busy_s: 1, queue_depth: 8,
    queue_capacity: 32 },
  { name: "embed", workers: 1, items_in: 97, items_out: 4, busy_s: 3, queue_depth: 2,
    queue_capacity: 8 },   // one output per batch
  { name: "store", workers: 1, items_in: 96, items_out: 96, busy_s: 0.1 },
];

test("itemsDone is the larger of in and out (batches out, items in)", () => {
  assert.equal(itemsDone({ items_in: 97, items_out: 4 }), 97);
  assert.equal(itemsDone({ items_out: 5 }), 5);
  assert.equal(itemsDone({}), 0);
});

test("a stage's count leaves out the items that failed up to it", () => {
  const push = { total: 100, wall_s: 4, running: true, failed: { fetch: 9, decode: 3, embed: 1 } };
  const rows = stageRows(STAGES, push);
  assert.deepEqual(rows.map((r) => r.name), ["fetch", "decode", "embed", "store"]);
  // fetch failures never enter a stage's counts; decode's 3 and embed's 1 do
  assert.deepEqual(rows.map((r) => r.done), [100, 97, 93, 92]);
  assert.deepEqual(rows.map((r) => r.failed), [0, 3, 1, 0]);
  assert.deepEqual(rows.map((r) => r.shown), [1, 0.97, 0.93, 0.92]);
  assert.deepEqual(rows.map((r) => r.rate), [25, 24.25, 23.25, 23]);
});

test("busy is the share of the wall time the stage's threads worked, capped at 100%", () => {
  const rows = stageRows(STAGES, { total: 100, seconds: 2 });
  assert.deepEqual(rows.map((r) => r.busy), [25, 50, 100, 5]);
  assert.equal(stageRows(STAGES, { total: 100 })[0].busy, null);  // no wall time yet
  assert.equal(stageRows(STAGES, { total: 100 })[0].rate, null);
});

test("queues, and a push that is over with nothing to do shows full bars", () => {
  const rows = stageRows(STAGES, {});
  assert.equal(rows[0].total, 100);  // no push total: the largest stage count
  assert.deepEqual([rows[1].depth, rows[1].capacity], [8, 32]);
  assert.deepEqual([rows[3].depth, rows[3].capacity], [0, 0]);
  const idle = stageRows([{ name: "store", workers: 1 }], {});
  assert.equal(idle[0].shown, 1);
  assert.equal(stageRows([{ name: "store" }], { running: true })[0].shown, 0);
  assert.deepEqual(stageRows([], { total: 5 }), []);
});

test("the cache hit rate counts hits among everything looked up", () => {
  assert.equal(hitRate({ cache_hits: 30, embedded: 90 }), 25);
  assert.equal(hitRate({ cache_hits: 0, embedded: 0 }), null);
  assert.equal(hitRate({}), null);
});
