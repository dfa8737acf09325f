// alaas_lab PSHEA dashboard (anywidget ES module): the paper's Fig. 5a, live.
// Solid lines: measured top-1 accuracy per strategy and round. Dashed: the
// forecaster's predictions. ×: where PSHEA eliminated a strategy. Traits are
// listed in alaas_lab/widgets/dashboard.py; the SVG is drawn here, no network.

import { announcer, h, s } from "./dom.js";
import { watchKernel } from "./heartbeat.js";
import { num, pct } from "./format.js";
import { suspectCard } from "./review.js";
import {
  accuracyRange, accuracyTicks, chartSize, linePath, MARGIN as M, roundRange, roundTicks, scales,
  strategyColors,
} from "./chart.js";

// strategy colours: CSS variables --alaas-series-0 … 7 (alaas.css, from JupyterLab's --jp-*)
const N_SERIES = 8;
const SEED_COLOR = "var(--alaas-seed)";

function render({ model, el }) {
  const root = h("div", { class: "alaas alaas-dashboard", role: "region",
    "aria-label": "Active learning dashboard" });
  el.append(root);
  const badge = h("span", { class: "alaas-badge" });
  const subtitle = h("span", { class: "alaas-muted" });
  const header = h("div", { class: "alaas-header" },
    h("span", { class: "alaas-title" }, "Active learning: accuracy per strategy"), badge,
    h("span", { class: "alaas-spacer" }), subtitle);
  const cards = h("div", { class: "alaas-cards" });
  const errorBox = h("div", { class: "alaas-error", role: "alert", hidden: true });
  const gone = h("div", { class: "alaas-gone", role: "alert", hidden: true });
  const banner = h("div", { class: "alaas-banner", hidden: true });
  const chart = h("div", { class: "alaas-chart" });
  const legend = h("div", { class: "alaas-legend" });
  const timelineTitle = h("div", { class: "alaas-section-title" }, "Strategies");
  const timeline = h("div", { class: "alaas-timeline" });
  const live = h("div", { class: "alaas-sr-only", role: "status", "aria-live": "polite",
    "aria-atomic": "true" });
  root.append(header, gone, errorBox, cards, banner, chart, timelineTitle, timeline, live);

  // ---- is the kernel side still there? (see labeler.js) ------------------
  const kernel = watchKernel(model, () => updateHeader());
  const alive = kernel.alive;

  const announce = announcer(live);

  // the chart is drawn at the width it has, so its text stays 11 px at any width
  let width = 0;
  const resize = new ResizeObserver(() => {
    const w = Math.round(chart.clientWidth);
    if (w && Math.abs(w - width) > 1) { width = w; schedule(); }
  });
  resize.observe(chart);

  function colorOf() {
    const colors = strategyColors(model.get("strategies") || [], N_SERIES);
    return (name) => colors.get(name) || SEED_COLOR;
  }

  // The worker's seed round (random picks before any model exists) is not a racing
  // strategy: the kernel names it in `seed`, apart from `strategies`. It is drawn
  // grey, and every strategy's line starts from it, as in the paper's Fig. 5a.
  function seedNames() {
    const seed = model.get("seed");
    return new Set(seed ? [seed] : []);
  }

  // what the chart, legend and timeline draw: the seed first, then the strategies
  function drawnNames() {
    const seed = model.get("seed");
    const names = model.get("strategies") || [];
    return seed ? [seed, ...names] : names;
  }

  // long names (least_confidence) may break after an underscore, not mid-word
  const breakable = (text) => String(text).split("_")
    .flatMap((part, i) => (i ? [h("wbr"), `_${part}`] : [part]));

  function card(label, value, sub, fill) {
    const node = h("div", { class: "alaas-card" },
      h("div", { class: "alaas-card-label" }, label),
      h("div", { class: "alaas-card-value", title: value }, breakable(value)));
    if (fill !== undefined) {
      const share = Math.max(0, Math.min(1, fill));
      const bar = h("div", { class: "alaas-bar", role: "progressbar", "aria-label": label,
        "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(Math.round(100 * share)),
        "aria-valuetext": value }, h("div", { class: "alaas-bar-fill alaas-bar-fill-2" }));
      bar.firstChild.style.width = `${100 * share}%`;
      bar.style.marginTop = "6px";
      node.append(bar);
    }
    if (sub) node.append(h("div", { class: "alaas-card-sub" }, sub));
    return node;
  }

  function racing(strategies, active, eliminations, seeds) {
    const candidates = strategies.filter((n) => !seeds.has(n));
    const o = model.get("outcome") || {};
    if (candidates.length > 1 || eliminations.length) {
      const spent = num(o.labels_unique) ? ` · labels ${o.labels_unique} unique / ${o.labels_sum} summed` : "";
      return card("Strategies", `${active.length} of ${candidates.length}`,
        (o.stopped ? "stopped" : eliminations.length ? `racing · ${eliminations.length} eliminated`
          : "racing") + spent);
    }
    const seed = [...seeds][0];
    return card("Strategy", candidates[0] || "–", seed ? `after a ${seed} seed round` : "");
  }

  function drawCards(results, eliminations) {
    const budget = model.get("budget") || {};
    const strategies = model.get("strategies") || [];
    const active = model.get("active") || [];
    const best = results.filter((r) => num(r.top1)).sort((a, b) => b.top1 - a.top1)[0];
    const target = model.get("target");
    cards.replaceChildren(
      card("Round", String(model.get("round") || 0),
        results.length ? `${results.length} result${results.length > 1 ? "s" : ""} recorded`
          : "no round finished yet"),
      card("Labels", budget.total ? `${budget.labeled || 0} / ${budget.total}`
        : String(budget.labeled || 0),
        budget.left !== null && budget.left !== undefined ? `${budget.left} left in the budget` : "",
        budget.total ? (budget.labeled || 0) / budget.total : undefined),
      card("Best top-1", best ? pct(best.top1) : "–",
        best ? `${best.strategy}, round ${best.round}${num(target) ? ` · target ${pct(target)}` : ""}`
          : num(target) ? `target ${pct(target)}` : ""),
      racing(strategies, active, eliminations, seedNames()),
      suspects());
  }

  // suspect labels: found (open), confirmed and corrected by a review
  function suspects() {
    const s = model.get("suspects") || {};
    const { value, sub } = suspectCard(s);
    const node = card("Suspect labels", value ?? "–", sub);
    node.dataset.suspects = "";
    node.dataset.open = String(s.open ?? "");
    node.dataset.confirmed = String(s.confirmed ?? "");
    node.dataset.corrected = String(s.corrected ?? "");
    return node;
  }

  function drawChart(results, forecasts, eliminations) {
    const color = colorOf();
    const strategies = drawnNames();
    const target = model.get("target");
    chart.replaceChildren();
    if (!results.length && !forecasts.length) {
      chart.append(h("div", { class: "alaas-empty" },
        "No round finished yet: the curves appear when the first round is labeled."));
      return;
    }
    const { W, H } = chartSize(width || chart.clientWidth || 800);
    const [r0, r1] = roundRange([...results, ...forecasts, ...eliminations].map((r) => r.round)
      .filter(num));
    const values = [...results.map((r) => r.top1), ...forecasts.map((f) => f.predicted)]
      .filter(num);
    if (num(target)) values.push(target);
    const [lo, hi] = accuracyRange(values);
    const { x, y } = scales({ r0, r1, lo, hi, W, H });

    const best = results.filter((r) => num(r.top1)).sort((a, b) => b.top1 - a.top1)[0];
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img",
      "aria-label": `Top-1 accuracy per round for ${strategies.join(", ")}: actual and forecast` +
        (best ? `; best ${pct(best.top1)} by ${best.strategy} in round ${best.round}` : "") });
    for (const v of accuracyTicks(lo, hi)) {
      svg.append(s("line", { class: "alaas-grid", x1: M.l, x2: W - M.r, y1: y(v), y2: y(v) }),
        s("text", { x: M.l - 8, y: y(v) + 4, "text-anchor": "end" }, `${Math.round(v * 100)}%`));
    }
    for (const r of roundTicks(r0, r1, W - M.l - M.r)) {
      svg.append(s("line", { class: "alaas-axis", x1: x(r), x2: x(r), y1: H - M.b, y2: H - M.b + 4 }),
        s("text", { x: x(r), y: H - M.b + 17, "text-anchor": "middle" }, r));
    }
    svg.append(s("line", { class: "alaas-axis", x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b }),
      s("text", { x: (M.l + W - M.r) / 2, y: H - 4, "text-anchor": "middle" }, "round"),
      s("text", { x: 12, y: (M.t + H - M.b) / 2, "text-anchor": "middle",
        transform: `rotate(-90 12 ${(M.t + H - M.b) / 2})` }, "top-1 accuracy"));
    if (num(target)) {
      svg.append(s("line", { class: "alaas-target", x1: M.l, x2: W - M.r, y1: y(target), y2: y(target) }),
        s("text", { x: W - M.r - 4, y: y(target) - 5, "text-anchor": "end" }, `target ${pct(target)}`));
    }
    const path = (pts) => linePath(pts, x, y);
    const seeds = seedNames();
    const seedPoints = results.filter((r) => seeds.has(r.strategy) && num(r.top1))
      .sort((a, b) => a.round - b.round);
    for (const name of strategies) {
      const c = seeds.has(name) ? SEED_COLOR : color(name);
      const actual = results.filter((r) => r.strategy === name && num(r.top1))
        .sort((a, b) => a.round - b.round);
      const line = actual.length && !seeds.has(name)
        ? [...seedPoints.filter((r) => r.round < actual[0].round).slice(-1), ...actual] : actual;
      const predicted = forecasts.filter((f) => f.strategy === name && num(f.predicted))
        .sort((a, b) => a.round - b.round);
      const g = s("g", { "data-strategy": name });
      if (predicted.length) {
        const pts = predicted.map((f) => [f.round, f.predicted]);
        const anchor = actual.filter((r) => r.round < predicted[0].round).pop();
        if (anchor) pts.unshift([anchor.round, anchor.top1]);
        if (pts.length > 1) {
          g.append(s("path", { d: path(pts), fill: "none", style: `stroke: ${c}`, "stroke-width": 2,
            "stroke-dasharray": "6 4", class: "alaas-forecast-line" }));
        }
      }
      if (line.length > 1) {
        g.append(s("path", { d: path(line.map((r) => [r.round, r.top1])), fill: "none",
          style: `stroke: ${c}`, "stroke-width": 2.2, class: "alaas-actual-line" }));
      }
      for (const f of predicted) {
        g.append(s("circle", { cx: x(f.round), cy: y(f.predicted), r: 3.6, style: `stroke: ${c}`,
          "stroke-width": 1.6, class: "alaas-pt-forecast", "data-round": f.round },
        s("title", {}, `${name} · round ${f.round}: forecast ${pct(f.predicted)}`)));
      }
      for (const r of actual) {
        g.append(s("circle", { cx: x(r.round), cy: y(r.top1), r: 4, style: `fill: ${c}`,
          class: "alaas-pt", "data-round": r.round, "data-strategy": name },
        s("title", {}, `${name} · round ${r.round}: ${pct(r.top1)} top-1` +
          `${num(r.top5) ? `, ${pct(r.top5)} top-5` : ""} (${r.n_labeled} labels)`)));
      }
      const out = eliminations.find((e) => e.strategy === name);
      if (out) {
        // × where its line ends (the round it left); the dashed segment after it is the
        // forecast that removed it
        const at = actual.find((r) => r.round === out.round);
        const v = at ? at.top1 : num(out.predicted) ? out.predicted : actual.length
          ? actual[actual.length - 1].top1 : null;
        if (num(v)) {
          const cx = x(out.round), cy = y(v), d = 5;
          g.append(s("path", { d: `M${cx - d},${cy - d}L${cx + d},${cy + d}M${cx - d},${cy + d}L${cx + d},${cy - d}`,
            style: `stroke: ${c}`, "stroke-width": 2.4, class: "alaas-pt-eliminated" },
          s("title", {}, `${name} eliminated in round ${out.round}` +
            `${num(out.predicted) ? ` (forecast ${pct(out.predicted)})` : ""}`)));
        }
      }
      svg.append(g);
    }
    chart.append(svg);
    legend.replaceChildren(...strategies.map((name) => {
      const out = eliminations.some((e) => e.strategy === name);
      const item = h("span", { class: `alaas-legend-item${out ? " alaas-out" : ""}` },
        h("span", { class: "alaas-legend-swatch" }), seeds.has(name) ? `${name} (seed)` : name);
      item.firstChild.style.color = seeds.has(name) ? SEED_COLOR : color(name);
      item.dataset.strategy = name;
      return item;
    }), h("span", { class: "alaas-legend-key" },
      h("span", {}, "── actual"), h("span", {}, "- - forecast"), h("span", {}, "× eliminated")));
    chart.append(legend);
  }

  function drawTimeline(results, forecasts, eliminations) {
    const color = colorOf();
    const strategies = drawnNames();
    const active = new Set(model.get("active") || []);
    const current = Math.max(model.get("round") || 0, ...results.map((r) => r.round), 1);
    const seeds = seedNames();
    timeline.replaceChildren();
    timelineTitle.hidden = !strategies.length;
    for (const name of strategies) {
      const own = results.filter((r) => r.strategy === name).sort((a, b) => a.round - b.round);
      const out = eliminations.find((e) => e.strategy === name);
      const first = own.length ? own[0].round : out ? out.round : current;
      const last = out ? out.round : active.has(name) ? current : own.length ? own[own.length - 1].round : first;
      const track = h("div", { class: "alaas-tl-track" }, h("div", { class: "alaas-tl-bar" }));
      const bar = track.firstChild;
      bar.style.left = `${(100 * (first - 1)) / current}%`;
      bar.style.width = `${Math.max(2, (100 * (last - first + 1)) / current)}%`;
      bar.style.background = seeds.has(name) ? SEED_COLOR : color(name);
      const note = h("span", { class: "alaas-tl-note" });
      if (out) {
        note.append(h("b", {}, `dropped in round ${out.round}`),
          num(out.predicted) ? ` · forecast ${pct(out.predicted)}` : "",
          out.reason ? ` · ${out.reason}` : "");
      } else {
        const lastResult = own[own.length - 1];
        const f = forecasts.filter((x) => x.strategy === name).sort((a, b) => a.round - b.round).pop();
        const span = first === last ? `round ${first}` : `rounds ${first}–${last}`;
        const racingNow = strategies.filter((n) => !seeds.has(n)).length > 1;
        const o = model.get("outcome") || {};
        const live = o.stopped ? (o.winner === name ? "winner" : "finished")
          : racingNow ? "racing" : "in use";
        if (o.stopped && o.winner === name) note.append(h("b", { class: "alaas-winner" }, "winner"));
        note.append(seeds.has(name) ? `seed, ${span}` : active.has(name)
          ? (live === "winner" ? "" : live) : span,
          lastResult ? ` · last ${pct(lastResult.top1)}` : "",
          f ? ` · next ${pct(f.predicted)}` : "");
      }
      const dot = h("span", { class: "alaas-tl-dot" });
      dot.style.background = seeds.has(name) ? SEED_COLOR : color(name);
      note.title = note.textContent;
      timeline.append(h("div", { class: "alaas-tl-row", "data-strategy": name },
        h("span", { class: "alaas-tl-name", title: name }, dot, name), track, note));
    }
  }

  function update() {
    const results = model.get("results") || [];
    const forecasts = model.get("forecasts") || [];
    const eliminations = model.get("eliminations") || [];
    updateHeader();
    const o = model.get("outcome") || {};
    const note = model.get("state") === "stopped" ? "" : model.get("message") || "";
    banner.hidden = !(o.stopped || note);
    banner.classList.toggle("alaas-banner-done", Boolean(o.stopped));
    banner.replaceChildren(...(o.stopped
      ? [h("b", {}, `Winner: ${o.winner || "–"}`),
        num(o.best_accuracy) ? ` (${pct(o.best_accuracy)} top-1)` : "",
        ` · PSHEA stopped: ${o.stop_reason || "done"}`]
      : [note]));
    root.dataset.rounds = String(results.length);
    root.dataset.round = String(model.get("round") || 0);
    drawCards(results, eliminations);
    drawChart(results, forecasts, eliminations);
    drawTimeline(results, forecasts, eliminations);
    const last = results.filter((r) => num(r.top1)).sort((a, b) => a.round - b.round).pop();
    if (o.stopped) announce(`PSHEA stopped: winner ${o.winner || "none"}; ${o.stop_reason || "done"}.`);
    else if (last) announce(`Round ${last.round}: ${last.strategy} ${pct(last.top1)} top-1.`);
  }

  function updateHeader() {
    const isAlive = alive();
    const state = isAlive ? model.get("state") : "disconnected";
    badge.textContent = state;
    badge.className = `alaas-badge alaas-badge-${state}`;
    root.dataset.state = state;
    root.dataset.alive = String(isAlive);
    const updated = model.get("updated");
    const at = updated ? new Date(updated * 1000).toLocaleTimeString() : "";
    subtitle.textContent = state === "stopped" ? model.get("message") || ""
      : !isAlive ? (at ? `last update ${at}` : "") : at ? `updated ${at}` : "";
    gone.hidden = isAlive;
    if (!isAlive) {
      gone.replaceChildren(h("b", {}, "Disconnected: "),
        kernel.restarted() ? "the kernel restarted, so this dashboard no longer updates. "
          : "no word from the kernel side, so this dashboard no longer updates. ",
        "Run ", h("code", {}, "%alaas start …"), " and then ", h("code", {}, "%alaas dashboard"),
        " again to see the session as it is.");
      announce("Dashboard disconnected from its kernel.");
    }
    const err = isAlive ? model.get("error") : "";
    errorBox.hidden = !err;
    errorBox.textContent = err || "";
    if (err) announce(`Dashboard error: ${err}`);
  }

  // the status poll only moves the header; data changes redraw once per frame
  const names = ["results", "forecasts", "eliminations", "strategies", "seed", "active", "budget",
    "round", "target", "outcome", "message", "suspects"];
  let frame = 0;
  const schedule = () => { if (!frame) frame = requestAnimationFrame(() => { frame = 0; update(); }); };
  for (const n of names) model.on(`change:${n}`, schedule);
  for (const n of ["state", "updated", "error", "message"]) model.on(`change:${n}`, updateHeader);
  update();
  return () => {
    for (const n of names) model.off(`change:${n}`, schedule);
    for (const n of ["state", "updated", "error", "message"]) model.off(`change:${n}`, updateHeader);
    kernel.stop();
    resize.disconnect();
    if (frame) cancelAnimationFrame(frame);
  };
}

export default { render };
