// Optimistic answers, one item at a time: a key shows the next item at once and the
// answer goes to the kernel as a message with a `seq`; the kernel applies it and sets
// the trait `acked` to that seq. Until then the answered item stays hidden here, so
// the view never waits on the kernel. Once acknowledged, the kernel's `order` says
// what is queued: a refused message (a stale answer, nothing to undo) simply rolls
// back, the item showing again where the kernel still queues it. Pure: no DOM.

export class Outbox {
  // `acked`: the trait's value when the view starts (messages of an earlier view
  // already applied)
  constructor(acked = 0) {
    this.nextSeq = acked + 1;
    this.pending = []; // {seq, kind, item_id?}: sent, not yet acknowledged
  }

  // `msg` with the next seq: above every one this view sent and above `acked` (another
  // view of the same widget may have been acknowledged meanwhile)
  stamp(msg, acked = 0) {
    const seq = Math.max(this.nextSeq, acked + 1);
    this.nextSeq = seq + 1;
    return { ...msg, seq };
  }

  // remember a sent message until `acked` reaches its seq; `kind` "answer" counts in the
  // progress shown, an `itemId` is hidden from the queue meanwhile
  sent(seq, kind, itemId) {
    this.pending.push(itemId === undefined ? { seq, kind } : { seq, kind, item_id: itemId });
  }

  // the messages still waiting for the kernel (those up to `acked` are forgotten)
  unacked(acked = 0) {
    this.pending = this.pending.filter((p) => p.seq > acked);
    return this.pending;
  }

  // item ids answered or skipped here, not yet acknowledged
  hiddenItems(acked = 0) {
    return new Set(this.unacked(acked).filter((p) => p.item_id !== undefined)
      .map((p) => p.item_id));
  }

  // answers (including accepted suggestions) not yet acknowledged
  answersInFlight(acked = 0) {
    return this.unacked(acked).filter((p) => p.kind === "answer").length;
  }
}

// The slots to show, in queue order, without the items in `hidden`: `order` lists slot
// indices front first (trait `order`), `slots` their metadata (`{}`: a free slot).
// The first is the item shown now.
export function visibleSlots(order = [], slots = [], hidden = new Set()) {
  return order.filter((s) => slots[s] && slots[s].item_id !== undefined
    && !hidden.has(slots[s].item_id));
}

// What a key does to the item shown (`meta`, a slot's metadata): the message to send,
// the `kind` it is counted as while in flight and the class button it presses
// (`index`, -1: none); null for Accept on an item without a model suggestion among
// `classes` (nothing is answered unasked). `action` is a keyTable entry (not undo).
export function itemMessage(meta, action, classes = []) {
  const item_id = meta.item_id;
  if (action.kind === "skip") return { msg: { type: "skip", item_id }, kind: "skip", index: -1 };
  if (action.kind === "accept") {
    const s = meta.suggestion;
    const index = s ? classes.indexOf(s.label) : -1;
    if (index < 0) return null;
    return { msg: { type: "accept", item_id }, kind: "answer", index };
  }
  const label = classes[action.index];
  return { msg: { type: "answer", item_id, label }, kind: "answer", index: action.index };
}

// The round and budget bars with the answers in flight counted: `done` of the round
// (at most its size) and `labeled` in all. `progress` is the trait.
export function shownProgress(progress = {}, inFlight = 0) {
  return {
    done: Math.min((progress.round_done || 0) + inFlight, progress.round_size || 0),
    labeled: (progress.labeled || 0) + inFlight,
  };
}
