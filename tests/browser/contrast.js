// WCAG 2 contrast of every visible text inside the elements matching `selector`, and of
// the chart lines and progress bars (graphics need 3:1). A colour with alpha (and an
// element's opacity) is composited over the backgrounds behind it. Disabled controls
// are exempt (WCAG 1.4.3). Returns {checked, failures: [description]}.
(selector) => {
  const parse = (c) => {
    const m = /rgba?\(([^)]+)\)/.exec(c || "");
    if (!m) return null;
    const p = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (a, b) => [0, 1, 2].map((i) => a[i] * a[3] + b[i] * (1 - a[3])).concat(1);
  const lum = (c) => {
    const ch = (v) => {
      const x = v / 255;
      return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * ch(c[0]) + 0.7152 * ch(c[1]) + 0.0722 * ch(c[2]);
  };
  const ratio = (a, b) => {
    const x = lum(a), y = lum(b);
    return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
  };
  const background = (node) => {
    const layers = [];
    for (let n = node; n && n.nodeType === 1; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c && c[3] > 0) {
        layers.push(c);
        if (c[3] >= 1) break;
      }
    }
    let bg = [255, 255, 255, 1];
    for (const c of layers.reverse()) bg = over(c, bg);
    return bg;
  };
  const opacity = (node) => {
    let o = 1;
    for (let n = node; n && n.nodeType === 1; n = n.parentElement) {
      o *= Number(getComputedStyle(n).opacity);
    }
    return o;
  };
  const shown = (n) => n.getClientRects().length > 0 && getComputedStyle(n).visibility !== "hidden";
  const rgb = (c) => `rgb(${c.slice(0, 3).map(Math.round).join(",")})`;
  const failures = [];
  let checked = 0;
  for (const root of document.querySelectorAll(selector)) {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    const seen = new Set();
    for (let t = walker.nextNode(); t; t = walker.nextNode()) {
      const node = t.parentElement;
      if (!t.textContent.trim() || seen.has(node) || !shown(node)) continue;
      if (node.closest("button:disabled, .alaas-sr-only")) continue;
      seen.add(node);
      const style = getComputedStyle(node);
      const svg = node instanceof SVGElement;
      let fg = parse(svg ? style.fill : style.color);
      if (!fg) continue;
      fg = [fg[0], fg[1], fg[2], fg[3] * opacity(node)];
      const bg = background(svg ? node.closest(".alaas-chart") : node);
      const size = parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      const r = ratio(over(fg, bg), bg);
      checked += 1;
      if (r < (large ? 3 : 4.5)) {
        const cls = svg ? node.getAttribute("class") : node.className;
        failures.push(`${r.toFixed(2)}: "${t.textContent.trim().slice(0, 40)}" (${cls}) ` +
          `${rgb(over(fg, bg))} on ${rgb(bg)}`);
      }
    }
    const graphics = root.querySelectorAll(".alaas-actual-line, .alaas-bar-fill, .alaas-tl-bar");
    for (const g of graphics) {
      if (!shown(g)) continue;
      const svg = g instanceof SVGElement;
      const c = parse(svg ? getComputedStyle(g).stroke : getComputedStyle(g).backgroundColor);
      if (!c) continue;
      const bg = background(svg ? g.closest(".alaas-chart") : g.parentElement);
      const r = ratio(over(c, bg), bg);
      checked += 1;
      if (r < 3) failures.push(`${r.toFixed(2)}: graphic ${g.getAttribute("class")} ${rgb(c)} on ${rgb(bg)}`);
    }
  }
  return { checked, failures };
}
