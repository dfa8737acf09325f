// The DOM helpers every view builds with. Imported by the widget modules as
// `import { h, s } from "./dom.js";`, which the kernel side inlines (anywidget loads
// one file per widget; see alaas_lab/widgets/_base.py, front_end_module).

const SVG_NS = "http://www.w3.org/2000/svg";

// An HTML element: `h("div", { class: "x", hidden: true, onclick: fn }, child, ...)`.
// Attributes that are false, null or undefined are left out, true gives an empty
// attribute; `on<event>` with a function adds a listener. Children may be nodes,
// strings, numbers or (nested) arrays of them; null and undefined are skipped.
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  return appendAll(node, children);
}

// An SVG element: `s("line", { x1: 0, ... }, child, ...)`; null and undefined
// attributes are left out, every other value is written as a string.
export function s(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== null && v !== undefined) node.setAttribute(k, String(v));
  }
  return appendAll(node, children);
}

function appendAll(node, children) {
  for (const c of children.flat(Infinity)) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

// A function that writes `text` into an aria-live region, unless it said it last
// (a redraw must not repeat an announcement).
export function announcer(region) {
  let last = "";
  return (text) => {
    if (text && text !== last) { last = text; region.textContent = text; }
  };
}
