import assert from "node:assert/strict";
import { test } from "node:test";

import { Outbox, itemMessage, shownProgress, visibleSlots } from "../../js/answers.js";

// a window of four slots as the kernel mirrors it: slot 2 is free, the queue is
// item 11 (slot 1), then 10 (slot 0), then 13 (slot 3)
const SLOTS = [{ item_id: 10 }, { item_id: 11 }, {}, { item_id: 13 }];
const ORDER = [1, 0, 3];
const CLASSES = ["cat", "dog", "bird"];

test("seq numbers start above acked and keep rising", () => {
  const box = new Outbox(7);
  assert.deepEqual(box.stamp({ type: "skip", item_id: 3 }, 7), { type: "skip", item_id: 3, seq: 8 });
  assert.equal(box.stamp({ type: "undo" }, 7).seq, 9);
  // another view's messages were acknowledged meanwhile: jump above them
  assert.equal(box.stamp({ type: "undo" }, 20).seq, 21);
  assert.equal(box.stamp({ type: "undo" }, 0).seq, 22);
  assert.equal(new Outbox().stamp({}, 0).seq, 1);
});

test("a key shows the next item at once: the answered one hides until acked", () => {
  const box = new Outbox(0);
  assert.deepEqual(visibleSlots(ORDER, SLOTS, box.hiddenItems(0)), [1, 0, 3]);
  const { seq } = box.stamp({ type: "answer", item_id: 11, label: "cat" }, 0);
  box.sent(seq, "answer", 11);
  assert.deepEqual(visibleSlots(ORDER, SLOTS, box.hiddenItems(0)), [0, 3]);
  // a second key before the kernel answers: on to the third
  box.sent(box.stamp({ type: "skip", item_id: 10 }, 0).seq, "skip", 10);
  assert.deepEqual(visibleSlots(ORDER, SLOTS, box.hiddenItems(0)), [3]);
  assert.deepEqual(box.unacked(0).map((p) => p.seq), [1, 2]);
  // the kernel applied the first: its order no longer holds item 11
  const order = [0, 3];
  assert.deepEqual(visibleSlots(order, SLOTS, box.hiddenItems(1)), [3]);
  assert.deepEqual(box.unacked(1), [{ seq: 2, kind: "skip", item_id: 10 }]);
});

test("a refused answer rolls back: acknowledged, the kernel still queues the item", () => {
  const box = new Outbox(4);
  box.sent(box.stamp({ type: "answer", item_id: 11, label: "cat" }, 4).seq, "answer", 11);
  assert.deepEqual(visibleSlots(ORDER, SLOTS, box.hiddenItems(4)), [0, 3]);
  assert.equal(box.answersInFlight(4), 1);
  // acked = 5 and the kernel's order is unchanged (it refused, e.g. a stale item)
  assert.deepEqual(visibleSlots(ORDER, SLOTS, box.hiddenItems(5)), [1, 0, 3]);
  assert.equal(box.answersInFlight(5), 0);
  assert.deepEqual(box.pending, []);
});

test("undo is in flight but hides nothing; answers count, skips do not", () => {
  const box = new Outbox(0);
  box.sent(box.stamp({ type: "accept", item_id: 11 }, 0).seq, "answer", 11);
  box.sent(box.stamp({ type: "skip", item_id: 10 }, 0).seq, "skip", 10);
  box.sent(box.stamp({ type: "undo" }, 0).seq, "undo");
  assert.deepEqual([...box.hiddenItems(0)].sort(), [10, 11]);
  assert.equal(box.answersInFlight(0), 1);
  assert.deepEqual(box.unacked(0)[2], { seq: 3, kind: "undo" });
  assert.equal(box.unacked(3).length, 0);
});

test("visibleSlots skips free slots, slots beyond the list and missing traits", () => {
  assert.deepEqual(visibleSlots([2, 5, 3], SLOTS), [3]);
  assert.deepEqual(visibleSlots(), []);
  assert.deepEqual(visibleSlots([0], [{ item_id: 0 }]), [0]); // item 0 is an item
});

test("itemMessage: class keys answer, Space skips, Enter takes the suggestion", () => {
  const meta = { item_id: 42, suggestion: { label: "dog", confidence: 0.9 } };
  assert.deepEqual(itemMessage(meta, { kind: "label", index: 2 }, CLASSES),
    { msg: { type: "answer", item_id: 42, label: "bird" }, kind: "answer", index: 2 });
  assert.deepEqual(itemMessage(meta, { kind: "skip" }, CLASSES),
    { msg: { type: "skip", item_id: 42 }, kind: "skip", index: -1 });
  assert.deepEqual(itemMessage(meta, { kind: "accept" }, CLASSES),
    { msg: { type: "accept", item_id: 42 }, kind: "answer", index: 1 });
});

test("itemMessage: Enter answers nothing without a suggestion among the classes", () => {
  assert.equal(itemMessage({ item_id: 1 }, { kind: "accept" }, CLASSES), null);
  assert.equal(itemMessage({ item_id: 1, suggestion: { label: "fish" } }, { kind: "accept" },
    CLASSES), null);
});

test("shownProgress counts answers in flight, the round's count at most its size", () => {
  const p = { round: 2, round_done: 8, round_size: 10, labeled: 30 };
  assert.deepEqual(shownProgress(p, 0), { done: 8, labeled: 30 });
  assert.deepEqual(shownProgress(p, 1), { done: 9, labeled: 31 });
  assert.deepEqual(shownProgress(p, 5), { done: 10, labeled: 35 });
  assert.deepEqual(shownProgress({}, 2), { done: 0, labeled: 2 });
  assert.deepEqual(shownProgress(), { done: 0, labeled: 0 });
});
