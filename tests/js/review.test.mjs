import assert from "node:assert/strict";
import { test } from "node:test";

import {
  reviewAction, reviewButtonText, reviewLine, reviewMessage, reviewProgress, suspectCard,
} from "../../js/review.js";

const classes = ["cat", "dog", "bird"];
const meta = { item_id: 7, review: { label: "dog", suggested: "cat", self_confidence: 0.031, rank: 1 } };

test("Enter keeps the label, a class key corrects it, its own key keeps it, Space leaves it", () => {
  assert.deepEqual(reviewMessage(meta, { kind: "accept" }, classes),
    { msg: { type: "accept", item_id: 7 }, kind: "answer", index: 1, review: "keep" });
  assert.deepEqual(reviewMessage(meta, { kind: "label", index: 0 }, classes),
    { msg: { type: "answer", item_id: 7, label: "cat" }, kind: "answer", index: 0, review: "correct" });
  assert.equal(reviewMessage(meta, { kind: "label", index: 1 }, classes).review, "keep");
  assert.deepEqual(reviewMessage(meta, { kind: "skip" }, classes),
    { msg: { type: "skip", item_id: 7 }, kind: "skip", index: -1, review: "skip" });
  assert.equal(reviewMessage({ item_id: 3 }, { kind: "accept" }, classes), null);
});

test("the line names the label, its out-of-fold probability and the head's class", () => {
  assert.equal(reviewLine(meta.review), "labeled dog (p = 0.03) · the head, not trained on it, says cat");
  assert.equal(reviewLine({ label: "a", suggested: "b" }), "labeled a · the head, not trained on it, says b");
});

test("progress counts reviews in flight, never past the total", () => {
  const p = { total: 5, reviewed: 2, skipped: 1, confirmed: 1, corrected: 1 };
  assert.deepEqual(reviewProgress(p, 1), { done: 4, total: 5, text: "1 kept · 1 corrected · 1 left" });
  assert.equal(reviewProgress(p, 9).done, 5);
  assert.deepEqual(reviewProgress(), { done: 0, total: 0, text: "0 kept · 0 corrected" });
});

test("the review button shows only with suspects to review", () => {
  assert.equal(reviewButtonText(1), "Review 1 suspect");
  assert.equal(reviewButtonText(12), "Review 12 suspects");
  for (const n of [0, -1, undefined, null, 1.5]) assert.equal(reviewButtonText(n), "");
});

test("recent actions say kept, corrected or left", () => {
  assert.equal(reviewAction({ action: "confirm", item_id: 4, label: "dog" }).tail, " kept dog");
  assert.equal(reviewAction({ action: "correct", item_id: 4, label: "cat" }).tail, " → cat");
  assert.equal(reviewAction({ action: "skip", item_id: 4 }).tail, " left");
});

test("the dashboard card: open, confirmed and corrected, and when they were scored", () => {
  assert.deepEqual(suspectCard({ open: 6, confirmed: 2, corrected: 3, round: 4, n_scored: 160 }),
    { value: "6 open", sub: "2 confirmed · 3 corrected · scored after round 4" });
  assert.equal(suspectCard({ open: 0, confirmed: 0, corrected: 0, n_scored: 90, computing: true }).sub,
    "0 confirmed · 0 corrected · scoring again…");
  assert.deepEqual(suspectCard({ open: 0, confirmed: 0, corrected: 0 }),
    { value: null, sub: "scored after each round, from 20 labels on" });
  assert.equal(suspectCard({}).value, null);
  assert.equal(suspectCard({ error: "boom" }).sub, "not scored: boom");
});
