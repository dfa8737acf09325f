// The whole labeling view in Node (tests/js/view_dom.mjs stands in for the DOM): the
// keys it takes, the messages it sends and what it shows before the kernel answers.
// The browser tests (tests/browser/test_jupyterlab.py, test_grid.py) run it for real.
import assert from "node:assert/strict";
import { afterEach, beforeEach, test } from "node:test";

import widget from "../../js/labeler.js";
import { FakeModel, ViewElement, installViewDom, press } from "./view_dom.mjs";

const CLASSES = ["cat", "dog", "bird"];
const meta = (item_id, extra = {}) => ({ seq: item_id, item_id, uri: `file:///d/${item_id}.txt`,
  round: 1, strategy: "entropy", loaded: true, kind: "text", text: `item ${item_id}`, ...extra });

// the traits of labeler.py's LabelingWidget, here with 4 slots and an undo depth of 7
function traits(extra = {}) {
  return {
    classes: CLASSES, key_labels: ["1", "2", "3"], key_codes: ["Digit1", "Digit2", "Digit3"],
    action_codes: { skip: "Space", undo: "Backspace", accept: "Enter" },
    n_slots: 4, undo_depth: 7, grid: 0, autofocus: false,
    slots: [meta(10), meta(11, { suggestion: { label: "bird", confidence: 0.8 } }), {}, meta(13)],
    slot_0: new DataView(new ArrayBuffer(0)), slot_1: new DataView(new ArrayBuffer(0)),
    slot_2: new DataView(new ArrayBuffer(0)), slot_3: new DataView(new ArrayBuffer(0)),
    order: [0, 1, 3], acked: 0, history: [], state: "labeling", message: "", error: "",
    progress: { round: 1, round_done: 0, round_size: 3, labeled: 0 }, labeler: "ann",
    heartbeat: 0, heartbeat_s: 2, full: {}, page: [], page_id: 0, page_data: [],
    ...extra,
  };
}

let views = [];
function mount(model) {
  const el = new ViewElement("div");
  const cleanup = widget.render({ model, el });
  views.push(cleanup);
  const root = el.firstElementChild;
  const find = (cls) => root.findAll((n) => n.classList.contains(cls));
  return { root, find, shown: () => root.dataset.itemId };
}

beforeEach(installViewDom);
afterEach(() => { for (const cleanup of views) cleanup(); views = []; });

test("the view reads n_slots from its trait: one slot view and listener each", () => {
  const model = new FakeModel(traits());
  const { find } = mount(model);
  assert.equal(find("alaas-slot").length, 4);
  const slotEvents = [...model.listeners.keys()].filter((e) => /^change:slot_\d+$/.test(e));
  assert.deepEqual(slotEvents.sort(), ["change:slot_0", "change:slot_1", "change:slot_2",
    "change:slot_3"]);
});

test("a missing contract trait is refused, naming it, not guessed", () => {
  for (const name of ["n_slots", "undo_depth"]) {
    const model = new FakeModel(traits({ [name]: undefined }));
    assert.throws(() => mount(model), new RegExp(`the trait ${name} is undefined`));
  }
});

test("a class key answers the item shown and shows the next at once", () => {
  const model = new FakeModel(traits({ acked: 4 }));
  const { root, shown } = mount(model);
  assert.equal(shown(), "10");
  const ev = press(root, "Digit2", { key: "2" });
  assert.ok(ev.defaultPrevented && ev.propagationStopped);
  assert.deepEqual(model.sent, [{ type: "answer", item_id: 10, label: "dog", seq: 5 }]);
  assert.equal(shown(), "11"); // before the kernel says anything
  assert.equal(root.dataset.queued, "2");
  // the round bar counts the answer in flight
  assert.match(root.findAll((n) => n.classList.contains("alaas-bar-text"))[0].textContent,
    /1 \/ 3/);
  // Enter takes item 11's suggestion (bird); the keypad's 1 answers 13
  press(root, "NumpadEnter", { key: "Enter" });
  press(root, "Numpad1", { key: "1" });
  assert.deepEqual(model.sent.slice(1), [{ type: "accept", item_id: 11, seq: 6 },
    { type: "answer", item_id: 13, label: "cat", seq: 7 }]);
  assert.equal(shown(), "");
  // the kernel applies the first two and refuses the third (13 is still queued)
  model.update({ acked: 7, order: [3], slots: [{}, {}, {}, meta(13)] });
  assert.equal(shown(), "13");
});

test("held keys, chords and keys of no class send nothing", () => {
  const model = new FakeModel(traits());
  const { root, shown } = mount(model);
  press(root, "Digit1", { key: "1", repeat: true });
  press(root, "Digit1", { key: "1", ctrlKey: true });
  const other = press(root, "KeyM", { key: "m" });
  assert.ok(other.propagationStopped && !other.defaultPrevented); // no notebook shortcut
  const tab = press(root, "Tab");
  assert.ok(!tab.propagationStopped);
  assert.deepEqual(model.sent, []);
  assert.equal(shown(), "10");
});

test("Enter without a suggestion and Undo with nothing to undo explain themselves", () => {
  const model = new FakeModel(traits());
  const { root, find } = mount(model);
  press(root, "Enter");
  const message = () => find("alaas-message")[0].textContent;
  assert.match(message(), /No model suggestion for this item yet/);
  press(root, "Backspace");
  assert.equal(message(), "Nothing to undo (the last 7 actions can be taken back).");
  assert.deepEqual(model.sent, []);
  model.update({ history: [{ item_id: 9, label: "cat", action: "answer" }] });
  press(root, "Backspace");
  assert.deepEqual(model.sent, [{ type: "undo", seq: 1 }]);
});

