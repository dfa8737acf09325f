// alaas_lab pool map (anywidget ES module): the pool's embeddings in 2-D, on one canvas.
// Points arrive as binary traits (typed arrays, never JSON lists) and are drawn in one
// pass into an ImageData (no per-point DOM). Hover shows the item; a lasso selection
// can be sent to the labelers as a queue. Traits: alaas_lab/widgets/pool_map.py.
// Colours are JupyterLab's --jp-* variables (through alaas.css), resolved with
// getComputedStyle: the canvas never holds a literal colour. The hover index, the lasso,
// the colour ramp and the draw order are pure functions in map_geometry.js.

import { h } from "./dom.js";
import {
  drawOrder, gridIndex, lassoSelect, nearestPoint, rampIndex,
} from "./map_geometry.js";

const SERIES = 8;
const POINT = 2; // CSS px per point
const HIT = 6; // CSS px: hover reach
const GRID = 128; // hover index cells per side

// a binary trait (DataView from the comm) as a typed array of its own, aligned copy
function typed(value, T) {
  if (!value || !value.byteLength) return new T(0);
  const buf = value.buffer ? value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength)
    : value.slice(0);
  return new T(buf);
}

// CSS variable → [r, g, b, a] (0..255), by painting it on a 1×1 canvas
const probe = document.createElement("canvas");
probe.width = probe.height = 1;
const probeCtx = probe.getContext("2d", { willReadFrequently: true });
function resolve(el, name) {
  const value = getComputedStyle(el).getPropertyValue(name).trim() || getComputedStyle(el).color;
  probeCtx.clearRect(0, 0, 1, 1);
  probeCtx.fillStyle = value;
  probeCtx.fillRect(0, 0, 1, 1);
  return Array.from(probeCtx.getImageData(0, 0, 1, 1).data);
}
const pack = ([r, g, b, a = 255]) => ((a << 24) | (b << 16) | (g << 8) | r) >>> 0;
const mix = (p, q, t) => p.map((v, i) => Math.round(v + (q[i] - v) * t));

