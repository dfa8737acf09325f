// alaas_lab labeling widget (anywidget ES module).
// The contract is the traits listed in alaas_lab/widgets/labeler.py; nothing here
// loads anything from the network.
//
// A key press shows the next queued item at once (its image is already decoded in
// a hidden <img>), then tells the kernel: {type: "answer" | "accept" | "skip" | "undo",
// seq, ...}.
// Until the kernel acknowledges a message (trait `acked` >= seq) the items it
// answered stay hidden here, so the view never waits on the kernel.
//
// Grid mode (trait `grid` > 0): the kernel's open page (`page`, `page_data`) is shown
// as thumbnails grouped by predicted class, each marked "proposed" until a class is
// set. Arrows (or a click) move the cursor, a class key sets the class of the item
// under it ({type: "choose"}), Space leaves it out ({type: "page_skip"}), Enter
// confirms the page ({type: "confirm_page", page_id}); nothing is sent as a label
// before Enter. Choices show at once and count as the page's until acknowledged.
//
// The kernel side says it is alive by bumping `heartbeat` every `heartbeat_s`
// seconds; a view that hears nothing for a while (or whose comm the widget manager
// marks dead, as on a kernel restart) says it is disconnected and refuses keys.
//
// This file is the view (DOM, events); the rules it follows are pure modules beside
// it, tested under Node (tests/js/): keymap.js (which key does what), answers.js (seq
// numbers, answers in flight, what shows next), page.js (grid mode's page and cursor),
// items.js (how an item is named), review.js (review mode). The kernel inlines them
// (front_end_module).
//
// Review mode (trait `mode` "review", one item at a time): the slots hold suspect labels
// (each slot's `review`: the human's label, the out-of-fold head's class). Enter keeps
// the label ({type: "accept"}), a class key corrects it ({type: "answer"}), Space leaves
// it, Backspace undoes; "Review N suspects" ({type: "review"}) and "Back to labeling"
// ({type: "label_mode"}) switch modes.

import { Outbox, itemMessage, shownProgress, visibleSlots } from "./answers.js";
import { announcer, h } from "./dom.js";
import { watchKernel } from "./heartbeat.js";
import { itemName, shortUri } from "./items.js";
import { keyIntent, keyTable, scrollStep } from "./keymap.js";
import {
  PageEdits, cellLabel, cellState, cellText, missingOf, nextCursor, pageCounts, pageKey,
  proposalGroups,
} from "./page.js";
import {
  reviewAction, reviewButtonText, reviewLine, reviewMessage, reviewProgress,
} from "./review.js";

// What the view reads from the kernel instead of repeating it (labeler.py's traits
// n_slots, undo_depth): a missing or odd value means the kernel side is another version.
function contractInt(model, name) {
  const value = model.get(name);
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`alaas_lab labeling widget: the trait ${name} is ${JSON.stringify(value)}, ` +
      "not a positive int; the kernel's alaas_lab and this view differ: restart the kernel " +
      "and run %alaas label again.");
  }
  return value;
}

