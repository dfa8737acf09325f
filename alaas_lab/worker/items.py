"""What the labeling UI shows: an item's content, ready for a browser.

Array items pushed from memory keep their raw rows in the session directory
(``raw/batch-N.npy``; raw texts in ``raw/texts-N.json``), indexed by ``raw_batch``
journal events, so a restarted worker can still show them. Images (from arrays or
files) are sent as PNG bytes, scaled to at most ``max_side`` pixels; text is sent as a string.
"""

from __future__ import annotations

import functools
import io
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..data import Fetcher, decode_image, decode_text
from ..journal import Journal


class RawStore:
    """Raw rows of array items, one ``.npy`` file per push."""

    def __init__(self, root: Path, journal: Journal) -> None:
        self.root = root / "raw"
        self.journal = journal
        self.lock = threading.Lock()
        self.index: dict[int, tuple[str, int]] = {}
        for event in journal.events("raw_batch"):
            for row, item_id in enumerate(event.payload["item_ids"]):
                self.index[int(item_id)] = (event.payload["file"], row)

    def put(self, item_ids: list[int], rows: np.ndarray) -> None:
        new = [(i, r) for r, i in enumerate(item_ids) if i not in self.index]
        if not new:
            return
        with self.lock:
            self.root.mkdir(parents=True, exist_ok=True)
            name = f"batch-{len(list(self.root.glob('batch-*.npy')))}.npy"
            np.save(self.root / name, np.ascontiguousarray(rows[[r for _, r in new]]))
            ids = [int(i) for i, _ in new]
            self.journal.record_event("raw_batch", {"file": name, "item_ids": ids})
            for row, item_id in enumerate(ids):
                self.index[item_id] = (name, row)

    def put_texts(self, item_ids: list[int], texts: list[str]) -> None:
        """Keep raw texts (one JSON list per push) for display and re-embedding."""
        new = [(i, t) for i, t in zip(item_ids, texts, strict=True) if i not in self.index]
        if not new:
            return
        with self.lock:
            self.root.mkdir(parents=True, exist_ok=True)
            name = f"texts-{len(list(self.root.glob('texts-*.json')))}.json"
            tmp = self.root / f".{name}.tmp"
            tmp.write_text(json.dumps([t for _, t in new]), encoding="utf-8")
            os.replace(tmp, self.root / name)
            ids = [int(i) for i, _ in new]
            self.journal.record_event("raw_batch", {"file": name, "item_ids": ids})
            for row, item_id in enumerate(ids):
                self.index[item_id] = (name, row)

    def get(self, item_id: int) -> np.ndarray | str | None:
        """The raw row (or text) of an item pushed from memory; None for URI items."""
        where = self.index.get(item_id)
        if where is None:
            return None
        if where[0].endswith(".json"):
            return _texts(self.root / where[0])[where[1]]
        return np.load(self.root / where[0], mmap_mode="r")[where[1]]


@functools.lru_cache(maxsize=8)
def _texts(path: Path) -> list[str]:
    return json.loads(path.read_text(encoding="utf-8"))  # written once, never changed


def array_to_png(row: np.ndarray, max_side: int) -> bytes | None:
    """A 2-D (or H×W×3/4) array as PNG bytes, contrast-stretched to 0..255; None otherwise."""
    a = np.asarray(row)
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (3, 4))):
        return None
    a = a.astype(np.float64)
    lo, hi = float(a.min()), float(a.max())
    a = np.zeros_like(a) if hi == lo else (a - lo) / (hi - lo) * 255.0
    return _png(Image.fromarray(a.round().astype(np.uint8)), max_side)


def _png(img: Image.Image, max_side: int) -> bytes:
    w, h = img.size
    if max(w, h) > max_side:
        # the aspect ratio is kept (a 1200×40 strip becomes 512×17, never a square), and
        # Lanczos filters fine patterns away instead of folding them into moiré
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    elif max(w, h) < 64:  # tiny images (8×8 digits) are enlarged, without smoothing
        factor = max(1, 128 // max(w, h))
        img = img.resize((w * factor, h * factor), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def item_payload(item_id: int, uri: str, *, kind: str, raw: RawStore, fetcher: Fetcher,
                 max_side: int = 512) -> dict[str, Any]:
    """One item for the UI: ``{"item_id", "uri", "kind", "data" | "text", "mime"}``."""
    out: dict[str, Any] = {"item_id": int(item_id), "uri": uri}
    row = raw.get(item_id)
    if isinstance(row, str):
        return out | {"kind": "text", "text": row}
    if row is not None:
        png = array_to_png(row, max_side)
        if png is not None:
            return out | {"kind": "image", "mime": "image/png", "data": png}
        return out | {"kind": "array", "values": np.asarray(row, dtype=np.float32).ravel()[:64]
                      .tolist()}
    result = fetcher.fetch(uri)
    if not result.ok:
        return out | {"kind": "error", "text": result.error}
    try:
        if kind == "text":
            return out | {"kind": "text", "text": decode_text(result.data, uri=uri,
                                                              errors="replace")}
        img = Image.fromarray(decode_image(result.data, uri=uri, mode="RGB"))
        return out | {"kind": "image", "mime": "image/png", "data": _png(img, max_side)}
    except Exception as exc:  # shown to the labeler, who can skip the item
        return out | {"kind": "error", "text": str(exc)}