test("Space skips; keys do nothing once the view is stopped", () => {
  const model = new FakeModel(traits());
  const { root, shown } = mount(model);
  press(root, "Space", { key: " " });
  assert.deepEqual(model.sent, [{ type: "skip", item_id: 10, seq: 1 }]);
  assert.equal(shown(), "11");
  model.update({ state: "stopped", message: "stopped: a newer labeling widget took over" });
  press(root, "Digit1", { key: "1" });
  assert.equal(model.sent.length, 1);
});

// grid mode: a page of three, two proposed and one without a proposal
const pageItem = (item_id, proposal) => ({ ...meta(item_id), proposal, choice: null,
  skip: false, answer: proposal });
const gridTraits = () => traits({ grid: 3, slots: [{}, {}, {}, {}], order: [], page_id: 4,
  page: [pageItem(20, "cat"), pageItem(21, "cat"), pageItem(22, null)], page_data: [] });

test("grid: a class key sets the selected item's class and moves on", () => {
  const model = new FakeModel(gridTraits());
  const { root, find } = mount(model);
  assert.equal(root.dataset.cursor, "20");
  assert.equal(find("alaas-group").length, 2); // cat, then no proposal
  press(root, "ArrowRight");
  assert.equal(root.dataset.cursor, "21");
  press(root, "Digit2", { key: "2" });
  assert.deepEqual(model.sent, [{ type: "choose", label: "dog", item_id: 21, seq: 1 }]);
  assert.equal(root.dataset.cursor, "22");
  const cell = find("alaas-cell")[1];
  assert.equal(cell.dataset.state, "chosen"); // shown before the kernel acknowledges
  assert.equal(cell.getAttribute("aria-label"), "21.txt: set to dog, was cat");
});

test("grid: Enter with an item lacking a class goes to it; then it confirms", () => {
  const model = new FakeModel(gridTraits());
  const { root, find } = mount(model);
  press(root, "Enter");
  assert.deepEqual(model.sent, []);
  assert.equal(root.dataset.cursor, "22");
  assert.match(find("alaas-message")[0].textContent, /Not confirmed: 1 item has no proposal/);
  press(root, "Space", { key: " " }); // leave it out
  assert.deepEqual(model.sent, [{ type: "page_skip", skip: true, item_id: 22, seq: 1 }]);
  press(root, "Enter");
  assert.deepEqual(model.sent[1], { type: "confirm_page", page_id: 4, seq: 2 });
  assert.equal(root.dataset.confirming, "true");
  press(root, "Digit1", { key: "1" }); // nothing while the page is being saved
  assert.equal(model.sent.length, 2);
  assert.equal(find("alaas-placeholder")[0].textContent, "");
  model.update({ acked: 2, page: [], page_id: 5 }); // saved; the next page is not here yet
  assert.equal(root.dataset.cursor, "");
  assert.match(find("alaas-placeholder")[0].textContent, /^Waiting for the next items/);
});

test("review mode: Enter keeps the label, a class key corrects it, the bars count reviews", () => {
  const suspect = (item_id, label, suggested) => meta(item_id, { strategy: "suspect",
    review: { label, suggested, self_confidence: 0.04, rank: item_id - 19 } });
  const model = new FakeModel(traits({ mode: "review", slots: [suspect(20, "dog", "cat"),
    suspect(21, "bird", "dog"), {}, {}], order: [0, 1],
    progress: { review: true, total: 2, reviewed: 0, confirmed: 0, corrected: 0, open: 2 } }));
  const { root, find, shown } = mount(model);
  assert.equal(root.dataset.mode, "review");
  assert.equal(find("alaas-title")[0].textContent, "Review labels");
  assert.equal(root.dataset.given, "dog");
  assert.equal(root.dataset.suggested, "cat");
  assert.match(find("alaas-review-line")[0].textContent, /labeled dog \(p = 0\.04\).*says cat/);
  const given = find("alaas-class").find((b) => b.getAttribute("data-class") === "dog");
  assert.ok(given.classList.contains("alaas-given"));
  press(root, "Enter", { key: "Enter" }); // keep "dog" (no suggestion needed)
  assert.equal(shown(), "21");
  press(root, "Digit2", { key: "2" }); // "dog" on a "bird": a correction
  assert.deepEqual(model.sent, [{ type: "accept", item_id: 20, seq: 1 },
    { type: "answer", item_id: 21, label: "dog", seq: 2 }]);
  assert.match(find("alaas-bar-text")[0].textContent, /2 \/ 2 reviewed/);
  assert.equal(find("alaas-review-back")[0].hidden, false);
  // back to labeling (the kernel's mode), suspects offer a review
  model.update({ mode: "label", acked: 2, slots: [meta(10), {}, {}, {}], order: [0],
    progress: { round: 1, round_done: 0, round_size: 1, labeled: 0, suspects: 3 } });
  assert.equal(root.dataset.mode, "label");
  const open = find("alaas-review-open")[0];
  assert.equal(open.hidden, false);
  assert.equal(open.textContent, "Review 3 suspects");
});