function render({ model, el }) {
  const gridSize = model.get("grid") || 0;
  const root = h("div", {
    class: gridSize ? "alaas alaas-labeler alaas-labeler-grid" : "alaas alaas-labeler",
    tabindex: "0",
    "data-lm-suppress-shortcuts": "true",
    role: "application",
    "aria-roledescription": "labeling widget",
    "aria-label": gridSize
      ? "Labeling a page: arrows choose an item, a class key sets its class, Enter confirms the page"
      : "Labeling: press a class key to answer",
  });
  el.append(root);

  // ---- layout ---------------------------------------------------------
  const stateBadge = h("span", { class: "alaas-badge" });
  const pageInfo = h("span", { class: "alaas-muted", hidden: !gridSize });
  const title = h("span", { class: "alaas-title" }, "Label");
  const reviewButton = h("button", { class: "alaas-btn alaas-btn-small alaas-review-open",
    type: "button", hidden: true }, "Review suspect labels");
  const backButton = h("button", { class: "alaas-btn alaas-btn-small alaas-review-back",
    type: "button", hidden: true }, "Back to labeling");
  const header = h("div", { class: "alaas-header" },
    title, stateBadge, pageInfo, reviewButton, backButton,
    h("span", { class: "alaas-spacer" }));
  const labelerName = h("span", { class: "alaas-muted" });
  header.append(labelerName);

  function bar(label, fillClass) {
    const fill = h("div", { class: `alaas-bar-fill ${fillClass}` });
    const track = h("div", { class: "alaas-bar", role: "progressbar", "aria-label": label,
      "aria-valuemin": "0" }, fill);
    const text = h("span", { class: "alaas-bar-text", "aria-hidden": "true" });
    const row = h("div", { class: "alaas-bar-row" },
      h("span", { class: "alaas-bar-label", "aria-hidden": "true" }, label), track, text);
    return { row, track, fill, text };
  }
  const roundBar = bar("Round", "");
  const budgetBar = bar("Budget", "alaas-bar-fill-2");
  const progress = h("div", { class: "alaas-progress" }, roundBar.row, budgetBar.row);

  const nSlots = contractInt(model, "n_slots");
  const undoDepth = contractInt(model, "undo_depth");
  const stage = h("div", { class: "alaas-stage" });
  const slotViews = [];
  for (let i = 0; i < nSlots; i++) {
    const view = { node: h("div", { class: "alaas-slot", hidden: true }), seq: null, data: null,
      url: null, img: null };
    slotViews.push(view);
    stage.append(view.node);
  }
  // scrolling boxes (long text, full size) are never focused: the keys stay the widget's
  const zoom = { node: h("div", { class: "alaas-zoom", hidden: true, tabindex: "-1" }),
    url: null, data: null, key: null };
  const zoomNote = h("span", { class: "alaas-zoom-note", hidden: true });
  const placeholder = h("div", { class: "alaas-placeholder" });
  const gridBox = h("div", { class: "alaas-grid", role: "listbox", "aria-label": "Page of items",
    hidden: true });
  stage.append(zoom.node, zoomNote, gridBox, placeholder);
  if (gridSize) stage.classList.add("alaas-stage-grid");

  const strategyChip = h("span", { class: "alaas-chip" });
  const suggestion = h("span", { class: "alaas-suggestion", hidden: true });
  const itemMeta = h("span", { class: "alaas-muted alaas-item-meta" });
  const reviewInfo = h("span", { class: "alaas-review-line", hidden: true });
  const fullButton = h("button", { class: "alaas-btn alaas-btn-small", type: "button",
    "aria-pressed": "false", hidden: true }, "Full size");
  const meta = h("div", { class: "alaas-meta" }, strategyChip, suggestion, reviewInfo, itemMeta,
    fullButton);

  const classRow = h("div", { class: "alaas-classes", role: "group", "aria-label": "Classes" });
  const skipButton = h("button", { class: "alaas-btn alaas-btn-secondary", type: "button",
    "aria-label": "Skip this item", "aria-keyshortcuts": "Space" },
  "Skip", h("kbd", { "aria-hidden": "true" }, "Space"));
  const undoCount = h("span", { class: "alaas-count", "aria-hidden": "true" });
  const undoButton = h("button", { class: "alaas-btn alaas-btn-secondary", type: "button",
    "aria-keyshortcuts": "Backspace" },
  "Undo", h("kbd", { "aria-hidden": "true" }, "⌫"), undoCount);
  const hint = h("span", { class: "alaas-hint" });
  const recent = h("span", { class: "alaas-recent", "aria-label": "Last answers" });
  const confirmButton = h("button", { class: "alaas-btn alaas-btn-primary", type: "button",
    "aria-keyshortcuts": "Enter", hidden: !gridSize },
  "Confirm page", h("kbd", { "aria-hidden": "true" }, "Enter"));
  const pageSummary = h("span", { class: "alaas-page-summary", hidden: !gridSize });
  const actions = h("div", { class: "alaas-actions" }, confirmButton, skipButton, undoButton,
    recent, hint);
  if (gridSize) {
    skipButton.setAttribute("aria-label", "Skip the selected item: leave it out of this page");
    classRow.setAttribute("aria-label", "Classes for the selected item");
  }

  const message = h("div", { class: "alaas-message" });
  const errorText = h("span", {});
  const retryButton = h("button", { class: "alaas-btn alaas-btn-small", type: "button" }, "Retry");
  const errorBox = h("div", { class: "alaas-error", role: "alert", hidden: true }, errorText,
    retryButton);
  const gone = h("div", { class: "alaas-gone", role: "alert", hidden: true });
  // what a screen reader announces: the new item, the progress, the state
  const live = h("div", { class: "alaas-sr-only", role: "status", "aria-live": "polite",
    "aria-atomic": "true" });

  root.append(header, gone, progress, errorBox, stage, meta, pageSummary, classRow, actions,
    message, live);

  // review mode: the suspect labels (never with grid mode)
  const reviewing = () => !gridSize && model.get("mode") === "review";

  // ---- local state -----------------------------------------------------
  const outbox = new Outbox(model.get("acked") || 0); // messages sent, not yet acknowledged
  let classButtons = [];
  let table = new Map();
  // a note of this view's own, with the condition that ends it
  let note = null; // {text, until: () => bool}
  let zoomed = false; // "Full size" pressed for the item shown now
  let zoomItem = null;
  let focused = false;
  const announce = announcer(live);
  // grid mode
  let cursor = 0; // index of the selected item in the page's order
  const edits = new PageEdits(); // choices, skips and a confirm_page not yet acknowledged
  let gridKey = null;
  let cells = []; // {node, label, tag, url, item_id}

  // ---- is the kernel side still there? -----------------------------------
  const kernel = watchKernel(model, () => update());
  const alive = kernel.alive;

  function send(msg) {
    const stamped = outbox.stamp(msg, model.get("acked") || 0);
    model.send(stamped);
    return stamped.seq;
  }

  function visible() {
    const hidden = outbox.hiddenItems(model.get("acked") || 0);
    return visibleSlots(model.get("order") || [], model.get("slots") || [], hidden);
  }

  function current() {
    const order = visible();
    if (!order.length) return null;
    const meta = model.get("slots")[order[0]];
    return { slot: order[0], meta };
  }

  // ---- keyboard: one event.code table ------------------------------------
  function buildTable() {
    table = keyTable(model.get("key_codes") || [], model.get("action_codes") || {});
  }

  // the element that shows the current item and can scroll (long text, full size)
  function scroller() {
    const nodes = zoomed && !zoom.node.hidden ? [zoom.node]
      : slotViews.filter((v) => !v.node.hidden).map((v) => v.node.firstElementChild);
    return nodes.find((n) => n && (n.scrollHeight > n.clientHeight + 1
      || n.scrollWidth > n.clientWidth + 1)) || null;
  }

  function scrollItem(ev) {
    const target = scroller();
    if (!target) return false;
    target.scrollBy(...scrollStep(ev.key, ev.shiftKey, target));
    return true;
  }

  // a chord is JupyterLab's (Ctrl+S saves the notebook): for that one event, lift the
  // attribute that makes Lumino skip its shortcuts inside the widget
  function onKeyDownCapture(ev) {
    if (!(ev.ctrlKey || ev.metaKey || ev.altKey)) return;
    root.removeAttribute("data-lm-suppress-shortcuts");
    setTimeout(() => root.setAttribute("data-lm-suppress-shortcuts", "true"), 0);
  }

  function onKeyDown(ev) {
    const onButton = ev.target !== root && Boolean(ev.target.closest?.("button"));
    const intent = keyIntent(ev, table, { grid: gridSize > 0, onButton });
    switch (intent.kind) {
      case "chord": // JupyterLab's
      case "tab":
        return;
      case "button": // the focused button's own click; no notebook shortcut
        ev.stopPropagation();
        return;
      case "leave":
        ev.stopPropagation();
        leave();
        return;
      case "scroll":
        ev.stopPropagation();
        if (scrollItem(ev)) ev.preventDefault();
        return;
      case "swallow": // no notebook shortcut while labeling
        ev.stopPropagation();
        return;
      default: // move, act, held (holding a key must not label a run of items)
        ev.preventDefault();
        ev.stopPropagation();
        if (intent.kind === "move") moveCursor(intent.key);
        else if (intent.kind === "act") perform(intent.action);
    }
  }

  function leave() {
    root.blur();
    const cell = root.closest(".jp-Cell");
    const notebook = root.closest(".jp-Notebook");
    (notebook || cell)?.focus?.({ preventScroll: true });
  }

  function flash(button) {
    if (!button) return;
    button.classList.add("alaas-pressed");
    setTimeout(() => button.classList.remove("alaas-pressed"), 120);
  }

  function inactiveReason() {
    if (!alive()) return "gone";
    const state = model.get("state");
    if (state === "stopped" || state === "done" || state === "error") return state;
    return "";
  }

  function perform(action) {
    note = null;
    const why = inactiveReason();
    if (why === "gone") {
      note = { text: "Not saved: this view lost its kernel. Run %alaas start and %alaas label again.",
        until: () => false };
      update();
      return;
    }
    if (why === "stopped") {
      note = { text: "This view is stopped: keys do nothing here.", until: () => false };
      update();
      return;
    }
    if (why === "done" && action.kind !== "undo") {
      note = { text: "All done: nothing left to label (Backspace takes an answer back).",
        until: () => model.get("state") !== "done" };
      update();
      return;
    }
    if (action.kind === "undo") {
      if (!(model.get("history") || []).length) {
        note = { text: `Nothing to undo (the last ${undoDepth} actions can be taken back).`,
          until: () => (model.get("history") || []).length > 0 };
      } else {
        outbox.sent(send({ type: "undo" }), "undo");
      }
      flash(undoButton);
      update();
      return;
    }
    if (gridSize) {
      performOnPage(action);
      update();
      return;
    }
    const cur = current();
    if (!cur || !cur.meta.loaded) {
      note = { text: cur ? "The next item is still loading." : "No item to answer yet.",
        until: () => { const c = current(); return Boolean(c && c.meta.loaded); } };
      update();
      return;
    }
    const item_id = cur.meta.item_id;
    const out = reviewing()
      ? reviewMessage(cur.meta, action, model.get("classes") || [])
      : itemMessage(cur.meta, action, model.get("classes") || []);
    if (!out) { // Enter on an item without a suggestion
      note = { text: "No model suggestion for this item yet: press its class key.",
        until: () => { const c = current(); return !c || c.meta.item_id !== item_id; } };
      update();
      return;
    }
    outbox.sent(send(out.msg), out.kind, item_id);
    flash(out.index < 0 ? skipButton : classButtons[out.index]);
    update();
  }

  // a button clicked with the mouse never takes the focus: the widget keeps it, so the
  // next key press still labels (a focused button that gets disabled would drop it)
  function button(node, action) {
    node.addEventListener("mousedown", (ev) => ev.preventDefault());
    node.addEventListener("click", (ev) => {
      action();
      if (ev.detail > 0 || node.disabled) root.focus({ preventScroll: true });
    });
    return node;
  }
  button(skipButton, () => perform({ kind: "skip" }));
  button(reviewButton, () => { note = null; send({ type: "review" }); });
  button(backButton, () => { note = null; send({ type: "label_mode" }); });
  button(confirmButton, () => perform({ kind: "accept" }));
  button(undoButton, () => perform({ kind: "undo" }));
  button(retryButton, () => send({ type: "retry" }));
  button(fullButton, () => {
    zoomed = !zoomed;
    const cur = current();
    if (zoomed && cur) requestFull(cur.meta);
    update();
  });

  function requestFull(meta) {
    const full = model.get("full") || {};
    if (full.item_id === meta.item_id && full.state !== "error") return;
    send({ type: "full_size", item_id: meta.item_id });
  }

  // ---- grid mode: the page -------------------------------------------------
  // the page as the kernel holds it, with this view's choices not yet acknowledged
  function pageItems() { return edits.items(model.get("page") || [], model.get("acked") || 0); }

  function performOnPage(action) {
    const items = pageItems();
    if (!items.length || edits.saving) {
      note = { text: edits.saving ? "Saving the page…" : "No page to label yet.",
        until: () => !edits.saving && pageItems().length > 0 };
      return;
    }
    cursor = Math.min(cursor, items.length - 1);
    const out = pageKey(items, cursor, action, model.get("classes") || [], model.get("page_id"));
    if (out.kind === "choose" || out.kind === "skip") {
      edits.mark(out.item_id, out.patch, send(out.msg));
      flash(out.kind === "skip" ? skipButton : classButtons[out.index]);
      if (out.kind === "choose") cursor = out.cursor; // on to the next thumbnail
    } else if (out.kind === "missing") {
      const n = out.missing.length;
      cursor = out.cursor;
      note = { text: `Not confirmed: ${n} item${n > 1 ? "s have" : " has"} ` +
        "no proposal. Give each a class (click it or use the arrows, then its key) or skip it, " +
        "then press Enter.", until: () => missingOf(pageItems()).length === 0 };
    } else {
      edits.confirming = send(out.msg);
      flash(confirmButton);
    }
  }

  function moveCursor(key) {
    const n = cells.length;
    if (!n) return;
    cursor = nextCursor(key, cursor, n, (i) => cells[i].node.getBoundingClientRect());
    note = null;
    update();
    cells[cursor]?.node.scrollIntoView?.({ block: "nearest", inline: "nearest" });
  }

  // thumbnails and group boxes, made once per page (object URLs revoked with it)
  function buildGrid(items) {
    for (const c of cells) if (c.url) URL.revokeObjectURL(c.url);
    const data = model.get("page_data") || [];
    cells = [];
    const groups = proposalGroups(items).map(({ key, indices }) => {
      const n = indices.length;
      const title = h("div", { class: "alaas-group-title" }, key
        ? h("span", {}, h("b", {}, key), ` · proposed for ${n}`)
        : h("span", {}, h("b", {}, "No proposal"), ` · ${n} need${n > 1 ? "" : "s"} a class`));
      const body = h("div", { class: "alaas-group-cells" });
      for (const i of indices) body.append(buildCell(items[i], data[i]));
      return h("div", { class: "alaas-group", role: "group", "data-group": key }, title, body);
    });
    gridBox.replaceChildren(...groups);
  }

  function buildCell(m, bytes) {
    const thumb = h("div", { class: "alaas-cell-thumb" });
    let url = null;
    if (m.kind === "image" && bytes && bytes.byteLength) {
      url = URL.createObjectURL(new Blob([bytes], { type: m.mime || "image/png" }));
      const img = h("img", { alt: "", draggable: "false" });
      img.addEventListener("load", () => img.classList.toggle("alaas-crisp-thumb",
        Math.max(img.naturalWidth, img.naturalHeight) <= 160));
      img.src = url;
      thumb.append(img);
    } else if (m.kind === "text") {
      thumb.append(h("div", { class: "alaas-cell-text" }, (m.text || "").slice(0, 160)));
    } else {
      thumb.append(h("div", { class: "alaas-cell-text" }, m.kind === "array"
        ? (m.values || []).slice(0, 8).map((v) => v.toFixed(2)).join(" ") : "cannot be shown"));
    }
    const label = h("b", { class: "alaas-cell-label" });
    const tag = h("span", { class: "alaas-cell-tag" });
    const node = h("div", { class: "alaas-cell", role: "option", "data-item-id": m.item_id,
      title: itemName(m) }, thumb, h("div", { class: "alaas-cell-answer" }, label, tag));
    node.addEventListener("click", () => {
      cursor = cells.findIndex((c) => c.node === node);
      note = null;
      update();
    });
    cells.push({ node, label, tag, url, item_id: m.item_id });
    return node;
  }

  function syncGrid(items, showing) {
    const key = showing ? `${model.get("page_id")}:${items.map((m) => m.seq).join(",")}` : null;
    if (key !== gridKey) {
      const samePage = gridKey && key && gridKey.split(":")[0] === key.split(":")[0];
      gridKey = key;
      if (!samePage) cursor = 0;
      if (key) buildGrid(items);
      else {
        for (const c of cells) if (c.url) URL.revokeObjectURL(c.url);
        cells = [];
        gridBox.replaceChildren();
      }
    }
    gridBox.hidden = !showing;
    if (!showing) return null;
    cursor = Math.max(0, Math.min(cursor, items.length - 1));
    items.forEach((m, i) => {
      const c = cells[i];
      const [label, tag] = cellText(m);
      c.node.dataset.state = cellState(m);
      c.node.dataset.answer = m.answer || "";
      c.node.setAttribute("aria-selected", String(i === cursor));
      c.node.setAttribute("aria-label", cellLabel(m));
      c.label.textContent = label;
      c.tag.textContent = tag;
    });
    root.dataset.cursor = String(items[cursor].item_id);
    root.dataset.confirming = String(edits.saving);
    return items[cursor];
  }

  // ---- slots: object URLs made once per item, images decoded ahead --------
  function fitImage(img) {
    // a tiny image (8×8 digits, sent enlarged to 128 px) grows by a whole factor with
    // crisp pixels; anything else keeps its size or shrinks smoothly to fit
    const w = img.naturalWidth, hgt = img.naturalHeight;
    const room = [stage.clientWidth - 2, stage.clientHeight - 2];
    if (!w || !hgt || !room[0] || !room[1]) return;
    const k = Math.floor(Math.min(room[0] / w, room[1] / hgt));
    const tiny = Math.max(w, hgt) <= 160;
    img.classList.toggle("alaas-crisp", tiny && k >= 2);
    img.style.width = tiny && k >= 2 ? `${w * k}px` : "";
    img.style.height = tiny && k >= 2 ? `${hgt * k}px` : "";
  }

  function syncSlots() {
    const slots = model.get("slots") || [];
    for (let i = 0; i < nSlots; i++) {
      const meta = slots[i] || {};
      const data = model.get(`slot_${i}`);
      const view = slotViews[i];
      const key = `${meta.seq}:${meta.loaded}`;
      if (view.seq === key && view.data === data) continue;
      view.seq = key;
      view.data = data;
      if (view.url) URL.revokeObjectURL(view.url);
      view.url = null;
      view.img = null;
      view.node.replaceChildren();
      view.node.dataset.itemId = meta.item_id ?? "";
      if (!meta.loaded) continue;
      if (meta.kind === "image" && data && data.byteLength) {
        view.url = URL.createObjectURL(new Blob([data], { type: meta.mime || "image/png" }));
        const img = h("img", { class: "alaas-image", alt: itemName(meta), draggable: "false" });
        img.addEventListener("load", () => fitImage(img));
        img.src = view.url;
        img.decode?.().catch(() => {});
        view.img = img;
        view.node.append(img);
      } else if (meta.kind === "text") {
        view.node.append(h("div", { class: "alaas-text", role: "document", tabindex: "-1",
          "aria-label": itemName(meta) }, meta.text || ""));
      } else if (meta.kind === "array") {
        view.node.append(h("pre", { class: "alaas-values", tabindex: "-1",
          "aria-label": itemName(meta) },
          (meta.values || []).map((v) => v.toFixed(3)).join("  ")));
      } else {
        view.node.append(h("div", { class: "alaas-item-error" },
          "This item could not be shown: ", meta.text || "unknown error",
          h("br"), "Press Space to skip it."));
      }
    }
  }

  // "Full size": the item's image as the worker sends it at full size, in a scrollable
  // box (arrows and PageDown scroll it); until it comes, the thumbnail at its own size
  function syncZoom(cur) {
    const full = model.get("full") || {};
    const data = model.get("full_data");
    const mine = Boolean(cur) && full.item_id === cur.meta.item_id;
    const ready = mine && full.state === "ready" && data && data.byteLength > 0;
    const view = cur ? slotViews[cur.slot] : null;
    const key = !zoomed || !cur ? null
      : ready ? `full:${full.item_id}:${data.byteLength}` : view && view.url ? `thumb:${view.seq}` : null;
    if (key !== zoom.key) {
      if (zoom.url) URL.revokeObjectURL(zoom.url);
      zoom.url = null;
      zoom.node.replaceChildren();
      zoom.key = key;
      if (key) {
        if (ready) zoom.url = URL.createObjectURL(new Blob([data], { type: full.mime || "image/png" }));
        zoom.node.append(h("img", { class: "alaas-image", draggable: "false",
          alt: `${itemName(cur.meta)}${ready ? " at full size" : ""}`,
          src: ready ? zoom.url : view.url }));
      }
    }
    zoomNote.hidden = !key || ready;
    zoomNote.textContent = mine && full.state === "error"
      ? `no full-size image: ${full.text || "the worker did not answer"}`
      : "loading the full-size image…";
    root.dataset.zoom = !key ? "" : ready ? "full" : "loading";
    return Boolean(key);
  }

  function buildButtons() {
    const classes = model.get("classes") || [];
    const keys = model.get("key_labels") || [];
    const hadFocus = classButtons.includes(document.activeElement);
    classButtons = classes.map((name, index) => button(h("button", {
      class: "alaas-btn alaas-class", type: "button",
      "data-class": name, "aria-label": `Label as ${name}`,
      "aria-keyshortcuts": keys[index] || false,
      title: keys[index] ? `${name} (key ${keys[index]})` : `${name} (no key: click, or Tab here and press Enter)`,
    }, keys[index] ? h("kbd", { "aria-hidden": "true" }, keys[index]) : null,
    h("span", { "aria-hidden": "true" }, name)), () => perform({ kind: "label", index })));
    classRow.replaceChildren(...classButtons);
    buildTable();
    if (hadFocus) root.focus({ preventScroll: true });
  }

  function placeholderText(state, cur) {
    if (!alive()) return "Disconnected from the kernel: nothing here can be saved.";
    if (state === "stopped") {
      const why = (model.get("message") || "closed").replace(/^stopped:\s*/i, "").replace(/\.$/, "");
      return `Stopped: ${why}.`;
    }
    if (state === "done" && reviewing()) return "No suspect labels left to review.";
    if (state === "done") return "All done: nothing left to label.";
    if (state === "error") return "Stopped by an error (above): Retry when it is fixed.";
    if (cur) return "Loading the item…";
    if (reviewing()) return state === "starting" ? "Asking the worker for suspect labels…"
      : "Waiting for suspect labels (the worker scores them after each round)…";
    if (gridSize && edits.saving) return "Saving the page…";
    if (state === "starting") return "Connecting to the worker…";
    return "Waiting for the next items (the worker is training and selecting)…";
  }

  function hintText(state) {
    const why = inactiveReason();
    if (why === "gone") return ["Keys do nothing: the kernel is gone", false];
    if (why === "stopped") return ["Stopped: keys do nothing", false];
    if (why === "done") return [reviewing() ? "Nothing left to review" : "Nothing left to label", false];
    if (why === "error") return ["Keys wait for Retry", false];
    if (!focused) return ["Click here to label with the keyboard", false];
    if (gridSize && state === "labeling") return ["Keys active: arrows move, a class key sets, Enter confirms", true];
    if (reviewing() && state === "labeling") return ["Keys active: Enter keeps the label, a class key corrects it", true];
    return [state === "labeling" ? "Keys active: press a class key" : "Keys active", true];
  }

  // ---- render ----------------------------------------------------------
  function update() {
    const hadFocus = root.contains(document.activeElement);
    syncSlots();
    const page = gridSize ? pageItems() : [];
    const cur = gridSize ? null : current();
    const state = model.get("state");
    const isAlive = alive();
    const viewState = isAlive ? state : "disconnected";
    const showing = gridSize ? page.length > 0 && state !== "stopped" && isAlive
      : Boolean(cur && cur.meta.loaded && state !== "stopped" && isAlive);
    const selected = gridSize ? syncGrid(page, showing) : null;
    if (!cur || cur.meta.item_id !== zoomItem) { zoomed = false; zoomItem = cur ? cur.meta.item_id : null; }
    if (zoomed && (!showing || cur.meta.kind !== "image")) zoomed = false;
    const zooming = syncZoom(showing && cur ? cur : null);
    for (const [i, view] of slotViews.entries()) {
      view.node.hidden = !showing || !cur || cur.slot !== i || zooming;
    }
    zoom.node.hidden = !zooming;
    const ph = placeholderText(state, cur);
    placeholder.hidden = showing;
    placeholder.textContent = showing ? "" : ph;
    if (showing && cur && cur.meta.kind === "image") {
      const img = slotViews[cur.slot].img;
      if (img && img.complete) fitImage(img);
    }
    root.dataset.itemId = !showing ? "" : String(gridSize ? selected.item_id : cur.meta.item_id);
    root.dataset.pageId = gridSize && showing ? String(model.get("page_id")) : "";
    if (gridSize && !showing) root.dataset.cursor = "";
    root.dataset.state = viewState;
    root.dataset.alive = String(isAlive);
    const review = reviewing();
    root.dataset.mode = review ? "review" : "label";
    title.textContent = review ? "Review labels" : "Label";
    root.setAttribute("aria-label", gridSize ? root.getAttribute("aria-label") : review
      ? "Reviewing suspect labels: Enter keeps the label, a class key corrects it"
      : "Labeling: press a class key to answer");
    const nSuspects = (model.get("progress") || {}).suspects;
    const reviewText = reviewButtonText(nSuspects);
    reviewButton.hidden = review || gridSize > 0 || !reviewText || !isAlive || state === "stopped";
    reviewButton.textContent = reviewText || "Review suspect labels";
    reviewButton.title = "The labels that heads trained without them disagree with, most " +
      "likely mistake first";
    backButton.hidden = !review || !isAlive || state === "stopped";
    root.dataset.queued = String(visible().length);

    gone.hidden = isAlive;
    const goneKind = isAlive ? "" : kernel.restarted() ? "restart" : "silent";
    if (goneKind && gone.dataset.kind !== goneKind) { // an alert is announced when it changes
      gone.dataset.kind = goneKind;
      gone.replaceChildren(h("b", {}, "Disconnected: "),
        kernel.restarted() ? "the kernel restarted, so this view's answers cannot be saved. "
          : "no word from the kernel side, so answers here would not be saved. ",
        "Run ", h("code", {}, "%alaas start …"), " and then ", h("code", {}, "%alaas label"),
        " again to go on where the session is.");
    }

    if (showing && review) {
      const m = cur.meta;
      const r = m.review || {};
      strategyChip.hidden = false;
      strategyChip.textContent = `suspect #${r.rank || "?"}`;
      suggestion.hidden = true;
      reviewInfo.hidden = false;
      const key = (model.get("action_codes") || {}).accept;
      reviewInfo.replaceChildren(reviewLine(r), key ? " · " : "",
        key ? h("kbd", { "aria-hidden": "true" }, key) : "", key ? " keeps it" : "");
      root.dataset.given = r.label || "";
      root.dataset.suggested = r.suggested || "";
      const classes = model.get("classes") || [];
      classButtons.forEach((b, i) => {
        b.classList.toggle("alaas-suggested", classes[i] === r.suggested);
        b.classList.toggle("alaas-given", classes[i] === r.label);
      });
      const name = itemName(m);
      itemMeta.textContent = [name, name !== `item ${m.item_id}` ? `item ${m.item_id}` : null,
        m.relabel ? "review again" : null].filter(Boolean).join(" · ");
      itemMeta.title = m.uri || "";
      fullButton.hidden = m.kind !== "image";
      fullButton.setAttribute("aria-pressed", String(zoomed));
      fullButton.textContent = zoomed ? "Fit to view" : "Full size";
    } else if (showing) {
      reviewInfo.hidden = true;
      for (const b of classButtons) b.classList.remove("alaas-given");
      const m = gridSize ? selected : cur.meta;
      strategyChip.hidden = !m.strategy;
      // who asked, and how good the head that chose it was (round, labels, top-1)
      const mm = m.model || {};
      const chosenBy = mm.round ? ` · chosen by the round-${mm.round} head (${mm.n_labeled} ` +
        `labels${typeof mm.top1 === "number" ? `, ${(100 * mm.top1).toFixed(1)}% top-1` : ""})`
        : "";
      strategyChip.textContent = m.strategy ? `asked by ${m.strategy}${chosenBy}` : "";
      // its name first (the file's), then where it stands; the whole URI on hover
      const name = itemName(m);
      const bits = [name, name !== `item ${m.item_id}` ? `item ${m.item_id}` : null];
      if (m.round) bits.push(`round ${m.round}`);
      if (m.relabel) bits.push("answer again");
      if (m.skips) bits.push("skipped before");
      if (!m.uri || !m.uri.includes(name)) bits.push(shortUri(m.uri));
      itemMeta.textContent = bits.filter(Boolean).join(" · ");
      itemMeta.title = m.uri || "";
      const s = m.suggestion;
      suggestion.hidden = !s;
      if (s) {
        const conf = typeof s.confidence === "number" ? ` (${Math.round(100 * s.confidence)}%)` : "";
        const key = gridSize ? "" : (model.get("action_codes") || {}).accept;
        suggestion.replaceChildren(`model says ${s.label}${conf}`,
          key ? h("kbd", { "aria-hidden": "true" }, key) : "");
        const takes = gridSize ? "proposed until you set a class" : "Enter takes its answer";
        suggestion.title = mm.round ? `the head of round ${mm.round} (${mm.n_labeled} labels` +
          `${typeof mm.top1 === "number" ? `, ${(100 * mm.top1).toFixed(1)}% top-1` : ""}); ` +
          takes : gridSize ? takes : "Enter takes the model's answer";
      }
      classButtons.forEach((b, i) => b.classList.toggle("alaas-suggested",
        Boolean(s) && (model.get("classes") || [])[i] === s.label));
      fullButton.hidden = gridSize > 0 || m.kind !== "image";
      fullButton.setAttribute("aria-pressed", String(zoomed));
      fullButton.textContent = zoomed ? "Fit to view" : "Full size";
    } else {
      strategyChip.hidden = true;
      suggestion.hidden = true;
      reviewInfo.hidden = true;
      for (const b of classButtons) b.classList.remove("alaas-suggested", "alaas-given");
      itemMeta.textContent = "";
      fullButton.hidden = true;
    }

    const p = model.get("progress") || {};
    const { done, labeled } = shownProgress(p, outbox.answersInFlight(model.get("acked") || 0));
    const leftOut = p.left_out ? ` (${p.left_out} left out)` : "";
    roundBar.text.textContent = p.round
      ? `round ${p.round} · ${done} / ${p.round_size || 0}${leftOut}` : "–";
    roundBar.fill.style.width = p.round_size ? `${(100 * done) / p.round_size}%` : "0%";
    roundBar.track.setAttribute("aria-label", p.round ? `Round ${p.round}` : "Round");
    roundBar.track.setAttribute("aria-valuemax", String(p.round_size || 0));
    roundBar.track.setAttribute("aria-valuenow", String(done));
    roundBar.track.setAttribute("aria-valuetext", p.round
      ? `${done} of ${p.round_size || 0} answered in round ${p.round}` : "no round yet");
    budgetBar.text.textContent = p.budget_total
      ? `${labeled} / ${p.budget_total} labels` : `${labeled} labels`;
    budgetBar.fill.style.width = p.budget_total
      ? `${Math.min(100, (100 * labeled) / p.budget_total)}%` : "0%";
    budgetBar.track.setAttribute("aria-valuemax", String(p.budget_total || labeled));
    budgetBar.track.setAttribute("aria-valuenow", String(labeled));
    budgetBar.track.setAttribute("aria-valuetext", p.budget_total
      ? `${labeled} of ${p.budget_total} labels` : `${labeled} labels`);
    if (review) { // the bars count the review instead: suspects done, and what was done
      const rp = reviewProgress(p, outbox.unacked(model.get("acked") || 0)
        .filter((x) => x.item_id !== undefined).length);
      roundBar.text.textContent = `${rp.done} / ${rp.total} reviewed`;
      roundBar.fill.style.width = rp.total ? `${(100 * rp.done) / rp.total}%` : "0%";
      roundBar.track.setAttribute("aria-label", "Review");
      roundBar.track.setAttribute("aria-valuemax", String(rp.total));
      roundBar.track.setAttribute("aria-valuenow", String(rp.done));
      roundBar.track.setAttribute("aria-valuetext", `${rp.done} of ${rp.total} suspects reviewed`);
      budgetBar.text.textContent = rp.text;
      budgetBar.fill.style.width = rp.total ? `${(100 * (p.corrected || 0)) / rp.total}%` : "0%";
      budgetBar.track.setAttribute("aria-label", "Corrected");
      budgetBar.track.setAttribute("aria-valuemax", String(rp.total));
      budgetBar.track.setAttribute("aria-valuenow", String(p.corrected || 0));
      budgetBar.track.setAttribute("aria-valuetext", rp.text);
    } else {
      roundBar.track.setAttribute("aria-label", p.round ? `Round ${p.round}` : "Round");
      budgetBar.track.setAttribute("aria-label", "Budget");
    }

    const labels = { starting: "connecting", labeling: "labeling", waiting: "waiting",
      done: "done", error: "error", stopped: "stopped", disconnected: "disconnected" };
    stateBadge.textContent = labels[viewState] || viewState;
    stateBadge.className = `alaas-badge alaas-badge-${viewState}`;
    labelerName.textContent = model.get("labeler") ? `labeler: ${model.get("labeler")}` : "";

    const history = model.get("history") || [];
    const nHistory = history.length;
    const did = (a) => (a.action === "skip" ? "skipped" : a.action === "leave" ? "left out"
      : `answered ${a.label}`);
    recent.replaceChildren(...history.slice(-4).reverse().map((a) => (review
      ? ((r) => h("span", { class: "alaas-recent-item", title: r.title }, r.head, h("b", {}, r.tail)))(reviewAction(a))
      : a.action === "page"
      ? h("span", { class: "alaas-recent-item", title: `a page of ${(a.items || []).length} items ` +
        `confirmed: ${a.labels} labels (Undo brings the page back)` }, "page", h("b", {}, ` · ${a.labels} labels`))
      : h("span", {
        class: "alaas-recent-item", title: `item ${a.item_id} was ${did(a)}`,
      }, `${a.item_id}`, h("b", {}, a.action === "skip" || a.action === "leave"
        ? ` ${did(a)}` : ` → ${a.label}`)))));
    undoCount.textContent = nHistory ? String(nHistory) : "";
    undoButton.disabled = nHistory === 0 || state === "stopped" || !isAlive;
    undoButton.setAttribute("aria-label", nHistory
      ? `Undo the last action (${nHistory} can be taken back)` : "Undo: nothing to take back");
    const busy = !showing || (gridSize > 0 && edits.saving);
    for (const b of classButtons) b.disabled = busy;
    skipButton.disabled = busy;
    confirmButton.disabled = busy;
    if (gridSize) summarizePage(page, showing);

    const err = isAlive ? model.get("error") : "";
    errorBox.hidden = !err;
    errorText.textContent = err || "";
    if (note && note.until()) note = null;
    let msg = model.get("message") || "";
    if (state === "stopped" || !isAlive) msg = ""; // the stage says it already
    message.textContent = note ? note.text : msg;
    const [hintLine, on] = hintText(state);
    hint.textContent = hintLine;
    hint.classList.toggle("alaas-hint-on", on);

    // focus stays in the widget when the control that had it is disabled or removed
    const active = document.activeElement;
    if (hadFocus && (!root.contains(active) || active.disabled)) root.focus({ preventScroll: true });

    if (!isAlive) announce("Disconnected: the kernel is gone; run %alaas start and %alaas label again.");
    else if (showing && gridSize) {
      announce(`Page ${model.get("page_id")}, item ${cursor + 1} of ${page.length}: ` +
        `${cells[cursor].node.getAttribute("aria-label")}.`);
    } else if (showing && review) {
      announce(`${itemName(cur.meta)}: ${reviewLine(cur.meta.review)}. Enter keeps the label.`);
    } else if (showing) {
      const m = cur.meta;
      announce(`${itemName(m)}${m.strategy ? `, asked by ${m.strategy}` : ""}. ` +
        (p.round ? `Round ${p.round}: ${done} of ${p.round_size || 0} answered.` : ""));
    } else announce(ph);
  }

  // grid mode: what the page holds, and why it cannot be confirmed yet
  function summarizePage(page, showing) {
    const counts = pageCounts(page);
    const missing = counts.missing;
    pageSummary.hidden = !showing;
    pageInfo.textContent = showing ? `page ${model.get("page_id")} · ${page.length} items` : "";
    if (!showing) return;
    const bits = [`${counts.proposed} proposed`, `${counts.chosen} set`];
    if (counts.skipped) bits.push(`${counts.skipped} skipped`);
    pageSummary.replaceChildren(h("span", {}, bits.join(" · ")), missing
      ? h("span", { class: "alaas-page-missing" }, `${missing} item${missing > 1 ? "s need" : " needs"} ` +
        "a class before this page can be confirmed")
      : h("span", { class: "alaas-muted" }, "Enter confirms the page: one label per item"));
    pageSummary.dataset.missing = String(missing);
    confirmButton.setAttribute("aria-label", missing
      ? `Confirm page: ${missing} item${missing > 1 ? "s need" : " needs"} a class first`
      : `Confirm page: save ${page.length - counts.skipped} labels`);
  }

  root.addEventListener("keydown", onKeyDownCapture, true);
  root.addEventListener("keydown", onKeyDown);
  root.addEventListener("focusin", (ev) => {
    // a click in a scrolling box would focus it: the widget takes the focus back
    if (ev.target.matches?.(".alaas-text, .alaas-values, .alaas-zoom")) {
      root.focus({ preventScroll: true });
      return;
    }
    focused = true;
    update();
  });
  root.addEventListener("focusout", (ev) => {
    if (root.contains(ev.relatedTarget)) return;
    focused = false;
    for (const b of classButtons) b.classList.remove("alaas-pressed");
    update();
  });
  root.addEventListener("mousedown", (ev) => {
    if (!ev.target.closest("button")) root.focus({ preventScroll: true });
  });

  const changes = ["slots", "order", "acked", "history", "progress", "state", "message", "mode",
    "error", "labeler", "full", "full_data", "page", "page_id", "page_data",
    ...Array.from({ length: nSlots }, (_, i) => `slot_${i}`)];
  const onChange = () => update();
  const onClasses = () => { buildButtons(); update(); };
  for (const name of changes) model.on(`change:${name}`, onChange);
  for (const name of ["classes", "key_labels", "key_codes", "action_codes"]) {
    model.on(`change:${name}`, onClasses);
  }

  buildButtons();
  update();
  if (model.get("autofocus")) requestAnimationFrame(() => root.focus({ preventScroll: true }));

  return () => {
    kernel.stop();
    for (const name of changes) model.off(`change:${name}`, onChange);
    for (const name of ["classes", "key_labels", "key_codes", "action_codes"]) {
      model.off(`change:${name}`, onClasses);
    }
    for (const view of slotViews) if (view.url) URL.revokeObjectURL(view.url);
    for (const c of cells) if (c.url) URL.revokeObjectURL(c.url);
    if (zoom.url) URL.revokeObjectURL(zoom.url);
  };
}

export default { render };
