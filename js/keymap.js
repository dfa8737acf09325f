// The labeling widget's keys: which `event.code` does what, and what a key press means
// before anything is shown. Pure (no DOM): js/labeler.js acts on the answers.
// The kernel chooses the keys (alaas_lab/widgets/keys.py: traits `key_codes`,
// `action_codes`); nothing here repeats them.

// keys that scroll the item shown (a long text, an image at full size), never the notebook
export const SCROLL_KEYS = new Set(["ArrowDown", "ArrowUp", "ArrowLeft", "ArrowRight",
  "PageDown", "PageUp", "Home", "End"]);
// grid mode: the keys that move the cursor over the page
export const GRID_MOVES = new Set(["ArrowDown", "ArrowUp", "ArrowLeft", "ArrowRight", "Home",
  "End"]);

// One `event.code` table: code → {kind: "label", index} | {kind: "skip" | "undo" | "accept"}.
// `keyCodes[i]` is class i's code ("" or null: no key); a digit class also answers to the
// same digit on the numeric keypad, and Accept on Enter to the keypad's Enter.
// `actionCodes` is `{skip, undo, accept}`; an action code wins over a class code.
export function keyTable(keyCodes = [], actionCodes = {}) {
  const table = new Map();
  keyCodes.forEach((code, index) => {
    if (!code) return;
    table.set(code, { kind: "label", index });
    if (code.startsWith("Digit")) table.set(`Numpad${code.slice(5)}`, { kind: "label", index });
  });
  if (actionCodes.skip) table.set(actionCodes.skip, { kind: "skip" });
  if (actionCodes.undo) table.set(actionCodes.undo, { kind: "undo" });
  if (actionCodes.accept) {
    table.set(actionCodes.accept, { kind: "accept" });
    if (actionCodes.accept === "Enter") table.set("NumpadEnter", { kind: "accept" });
  }
  return table;
}

// What a keydown means to the widget, in the order the widget decides it:
//   chord   Ctrl/Meta/Alt held: JupyterLab's (Ctrl+S saves the notebook), left alone
//   button  Enter or Space on a focused button: the button's own click, no shortcut
//   move    grid mode: an arrow, Home or End moves the cursor (`key`)
//   act     a key of the table: do `action`
//   held    the same, auto-repeated: swallowed, so holding a key labels one item only
//   leave   Escape: hand the focus back to the notebook
//   scroll  a scrolling key: scroll the item shown if it can scroll
//   tab     Tab: left to the browser (focus moves on)
//   swallow any other key: no notebook shortcut while labeling
// `ev` needs `key`, `code`, `repeat`, `ctrlKey`, `metaKey`, `altKey`.
export function keyIntent(ev, table, { grid = false, onButton = false } = {}) {
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return { kind: "chord" };
  if (onButton && (ev.key === "Enter" || ev.key === " ")) return { kind: "button" };
  if (grid && GRID_MOVES.has(ev.key)) return { kind: "move", key: ev.key };
  const action = table.get(ev.code);
  if (action) return { kind: ev.repeat ? "held" : "act", action };
  if (ev.key === "Escape") return { kind: "leave" };
  if (ev.key === "Tab") return { kind: "tab" };
  return { kind: SCROLL_KEYS.has(ev.key) ? "scroll" : "swallow" };
}

// one arrow press scrolls this many pixels
export const SCROLL_LINE = 40;

// How far a scrolling key moves a box, `[dx, dy]` in pixels: a line, a page (the box's
// height less a line; Shift+PageDown/PageUp: its width, sideways), Home and End the
// whole way. `box` has clientWidth/Height and scrollWidth/Height.
export function scrollStep(key, shiftKey, box) {
  const line = SCROLL_LINE;
  const page = Math.max(line, box.clientHeight - line);
  const pageX = Math.max(line, box.clientWidth - line);
  const moves = {
    ArrowDown: [0, line], ArrowUp: [0, -line], ArrowRight: [line, 0], ArrowLeft: [-line, 0],
    PageDown: [0, page], PageUp: [0, -page],
    Home: [-box.scrollWidth, -box.scrollHeight], End: [box.scrollWidth, box.scrollHeight],
  };
  const [dx, dy] = moves[key] || [0, 0];
  if (shiftKey && (key === "PageDown" || key === "PageUp")) return [Math.sign(dy) * pageX, 0];
  return [dx, dy];
}
