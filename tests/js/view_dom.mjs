// A stand-in for the DOM a whole widget view uses (js/labeler.js's render): elements
// with parents, classList, dataset, hidden, focus, closest/matches for ".class" and
// tag selectors, and a fake anywidget model. Enough to drive a view with keys in Node
// and read what it shows and sends; layout, images and styles are the browser tests'.

import { Element, Node, Text } from "./minimal_dom.mjs";

// selectors as the views use them: "button", ".alaas-text, .alaas-zoom"
function matchesOne(el, selector) {
  const sel = selector.trim();
  if (sel.startsWith(".")) return el.className.split(/\s+/).includes(sel.slice(1));
  return el.tagName === sel;
}

export class ViewElement extends Element {
  constructor(tag, namespace) {
    super(tag, namespace);
    this.parentNode = null;
    this.dataset = {};
    this.style = {};
    this.scrollLeft = 0;
    this.scrollTop = 0;
  }
  get classList() {
    const names = () => new Set(this.className.split(/\s+/).filter(Boolean));
    const write = (set) => { this.className = [...set].join(" "); };
    return {
      add: (...cs) => { const s = names(); cs.forEach((c) => s.add(c)); write(s); },
      remove: (...cs) => { const s = names(); cs.forEach((c) => s.delete(c)); write(s); },
      toggle: (c, force) => {
        const s = names();
        const on = force === undefined ? !s.has(c) : Boolean(force);
        if (on) s.add(c); else s.delete(c);
        write(s);
        return on;
      },
      contains: (c) => names().has(c),
    };
  }
  get hidden() { return this.attributes.has("hidden"); }
  set hidden(on) { if (on) this.attributes.set("hidden", ""); else this.attributes.delete("hidden"); }
  removeAttribute(name) { this.attributes.delete(name); }
  append(...nodes) {
    const start = this.childNodes.length;
    super.append(...nodes);
    for (const n of this.childNodes.slice(start)) n.parentNode = this;
  }
  replaceChildren(...nodes) { this.childNodes = []; this.append(...nodes); }
  set textContent(text) { this.replaceChildren(String(text)); }
  get textContent() { return super.textContent; }
  get firstElementChild() { return this.childNodes.find((c) => c instanceof Element) || null; }
  contains(node) {
    for (let n = node; n; n = n.parentNode) if (n === this) return true;
    return false;
  }
  matches(selectors) { return selectors.split(",").some((s) => matchesOne(this, s)); }
  closest(selectors) {
    for (let n = this; n instanceof Element; n = n.parentNode) if (n.matches(selectors)) return n;
    return null;
  }
  // every element of the subtree (itself first) that `test` accepts
  findAll(test) {
    const found = test(this) ? [this] : [];
    for (const c of this.childNodes) if (c instanceof ViewElement) found.push(...c.findAll(test));
    return found;
  }
  focus() { globalThis.document.activeElement = this; }
  blur() { if (globalThis.document.activeElement === this) globalThis.document.activeElement = null; }
  scrollBy() {}
  scrollIntoView() {}
  decode() { return Promise.resolve(); }
  getBoundingClientRect() { return { left: 0, right: 0, top: 0, bottom: 0 }; }
  get clientWidth() { return 0; }
  get clientHeight() { return 0; }
  get scrollWidth() { return 0; }
  get scrollHeight() { return 0; }
}

// Installs `document`, `Node` and `requestAnimationFrame` as globals.
export function installViewDom() {
  globalThis.Node = Node;
  globalThis.requestAnimationFrame = (fn) => setTimeout(fn, 0);
  globalThis.document = {
    activeElement: null,
    createElement: (tag) => new ViewElement(tag),
    createElementNS: (ns, tag) => new ViewElement(tag, ns),
    createTextNode: (data) => new Text(data),
  };
}

// anywidget's model as a view sees it: traits by name, `change:<name>` listeners,
// and the messages the view sends (in `sent`).
export class FakeModel {
  constructor(traits) {
    this.traits = { ...traits };
    this.listeners = new Map();
    this.sent = [];
  }
  get(name) { return this.traits[name]; }
  // set traits as the kernel does (several in one update), then tell the listeners
  update(traits) {
    Object.assign(this.traits, traits);
    for (const name of Object.keys(traits)) {
      for (const fn of this.listeners.get(`change:${name}`) || []) fn();
    }
  }
  on(event, fn) { if (!this.listeners.has(event)) this.listeners.set(event, []); this.listeners.get(event).push(fn); }
  off(event, fn) { this.listeners.set(event, (this.listeners.get(event) || []).filter((f) => f !== fn)); }
  send(msg) { this.sent.push(msg); }
}

// a keydown on `target` as the browser sends it; returns the event (was it prevented?)
export function press(target, code, { key = code, ...extra } = {}) {
  const ev = { code, key, target, repeat: false, ctrlKey: false, metaKey: false, altKey: false,
    shiftKey: false, defaultPrevented: false, propagationStopped: false,
    preventDefault() { this.defaultPrevented = true; },
    stopPropagation() { this.propagationStopped = true; }, ...extra };
  target.dispatch("keydown", ev);
  return ev;
}
