// Grid mode's page bookkeeping: the kernel's open page (trait `page`, items in display
// order) with this view's choices and skips shown at once, the cursor, and what a key
// does on the page. A choice counts as the page's until `acked` reaches its seq; then
// the kernel's `page` says what holds (a refused choice rolls back). Pure: no DOM.

import { itemName } from "./items.js";

// a page item as the view marks it
export function cellState(meta) {
  if (meta.skip) return "skipped";
  if (meta.choice) return "chosen";
  return meta.proposal ? "proposed" : "missing";
}

// the items that keep the page from being confirmed: not skipped and without an answer
export function missingOf(items) { return items.filter((m) => !m.skip && !m.answer); }

// how many items are in each cellState
export function pageCounts(items) {
  const counts = { proposed: 0, chosen: 0, skipped: 0, missing: 0 };
  for (const m of items) counts[cellState(m)] += 1;
  return counts;
}

export class PageEdits {
  constructor() {
    this.local = new Map(); // item_id → {seq, choice?, skip?}: sent, not yet acknowledged
    this.confirming = null; // seq of a confirm_page not yet acknowledged
  }

  // forget what the kernel has applied (messages up to `acked`)
  settle(acked = 0) {
    for (const [id, l] of this.local) if (l.seq <= acked) this.local.delete(id);
    if (this.confirming !== null && this.confirming <= acked) this.confirming = null;
  }

  // the page as the kernel holds it, with this view's edits not yet acknowledged; an
  // edited item's `answer` is what confirming would send: its choice, else its proposal,
  // nothing when skipped
  items(page = [], acked = 0) {
    this.settle(acked);
    return page.map((m) => {
      const l = this.local.get(m.item_id);
      if (!l) return m;
      const choice = l.choice !== undefined ? l.choice : m.choice;
      const skip = l.skip !== undefined ? l.skip : m.skip;
      return { ...m, choice, skip, answer: skip ? null : choice || m.proposal };
    });
  }

  // an edit of one item sent with `seq` (merged with its earlier unacknowledged ones)
  mark(itemId, patch, seq) {
    this.local.set(itemId, { ...(this.local.get(itemId) || {}), ...patch, seq });
  }

  get saving() { return this.confirming !== null; }
}

// What a key does on the page (`items` from PageEdits.items, `cursor` the selected
// index, `action` a keyTable entry other than undo, `classes` the class names):
//   {kind: "choose", item_id, msg, patch, index, cursor}  set the class, cursor on to the next
//   {kind: "skip", item_id, msg, patch}                   leave the item out, or take it back in
//   {kind: "missing", missing, cursor}                    Enter with items lacking a class:
//                                                         the cursor goes to the first of them
//   {kind: "confirm", msg}                                Enter: confirm the page
// A `msg` goes out without its seq and, for choose/skip, without `item_id`'s patch applied.
export function pageKey(items, cursor, action, classes = [], pageId = 0) {
  const m = items[cursor];
  if (action.kind === "label") {
    const label = classes[action.index];
    return { kind: "choose", item_id: m.item_id, index: action.index,
      msg: { type: "choose", label, item_id: m.item_id },
      patch: { choice: label, skip: false },
      cursor: cursor < items.length - 1 ? cursor + 1 : cursor };
  }
  if (action.kind === "skip") {
    return { kind: "skip", item_id: m.item_id,
      msg: { type: "page_skip", skip: !m.skip, item_id: m.item_id }, patch: { skip: !m.skip } };
  }
  const missing = missingOf(items);
  if (missing.length) return { kind: "missing", missing, cursor: items.indexOf(missing[0]) };
  return { kind: "confirm", msg: { type: "confirm_page", page_id: pageId } };
}

// The cursor after a move key over `n` thumbnails: Left/Right one step, Home/End to
// the ends, Up/Down to the nearest row above or below (rows are told apart by more
// than 4 px of `top`) and in it the thumbnail whose centre is closest; it stays where
// it is at an edge. `rectOf(i)` gives thumbnail i's box ({left, right, top}); it is
// only asked for Up and Down.
export function nextCursor(key, cursor, n, rectOf) {
  if (!n) return cursor;
  cursor = Math.min(cursor, n - 1);
  if (key === "ArrowLeft") return Math.max(0, cursor - 1);
  if (key === "ArrowRight") return Math.min(n - 1, cursor + 1);
  if (key === "Home") return 0;
  if (key === "End") return n - 1;
  if (key !== "ArrowDown" && key !== "ArrowUp") return cursor;
  const dir = key === "ArrowDown" ? 1 : -1;
  const rects = Array.from({ length: n }, (_, i) => rectOf(i));
  const here = rects[cursor];
  const cx = (r) => (r.left + r.right) / 2;
  let best = -1;
  let bestDy = Infinity;
  let bestDx = Infinity;
  rects.forEach((r, i) => {
    const dy = (r.top - here.top) * dir;
    if (dy < 4) return;
    const dx = Math.abs(cx(r) - cx(here));
    if (dy < bestDy - 4 || (Math.abs(dy - bestDy) <= 4 && dx < bestDx)) {
      best = i; bestDy = dy; bestDx = dx;
    }
  });
  return best >= 0 ? best : cursor;
}

// Runs of consecutive items with the same proposal (the kernel sorts the page by
// predicted class): `[{key, indices}]`, key "" for items without a proposal.
export function proposalGroups(items) {
  const groups = [];
  items.forEach((m, i) => {
    const key = m.proposal || "";
    const last = groups[groups.length - 1];
    if (last && last.key === key) last.indices.push(i);
    else groups.push({ key, indices: [i] });
  });
  return groups;
}

// A thumbnail's caption, `[label, tag]`: its class and how it got it.
export function cellText(m) {
  const conf = typeof m.suggestion?.confidence === "number"
    ? ` ${Math.round(100 * m.suggestion.confidence)}%` : "";
  const state = cellState(m);
  if (state === "skipped") return ["–", "skipped"];
  if (state === "missing") return ["?", "needs a class"];
  if (state === "proposed") return [m.proposal, `proposed${conf}`];
  return [m.choice, m.proposal && m.proposal !== m.choice ? `set · was ${m.proposal}` : "set"];
}

// A thumbnail's accessible name: the item's name, then its class and how it got it.
export function cellLabel(m) {
  const [label, tag] = cellText(m);
  const said = tag === "set" ? `set to ${label}`
    : tag.startsWith("set") ? `set to ${label}, ${tag.slice(6)}`
      : label === "?" || label === "–" ? tag : `${label}, ${tag}`;
  return `${itemName(m)}: ${said}`;
}
