// alaas_lab pipeline monitor (anywidget ES module): fetch → decode → embed → store.
// Per stage: items done of the push, throughput, busy share and queue depth (the
// backpressure); the cache hit rate; quarantined items with their reasons.
// Traits are listed in alaas_lab/widgets/monitor.py.

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

const fmt = (v, digits = 0) => (typeof v === "number" && Number.isFinite(v)
  ? v.toLocaleString(undefined, { maximumFractionDigits: digits }) : "–");

function render({ model, el }) {
  const root = h("div", { class: "alaas alaas-monitor" });
  el.append(root);
  const badge = h("span", { class: "alaas-badge" });
  const summary = h("span", { class: "alaas-muted" });
  const header = h("div", { class: "alaas-header" },
    h("span", { class: "alaas-title" }, "Pipeline"), badge, h("span", { class: "alaas-spacer" }),
    summary);
  const errorBox = h("div", { class: "alaas-error", hidden: true });
  const cards = h("div", { class: "alaas-cards" });
  const stages = h("div", { class: "alaas-stages" });
  const qTitle = h("div", { class: "alaas-section-title" });
  const qBody = h("tbody");
  const qTable = h("div", { class: "alaas-scroll" },
    h("table", { class: "alaas-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "item"), h("th", {}, "uri"), h("th", {}, "stage"),
        h("th", {}, "reason"))), qBody));
  const qEmpty = h("div", { class: "alaas-empty" }, "No item quarantined.");
  root.append(header, errorBox, cards, h("div", { class: "alaas-section-title" }, "Stages"),
    stages, qTitle, qTable, qEmpty);

  function card(label, value, sub) {
    return h("div", { class: "alaas-card" }, h("div", { class: "alaas-card-label" }, label),
      h("div", { class: "alaas-card-value" }, value),
      sub ? h("div", { class: "alaas-card-sub" }, sub) : null);
  }

  function update() {
    const state = model.get("state");
    badge.textContent = state;
    badge.className = `alaas-badge alaas-badge-${state === "running" ? "busy" : state === "idle" ? "live" : state}`;
    const err = model.get("error");
    errorBox.hidden = !err;
    errorBox.textContent = err || "";

    const t = model.get("totals") || {};
    const push = model.get("push") || {};
    const seen = (t.cache_hits || 0) + (t.embedded || 0);
    const rate = seen ? (100 * (t.cache_hits || 0)) / seen : null;
    const lastSeen = (push.cache_hits || 0) + (push.embedded || 0) + (push.quarantined || 0);
    cards.replaceChildren(
      card("Items", fmt(t.n_items), `${fmt(t.n_embedded)} embedded`),
      card("Cache hit rate", rate === null ? "–" : `${rate.toFixed(0)}%`,
        seen ? `${fmt(t.cache_hits)} of ${fmt(seen)} in ${t.pushes} push${t.pushes === 1 ? "" : "es"}`
          : "no push seen yet"),
      card("Last push", push.running ? `${fmt(push.done)} / ${fmt(push.total)}`
        : lastSeen ? `${fmt(lastSeen)} item${lastSeen === 1 ? "" : "s"}` : "–",
        push.running ? `running · ${fmt(push.wall_s, 1)} s`
          : push.seconds !== undefined ? `${fmt(push.seconds, 2)} s · ${fmt(push.cache_hits)} cached`
            + (push.quarantined ? ` · ${push.quarantined} quarantined` : "") : ""),
      card("Quarantined", fmt(t.n_quarantined), t.n_quarantined ? "see the list below" : "none"));
    summary.textContent = state === "stopped" ? model.get("message") || ""
      : push.running ? `${fmt(push.done)} of ${fmt(push.total)} items` : "";

    const rows = model.get("stages") || [];
    // embed emits one output per batch and store takes batches: max(in, out) counts items
    const itemsDone = (r) => Math.max(r.items_in || 0, r.items_out || 0);
    const total = push.total || Math.max(0, ...rows.map(itemsDone));
    const wall = push.wall_s || push.seconds || 0;
    stages.replaceChildren();
    if (!rows.length) stages.append(h("div", { class: "alaas-empty" }, "No push seen yet in this kernel."));
    for (const r of rows) {
      const done = itemsDone(r);
      const frac = total ? Math.min(1, done / total) : 0;
      const fill = h("div", { class: "alaas-bar-fill" });
      fill.style.width = `${(100 * (push.running ? frac : total ? frac : 1)).toFixed(1)}%`;
      const qfill = h("div", { class: "alaas-queue-fill" });
      qfill.style.width = r.queue_capacity ? `${(100 * (r.queue_depth || 0)) / r.queue_capacity}%` : "0%";
      const busy = wall && r.workers ? Math.min(100, (100 * (r.busy_s || 0)) / (wall * r.workers)) : null;
      stages.append(h("div", { class: "alaas-stage-row", "data-stage": r.name },
        h("span", { class: "alaas-stage-name" }, r.name),
        h("div", {}, h("div", { class: "alaas-bar" }, fill),
          h("div", { class: "alaas-queue", title: `queue ${r.queue_depth || 0} / ${r.queue_capacity || 0}` }, qfill)),
        h("span", { class: "alaas-stage-num" },
          `${fmt(done)} · ${wall ? fmt(done / wall, 0) : "–"} items/s`),
        h("span", { class: "alaas-stage-num", title: `${r.workers} thread(s)` },
          busy === null ? "" : `busy ${busy.toFixed(0)}%`)));
    }

    const q = model.get("quarantined") || [];
    qTitle.textContent = `Quarantined items (${q.length})`;
    qEmpty.hidden = q.length > 0;
    qTable.hidden = q.length === 0;
    qBody.replaceChildren(...q.slice().reverse().map((r) => h("tr", { "data-item-id": r.item_id },
      h("td", {}, String(r.item_id)), h("td", { class: "alaas-uri", title: r.uri }, r.uri || "–"),
      h("td", {}, r.stage || "–"), h("td", { class: "alaas-reason" }, r.reason))));
    root.dataset.state = state;
    root.dataset.quarantined = String(q.length);
  }

  const names = ["stages", "push", "totals", "quarantined", "state", "error", "message"];
  let frame = 0;
  const schedule = () => { if (!frame) frame = requestAnimationFrame(() => { frame = 0; update(); }); };
  for (const n of names) model.on(`change:${n}`, schedule);
  update();
  return () => {
    for (const n of names) model.off(`change:${n}`, schedule);
    if (frame) cancelAnimationFrame(frame);
  };
}

export default { render };
