"""Tests for the session journal: real SQLite files, real processes, real kills."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from alaas_lab.errors import InputError, JournalError
from alaas_lab.journal import SCHEMA_VERSION, Journal

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path)
    yield j
    j.close()


def _child(code: str, *args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_opens_wal_in_session_sqlite_with_schema_version(tmp_path):
    with Journal(tmp_path) as j:
        assert j.path == tmp_path / "session.sqlite"
        assert j.schema_version == SCHEMA_VERSION
    conn = sqlite3.connect(tmp_path / "session.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    # a file path works too, and missing parent directories are created
    with Journal(tmp_path / "a" / "b" / "s.sqlite") as j:
        assert j.path.is_file()


def test_add_items_is_idempotent_and_ids_are_dense_pool_indices(journal):
    assert journal.add_items(["a", "b", "c"]) == [0, 1, 2]
    assert journal.add_items(["c", "d", "a", "d"]) == [2, 3, 0, 3]
    assert len(journal) == 4
    assert journal.uris() == ["a", "b", "c", "d"]
    journal.add_items(["b"], content_keys=["sha256:xx"])
    assert journal.item(1).content_key == "sha256:xx"
    assert journal.add_items([]) == []
    with pytest.raises(InputError, match=r"uris\[1\] must be a non-empty str"):
        journal.add_items(["e", ""])
    assert len(journal) == 4  # nothing of the failed batch was added


def test_add_many_items_fast_and_in_order(journal):
    uris = [f"s3://bucket/img/{i:07d}.png" for i in range(20_000)]
    assert journal.add_items(uris) == list(range(20_000))
    assert journal.add_items(uris[::-1][:5]) == [19_999, 19_998, 19_997, 19_996, 19_995]


def test_labels_latest_wins_history_kept_and_retract(journal):
    journal.add_items(["a", "b", "c"])
    r1 = journal.record_label(0, "cat", labeler="ana", round=0, strategy="lc")
    r2 = journal.record_label(1, 3, labeler="ana", round=0, strategy="lc")
    r3 = journal.record_label(0, "dog", labeler="bo", round=1, strategy="kcg")
    assert r1 < r2 < r3
    assert journal.labels() == {0: "dog", 1: 3}
    assert isinstance(journal.labels()[1], int)
    hist = journal.label_history(0)
    assert [(h.label, h.labeler, h.round, h.strategy) for h in hist] == [
        ("cat", "ana", 0, "lc"),
        ("dog", "bo", 1, "kcg"),
    ]
    assert len(journal.label_history()) == 3
    journal.record_label(1, None, labeler="ana")  # undo
    assert journal.labels() == {0: "dog"}
    np.testing.assert_array_equal(journal.labeled_mask(), [True, False, False])
    np.testing.assert_array_equal(journal.labeled_mask(5), [True, False, False, False, False])
    with pytest.raises(InputError, match="smaller than the pool"):
        journal.labeled_mask(2)
    rows = journal.record_labels([1, 2], ["x", np.int64(4)], labeler="bo")
    assert len(rows) == 2 and journal.labels() == {0: "dog", 1: "x", 2: 4}


def test_label_for_unknown_item_is_refused_with_clear_error(journal):
    with pytest.raises(JournalError, match=r"unknown item id\(s\) \[0\]; the pool is empty"):
        journal.record_label(0, "cat")
    journal.add_items(["a", "b"])
    with pytest.raises(JournalError, match=r"unknown item id\(s\) \[7\]; the pool has items 0..1"):
        journal.record_label(7, "cat")
    with pytest.raises(JournalError, match=r"\[5, 9\]"):
        journal.record_labels([0, 5, 9], ["a", "b", "c"])
    assert journal.label_history() == []  # the batch was all-or-nothing
    with pytest.raises(InputError, match="label must be"):
        journal.record_label(0, 1.5)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="label must be"):
        journal.record_label(0, True)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="item_id must be"):
        journal.record_label(-1, "cat")


def test_quarantine_rounds_selections_forecasts_events(journal):
    journal.add_items([f"u{i}" for i in range(6)])
    journal.quarantine(4, "decode failed: truncated PNG")
    assert journal.quarantined() == {4: "decode failed: truncated PNG"}
    assert journal.item(4).status == "quarantined"
    with pytest.raises(JournalError, match="unknown item"):
        journal.quarantine(40, "x")

    journal.record_round(0, "lc", n_labeled=10, top1=0.5, top5=0.9, extra={"loss": 1.25})
    journal.record_round(0, "kcg", n_labeled=10, top1=0.55)
    journal.record_round(0, "lc", n_labeled=10, top1=0.51)  # replaces
    rounds = journal.rounds()
    assert [(r.round, r.strategy, r.top1) for r in rounds] == [(0, "kcg", 0.55), (0, "lc", 0.51)]
    assert journal.rounds("lc")[0].extra == {}
    with pytest.raises(InputError, match="top1 must be finite"):
        journal.record_round(1, "lc", n_labeled=1, top1=float("nan"))

    journal.record_selection(1, "lc", [3, 0, 4, 5])
    journal.record_selection(1, "kcg", [2])
    assert [(s.rank, s.item_id) for s in journal.selections(1, "lc")] == [
        (0, 3),
        (1, 0),
        (2, 4),
        (3, 5),
    ]
    journal.record_label(0, "cat")
    journal.record_label(5, "dog")
    journal.record_label(5, None)  # retracted: pending again
    pending = journal.pending_selections()
    # 0 is labeled, 4 is quarantined; the rest in order round, strategy, rank
    assert [(s.strategy, s.item_id) for s in pending] == [("kcg", 2), ("lc", 3), ("lc", 5)]
    assert [s.item_id for s in journal.pending_selections(strategy="lc")] == [3, 5]
    journal.record_selection(1, "lc", [1])  # a re-selection replaces the old one
    assert [s.item_id for s in journal.selections(1, "lc")] == [1]
    with pytest.raises(JournalError, match="unknown item"):
        journal.record_selection(2, "lc", [99])

    journal.record_forecast(1, "lc", predicted=0.6)
    journal.record_forecast(1, "kcg", predicted=0.4, eliminated=True, reason="lowest forecast")
    journal.record_forecast(1, "lc", actual=0.58)  # fills in, keeps predicted
    journal.record_forecast(1, "kcg", actual=0.41)  # elimination sticks
    fc = {f.strategy: f for f in journal.forecasts()}
    assert (fc["lc"].predicted, fc["lc"].actual, fc["lc"].eliminated) == (0.6, 0.58, False)
    assert (fc["kcg"].eliminated, fc["kcg"].reason) == (True, "lowest forecast")
    assert journal.eliminated() == {"kcg": 1}

    e1 = journal.record_event("fetch_error", {"uri": "u4", "attempts": 3})
    e2 = journal.record_event("config", {"budget": 100})
    assert [e.payload for e in journal.events()] == [{"uri": "u4", "attempts": 3}, {"budget": 100}]
    assert [e.event_id for e in journal.events("config")] == [e2]
    assert [e.event_id for e in journal.events(since=e1)] == [e2]
    with pytest.raises(InputError, match="JSON-serializable"):
        journal.record_event("bad", {"x": object()})


def test_reopen_resumes_everything(tmp_path):
    with Journal(tmp_path) as j:
        j.add_items(["a", "b", "c"])
        j.record_label(2, "cat", round=0, strategy="lc")
        j.record_round(0, "lc", n_labeled=1, top1=0.3)
        j.record_selection(1, "lc", [0, 1])
        j.record_forecast(1, "lc", predicted=0.5)
        j.record_event("boot", {"pid": 1})
    with Journal(tmp_path / "session.sqlite") as j:
        assert j.add_items(["c", "d"]) == [2, 3]
        assert j.labels() == {2: "cat"}
        assert j.rounds()[0].top1 == 0.3
        assert [s.item_id for s in j.pending_selections()] == [0, 1]
        assert j.forecasts()[0].predicted == 0.5
        assert j.events("boot")[0].payload == {"pid": 1}


def test_label_survives_sigkill_right_after_record_label_returns(tmp_path):
    code = """
        import os, signal, sys
        from alaas_lab.journal import Journal
        j = Journal(sys.argv[1])
        ids = j.add_items(["a", "b", "c"])
        j.record_label(ids[1], "cat", labeler="ana", round=0, strategy="lc")
        os.kill(os.getpid(), signal.SIGKILL)
    """
    proc = _child(code, str(tmp_path))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err
    assert (tmp_path / "session.sqlite-wal").exists()  # never checkpointed: killed
    with Journal(tmp_path) as j:
        assert j.labels() == {1: "cat"}
        assert j.label_history()[0].labeler == "ana"


def test_every_acknowledged_label_survives_a_kill_mid_stream(tmp_path):
    code = """
        import sys
        from alaas_lab.journal import Journal
        j = Journal(sys.argv[1], synchronous="NORMAL")
        j.add_items([f"u{i}" for i in range(100)])
        i = 0
        while True:
            row = j.record_label(i % 100, f"c{i}")
            print(row, i % 100, f"c{i}", flush=True)  # the acknowledgement
            i += 1
    """
    proc = _child(code, str(tmp_path))
    acked = []
    for line in proc.stdout:
        acked.append(line.split())
        if len(acked) == 150:
            os.kill(proc.pid, signal.SIGKILL)  # while it is busy writing more
            break
    proc.wait(timeout=60)
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    with Journal(tmp_path) as j:
        hist = {h.row_id: (h.item_id, h.label) for h in j.label_history()}
        for row, item, label in acked:
            assert hist[int(row)] == (int(item), label)


def test_concurrent_writers_from_four_threads(tmp_path):
    # NORMAL: this is about the lock, not fsync (FULL costs ~3 ms per label here)
    journal = Journal(tmp_path, synchronous="NORMAL")
    journal.add_items([f"u{i}" for i in range(1000)])
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            for k in range(250):
                journal.record_label(t * 250 + k, f"t{t}-{k}", labeler=f"thread{t}")
                if k % 50 == 0:  # reads interleaved with the writes
                    journal.labels()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    labels = journal.labels()
    assert len(labels) == 1000
    assert all(labels[t * 250 + k] == f"t{t}-{k}" for t in range(4) for k in range(250))
    assert len({h.row_id for h in journal.label_history()}) == 1000
    journal.close()


def test_newer_schema_is_refused_and_left_untouched(tmp_path):
    Journal(tmp_path).close()
    db = tmp_path / "session.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        Journal(tmp_path)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT value FROM meta").fetchone()[0] == str(SCHEMA_VERSION + 1)
    conn.close()


def test_foreign_files_are_refused(tmp_path):
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="not an alaas_lab journal"):
        Journal(other)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(JournalError, match="cannot use .*junk.sqlite as a journal"):
        Journal(junk)


def test_unwritable_paths_give_journal_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(JournalError, match="cannot create the journal directory"):
        Journal(blocker / "sub" / "session.sqlite")
    with pytest.raises(JournalError, match="cannot create the journal directory"):
        Journal(blocker / "session.sqlite")  # parent is a file
    with pytest.raises(JournalError, match=r"/proc"):
        Journal("/proc/alaas/session.sqlite")  # nobody, not even root, can write here


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_directory_gives_journal_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(JournalError, match="not writable"):
            Journal(ro)
    finally:
        ro.chmod(0o755)


def test_closed_journal_raises(tmp_path):
    j = Journal(tmp_path)
    j.close()
    j.close()  # idempotent
    with pytest.raises(JournalError, match="is closed"):
        j.labels()
    assert "closed" in repr(j)
    with pytest.raises(InputError, match="synchronous"):
        Journal(tmp_path, synchronous="OFF")