function render({ model, el }) {
  const root = h("div", { class: "alaas alaas-map", role: "region", "aria-label": "Pool map",
    tabindex: "0", "data-lm-suppress-shortcuts": "true", "data-state": "starting" });
  el.append(root);
  const badge = h("span", { class: "alaas-badge" });
  const info = h("span", { class: "alaas-muted" });
  const colorBy = h("select", { "aria-label": "Colour by", class: "alaas-map-color" },
    ...[["class", "predicted class"], ["uncertainty", "uncertainty"], ["state", "labeled / queued"],
      ["strategy", "strategy"], ["suspect", "suspect labels"]]
      .map(([v, t]) => h("option", { value: v }, t)));
  const lassoBtn = h("button", { class: "alaas-btn alaas-btn-small", "aria-pressed": "true" }, "Lasso");
  const panBtn = h("button", { class: "alaas-btn alaas-btn-small", "aria-pressed": "false" }, "Pan");
  const resetBtn = h("button", { class: "alaas-btn alaas-btn-small" }, "Reset view");
  const selInfo = h("span", { class: "alaas-muted alaas-map-selection" });
  const sendBtn = h("button", { class: "alaas-btn alaas-btn-small alaas-map-send", disabled: true },
    "Send to labeler");
  const clearBtn = h("button", { class: "alaas-btn alaas-btn-small", disabled: true }, "Clear");
  const header = h("div", { class: "alaas-header" },
    h("span", { class: "alaas-title" }, "Pool map"), badge, h("span", { class: "alaas-spacer" }), info);
  const tools = h("div", { class: "alaas-map-tools" }, h("label", {}, "Colour by "), colorBy,
    lassoBtn, panBtn, resetBtn, h("span", { class: "alaas-spacer" }), selInfo, sendBtn, clearBtn);
  const errorBox = h("div", { class: "alaas-error", role: "alert", hidden: true });
  const canvas = h("canvas", { class: "alaas-map-canvas" });
  const overlay = h("canvas", { class: "alaas-map-overlay" });
  const tip = h("div", { class: "alaas-map-tip", hidden: true });
  const stage = h("div", { class: "alaas-map-stage", "data-mode": "lasso" }, canvas, overlay, tip);
  const legend = h("div", { class: "alaas-map-legend" });
  const message = h("div", { class: "alaas-message", role: "status", "aria-live": "polite" });
  root.append(header, errorBox, tools, stage, legend, message);
  const ctx = canvas.getContext("2d");
  const octx = overlay.getContext("2d");

  // ---- data -----------------------------------------------------------------
  let n = 0, xy = new Float32Array(0), ids = new Int32Array(0), pred = new Int16Array(0);
  let unc = new Float32Array(0), state = new Uint8Array(0), strat = new Uint8Array(0);
  let label = new Int16Array(0), suspect = new Uint8Array(0);
  let order = new Uint32Array(0); // draw order: unlabeled below, the rest on top
  let bounds = [0, 1, 0, 1];
  let index = gridIndex(xy, 0, GRID); // hover look-ups
  let selected = new Uint8Array(0), nSelected = 0;
  let view = { scale: 1, dx: 0, dy: 0 }; // CSS px = base(x) * scale + dx

  // coordinates: a new map (a new hover index; the selection no longer applies)
  function loadCoords() {
    xy = typed(model.get("xy"), Float32Array);
    ids = typed(model.get("item_ids"), Int32Array);
    n = Math.min(ids.length, xy.length >> 1);
    selected = new Uint8Array(n); nSelected = 0; hoverK = -1;
    buildIndex();
    loadFields();
  }
  // per-point fields: they change every round, the map and the selection stay
  function loadFields() {
    pred = typed(model.get("predicted"), Int16Array);
    unc = typed(model.get("uncertainty"), Float32Array);
    state = typed(model.get("point_state"), Uint8Array);
    strat = typed(model.get("strategy"), Uint8Array);
    label = typed(model.get("label"), Int16Array);
    suspect = typed(model.get("suspect"), Uint8Array);
    if (state.length !== n) return; // the coordinates of the same sync are still to come
    order = drawOrder(state, n);
    updateSelection();
    schedule();
  }

  function buildIndex() {
    index = gridIndex(xy, n, GRID);
    bounds = index.bounds;
  }

  // ---- geometry: data → CSS px of the stage --------------------------------
  let W = 0, H = 0, dpr = 1, base = 1;
  function fit() {
    const r = stage.getBoundingClientRect();
    W = Math.max(1, Math.round(r.width)); H = Math.max(1, Math.round(r.height));
    dpr = window.devicePixelRatio || 1;
    for (const c of [canvas, overlay]) {
      c.width = Math.round(W * dpr); c.height = Math.round(H * dpr);
      c.style.width = `${W}px`; c.style.height = `${H}px`;
    }
    base = Math.min(W / (bounds[1] - bounds[0]), H / (bounds[3] - bounds[2]));
  }
  const sx = (x) => ((x - bounds[0]) * base + (W - (bounds[1] - bounds[0]) * base) / 2) * view.scale + view.dx;
  const sy = (y) => ((bounds[3] - y) * base + (H - (bounds[3] - bounds[2]) * base) / 2) * view.scale + view.dy;
  const dataX = (px) => ((px - view.dx) / view.scale - (W - (bounds[1] - bounds[0]) * base) / 2) / base + bounds[0];
  const dataY = (py) => bounds[3] - ((py - view.dy) / view.scale - (H - (bounds[3] - bounds[2]) * base) / 2) / base;

  // ---- colours ----------------------------------------------------------------
  function palette() {
    const bg = resolve(stage, "--alaas-bg");
    const series = Array.from({ length: SERIES }, (_, i) => resolve(root, `--alaas-series-${i}`));
    const grey = resolve(root, "--alaas-seed");
    const classes = model.get("classes") || [];
    const byClass = classes.map((_, i) => pack(i < SERIES ? series[i] : mix(series[i % SERIES], bg, 0.45)));
    const states = [grey, resolve(root, "--alaas-warn"), resolve(root, "--alaas-accent"),
      resolve(root, "--alaas-ok")].map(pack);
    const lo = resolve(root, "--alaas-accent"), hi = resolve(root, "--alaas-danger");
    const ramp = Array.from({ length: 64 }, (_, i) => pack(mix(lo, hi, i / 63)));
    const danger = pack(hi);
    const strategies = (model.get("strategies") || []).map((_, i) =>
      (i === 0 ? pack(grey) : pack(series[(i - 1) % SERIES])));
    const fgCss = getComputedStyle(root).getPropertyValue("--alaas-fg").trim() || getComputedStyle(root).color;
    return { bg: pack(bg), grey: pack(grey), byClass, states, ramp, danger, strategies,
      fg: resolve(root, "--alaas-fg"), fgCss };
  }
  let colors = null;
  function colorOf(k, mode) {
    if (mode === "class") return pred[k] >= 0 ? colors.byClass[pred[k]] ?? colors.grey : colors.grey;
    if (mode === "uncertainty") {
      const at = rampIndex(unc[k], (model.get("classes") || []).length, colors.ramp.length);
      return at < 0 ? colors.grey : colors.ramp[at];
    }
    if (mode === "state") return colors.states[state[k]] ?? colors.grey;
    if (mode === "strategy") return colors.strategies[strat[k]] ?? colors.grey;
    return suspect[k] ? colors.danger : colors.grey;
  }

  // ---- drawing: one pass into an ImageData ------------------------------------
  let image = null, frame = 0;
  function schedule() { if (!frame) frame = requestAnimationFrame(draw); }
  function draw() {
    frame = 0;
    const t0 = performance.now();
    fit();
    colors = colors || palette();
    const PW = canvas.width, PH = canvas.height;
    if (!image || image.width !== PW || image.height !== PH) image = ctx.createImageData(PW, PH);
    const px = new Uint32Array(image.data.buffer);
    px.fill(colors.bg);
    const mode = model.get("color_by") || "class";
    const r = Math.max(1, Math.round(POINT * dpr));
    const sel = pack(colors.fg);
    let drawn = 0;
    for (let o = 0; o < n; o++) {
      const k = order[o];
      const X = Math.round(sx(xy[2 * k]) * dpr) - (r >> 1), Y = Math.round(sy(xy[2 * k + 1]) * dpr) - (r >> 1);
      if (X < 0 || Y < 0 || X + r > PW || Y + r > PH) continue;
      const c = nSelected && selected[k] ? sel : colorOf(k, mode);
      for (let dy = 0; dy < r; dy++) {
        const row = (Y + dy) * PW + X;
        for (let dx = 0; dx < r; dx++) px[row + dx] = c;
      }
      drawn++;
    }
    ctx.putImageData(image, 0, 0);
    drawOverlay();
    const ms = performance.now() - t0;
    root.dataset.drawMs = ms.toFixed(2);
    root.dataset.drawn = String(drawn);
    root.dataset.n = String(n);
    drawLegend(mode);
  }

  let lasso = null, hoverK = -1;
  function drawOverlay() {
    octx.setTransform(dpr, 0, 0, dpr, 0, 0);
    octx.clearRect(0, 0, W, H);
    octx.strokeStyle = colors.fgCss;
    if (hoverK >= 0 && hoverK < n) {
      octx.lineWidth = 1.5;
      octx.beginPath();
      octx.arc(sx(xy[2 * hoverK]), sy(xy[2 * hoverK + 1]), 5, 0, 2 * Math.PI);
      octx.stroke();
    }
    if (lasso && lasso.length > 1) {
      octx.lineWidth = 1;
      octx.setLineDash([4, 3]);
      octx.beginPath();
      octx.moveTo(lasso[0][0], lasso[0][1]);
      for (const [x, y] of lasso) octx.lineTo(x, y);
      octx.closePath();
      octx.stroke();
      octx.setLineDash([]);
    }
  }

  let legendKey = "";
  function drawLegend(mode) {
    const key = `${mode}|${(model.get("classes") || []).join()}|${(model.get("strategies") || []).join()}`;
    if (key === legendKey) return;
    legendKey = key;
    const sw = (css) => h("span", { class: "alaas-map-swatch", style: `background: ${css}` });
    const item = (css, text) => h("span", { class: "alaas-map-key" }, sw(css), text);
    const series = (i) => (i < SERIES ? `var(--alaas-series-${i})`
      : `color-mix(in srgb, var(--alaas-series-${i % SERIES}) 55%, var(--alaas-bg))`);
    const stateCss = ["var(--alaas-seed)", "var(--alaas-warn)", "var(--alaas-accent)", "var(--alaas-ok)"];
    let items = [];
    if (mode === "class") items = (model.get("classes") || []).map((name, i) => item(series(i), name));
    else if (mode === "state") items = (model.get("states") || []).map((name, i) => item(stateCss[i], name));
    else if (mode === "strategy") {
      items = (model.get("strategies") || []).map((name, i) =>
        item(i ? series((i - 1) % SERIES) : "var(--alaas-seed)", name || "not selected"));
    } else if (mode === "suspect") {
      items = [item("var(--alaas-danger)", "suspect label"), item("var(--alaas-seed)", "other")];
    } else items = [h("span", { class: "alaas-map-key" }, "certain ", h("span", { class: "alaas-map-ramp" }), " uncertain")];
    legend.replaceChildren(...items);
  }

  // ---- hover ---------------------------------------------------------------
  function nearest(px, py) {
    if (!n) return -1;
    return nearestPoint(index, xy, dataX(px), dataY(py), HIT / (base * view.scale));
  }

  let hoverTimer = 0;
  function showTip(k, px, py) {
    if (k < 0) { tip.hidden = true; root.dataset.hoverItem = ""; return; }
    const classes = model.get("classes") || [];
    const states = model.get("states") || [];
    const strategies = model.get("strategies") || [];
    const lines = [h("b", {}, `item ${ids[k]}`),
      h("div", {}, pred[k] >= 0 ? `predicted ${classes[pred[k]]} · uncertainty ${unc[k].toFixed(2)}` : "no model yet"),
      h("div", {}, `${states[state[k]] || ""}${label[k] >= 0 ? ` as ${classes[label[k]]}` : ""}` +
        `${strat[k] ? ` · ${strategies[strat[k]]}` : ""}${suspect[k] ? " · suspect label" : ""}`)];
    const hov = model.get("hover") || {};
    if (hov.item_id === ids[k]) lines.push(itemView(hov));
    tip.replaceChildren(...lines);
    tip.hidden = false;
    tip.style.left = `${Math.min(px + 12, W - 250)}px`;
    tip.style.top = `${Math.min(py + 12, H - 120)}px`;
    root.dataset.hoverItem = String(ids[k]);
  }
  let objectUrl = null;
  function itemView(hov) {
    if (hov.state === "loading") return h("div", { class: "alaas-muted" }, "loading…");
    if (hov.kind === "image") {
      const data = model.get("hover_data");
      if (objectUrl) URL.revokeObjectURL(objectUrl);
      objectUrl = URL.createObjectURL(new Blob([data], { type: hov.mime || "image/png" }));
      return h("img", { class: "alaas-map-thumb", src: objectUrl, alt: `item ${hov.item_id}` });
    }
    return h("div", { class: "alaas-text" }, hov.text || hov.kind || "");
  }

  let lastMove = null;
  function onMove(ev) {
    const r = stage.getBoundingClientRect();
    const px = ev.clientX - r.left, py = ev.clientY - r.top;
    if (drag) { dragMove(px, py); return; }
    lastMove = [px, py];
    const k = nearest(px, py);
    if (k !== hoverK) {
      hoverK = k;
      drawOverlay();
      clearTimeout(hoverTimer);
      if (k >= 0) hoverTimer = setTimeout(() => model.send({ type: "hover", item_id: ids[k] }), 80);
    }
    showTip(k, px, py);
  }

  // ---- lasso and pan ----------------------------------------------------------
  let mode = "lasso", drag = null;
  function setMode(m) {
    mode = m;
    stage.dataset.mode = m;
    lassoBtn.setAttribute("aria-pressed", String(m === "lasso"));
    panBtn.setAttribute("aria-pressed", String(m === "pan"));
  }
  function dragMove(px, py) {
    if (drag.mode === "pan") {
      view.dx = drag.dx + px - drag.x; view.dy = drag.dy + py - drag.y; schedule();
    } else {
      lasso.push([px, py]); drawOverlay();
    }
  }
  function onDown(ev) {
    if (ev.button !== 0) return;
    const r = stage.getBoundingClientRect();
    const px = ev.clientX - r.left, py = ev.clientY - r.top;
    canvas.setPointerCapture?.(ev.pointerId);
    drag = { mode, x: px, y: py, dx: view.dx, dy: view.dy };
    if (mode === "lasso") lasso = [[px, py]];
    tip.hidden = true;
  }
  function onUp() {
    if (!drag) return;
    const was = drag.mode;
    drag = null;
    if (was === "lasso" && lasso && lasso.length > 2) select(lasso);
    lasso = null;
    drawOverlay();
  }
  function select(poly) {
    ({ selected, count: nSelected } = lassoSelect(n, (k) => [sx(xy[2 * k]), sy(xy[2 * k + 1])], poly));
    updateSelection();
    schedule();
  }
  function updateSelection() {
    if (selected.length !== n) { selected = new Uint8Array(n); nSelected = 0; }
    let open = 0;
    for (let k = 0; k < n; k++) if (selected[k] && state[k] === 0) open++;
    root.dataset.selected = String(nSelected);
    selInfo.textContent = nSelected ? `${nSelected} selected (${open} unlabeled)` : "";
    sendBtn.disabled = !open;
    clearBtn.disabled = !nSelected;
  }
  function sendQueue() {
    const chosen = [];
    for (let k = 0; k < n; k++) if (selected[k] && state[k] === 0) chosen.push(ids[k]);
    if (!chosen.length) return;
    const buf = new Int32Array(chosen);
    model.send({ type: "queue", n: chosen.length }, undefined, [buf.buffer]);
    message.textContent = `sending ${chosen.length} items to the labeler…`;
  }

  const onWheel = (ev) => {
    ev.preventDefault();
    const r = stage.getBoundingClientRect();
    const px = ev.clientX - r.left, py = ev.clientY - r.top;
    const f = Math.exp(-ev.deltaY * 0.0015);
    view.dx = px - (px - view.dx) * f; view.dy = py - (py - view.dy) * f; view.scale *= f;
    schedule();
  };
  canvas.addEventListener("pointerdown", onDown);
  canvas.addEventListener("pointermove", onMove);
  canvas.addEventListener("pointerup", onUp);
  canvas.addEventListener("pointerleave", () => { if (!drag) { hoverK = -1; showTip(-1); drawOverlay(); } });
  canvas.addEventListener("wheel", onWheel, { passive: false });
  canvas.addEventListener("dblclick", () => { view = { scale: 1, dx: 0, dy: 0 }; schedule(); });
  lassoBtn.addEventListener("click", () => setMode("lasso"));
  panBtn.addEventListener("click", () => setMode("pan"));
  resetBtn.addEventListener("click", () => { view = { scale: 1, dx: 0, dy: 0 }; schedule(); });
  clearBtn.addEventListener("click", () => { selected = new Uint8Array(n); nSelected = 0; updateSelection(); schedule(); });
  sendBtn.addEventListener("click", sendQueue);
  colorBy.addEventListener("change", () => { model.set("color_by", colorBy.value); model.save_changes(); schedule(); });
  root.addEventListener("keydown", (ev) => {
    if (ev.code === "Escape") { selected = new Uint8Array(n); nSelected = 0; updateSelection(); schedule(); ev.stopPropagation(); }
  });

  // for tests and scripts: where item `id` is drawn (CSS px in the page)
  root.alaasScreenOf = (id) => {
    for (let k = 0; k < n; k++) {
      if (ids[k] === id) {
        const r = stage.getBoundingClientRect();
        return [r.left + sx(xy[2 * k]), r.top + sy(xy[2 * k + 1])];
      }
    }
    return null;
  };

  // ---- header ---------------------------------------------------------------
  function header_() {
    const st = model.get("state") || "starting";
    root.dataset.state = st;
    root.dataset.version = String(model.get("version") || 0);
    badge.className = `alaas-badge alaas-badge-${st === "ready" ? "live" : st === "computing" ? "busy" : st}`;
    badge.textContent = st;
    const method = model.get("method");
    info.textContent = `${model.get("n") || 0} items${method ? ` · ${method === "tsne" ? "t-SNE" : method.toUpperCase()}` : ""}` +
      `${model.get("computing") ? " · updating…" : ""}`;
    const err = model.get("error");
    errorBox.hidden = !err;
    errorBox.textContent = err || "";
    message.textContent = model.get("message") || "";
    colorBy.value = model.get("color_by") || "class";
  }

  const handlers = [];
  const on = (name, fn) => { model.on(`change:${name}`, fn); handlers.push([`change:${name}`, fn]); };
  const onTheme = new MutationObserver(() => { colors = null; legendKey = ""; schedule(); });
  onTheme.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-name"] });
  const resize = new ResizeObserver(() => schedule());
  resize.observe(stage);
  const onHover = () => { if (lastMove && hoverK >= 0) showTip(hoverK, ...lastMove); };
  const repaint = () => { colors = null; legendKey = ""; schedule(); };
  on("xy", loadCoords);
  on("item_ids", loadCoords);
  for (const t of ["predicted", "uncertainty", "point_state", "strategy", "label", "suspect"]) on(t, loadFields);
  on("hover", onHover);
  on("hover_data", onHover);
  for (const t of ["state", "n", "method", "computing", "error", "message", "version", "color_by"]) on(t, header_);
  on("color_by", schedule);
  on("classes", repaint);
  on("strategies", repaint);
  header_();
  loadCoords();
  return () => {
    onTheme.disconnect();
    resize.disconnect();
    if (frame) cancelAnimationFrame(frame);
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    for (const [name, fn] of handlers) model.off(name, fn);
  };
}

export default { render };
