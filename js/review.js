// The review of suspect labels: what the labeler's review mode and the dashboard show.
// Pure (no DOM). The worker flags human labels that out-of-fold heads contradict
// (alaas_lab/worker/suspects.py); the kernel's ReviewQueue puts each in a slot with
// `review`: {label (the human's), suggested (the head's class), self_confidence, rank}.

// What a key does to the suspect shown (`meta`, a slot's metadata) in review mode: Enter
// ("accept") keeps its label, a class key reviews it with that class (its own label:
// kept; another: a correction), Space leaves it. Returns {msg, kind, index, review}
// (`review`: "keep" | "correct" | "skip"), or null when `meta` is no suspect.
export function reviewMessage(meta, action, classes = []) {
  const given = meta.review && meta.review.label;
  if (given === undefined) return null;
  const item_id = meta.item_id;
  if (action.kind === "skip") {
    return { msg: { type: "skip", item_id }, kind: "skip", index: -1, review: "skip" };
  }
  if (action.kind === "accept") {
    return { msg: { type: "accept", item_id }, kind: "answer", index: classes.indexOf(given),
      review: "keep" };
  }
  const label = classes[action.index];
  return { msg: { type: "answer", item_id, label }, kind: "answer", index: action.index,
    review: label === given ? "keep" : "correct" };
}

// The line under a suspect: its label, the head's suggestion and how sure the head is
// that the label is right (`self_confidence`, the out-of-fold p of the label).
export function reviewLine(review = {}) {
  const p = typeof review.self_confidence === "number"
    ? ` (p = ${review.self_confidence.toFixed(2)})` : "";
  return `labeled ${review.label}${p} · the head, not trained on it, says ${review.suggested}`;
}

// The review's two bars, with the reviews in flight counted: `done` of `total` given to
// this review, and what they were.
export function reviewProgress(progress = {}, inFlight = 0) {
  const total = progress.total || 0;
  const done = Math.min(total, (progress.reviewed || 0) + (progress.skipped || 0) + inFlight);
  const bits = [`${progress.confirmed || 0} kept`, `${progress.corrected || 0} corrected`];
  if (progress.skipped) bits.push(`${progress.skipped} left`);
  return { done, total, text: bits.join(" · ") };
}

// The "Review N suspects" button's text ("" when there is none to review).
export function reviewButtonText(n) {
  if (!Number.isInteger(n) || n < 1) return "";
  return `Review ${n} suspect${n > 1 ? "s" : ""}`;
}

// What the recent-actions strip says of one `history` entry in review mode.
export function reviewAction(a) {
  if (a.action === "skip") return { head: `${a.item_id}`, tail: " left", title: `item ${a.item_id}'s label left as it is` };
  if (a.action === "confirm") return { head: `${a.item_id}`, tail: ` kept ${a.label}`, title: `item ${a.item_id}: label ${a.label} kept` };
  return { head: `${a.item_id}`, tail: ` → ${a.label}`, title: `item ${a.item_id} corrected to ${a.label}` };
}

// The dashboard's card: suspects found (open now), confirmed and corrected so far, from
// `status()["suspects"]` (`open`, `confirmed`, `corrected`, `round`, `n_scored`,
// `computing`, `error`). `value` is null before the labels were ever scored.
export function suspectCard(s = {}) {
  const reviewed = `${s.confirmed || 0} confirmed · ${s.corrected || 0} corrected`;
  if (s.error) return { value: "–", sub: `not scored: ${s.error}` };
  if (!Number.isInteger(s.open) || (!s.n_scored && !s.confirmed && !s.corrected)) {
    return { value: null, sub: s.computing ? "scoring the labels…" : "scored after each round, from 20 labels on" };
  }
  const when = s.computing ? " · scoring again…" : Number.isInteger(s.round) && s.round > 0
    ? ` · scored after round ${s.round}` : "";
  return { value: `${s.open} open`, sub: `${reviewed}${when}` };
}
