// How long a view waits without a heartbeat before it says its kernel side is gone.
// Pure (no DOM). The kernel bumps the trait `heartbeat` every `heartbeat_s` seconds
// (alaas_lab/widgets/_base.py: HEARTBEAT_S); three beats missed, plus a second of
// slack, and never less than 6 s, so a busy kernel is not taken for a dead one.

// milliseconds of silence after which a view counts itself disconnected
export function beatTimeoutMs(heartbeatS) {
  const every = Number.isFinite(heartbeatS) && heartbeatS > 0 ? heartbeatS : 2;
  return 1000 * Math.max(6, 3 * every + 1);
}
