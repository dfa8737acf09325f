import assert from "node:assert/strict";
import { test } from "node:test";

import {
  PageEdits, cellLabel, cellState, cellText, missingOf, nextCursor, pageCounts, pageKey,
  proposalGroups,
} from "../../js/page.js";

const CLASSES = ["cat", "dog", "bird"];
// a page as the kernel sends it (trait `page`): grouped by proposal, one without
const item = (item_id, proposal, extra = {}) => ({ item_id, seq: item_id, uri: `file:///d/${item_id}.png`,
  proposal, choice: null, skip: false, answer: proposal, ...extra });
const PAGE = [item(1, "cat"), item(2, "cat"), item(3, "dog"), item(4, null)];

test("cellState: skipped, then chosen, then proposed, else missing", () => {
  assert.equal(cellState(PAGE[0]), "proposed");
  assert.equal(cellState(PAGE[3]), "missing");
  assert.equal(cellState({ ...PAGE[0], choice: "dog" }), "chosen");
  assert.equal(cellState({ ...PAGE[0], choice: "dog", skip: true }), "skipped");
  assert.deepEqual(pageCounts(PAGE), { proposed: 3, chosen: 0, skipped: 0, missing: 1 });
  assert.deepEqual(missingOf(PAGE).map((m) => m.item_id), [4]);
});

test("a choice shows at once and is the page's until the kernel acks it", () => {
  const edits = new PageEdits();
  edits.mark(4, { choice: "bird", skip: false }, 8);
  edits.mark(1, { skip: true }, 9);
  const shown = edits.items(PAGE, 7);
  assert.deepEqual(shown.map((m) => [m.choice, m.skip, m.answer]),
    [[null, true, null], [null, false, "cat"], [null, false, "dog"], ["bird", false, "bird"]]);
  assert.equal(shown[1], PAGE[1]); // untouched items are the kernel's own objects
  assert.deepEqual(missingOf(shown), []);
  assert.deepEqual(pageCounts(shown), { proposed: 2, chosen: 1, skipped: 1, missing: 0 });
  // acked 8: the choice is the kernel's now (here it refused it: the page is unchanged)
  const after = edits.items(PAGE, 8);
  assert.equal(after[3], PAGE[3]);
  assert.equal(after[0].skip, true);
  assert.deepEqual([...edits.local.keys()], [1]);
});

test("edits of one item merge; the newest seq holds them all", () => {
  const edits = new PageEdits();
  edits.mark(2, { choice: "dog", skip: false }, 3);
  edits.mark(2, { skip: true }, 4);
  assert.deepEqual(edits.local.get(2), { choice: "dog", skip: true, seq: 4 });
  assert.deepEqual(edits.items(PAGE, 3)[1].answer, null); // skipped: no answer
  edits.mark(2, { skip: false }, 5);
  assert.equal(edits.items(PAGE, 4)[1].answer, "dog");
});

test("confirming: saving until its seq is acknowledged", () => {
  const edits = new PageEdits();
  assert.equal(edits.saving, false);
  edits.confirming = 12;
  edits.settle(11);
  assert.equal(edits.saving, true);
  edits.items(PAGE, 12);
  assert.equal(edits.saving, false);
});

test("pageKey: a class key chooses and moves the cursor on (not past the end)", () => {
  assert.deepEqual(pageKey(PAGE, 1, { kind: "label", index: 2 }, CLASSES, 5), {
    kind: "choose", item_id: 2, index: 2, cursor: 2,
    msg: { type: "choose", label: "bird", item_id: 2 }, patch: { choice: "bird", skip: false } });
  assert.equal(pageKey(PAGE, 3, { kind: "label", index: 0 }, CLASSES, 5).cursor, 3);
});

test("pageKey: Space leaves the item out, or takes it back in", () => {
  assert.deepEqual(pageKey(PAGE, 0, { kind: "skip" }, CLASSES, 5), {
    kind: "skip", item_id: 1, msg: { type: "page_skip", skip: true, item_id: 1 },
    patch: { skip: true } });
  const skipped = [{ ...PAGE[0], skip: true }];
  assert.deepEqual(pageKey(skipped, 0, { kind: "skip" }, CLASSES, 5).patch, { skip: false });
});

test("pageKey: Enter confirms only a page where every item has an answer or is skipped", () => {
  const out = pageKey(PAGE, 0, { kind: "accept" }, CLASSES, 5);
  assert.equal(out.kind, "missing");
  assert.deepEqual(out.missing.map((m) => m.item_id), [4]);
  assert.equal(out.cursor, 3); // to the first item that needs a class
  const done = [...PAGE.slice(0, 3), { ...PAGE[3], skip: true, answer: null }];
  assert.deepEqual(pageKey(done, 0, { kind: "accept" }, CLASSES, 5),
    { kind: "confirm", msg: { type: "confirm_page", page_id: 5 } });
});

