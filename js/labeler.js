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
// The kernel side says it is alive by bumping `heartbeat` every `heartbeat_s`
// seconds; a view that hears nothing for a while (or whose comm the widget manager
// marks dead, as on a kernel restart) says it is disconnected and refuses keys.

const SCROLL_KEYS = new Set(["ArrowDown", "ArrowUp", "ArrowLeft", "ArrowRight", "PageDown",
  "PageUp", "Home", "End"]);

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function shortUri(uri) {
  if (!uri) return "";
  if (uri.startsWith("array:")) return `array:${uri.slice(6, 14)}…`;
  return uri.length > 60 ? `…${uri.slice(-58)}` : uri;
}

// what a person (or a screen reader) calls the item: its file name, not its pool id
export function itemName(meta) {
  const uri = meta.uri || "";
  if (uri.startsWith("array:")) return `array item ${uri.slice(6, 14)}`;
  if (uri.startsWith("text:")) return `text item ${uri.slice(5, 13)}`;
  const tail = uri.replace(/[?#].*$/, "").split("/").filter(Boolean).pop();
  if (!tail) return `item ${meta.item_id}`;
  try { return decodeURIComponent(tail); } catch { return tail; }
}

function render({ model, el }) {
  const root = h("div", {
    class: "alaas alaas-labeler",
    tabindex: "0",
    "data-lm-suppress-shortcuts": "true",
    role: "application",
    "aria-roledescription": "labeling widget",
    "aria-label": "Labeling: press a class key to answer",
  });
  el.append(root);

  // ---- layout ---------------------------------------------------------
  const stateBadge = h("span", { class: "alaas-badge" });
  const header = h("div", { class: "alaas-header" },
    h("span", { class: "alaas-title" }, "Label"), stateBadge,
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

  const nSlots = model.get("n_slots") || 6;
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
  stage.append(zoom.node, zoomNote, placeholder);

  const strategyChip = h("span", { class: "alaas-chip" });
  const suggestion = h("span", { class: "alaas-suggestion", hidden: true });
  const itemMeta = h("span", { class: "alaas-muted alaas-item-meta" });
  const fullButton = h("button", { class: "alaas-btn alaas-btn-small", type: "button",
    "aria-pressed": "false", hidden: true }, "Full size");
  const meta = h("div", { class: "alaas-meta" }, strategyChip, suggestion, itemMeta, fullButton);

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
  const actions = h("div", { class: "alaas-actions" }, skipButton, undoButton, recent, hint);

  const message = h("div", { class: "alaas-message" });
  const errorText = h("span", {});
  const retryButton = h("button", { class: "alaas-btn alaas-btn-small", type: "button" }, "Retry");
  const errorBox = h("div", { class: "alaas-error", role: "alert", hidden: true }, errorText,
    retryButton);
  const gone = h("div", { class: "alaas-gone", role: "alert", hidden: true });
  // what a screen reader announces: the new item, the progress, the state
  const live = h("div", { class: "alaas-sr-only", role: "status", "aria-live": "polite",
    "aria-atomic": "true" });

  root.append(header, gone, progress, errorBox, stage, meta, classRow, actions, message, live);

  // ---- local state -----------------------------------------------------
  let nextSeq = (model.get("acked") || 0) + 1;
  let pending = []; // {seq, kind, item_id} sent but not acknowledged
  let classButtons = [];
  let table = new Map();
  // a note of this view's own, with the condition that ends it
  let note = null; // {text, until: () => bool}
  let zoomed = false; // "Full size" pressed for the item shown now
  let zoomItem = null;
  let focused = false;
  let lastAnnounced = "";

  // ---- is the kernel side still there? -----------------------------------
  let lastBeat = performance.now();
  let commDead = false;
  let silent = false;
  const beatTimeout = () => 1000 * Math.max(6, 3 * (model.get("heartbeat_s") || 2) + 1);
  function alive() { return !commDead && !silent; }
  function onBeat() {
    lastBeat = performance.now();
    if (silent || commDead) { silent = false; commDead = false; update(); }
  }
  function onCommLive() {
    // the widget manager flips the model's comm_live when the kernel restarts; the
    // value is not readable here, so the view counts itself cut off until a heartbeat
    // (which only a living kernel side sends) says otherwise
    commDead = true;
    update();
  }
  const watchdog = setInterval(() => {
    const now = performance.now() - lastBeat > beatTimeout();
    if (now !== silent) { silent = now; update(); }
  }, 1000);

  function send(msg) {
    const seq = Math.max(nextSeq, (model.get("acked") || 0) + 1);
    nextSeq = seq + 1;
    model.send({ ...msg, seq });
    return seq;
  }

  function visible() {
    const acked = model.get("acked") || 0;
    pending = pending.filter((p) => p.seq > acked);
    const hidden = new Set(pending.filter((p) => p.item_id !== undefined)
      .map((p) => p.item_id));
    const slots = model.get("slots") || [];
    return (model.get("order") || []).filter((s) => slots[s] && slots[s].item_id !== undefined
      && !hidden.has(slots[s].item_id));
  }

  function current() {
    const order = visible();
    if (!order.length) return null;
    const meta = model.get("slots")[order[0]];
    return { slot: order[0], meta };
  }

  // ---- keyboard: one event.code table ------------------------------------
  function buildTable() {
    table = new Map();
    const codes = model.get("key_codes") || [];
    codes.forEach((code, index) => {
      if (!code) return;
      table.set(code, { kind: "label", index });
      if (code.startsWith("Digit")) table.set(`Numpad${code.slice(5)}`, { kind: "label", index });
    });
    const acts = model.get("action_codes") || {};
    if (acts.skip) table.set(acts.skip, { kind: "skip" });
    if (acts.undo) table.set(acts.undo, { kind: "undo" });
    if (acts.accept) {
      table.set(acts.accept, { kind: "accept" });
      if (acts.accept === "Enter") table.set("NumpadEnter", { kind: "accept" });
    }
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
    const line = 40;
    const page = Math.max(line, target.clientHeight - line);
    const pageX = Math.max(line, target.clientWidth - line);
    const moves = {
      ArrowDown: [0, line], ArrowUp: [0, -line], ArrowRight: [line, 0], ArrowLeft: [-line, 0],
      PageDown: [0, page], PageUp: [0, -page],
      Home: [-target.scrollWidth, -target.scrollHeight], End: [target.scrollWidth, target.scrollHeight],
    };
    const [dx, dy] = moves[ev.key] || [0, 0];
    if (ev.shiftKey && (ev.key === "PageDown" || ev.key === "PageUp")) target.scrollBy(Math.sign(dy) * pageX, 0);
    else target.scrollBy(dx, dy);
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
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return; // chords go on to JupyterLab
    const onButton = ev.target !== root && ev.target.closest("button");
    if (onButton && (ev.key === "Enter" || ev.key === " ")) {
      ev.stopPropagation(); // the focused button's own click; no notebook shortcut
      return;
    }
    const action = table.get(ev.code);
    if (!action) {
      if (ev.key === "Escape") {
        ev.stopPropagation();
        leave();
      } else if (ev.key !== "Tab") {
        ev.stopPropagation(); // no notebook shortcut while labeling
        if (SCROLL_KEYS.has(ev.key) && scrollItem(ev)) ev.preventDefault();
      }
      return;
    }
    ev.preventDefault();
    ev.stopPropagation();
    if (ev.repeat) return; // holding a key must not label a run of items
    perform(action);
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
        note = { text: `Nothing to undo (the last ${model.get("undo_depth") || 10} actions can be taken back).`,
          until: () => (model.get("history") || []).length > 0 };
      } else {
        pending.push({ seq: send({ type: "undo" }), kind: "undo" });
      }
      flash(undoButton);
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
    if (action.kind === "skip") {
      pending.push({ seq: send({ type: "skip", item_id }), kind: "skip", item_id });
      flash(skipButton);
    } else if (action.kind === "accept") {
      const s = cur.meta.suggestion;
      const index = s ? (model.get("classes") || []).indexOf(s.label) : -1;
      if (index < 0) {
        note = { text: "No model suggestion for this item yet: press its class key.",
          until: () => { const c = current(); return !c || c.meta.item_id !== item_id; } };
        update();
        return;
      }
      pending.push({ seq: send({ type: "accept", item_id }), kind: "answer", item_id });
      flash(classButtons[index]);
    } else {
      const label = model.get("classes")[action.index];
      pending.push({ seq: send({ type: "answer", item_id, label }), kind: "answer", item_id });
      flash(classButtons[action.index]);
    }
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
    if (state === "done") return "All done: nothing left to label.";
    if (state === "error") return "Stopped by an error (above): Retry when it is fixed.";
    if (cur) return "Loading the item…";
    if (state === "starting") return "Connecting to the worker…";
    return "Waiting for the next items (the worker is training and selecting)…";
  }

  function hintText(state) {
    const why = inactiveReason();
    if (why === "gone") return ["Keys do nothing: the kernel is gone", false];
    if (why === "stopped") return ["Stopped: keys do nothing", false];
    if (why === "done") return ["Nothing left to label", false];
    if (why === "error") return ["Keys wait for Retry", false];
    if (!focused) return ["Click here to label with the keyboard", false];
    return [state === "labeling" ? "Keys active: press a class key" : "Keys active", true];
  }

  function announce(text) {
    if (text && text !== lastAnnounced) {
      lastAnnounced = text;
      live.textContent = text;
    }
  }

  // ---- render ----------------------------------------------------------
  function update() {
    const hadFocus = root.contains(document.activeElement);
    syncSlots();
    const cur = current();
    const state = model.get("state");
    const isAlive = alive();
    const viewState = isAlive ? state : "disconnected";
    const showing = Boolean(cur && cur.meta.loaded && state !== "stopped" && isAlive);
    if (!cur || cur.meta.item_id !== zoomItem) { zoomed = false; zoomItem = cur ? cur.meta.item_id : null; }
    if (zoomed && (!showing || cur.meta.kind !== "image")) zoomed = false;
    const zooming = syncZoom(showing ? cur : null);
    for (const [i, view] of slotViews.entries()) {
      view.node.hidden = !showing || cur.slot !== i || zooming;
    }
    zoom.node.hidden = !zooming;
    const ph = placeholderText(state, cur);
    placeholder.hidden = showing;
    placeholder.textContent = showing ? "" : ph;
    if (showing && cur.meta.kind === "image") {
      const img = slotViews[cur.slot].img;
      if (img && img.complete) fitImage(img);
    }
    root.dataset.itemId = showing ? String(cur.meta.item_id) : "";
    root.dataset.state = viewState;
    root.dataset.alive = String(isAlive);
    root.dataset.queued = String(visible().length);

    gone.hidden = isAlive;
    const goneKind = isAlive ? "" : commDead ? "restart" : "silent";
    if (goneKind && gone.dataset.kind !== goneKind) { // an alert is announced when it changes
      gone.dataset.kind = goneKind;
      gone.replaceChildren(h("b", {}, "Disconnected: "),
        commDead ? "the kernel restarted, so this view's answers cannot be saved. "
          : "no word from the kernel side, so answers here would not be saved. ",
        "Run ", h("code", {}, "%alaas start …"), " and then ", h("code", {}, "%alaas label"),
        " again to go on where the session is.");
    }

    if (showing) {
      const m = cur.meta;
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
        const key = (model.get("action_codes") || {}).accept;
        suggestion.replaceChildren(`model says ${s.label}${conf}`,
          key ? h("kbd", { "aria-hidden": "true" }, key) : "");
        suggestion.title = mm.round ? `the head of round ${mm.round} (${mm.n_labeled} labels` +
          `${typeof mm.top1 === "number" ? `, ${(100 * mm.top1).toFixed(1)}% top-1` : ""}); ` +
          "Enter takes its answer" : "Enter takes the model's answer";
      }
      classButtons.forEach((b, i) => b.classList.toggle("alaas-suggested",
        Boolean(s) && (model.get("classes") || [])[i] === s.label));
      fullButton.hidden = m.kind !== "image";
      fullButton.setAttribute("aria-pressed", String(zoomed));
      fullButton.textContent = zoomed ? "Fit to view" : "Full size";
    } else {
      strategyChip.hidden = true;
      suggestion.hidden = true;
      for (const b of classButtons) b.classList.remove("alaas-suggested");
      itemMeta.textContent = "";
      fullButton.hidden = true;
    }

    const p = model.get("progress") || {};
    const inRound = pending.filter((x) => x.kind === "answer").length;
    const done = Math.min((p.round_done || 0) + inRound, p.round_size || 0);
    const leftOut = p.left_out ? ` (${p.left_out} left out)` : "";
    roundBar.text.textContent = p.round
      ? `round ${p.round} · ${done} / ${p.round_size || 0}${leftOut}` : "–";
    roundBar.fill.style.width = p.round_size ? `${(100 * done) / p.round_size}%` : "0%";
    roundBar.track.setAttribute("aria-label", p.round ? `Round ${p.round}` : "Round");
    roundBar.track.setAttribute("aria-valuemax", String(p.round_size || 0));
    roundBar.track.setAttribute("aria-valuenow", String(done));
    roundBar.track.setAttribute("aria-valuetext", p.round
      ? `${done} of ${p.round_size || 0} answered in round ${p.round}` : "no round yet");
    const labeled = (p.labeled || 0) + inRound;
    budgetBar.text.textContent = p.budget_total
      ? `${labeled} / ${p.budget_total} labels` : `${labeled} labels`;
    budgetBar.fill.style.width = p.budget_total
      ? `${Math.min(100, (100 * labeled) / p.budget_total)}%` : "0%";
    budgetBar.track.setAttribute("aria-valuemax", String(p.budget_total || labeled));
    budgetBar.track.setAttribute("aria-valuenow", String(labeled));
    budgetBar.track.setAttribute("aria-valuetext", p.budget_total
      ? `${labeled} of ${p.budget_total} labels` : `${labeled} labels`);

    const labels = { starting: "connecting", labeling: "labeling", waiting: "waiting",
      done: "done", error: "error", stopped: "stopped", disconnected: "disconnected" };
    stateBadge.textContent = labels[viewState] || viewState;
    stateBadge.className = `alaas-badge alaas-badge-${viewState}`;
    labelerName.textContent = model.get("labeler") ? `labeler: ${model.get("labeler")}` : "";

    const history = model.get("history") || [];
    const nHistory = history.length;
    const did = (a) => (a.action === "skip" ? "skipped" : a.action === "leave" ? "left out"
      : `answered ${a.label}`);
    recent.replaceChildren(...history.slice(-4).reverse().map((a) => h("span", {
      class: "alaas-recent-item", title: `item ${a.item_id} was ${did(a)}`,
    }, `${a.item_id}`, h("b", {}, a.action === "skip" || a.action === "leave"
      ? ` ${did(a)}` : ` → ${a.label}`))));
    undoCount.textContent = nHistory ? String(nHistory) : "";
    undoButton.disabled = nHistory === 0 || state === "stopped" || !isAlive;
    undoButton.setAttribute("aria-label", nHistory
      ? `Undo the last action (${nHistory} can be taken back)` : "Undo: nothing to take back");
    const busy = !showing;
    for (const b of classButtons) b.disabled = busy;
    skipButton.disabled = busy;

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
    else if (showing) {
      const m = cur.meta;
      announce(`${itemName(m)}${m.strategy ? `, asked by ${m.strategy}` : ""}. ` +
        (p.round ? `Round ${p.round}: ${done} of ${p.round_size || 0} answered.` : ""));
    } else announce(ph);
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

  const changes = ["slots", "order", "acked", "history", "progress", "state", "message",
    "error", "labeler", "full", "full_data", ...Array.from({ length: nSlots }, (_, i) => `slot_${i}`)];
  const onChange = () => update();
  const onClasses = () => { buildButtons(); update(); };
  for (const name of changes) model.on(`change:${name}`, onChange);
  for (const name of ["classes", "key_labels", "key_codes", "action_codes"]) {
    model.on(`change:${name}`, onClasses);
  }
  model.on("change:heartbeat", onBeat);
  model.on("comm_live_update", onCommLive);

  buildButtons();
  update();
  if (model.get("autofocus")) requestAnimationFrame(() => root.focus({ preventScroll: true }));

  return () => {
    clearInterval(watchdog);
    for (const name of changes) model.off(`change:${name}`, onChange);
    for (const name of ["classes", "key_labels", "key_codes", "action_codes"]) {
      model.off(`change:${name}`, onClasses);
    }
    model.off("change:heartbeat", onBeat);
    model.off("comm_live_update", onCommLive);
    for (const view of slotViews) if (view.url) URL.revokeObjectURL(view.url);
    if (zoom.url) URL.revokeObjectURL(zoom.url);
  };
}

export default { render };
