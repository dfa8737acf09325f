import assert from "node:assert/strict";
import { test } from "node:test";

import { GRID_MOVES, SCROLL_KEYS, keyIntent, keyTable, scrollStep } from "../../js/keymap.js";

// the kernel's traits for three classes "cat", "dog", "7" keyed 1, 2, Q
const CODES = ["Digit1", "Digit2", "KeyQ"];
const ACTIONS = { skip: "Space", undo: "Backspace", accept: "Enter" };
const key = (code, extra = {}) => ({ code, key: code, repeat: false, ctrlKey: false,
  metaKey: false, altKey: false, ...extra });

test("keyTable maps each class's code to its index, digits on the keypad too", () => {
  const table = keyTable(CODES, ACTIONS);
  assert.deepEqual(table.get("Digit1"), { kind: "label", index: 0 });
  assert.deepEqual(table.get("Numpad1"), { kind: "label", index: 0 });
  assert.deepEqual(table.get("Numpad2"), { kind: "label", index: 1 });
  assert.deepEqual(table.get("KeyQ"), { kind: "label", index: 2 });
  assert.equal(table.get("NumpadQ"), undefined); // only digits have a keypad twin
  assert.equal(table.get("Digit3"), undefined);
});

test("keyTable: the actions' codes, Enter with the keypad's Enter", () => {
  const table = keyTable(CODES, ACTIONS);
  assert.deepEqual(table.get("Space"), { kind: "skip" });
  assert.deepEqual(table.get("Backspace"), { kind: "undo" });
  assert.deepEqual(table.get("Enter"), { kind: "accept" });
  assert.deepEqual(table.get("NumpadEnter"), { kind: "accept" });
  // two digits and their keypad twins, KeyQ, three actions and the keypad's Enter
  assert.equal(table.size, 9);
});

test("keyTable: an action code wins over a class code; no code, no key", () => {
  const table = keyTable(["Space", "", null, "Digit0"], { skip: "Space" });
  assert.deepEqual(table.get("Space"), { kind: "skip" });
  assert.deepEqual(table.get("Numpad0"), { kind: "label", index: 3 });
  assert.deepEqual([...table.keys()].sort(), ["Digit0", "Numpad0", "Space"]);
  // another accept key has no keypad twin; missing traits give an empty table
  assert.equal(keyTable([], { accept: "KeyA" }).has("NumpadEnter"), false);
  assert.equal(keyTable().size, 0);
});

test("keyIntent: chords stay JupyterLab's, whatever the key", () => {
  const table = keyTable(CODES, ACTIONS);
  for (const mod of ["ctrlKey", "metaKey", "altKey"]) {
    assert.deepEqual(keyIntent(key("Digit1", { [mod]: true }), table), { kind: "chord" });
    assert.deepEqual(keyIntent(key("KeyS", { key: "s", [mod]: true }), table,
      { grid: true, onButton: true }), { kind: "chord" });
  }
});

test("keyIntent: Enter and Space on a focused button are the button's", () => {
  const table = keyTable(CODES, ACTIONS);
  assert.deepEqual(keyIntent(key("Enter"), table, { onButton: true }), { kind: "button" });
  assert.deepEqual(keyIntent(key("Space", { key: " " }), table, { onButton: true }),
    { kind: "button" });
  // not on a button: they are Accept and Skip; a class key on a button still labels
  assert.deepEqual(keyIntent(key("Enter"), table), { kind: "act", action: { kind: "accept" } });
  assert.deepEqual(keyIntent(key("Space", { key: " " }), table),
    { kind: "act", action: { kind: "skip" } });
  assert.deepEqual(keyIntent(key("Digit2", { key: "2" }), table, { onButton: true }),
    { kind: "act", action: { kind: "label", index: 1 } });
});

test("keyIntent: a held key acts once (its repeats are swallowed)", () => {
  const table = keyTable(CODES, ACTIONS);
  assert.deepEqual(keyIntent(key("Digit1", { key: "1", repeat: true }), table),
    { kind: "held", action: { kind: "label", index: 0 } });
});

test("keyIntent: arrows move the cursor in grid mode and scroll the item otherwise", () => {
  const table = keyTable(CODES, ACTIONS);
  for (const k of ["ArrowDown", "ArrowUp", "ArrowLeft", "ArrowRight", "Home", "End"]) {
    assert.deepEqual(keyIntent(key(k), table, { grid: true }), { kind: "move", key: k });
    assert.deepEqual(keyIntent(key(k), table), { kind: "scroll" });
  }
  // PageDown does not move the grid's cursor: it scrolls
  assert.deepEqual(keyIntent(key("PageDown"), table, { grid: true }), { kind: "scroll" });
  assert.equal(GRID_MOVES.has("PageDown"), false);
  assert.equal(SCROLL_KEYS.has("PageDown"), true);
});

test("keyIntent: Escape leaves, Tab is the browser's, any other key is swallowed", () => {
  const table = keyTable(CODES, ACTIONS);
  assert.deepEqual(keyIntent(key("Escape"), table), { kind: "leave" });
  assert.deepEqual(keyIntent(key("Tab"), table), { kind: "tab" });
  assert.deepEqual(keyIntent(key("KeyZ", { key: "z" }), table), { kind: "swallow" });
  assert.deepEqual(keyIntent(key("KeyM", { key: "m" }), table, { grid: true }),
    { kind: "swallow" }); // JupyterLab's "m" (to Markdown) must not fire
});

test("scrollStep: lines, pages, the ends, and Shift+PageDown sideways", () => {
  const box = { clientWidth: 300, clientHeight: 200, scrollWidth: 1200, scrollHeight: 900 };
  assert.deepEqual(scrollStep("ArrowDown", false, box), [0, 40]);
  assert.deepEqual(scrollStep("ArrowLeft", false, box), [-40, 0]);
  assert.deepEqual(scrollStep("PageDown", false, box), [0, 160]);
  assert.deepEqual(scrollStep("PageUp", false, box), [0, -160]);
  assert.deepEqual(scrollStep("PageDown", true, box), [260, 0]);
  assert.deepEqual(scrollStep("PageUp", true, box), [-260, 0]);
  assert.deepEqual(scrollStep("Home", false, box), [-1200, -900]);
  assert.deepEqual(scrollStep("End", false, box), [1200, 900]);
  assert.deepEqual(scrollStep("KeyA", false, box), [0, 0]);
  // a box lower than two lines still pages by a line
  assert.deepEqual(scrollStep("PageDown", false, { ...box, clientHeight: 50 }), [0, 40]);
});