// two rows of three, then one of two, 100 px apart; boxes are 80 px wide
const GRID = [[0, 0], [100, 0], [200, 0], [0, 100], [100, 100], [200, 100], [40, 200],
  [140, 200]].map(([left, top]) => ({ left, right: left + 80, top }));
const rectOf = (i) => GRID[i];

test("nextCursor: Left/Right step and stop at the ends, Home/End jump", () => {
  assert.equal(nextCursor("ArrowRight", 1, 8, rectOf), 2);
  assert.equal(nextCursor("ArrowRight", 7, 8, rectOf), 7);
  assert.equal(nextCursor("ArrowLeft", 0, 8, rectOf), 0);
  assert.equal(nextCursor("ArrowLeft", 9, 8, rectOf), 6); // a cursor past a shorter page
  assert.equal(nextCursor("Home", 5, 8, rectOf), 0);
  assert.equal(nextCursor("End", 0, 8, rectOf), 7);
  assert.equal(nextCursor("ArrowRight", 0, 0, rectOf), 0); // no page
});

test("nextCursor: Up/Down go to the nearest row, the closest thumbnail in it", () => {
  assert.equal(nextCursor("ArrowDown", 1, 8, rectOf), 4);
  assert.equal(nextCursor("ArrowDown", 5, 8, rectOf), 7); // centre 240: 180 is closer than 80
  assert.equal(nextCursor("ArrowDown", 3, 8, rectOf), 6);
  assert.equal(nextCursor("ArrowUp", 7, 8, rectOf), 4);  // centre 180: 140 (item 4)
  assert.equal(nextCursor("ArrowUp", 2, 8, rectOf), 2);  // top row: stays
  assert.equal(nextCursor("ArrowDown", 6, 8, rectOf), 6); // last row: stays
  // a row a few pixels off (wrapped unevenly) is still the same row
  const ragged = [{ left: 0, right: 80, top: 0 }, { left: 100, right: 180, top: 3 },
    { left: 90, right: 170, top: 100 }];
  assert.equal(nextCursor("ArrowDown", 0, 3, (i) => ragged[i]), 2);
  assert.equal(nextCursor("ArrowDown", 1, 3, (i) => ragged[i]), 2);
});

test("nextCursor asks for boxes only on Up and Down", () => {
  const asked = [];
  const spy = (i) => { asked.push(i); return GRID[i]; };
  for (const k of ["ArrowLeft", "ArrowRight", "Home", "End"]) nextCursor(k, 2, 8, spy);
  assert.deepEqual(asked, []);
  nextCursor("ArrowUp", 4, 8, spy);
  assert.equal(asked.length, 8);
});

test("proposalGroups: runs of one proposal in page order", () => {
  assert.deepEqual(proposalGroups(PAGE), [{ key: "cat", indices: [0, 1] },
    { key: "dog", indices: [2] }, { key: "", indices: [3] }]);
  assert.deepEqual(proposalGroups([]), []);
  // the same class again after another is a new run (the kernel keeps them together)
  assert.deepEqual(proposalGroups([PAGE[0], PAGE[2], PAGE[1]]).map((g) => g.key),
    ["cat", "dog", "cat"]);
});

test("cellText and cellLabel: what a thumbnail says, and to a screen reader", () => {
  const sure = { ...PAGE[0], suggestion: { label: "cat", confidence: 0.874 } };
  assert.deepEqual(cellText(sure), ["cat", "proposed 87%"]);
  assert.equal(cellLabel(sure), "1.png: cat, proposed 87%");
  assert.deepEqual(cellText(PAGE[3]), ["?", "needs a class"]);
  assert.equal(cellLabel(PAGE[3]), "4.png: needs a class");
  const changed = { ...PAGE[0], choice: "dog" };
  assert.deepEqual(cellText(changed), ["dog", "set · was cat"]);
  assert.equal(cellLabel(changed), "1.png: set to dog, was cat");
  const set = { ...PAGE[3], choice: "bird" };
  assert.deepEqual(cellText(set), ["bird", "set"]);
  assert.equal(cellLabel(set), "4.png: set to bird");
  assert.deepEqual(cellText({ ...PAGE[0], skip: true }), ["–", "skipped"]);
  assert.equal(cellLabel({ ...PAGE[0], skip: true }), "1.png: skipped");
});
