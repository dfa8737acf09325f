// alaas_lab pipeline monitor (anywidget ES module): fetch → decode → embed → store.
// Per stage: items done of the push, throughput, busy share and queue depth (the
// backpressure); the cache hit rate; quarantined items with their reasons.
// Traits are listed in alaas_lab/widgets/monitor.py.

import { announcer, h } from "./dom.js";
import { watchKernel } from "./heartbeat.js";
import { fmt, plural } from "./format.js";
import { hitRate, stageRows } from "./stages.js";

function render({ model, el }) {
  const root = h("div", { class: "alaas alaas-monitor", role: "region", "aria-label": "Pipeline monitor" });
  el.append(root);
  const badge = h("span", { class: "alaas-badge" });
  const summary = h("span", { class: "alaas-muted" });
  const header = h("div", { class: "alaas-header" },
    h("span", { class: "alaas-title" }, "Pipeline"), badge, h("span", { class: "alaas-spacer" }),
    summary);
  const errorBox = h("div", { class: "alaas-error", role: "alert", hidden: true });
  const gone = h("div", { class: "alaas-gone", role: "alert", hidden: true });
  const live = h("div", { class: "alaas-sr-only", role: "status", "aria-live": "polite",
    "aria-atomic": "true" });
  const cards = h("div", { class: "alaas-cards" });
  const stages = h("div", { class: "alaas-stages" });
  const qTitle = h("div", { class: "alaas-section-title" });
  const qBody = h("tbody");
  const qTable = h("div", { class: "alaas-scroll" },
    h("table", { class: "alaas-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "item"), h("th", {}, "uri"), h("th", {}, "stage"),
        h("th", {}, "reason"))), qBody));
  const qEmpty = h("div", { class: "alaas-empty" }, "No item quarantined.");
  root.append(header, gone, errorBox, cards, h("div", { class: "alaas-section-title" }, "Stages"),
    stages, qTitle, qTable, qEmpty, live);

  // ---- is the kernel side still there? (see labeler.js) ------------------
  const kernel = watchKernel(model, () => schedule());
  const alive = kernel.alive;

  const announce = announcer(live);

  function card(label, value, sub) {
    return h("div", { class: "alaas-card" }, h("div", { class: "alaas-card-label" }, label),
      h("div", { class: "alaas-card-value" }, value),
      sub ? h("div", { class: "alaas-card-sub" }, sub) : null);
  }

  function update() {
    const isAlive = alive();
    const state = isAlive ? model.get("state") : "disconnected";
    badge.textContent = state;
    badge.className = `alaas-badge alaas-badge-${state === "running" ? "busy" : state}`;
    root.dataset.alive = String(isAlive);
    gone.hidden = isAlive;
    if (!isAlive) {
      gone.replaceChildren(h("b", {}, "Disconnected: "),
        kernel.restarted() ? "the kernel restarted, so this monitor no longer updates. "
          : "no word from the kernel side, so this monitor no longer updates. ",
        "Run ", h("code", {}, "%alaas start …"), " and then ", h("code", {}, "%alaas monitor"),
        " again.");
      announce("Pipeline monitor disconnected from its kernel.");
    }
    const err = isAlive ? model.get("error") : "";
    errorBox.hidden = !err;
    errorBox.textContent = err || "";
    if (err) announce(`Pipeline error: ${err}`);

    const t = model.get("totals") || {};
    const push = model.get("push") || {};
    const pushes = t.pushes || 0;
    const seen = (t.cache_hits || 0) + (t.embedded || 0);
    const rate = hitRate(t);
    const pushSeen = push.seconds !== undefined || push.running;
    const lastReady = (push.cache_hits || 0) + (push.embedded || 0);
    // what each number counts: items in the session (pool, evaluation, quarantined);
    // of them embedded; of the last push, embedded now and taken from the cache
    const parts = [`${fmt(t.n_embedded)} embedded`];
    if (t.n_quarantined) parts.push(`${fmt(t.n_quarantined)} quarantined`);
    if (t.n_eval) parts.push(`${fmt(t.n_eval)} for evaluation`);
    cards.replaceChildren(
      card("Items", fmt(t.n_items), push.running
        ? `${fmt(t.n_embedded)} embedded · pushing ${fmt(push.total)}` : parts.join(" · ")),
      card("Cache hit rate", rate === null ? "–" : `${rate.toFixed(0)}%`,
        seen ? `${fmt(t.cache_hits)} of ${fmt(seen)} in ${plural(pushes, "push", "pushes")}`
          : pushes ? `nothing to embed in ${plural(pushes, "push", "pushes")}`
            : "no push seen yet"),
      card("Last push", push.running ? `${fmt(push.done)} / ${fmt(push.total)}`
        : pushSeen ? plural(lastReady, "item") : "–",
        push.running ? `embedding · ${fmt(push.wall_s, 1)} s`
          : pushSeen ? [`${fmt(push.seconds, 2)} s`, `${fmt(push.embedded)} embedded`,
            `${fmt(push.cache_hits)} from the cache`,
            push.quarantined ? `${fmt(push.quarantined)} quarantined` : ""].filter(Boolean).join(" · ")
            : "no push seen yet"),
      card("Quarantined", fmt(t.n_quarantined), t.n_quarantined ? "see the list below" : "none"));
    summary.textContent = state === "stopped" ? model.get("message") || ""
      : push.running ? `${fmt(push.done)} of ${fmt(push.total)} items` : "";

    const rows = stageRows(model.get("stages") || [], push);
    stages.replaceChildren();
    if (!rows.length) {
      stages.append(h("div", { class: "alaas-empty" }, pushSeen
        ? "The last push computed nothing: its items were embedded already, came from the "
          + "cache, or could not be fetched (see the quarantine below)."
        : "No push seen yet in this kernel."));
    }
    for (const r of rows) {
      const fill = h("div", { class: "alaas-bar-fill" });
      fill.style.width = `${(100 * r.shown).toFixed(1)}%`;
      const qfill = h("div", { class: "alaas-queue-fill" });
      qfill.style.width = r.capacity ? `${(100 * r.depth) / r.capacity}%` : "0%";
      const bad = r.failed ? ` · ${fmt(r.failed)} failed` : "";
      stages.append(h("div", { class: "alaas-stage-row", "data-stage": r.name, "data-done": r.done },
        h("span", { class: "alaas-stage-name" }, r.name),
        h("div", {},
          h("div", { class: "alaas-bar", role: "progressbar", "aria-label": `${r.name}: items done`,
            "aria-valuemin": "0", "aria-valuemax": String(r.total || r.done),
            "aria-valuenow": String(r.done) }, fill),
          h("div", { class: "alaas-queue", role: "meter", "aria-label": `${r.name}: input queue`,
            "aria-valuemin": "0", "aria-valuemax": String(r.capacity),
            "aria-valuenow": String(r.depth), title: `queue ${r.depth} / ${r.capacity}` }, qfill)),
        h("span", { class: "alaas-stage-num" },
          `${fmt(r.done)}${bad} · ${r.rate === null ? "–" : fmt(r.rate, 0)} items/s`),
        h("span", { class: "alaas-stage-num", title: `${r.workers} thread(s)` },
          r.busy === null ? "" : `busy ${r.busy.toFixed(0)}%`)));
    }
    if (pushSeen && !push.running) {
      announce(`Push done: ${plural(lastReady, "item")} ready` +
        (push.quarantined ? `, ${fmt(push.quarantined)} quarantined.` : "."));
    } else if (push.running) announce(`Pushing: ${fmt(push.done)} of ${fmt(push.total)} items.`);

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
    kernel.stop();
    if (frame) cancelAnimationFrame(frame);
  };
}

export default { render };
