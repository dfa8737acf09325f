// The pipeline monitor's arithmetic, apart from the DOM: what each stage row shows.

// Items a stage has handled: embed emits one output per batch and store takes
// batches, so the larger of its in and out counts counts items.
export const itemsDone = (r) => Math.max(r.items_in || 0, r.items_out || 0);

// One entry per stage row of the `stages` trait, for the push `push`:
// - done: items the stage did (an item that failed in a stage passes through the
//   later ones, to be quarantined at the end, so failures up to it are taken off);
// - total: items of the push (or the largest stage count when the push is unknown);
// - shown: the bar's fill in [0, 1] (full once a push is over with nothing to do);
// - depth, capacity: the stage's input queue (the backpressure);
// - busy: the share of the push's wall time its threads worked, in %, or null;
// - failed: items that failed in this stage (fetch failures are not counted here:
//   they never reach a stage); rate: items per second, or null.
export function stageRows(rows, push = {}) {
  const failed = push.failed || {};
  const failedIn = (r) => (r.name === "fetch" ? 0 : failed[r.name] || 0);
  const total = push.total || Math.max(0, ...rows.map(itemsDone));
  const wall = push.wall_s || push.seconds || 0;
  let failedUpTo = 0;
  return rows.map((r) => {
    failedUpTo += failedIn(r);
    const done = Math.max(0, itemsDone(r) - failedUpTo);
    const frac = total ? Math.min(1, done / total) : 0;
    const workers = r.workers || 0;
    return {
      name: r.name,
      done,
      total,
      shown: push.running || total ? frac : 1,
      depth: r.queue_depth || 0,
      capacity: r.queue_capacity || 0,
      busy: wall && workers ? Math.min(100, (100 * (r.busy_s || 0)) / (wall * workers)) : null,
      failed: failedIn(r),
      rate: wall ? done / wall : null,
      workers,
    };
  });
}

// The cache hit rate in % over everything looked up (null before any lookup).
export function hitRate(totals) {
  const seen = (totals.cache_hits || 0) + (totals.embedded || 0);
  return seen ? (100 * (totals.cache_hits || 0)) / seen : null;
}
