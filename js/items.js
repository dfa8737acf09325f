// How the labeling widget names an item (a slot's or a page item's metadata: `item_id`,
// `uri`). Pure: no DOM.

// what a person (or a screen reader) calls the item: its file name, not its pool id
export function itemName(meta) {
  const uri = meta.uri || "";
  if (uri.startsWith("array:")) return `array item ${uri.slice(6, 14)}`;
  if (uri.startsWith("text:")) return `text item ${uri.slice(5, 13)}`;
  const tail = uri.replace(/[?#].*$/, "").split("/").filter(Boolean).pop();
  if (!tail) return `item ${meta.item_id}`;
  try { return decodeURIComponent(tail); } catch { return tail; }
}

// a URI short enough for the line under the item (the whole URI goes in its title)
export function shortUri(uri) {
  if (!uri) return "";
  if (uri.startsWith("array:")) return `array:${uri.slice(6, 14)}…`;
  return uri.length > 60 ? `…${uri.slice(-58)}` : uri;
}
