// A stand-in for the few DOM calls js/dom.js makes (createElement, setAttribute,
// append, addEventListener, textContent), so its rules run in Node. The real DOM
// runs them in the browser tests (tests/browser).

export class Node {}

export class Text extends Node {
  constructor(data) { super(); this.data = data; }
  get textContent() { return this.data; }
}

export class Element extends Node {
  constructor(tag, namespace = null) {
    super();
    this.tagName = tag;
    this.namespaceURI = namespace;
    this.attributes = new Map();
    this.childNodes = [];
    this.listeners = {};
    this.className = "";
  }
  setAttribute(name, value) { this.attributes.set(name, String(value)); }
  getAttribute(name) { return this.attributes.has(name) ? this.attributes.get(name) : null; }
  addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
  dispatch(type, event = {}) { for (const fn of this.listeners[type] || []) fn(event); }
  append(...nodes) {
    for (const n of nodes) this.childNodes.push(n instanceof Node ? n : new Text(String(n)));
  }
  get textContent() { return this.childNodes.map((c) => c.textContent).join(""); }
  set textContent(text) { this.childNodes = [new Text(String(text))]; }
}

// Installs `document` and `Node` as globals (what js/dom.js reads).
export function installDom() {
  globalThis.Node = Node;
  globalThis.document = {
    createElement: (tag) => new Element(tag),
    createElementNS: (ns, tag) => new Element(tag, ns),
    createTextNode: (data) => new Text(data),
  };
}
