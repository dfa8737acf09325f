import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

import { announcer, h, s } from "../../js/dom.js";
import { Element, installDom } from "./minimal_dom.mjs";

beforeEach(installDom);

test("h sets attributes: class, true as empty, false/null/undefined left out", () => {
  const el = h("div", { class: "alaas x", hidden: true, open: false, title: null, id: undefined,
    "data-n": 3 });
  assert.equal(el.tagName, "div");
  assert.equal(el.className, "alaas x");
  assert.equal(el.getAttribute("hidden"), "");
  assert.equal(el.getAttribute("data-n"), "3");
  for (const name of ["open", "title", "id", "class"]) assert.equal(el.getAttribute(name), null);
});

test("h appends nodes, strings and numbers, flattens arrays and skips null", () => {
  const child = h("b", {}, "bold");
  const el = h("p", {}, "a ", child, null, [" ", [1, undefined, 2]], undefined, 0);
  assert.equal(el.childNodes.length, 6);
  assert.equal(el.childNodes[1], child);
  assert.equal(el.textContent, "a bold 120");
});

test("h adds on<event> functions as listeners, not as attributes", () => {
  const seen = [];
  const el = h("button", { onclick: (e) => seen.push(e.x), onkind: "text" });
  el.dispatch("click", { x: 7 });
  assert.deepEqual(seen, [7]);
  assert.equal(el.getAttribute("onclick"), null);
  assert.equal(el.getAttribute("onkind"), "text");  // not a function: an attribute
});

test("s makes SVG elements and writes every non-null value as a string", () => {
  const el = s("line", { x1: 0, y1: 1.5, class: "alaas-grid", stroke: null },
    s("title", {}, "t"));
  assert.equal(el.namespaceURI, "http://www.w3.org/2000/svg");
  assert.equal(el.getAttribute("x1"), "0");
  assert.equal(el.getAttribute("y1"), "1.5");
  assert.equal(el.getAttribute("class"), "alaas-grid");
  assert.equal(el.getAttribute("stroke"), null);
  assert.equal(el.textContent, "t");
});

test("announcer writes a new text only, so a redraw does not repeat it", () => {
  const region = new Element("div");
  const writes = [];
  Object.defineProperty(region, "textContent", { set: (t) => writes.push(t), get: () => "" });
  const announce = announcer(region);
  announce("Round 1");
  announce("Round 1");
  announce("");
  announce("Round 2");
  announce("Round 1");
  assert.deepEqual(writes, ["Round 1", "Round 2", "Round 1"]);
});
