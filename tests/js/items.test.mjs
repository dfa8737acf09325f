import assert from "node:assert/strict";
import { test } from "node:test";

import { itemName, shortUri } from "../../js/items.js";

test("itemName: the file name, decoded, without query or fragment", () => {
  assert.equal(itemName({ item_id: 3, uri: "s3://bucket/cats/tabby%20one.png?v=2#x" }),
    "tabby one.png");
  assert.equal(itemName({ item_id: 3, uri: "file:///data/dir/" }), "dir");
  assert.equal(itemName({ item_id: 3, uri: "https://x/bad%E0.png" }), "bad%E0.png"); // not decodable
});

test("itemName: arrays and texts by their digest, else the pool id", () => {
  assert.equal(itemName({ item_id: 7, uri: "array:0123456789abcdef" }), "array item 01234567");
  assert.equal(itemName({ item_id: 7, uri: "text:fedcba9876543210" }), "text item fedcba98");
  assert.equal(itemName({ item_id: 7 }), "item 7");
  assert.equal(itemName({ item_id: 0, uri: "" }), "item 0");
});

test("shortUri keeps 60 characters, the end of a long one", () => {
  assert.equal(shortUri(""), "");
  assert.equal(shortUri(undefined), "");
  assert.equal(shortUri("array:0123456789abcdef"), "array:01234567…");
  const long = `s3://bucket/${"a".repeat(80)}.png`;
  const short = shortUri(long);
  assert.equal(short.length, 59);
  assert.ok(short.startsWith("…") && short.endsWith("a.png"));
  assert.equal(shortUri("file:///x.png"), "file:///x.png");
});
