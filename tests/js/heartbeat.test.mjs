import assert from "node:assert/strict";
import { mock, test } from "node:test";

import { beatTimeoutMs, watchKernel } from "../../js/heartbeat.js";

test("three beats missed plus a second, never under 6 s", () => {
  assert.equal(beatTimeoutMs(2), 7000);
  assert.equal(beatTimeoutMs(5), 16000);
  assert.equal(beatTimeoutMs(0.5), 6000); // a fast beat still waits 6 s
  assert.equal(beatTimeoutMs(1.6), 6000);
  assert.equal(beatTimeoutMs(1.75), 6250);
});

test("a missing or odd heartbeat_s counts as the kernel's default, 2 s", () => {
  for (const v of [undefined, null, 0, -1, NaN, "2", Infinity]) assert.equal(beatTimeoutMs(v), 7000);
});

function fakeModel(traits) {
  const handlers = new Map();
  return {
    get: (k) => traits[k],
    on: (ev, f) => handlers.set(ev, [...(handlers.get(ev) || []), f]),
    off: (ev, f) => handlers.set(ev, (handlers.get(ev) || []).filter((g) => g !== f)),
    emit: (ev) => (handlers.get(ev) || []).forEach((f) => f()),
    listeners: () => [...handlers.values()].flat().length,
  };
}

test("watchKernel: silence, a restart and a beat flip alive(); stop() lets go", () => {
  mock.timers.enable({ apis: ["setInterval"] });
  try {
    let clock = 0;
    const model = fakeModel({ heartbeat_s: 2 });
    const changes = [];
    const kernel = watchKernel(model, () => changes.push(kernel.alive()), { now: () => clock });
    assert.equal(kernel.alive(), true);
    clock = 6500; mock.timers.tick(1000);
    assert.deepEqual(changes, []); // 6.5 s < 7 s: still alive
    clock = 7500; mock.timers.tick(1000);
    assert.deepEqual(changes, [false]); // silent
    model.emit("change:heartbeat");
    assert.deepEqual(changes, [false, true]);
    model.emit("comm_live_update");
    assert.equal(kernel.alive(), false);
    assert.equal(kernel.restarted(), true);
    model.emit("change:heartbeat"); // only a living kernel side beats
    assert.equal(kernel.restarted(), false);
    assert.deepEqual(changes, [false, true, false, true]);
    kernel.stop();
    assert.equal(model.listeners(), 0);
    clock = 60000; mock.timers.tick(5000);
    assert.equal(changes.length, 4); // the timer is gone
  } finally {
    mock.timers.reset();
  }
});
