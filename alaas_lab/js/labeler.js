// alaas_lab labeling widget (anywidget ES module).
// The contract is the traits listed in alaas_lab/widgets/labeler.py; nothing here
// loads anything from the network.
//
// A key press shows the next queued item at once (its image is already decoded in
// a hidden <img>), then tells the kernel: {type: "answer" | "skip" | "undo", seq, ...}.
// Until the kernel acknowledges a message (trait `acked` >= seq) the items it
// answered stay hidden here, so the view never waits on the kernel.

const N_SLOTS = 6;
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

function render({ model, el }) {
  const root = h("div", {
    class: "alaas alaas-labeler",
    tabindex: "0",
    "data-lm-suppress-shortcuts": "true",
    role: "application",
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

  const roundText = h("span", { class: "alaas-bar-text" });
  const roundFill = h("div", { class: "alaas-bar-fill" });
  const budgetText = h("span", { class: "alaas-bar-text" });
  const budgetFill = h("div", { class: "alaas-bar-fill alaas-bar-fill-2" });
  const progress = h("div", { class: "alaas-progress" },
    h("div", { class: "alaas-bar-row" }, h("span", { class: "alaas-bar-label" }, "Round"),
      h("div", { class: "alaas-bar" }, roundFill), roundText),
    h("div", { class: "alaas-bar-row" }, h("span", { class: "alaas-bar-label" }, "Budget"),
      h("div", { class: "alaas-bar" }, budgetFill), budgetText));

  const stage = h("div", { class: "alaas-stage" });
  const slotViews = [];
  for (let i = 0; i < N_SLOTS; i++) {
    const view = { node: h("div", { class: "alaas-slot", hidden: true }), seq: null, data: null,
      url: null };
    slotViews.push(view);
    stage.append(view.node);
  }
  const placeholder = h("div", { class: "alaas-placeholder" });
  stage.append(placeholder);

  const strategyChip = h("span", { class: "alaas-chip" });
  const itemMeta = h("span", { class: "alaas-muted alaas-item-meta" });
  const meta = h("div", { class: "alaas-meta" }, strategyChip, itemMeta);

  const classRow = h("div", { class: "alaas-classes" });
  const skipButton = h("button", { class: "alaas-btn alaas-btn-secondary", tabindex: "-1",
    type: "button", onclick: () => perform({ kind: "skip" }) },
    "Skip", h("kbd", {}, "Space"));
  const undoCount = h("span", { class: "alaas-count" });
  const undoButton = h("button", { class: "alaas-btn alaas-btn-secondary", tabindex: "-1",
    type: "button", onclick: () => perform({ kind: "undo" }) },
    "Undo", h("kbd", {}, "⌫"), undoCount);
  const hint = h("span", { class: "alaas-hint" });
  const recent = h("span", { class: "alaas-recent" });
  const actions = h("div", { class: "alaas-actions" }, skipButton, undoButton, recent, hint);

  const message = h("div", { class: "alaas-message" });
  const errorText = h("span", {});
  const errorBox = h("div", { class: "alaas-error", hidden: true }, errorText,
    h("button", { class: "alaas-btn alaas-btn-small", type: "button", tabindex: "-1",
      onclick: () => send({ type: "retry" }) }, "Retry"));

  root.append(header, progress, errorBox, stage, meta, classRow, actions, message);

  // ---- local state -----------------------------------------------------
  let nextSeq = (model.get("acked") || 0) + 1;
  let pending = []; // {seq, kind, item_id} sent but not acknowledged
  let classButtons = [];
  let table = new Map();
  let localNote = "";

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
  }

  function onKeyDown(ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return; // chords stay the browser's
    const action = table.get(ev.code);
    if (!action) {
      if (ev.key === "Escape") root.blur();
      else if (ev.key !== "Tab") ev.stopPropagation(); // no notebook shortcut while labeling
      return;
    }
    ev.preventDefault();
    ev.stopPropagation();
    if (ev.repeat) return; // holding a key must not label a run of items
    perform(action);
  }

  function flash(button) {
    if (!button) return;
    button.classList.add("alaas-pressed");
    setTimeout(() => button.classList.remove("alaas-pressed"), 120);
  }

  function perform(action) {
    localNote = "";
    if (action.kind === "undo") {
      if (!(model.get("history") || []).length) {
        localNote = "Nothing to undo (the last 10 answers can be changed).";
      } else {
        pending.push({ seq: send({ type: "undo" }), kind: "undo" });
      }
      flash(undoButton);
      update();
      return;
    }
    const cur = current();
    if (!cur || !cur.meta.loaded) {
      localNote = "The next item is still loading.";
      update();
      return;
    }
    const item_id = cur.meta.item_id;
    if (action.kind === "skip") {
      pending.push({ seq: send({ type: "skip", item_id }), kind: "skip", item_id });
      flash(skipButton);
    } else {
      const label = model.get("classes")[action.index];
      pending.push({ seq: send({ type: "answer", item_id, label }), kind: "answer", item_id });
      flash(classButtons[action.index]);
    }
    update();
    root.focus({ preventScroll: true });
  }

  // ---- slots: object URLs made once per item, images decoded ahead --------
  function syncSlots() {
    const slots = model.get("slots") || [];
    for (let i = 0; i < N_SLOTS; i++) {
      const meta = slots[i] || {};
      const data = model.get(`slot_${i}`);
      const view = slotViews[i];
      const key = `${meta.seq}:${meta.loaded}`;
      if (view.seq === key && view.data === data) continue;
      view.seq = key;
      view.data = data;
      if (view.url) URL.revokeObjectURL(view.url);
      view.url = null;
      view.node.replaceChildren();
      view.node.dataset.itemId = meta.item_id ?? "";
      if (!meta.loaded) continue;
      if (meta.kind === "image" && data && data.byteLength) {
        view.url = URL.createObjectURL(new Blob([data], { type: meta.mime || "image/png" }));
        const img = h("img", { class: "alaas-image", alt: `item ${meta.item_id}`,
          draggable: "false" });
        img.src = view.url;
        img.decode?.().catch(() => {});
        view.node.append(img);
      } else if (meta.kind === "text") {
        view.node.append(h("div", { class: "alaas-text" }, meta.text || ""));
      } else if (meta.kind === "array") {
        view.node.append(h("pre", { class: "alaas-values" },
          (meta.values || []).map((v) => v.toFixed(3)).join("  ")));
      } else {
        view.node.append(h("div", { class: "alaas-item-error" },
          "This item could not be shown: ", meta.text || "unknown error",
          h("br"), "Press Space to skip it."));
      }
    }
  }

  function buildButtons() {
    const classes = model.get("classes") || [];
    const keys = model.get("key_labels") || [];
    classButtons = classes.map((name, index) => h("button", {
      class: "alaas-btn alaas-class", type: "button", tabindex: "-1",
      "data-class": name, title: keys[index] ? `${name} (key ${keys[index]})` : name,
      onclick: () => perform({ kind: "label", index }),
    }, keys[index] ? h("kbd", {}, keys[index]) : null, h("span", {}, name)));
    classRow.replaceChildren(...classButtons);
    buildTable();
  }

  // ---- render ----------------------------------------------------------
  function update() {
    syncSlots();
    const cur = current();
    const state = model.get("state");
    for (const [i, view] of slotViews.entries()) {
      view.node.hidden = !cur || cur.slot !== i || state === "stopped";
    }
    const showing = cur && cur.meta.loaded && state !== "stopped";
    placeholder.hidden = Boolean(showing);
    if (!showing) {
      placeholder.textContent = state === "stopped" ? `Stopped: ${model.get("message") || "closed"}.`
        : state === "done" ? "All done: nothing left to label."
        : state === "error" ? "Stopped: see the error above."
          : cur ? "Loading the item…" : state === "starting" ? "Connecting to the worker…"
            : "Waiting for the next items (the worker is training and selecting)…";
    }
    root.dataset.itemId = showing ? String(cur.meta.item_id) : "";
    root.dataset.state = state;
    root.dataset.queued = String(visible().length);

    if (showing) {
      const m = cur.meta;
      strategyChip.hidden = !m.strategy;
      strategyChip.textContent = m.strategy ? `asked by ${m.strategy}` : "";
      const bits = [`item ${m.item_id}`];
      if (m.round) bits.push(`round ${m.round}`);
      if (m.relabel) bits.push("answer again");
      if (m.skips) bits.push("skipped before");
      bits.push(shortUri(m.uri));
      itemMeta.textContent = bits.join(" · ");
      itemMeta.title = m.uri || "";
    } else {
      strategyChip.hidden = true;
      itemMeta.textContent = "";
    }

    const p = model.get("progress") || {};
    const inRound = pending.filter((x) => x.kind === "answer").length;
    const done = Math.min((p.round_done || 0) + inRound, p.round_size || 0);
    roundText.textContent = p.round ? `round ${p.round} · ${done} / ${p.round_size || 0}` : "–";
    roundFill.style.width = p.round_size ? `${(100 * done) / p.round_size}%` : "0%";
    const labeled = (p.labeled || 0) + inRound;
    budgetText.textContent = p.budget_total
      ? `${labeled} / ${p.budget_total} labels` : `${labeled} labels`;
    budgetFill.style.width = p.budget_total
      ? `${Math.min(100, (100 * labeled) / p.budget_total)}%` : "0%";

    const labels = { starting: "connecting", labeling: "labeling", waiting: "waiting",
      done: "done", error: "error", stopped: "stopped" };
    stateBadge.textContent = labels[state] || state;
    stateBadge.className = `alaas-badge alaas-badge-${state}`;
    labelerName.textContent = model.get("labeler") ? `labeler: ${model.get("labeler")}` : "";

    const history = model.get("history") || [];
    const nHistory = history.length;
    recent.replaceChildren(...history.slice(-4).reverse().map((a) => h("span", {
      class: "alaas-recent-item", title: `item ${a.item_id} was answered ${a.label}`,
    }, `${a.item_id}`, h("b", {}, ` → ${a.label}`))));
    undoCount.textContent = nHistory ? String(nHistory) : "";
    undoButton.disabled = nHistory === 0 || state === "stopped";
    const busy = !showing;
    for (const b of classButtons) b.disabled = busy;
    skipButton.disabled = busy;

    const err = model.get("error");
    errorBox.hidden = !err;
    errorText.textContent = err || "";
    message.textContent = localNote || model.get("message") || "";
  }

  function onFocus() { hint.textContent = "Keys active: press a class key"; }
  function onBlur() {
    hint.textContent = "Click here to label with the keyboard";
    for (const b of classButtons) b.classList.remove("alaas-pressed");
  }

  root.addEventListener("keydown", onKeyDown);
  root.addEventListener("focusin", onFocus);
  root.addEventListener("focusout", (ev) => { if (!root.contains(ev.relatedTarget)) onBlur(); });
  root.addEventListener("mousedown", (ev) => {
    if (ev.target === root || !ev.target.closest("button")) root.focus({ preventScroll: true });
  });

  const changes = ["slots", "order", "acked", "history", "progress", "state", "message",
    "error", "labeler", ...Array.from({ length: N_SLOTS }, (_, i) => `slot_${i}`)];
  const onChange = () => update();
  const onClasses = () => { buildButtons(); update(); };
  for (const name of changes) model.on(`change:${name}`, onChange);
  for (const name of ["classes", "key_labels", "key_codes", "action_codes"]) {
    model.on(`change:${name}`, onClasses);
  }

  buildButtons();
  onBlur();
  update();
  if (model.get("autofocus")) requestAnimationFrame(() => root.focus({ preventScroll: true }));

  return () => {
    for (const name of changes) model.off(`change:${name}`, onChange);
    for (const name of ["classes", "key_labels", "key_codes", "action_codes"]) {
      model.off(`change:${name}`, onClasses);
    }
    for (const view of slotViews) if (view.url) URL.revokeObjectURL(view.url);
  };
}

export default { render };
