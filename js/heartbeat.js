// How long a view waits without a heartbeat before it says its kernel side is gone.
// Pure (no DOM). The kernel bumps the trait `heartbeat` every `heartbeat_s` seconds
// (alaas_lab/widgets/_base.py: HEARTBEAT_S); three beats missed, plus a second of
// slack, and never less than 6 s, so a busy kernel is not taken for a dead one.

// milliseconds of silence after which a view counts itself disconnected
export function beatTimeoutMs(heartbeatS) {
  const every = Number.isFinite(heartbeatS) && heartbeatS > 0 ? heartbeatS : 2;
  return 1000 * Math.max(6, 3 * every + 1);
}

// Follows a view's kernel side: heartbeats (the `heartbeat` trait) and restarts (the
// widget manager's `comm_live_update`, whose value is not readable here, so the view
// counts itself cut off until a heartbeat, which only a living kernel side sends, says
// otherwise). `onChange()` runs whenever `alive()` or `restarted()` flips; `stop()`
// releases the timer and the listeners.
export function watchKernel(model, onChange, { now = () => performance.now(), every = 1000 } = {}) {
  let lastBeat = now();
  let restarted = false;
  let silent = false;
  const onBeat = () => {
    lastBeat = now();
    if (silent || restarted) { silent = false; restarted = false; onChange(); }
  };
  const onCommLive = () => { restarted = true; onChange(); };
  const timer = setInterval(() => {
    const quiet = now() - lastBeat > beatTimeoutMs(model.get("heartbeat_s"));
    if (quiet !== silent) { silent = quiet; onChange(); }
  }, every);
  model.on("change:heartbeat", onBeat);
  model.on("comm_live_update", onCommLive);
  return {
    alive: () => !restarted && !silent,
    restarted: () => restarted,
    stop() {
      clearInterval(timer);
      model.off("change:heartbeat", onBeat);
      model.off("comm_live_update", onCommLive);
    },
  };
}
