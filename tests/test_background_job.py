"""BackgroundJob: one run at a time, requests during a run merge, the thread yields the CPU."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from alaas_lab.worker.background_job import NICE, BackgroundJob


def test_requests_during_a_run_merge_into_one_more_run():
    started, release = threading.Event(), threading.Event()
    runs = []

    def work():
        runs.append(1)
        started.set()
        release.wait(5)

    job = BackgroundJob(work, name="test-job")
    try:
        job.request()
        assert started.wait(5)
        for _ in range(5):  # asked five times while running: one more run, not five
            job.request()
        release.set()
        job.wait(5)
        assert len(runs) == 2 and not job.running
    finally:
        job.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority is Linux's")
def test_the_job_thread_runs_at_a_lower_priority_than_the_worker():
    seen = {}

    def work():
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    job = BackgroundJob(work, name="test-job")
    try:
        job.request()
        job.wait(5)
    finally:
        job.close()
    here = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert seen["nice"] == min(19, here + NICE)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == here  # ours unchanged
