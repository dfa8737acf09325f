"""Tests for the wire protocol: real ZeroMQ sockets, real frames, no mocks."""

from __future__ import annotations

import json
import pickle
from typing import TypedDict

import numpy as np
import pytest
import zmq

from alaas_lab.errors import InputError, ProtocolError
from alaas_lab.protocol import (
    DELIM,
    MESSAGE_KINDS,
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    Session,
    error_content,
    new_key,
    register_message_type,
)

KEY = b"test-key-0123456789"


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def _pair(ctx, kind_a, kind_b, addr):
    a = ctx.socket(kind_a)
    a.linger = 0
    a.bind(addr)
    b = ctx.socket(kind_b)
    b.linger = 0
    b.connect(addr)
    for s in (a, b):
        s.rcvtimeo = 5000
        s.sndtimeo = 5000
    return a, b


def _raw(session: Session, header: dict, tree, buffers=()) -> list[bytes]:
    """Frames for a hand-made header/content, signed by ``session``."""
    h = json.dumps(header).encode()
    c = json.dumps(tree).encode() if not isinstance(tree, bytes) else tree
    bufs = [bytes(b) for b in buffers]
    return [session.sign([h, c, *bufs]), h, c, *bufs]


# --------------------------------------------------------------------------- #
# Round trips over real sockets                                               #
# --------------------------------------------------------------------------- #


def test_req_rep_inproc_round_trip_with_arrays_and_parent(ctx):
    rep, req = _pair(ctx, zmq.REP, zmq.REQ, "inproc://rr")
    client, worker = Session(KEY), Session(KEY)
    feats = np.random.default_rng(0).normal(size=(100, 16)).astype(np.float32)
    sent_id = client.send(req, "push_data", {"uris": ["a", "b"], "features": feats})

    msg = worker.recv(rep)
    assert msg.msg_type == "push_data"
    assert msg.msg_id == sent_id
    assert msg.parent_id is None
    assert msg.header["version"] == PROTOCOL_VERSION
    assert msg.header["session"] == client.session_id
    assert msg.content["uris"] == ["a", "b"]
    np.testing.assert_array_equal(msg.content["features"], feats)
    assert msg.content["features"].dtype == np.float32

    worker.reply(rep, msg, "push_data_reply", {"item_ids": [0, 1], "n_items": 2})
    answer = client.recv(req)
    assert answer.msg_type == "push_data_reply"
    assert answer.parent_id == sent_id
    assert answer.content == {"item_ids": [0, 1], "n_items": 2}


def test_dealer_router_ipc_routes_replies_to_each_client(ctx, tmp_path):
    addr = f"ipc://{tmp_path}/w.sock"
    assert len(addr) < 100, "ipc path too long for this OS"
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    router.rcvtimeo = 5000
    router.bind(addr)
    dealers = []
    for _ in range(2):
        d = ctx.socket(zmq.DEALER)
        d.linger = 0
        d.rcvtimeo = 5000
        d.connect(addr)
        dealers.append(d)
    worker = Session(KEY)
    clients = [Session(KEY), Session(KEY)]
    ids = [
        c.send(d, "query", {"budget": 5 + i})
        for i, (c, d) in enumerate(zip(clients, dealers, strict=True))
    ]
    for _ in range(2):
        msg = worker.recv(router)
        assert len(msg.identities) == 1  # the ROUTER's routing id of the sender
        worker.reply(
            router, msg, "query_reply", {"round": 0, "item_ids": list(range(msg.content["budget"]))}
        )
    for i, (c, d) in enumerate(zip(clients, dealers, strict=True)):
        ans = c.recv(d)
        assert ans.parent_id == ids[i]
        assert ans.content["item_ids"] == list(range(5 + i))


def test_pub_sub_topic_filtering(ctx):
    pub, sub = _pair(ctx, zmq.PUB, zmq.SUB, "inproc://events")
    sub.subscribe(b"round_result")
    worker, client = Session(KEY), Session(KEY)
    # a SUB only sees messages published after its subscription reaches the PUB
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    for _ in range(200):
        worker.publish(pub, "progress", {"stage": "embed", "done": 1, "total": None})
        worker.publish(pub, "round_result", {"round": 1, "strategy": "lc", "n_labeled": 10})
        if poller.poll(20):
            break
    msg = client.recv(sub)
    assert msg.identities == (b"round_result",)
    assert msg.msg_type == "round_result"  # progress was filtered out by the topic
    assert msg.content == {"round": 1, "strategy": "lc", "n_labeled": 10}


# --------------------------------------------------------------------------- #
# Arrays and bytes                                                            #
# --------------------------------------------------------------------------- #

ARRAYS = [
    np.arange(12, dtype=np.float32).reshape(3, 4),
    np.array(2.5),  # 0-d
    np.array(7, dtype=np.int8),  # 0-d int
    np.zeros((0,), dtype=np.float64),  # empty
    np.zeros((4, 0, 3), dtype=np.uint16),  # empty with other dims
    np.array([True, False, True]),
    np.arange(6, dtype=np.complex64).reshape(2, 3) * (1 + 2j),
    np.arange(6, dtype=">i4").reshape(3, 2),  # big-endian stays big-endian
    np.array(["2024-01-02", "1999-12-31"], dtype="datetime64[s]"),
    np.array(["ab", "ünï", ""]),
    np.arange(5 * 6 * 7, dtype=np.int64).reshape(5, 6, 7) - 100,
    np.array([np.nan, np.inf, -0.0], dtype=np.float16),  # NaN is fine inside arrays
]


@pytest.mark.parametrize("arr", ARRAYS, ids=lambda a: f"{a.dtype.str}{a.shape}")
def test_array_round_trip_keeps_dtype_shape_and_values(arr):
    s = Session(KEY)
    msg = Session(KEY).deserialize(s.serialize("push_data", {"features": arr}))
    out = msg.content["features"]
    assert out.dtype == arr.dtype
    assert out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize(
    "arr",
    [
        np.arange(20.0).reshape(4, 5)[:, ::2],  # strided
        np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)),
        np.arange(24, dtype=np.float32).reshape(2, 3, 4).transpose(2, 0, 1),
    ],
)
def test_non_contiguous_arrays_arrive_equal_and_c_contiguous(arr):
    assert not arr.flags.c_contiguous
    msg = Session().deserialize(Session().serialize("push_data", {"features": arr}))
    out = msg.content["features"]
    np.testing.assert_array_equal(out, arr)
    assert out.flags.c_contiguous


def test_contiguous_array_is_sent_and_decoded_without_copy():
    arr = np.arange(1000, dtype=np.float32)
    frames = Session().serialize("push_data", {"features": arr})
    assert np.shares_memory(np.asarray(frames[3]), arr)  # the frame is a view of arr
    msg = Session().deserialize(frames)
    assert np.shares_memory(msg.content["features"], arr)  # and so is the decoded array
    assert not msg.content["features"].flags.writeable


def test_large_array_over_socket_is_a_read_only_view_on_the_frame(ctx):
    rep, req = _pair(ctx, zmq.REP, zmq.REQ, "inproc://big")
    arr = np.random.default_rng(1).normal(size=(2000, 64)).astype(np.float32)  # 512 KB
    Session().send(req, "push_data", {"features": arr})
    msg = Session().recv(rep)
    out = msg.content["features"]
    np.testing.assert_array_equal(out, arr)
    assert np.shares_memory(out, np.asarray(msg.buffers[0]))  # backed by the zmq frame
    assert not out.flags.writeable  # read-only: copy before modifying


def test_bytes_nested_containers_and_numpy_scalars():
    img = bytes(range(256)) * 4
    content = {
        "uris": ["s3://b/x.png"],
        "wait": True,
        "payload": {
            "images": [img, bytearray(b"\x00\xff"), memoryview(b"mv")],
            "meta": [{"a": np.ones((2, 2), dtype=np.float32), "b": None}, [1, 2.5, "x"]],
            "scalars": [np.float32(0.5), np.int64(3), np.bool_(True), np.str_("s")],
            "tuple": (1, 2),
        },
    }
    msg = Session(KEY).deserialize(Session(KEY).serialize("push_data", content))
    p = msg.content["payload"]
    assert p["images"] == [img, b"\x00\xff", b"mv"]
    np.testing.assert_array_equal(p["meta"][0]["a"], np.ones((2, 2), dtype=np.float32))
    assert p["meta"][0]["b"] is None and p["meta"][1] == [1, 2.5, "x"]
    assert p["scalars"] == [0.5, 3, True, "s"]
    assert [type(v) for v in p["scalars"]] == [float, int, bool, str]
    assert p["tuple"] == [1, 2]
    assert len(msg.buffers) == 4


# --------------------------------------------------------------------------- #
# What is refused when sending                                                #
# --------------------------------------------------------------------------- #


class _Thing:
    def __reduce__(self):  # would run on unpickling; the protocol must never get here
        raise AssertionError("pickle was used")


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (np.array([object(), 1], dtype=object), "never does"),
        (np.zeros(2, dtype=[("a", "f4"), ("b", "i4")]), "structured"),
        (_Thing(), "never pickles"),
        ({1, 2}, "never pickles"),
        (float("nan"), "NaN"),
        ({1: "a"}, "keys must be str"),
        ({"__ndarray__": 0}, "reserved"),
    ],
    ids=["object-dtype", "structured", "instance", "set", "nan", "int-key", "reserved-key"],
)
def test_unsendable_values_raise_protocol_error(value, match):
    with pytest.raises(ProtocolError, match=match) as info:
        Session().serialize("push_data", {"x": value})
    assert info.value.reason == "encode"


def test_content_is_checked_against_its_spec_on_send():
    s = Session()
    with pytest.raises(ProtocolError, match="missing required field.*budget"):
        s.serialize("query", {})
    with pytest.raises(ProtocolError, match="'budget' must be int; got 'ten'"):
        s.serialize("query", {"budget": "ten"})
    with pytest.raises(ProtocolError, match="'budget' must be int; got True"):
        s.serialize("query", {"budget": True})
    with pytest.raises(ProtocolError, match="'labels' must be"):
        s.serialize("label_many", {"item_ids": [1], "labels": [1.5]})
    with pytest.raises(ProtocolError, match="unknown message type 'nope'"):
        s.serialize("nope", {})
    # extra fields are forward compatible; numpy ints count as int
    s.serialize("query", {"budget": np.int64(3), "hint": "x"})
    Session(validate=False).serialize("query", {})


# --------------------------------------------------------------------------- #
# What is refused when receiving                                              #
# --------------------------------------------------------------------------- #


def _frames(session=None, msg_type="push_data", content=None):
    session = session or Session(KEY)
    content = {"uris": ["a"], "features": np.arange(6.0)} if content is None else content
    return [bytes(f) for f in session.serialize(msg_type, content)]


@pytest.mark.parametrize("frame_index", [1, 2, 3], ids=["header", "content", "buffer"])
def test_tampered_frame_fails_signature(frame_index):
    frames = _frames()
    tampered = bytearray(frames[frame_index])
    tampered[len(tampered) // 2] ^= 0x01
    frames[frame_index] = bytes(tampered)
    with pytest.raises(ProtocolError, match="bad message signature") as info:
        Session(KEY).deserialize(frames)
    assert info.value.reason == "signature"
    assert info.value.header is None  # nothing of a forged message is trusted


def test_dropped_buffer_and_bytes_moved_between_frames_fail_signature():
    frames = _frames(content={"features": np.arange(4.0), "b": b"xy"})
    with pytest.raises(ProtocolError, match="signature"):
        Session(KEY).deserialize(frames[:-1])
    # same concatenated bytes, different framing: still refused (frames are length-prefixed)
    moved = frames[:3] + [frames[3] + frames[4][:1], frames[4][1:]]
    assert b"".join(moved[1:]) == b"".join(frames[1:])
    with pytest.raises(ProtocolError, match="signature"):
        Session(KEY).deserialize(moved)


def test_key_mismatches_are_reported():
    with pytest.raises(ProtocolError, match="bad message signature"):
        Session(b"other-key").deserialize(_frames())
    with pytest.raises(ProtocolError, match="not signed but this session requires"):
        Session(KEY).deserialize(_frames(Session()))
    with pytest.raises(ProtocolError, match="signed but this session has no key"):
        Session().deserialize(_frames())
    # unsigned to unsigned is fine (ipc/loopback default)
    assert Session().deserialize(_frames(Session())).msg_type == "push_data"


def test_replay_is_refused_and_window_is_bounded():
    receiver = Session(KEY, replay_window=3)
    first = _frames()
    receiver.deserialize(first)
    with pytest.raises(ProtocolError, match="replay") as info:
        receiver.deserialize(first)
    assert info.value.reason == "replay"
    assert info.value.header["msg_id"] == json.loads(first[1])["msg_id"]
    for _ in range(3):  # push the first id out of the LRU window
        receiver.deserialize(_frames())
    assert receiver.deserialize(first).msg_type == "push_data"
    # an unsigned session cannot tell a replay from a resend and does not try
    plain, frames = Session(), _frames(Session())
    plain.deserialize(frames)
    plain.deserialize(frames)


def _header(**over):
    h = Session(KEY).make_header("query")
    h.update(over)
    return h


@pytest.mark.parametrize(
    ("version", "ok"), [("1.0", True), ("1.9", True), ("2.0", False), ("0.4", False)]
)
def test_major_version_must_match(version, ok):
    frames = _raw(Session(KEY), _header(version=version), {"budget": 1})
    if ok:
        assert Session(KEY).deserialize(frames).content == {"budget": 1}
    else:
        with pytest.raises(ProtocolError, match=f"peer speaks protocol {version}") as info:
            Session(KEY).deserialize(frames)
        assert info.value.reason == "version"


@pytest.mark.parametrize(
    ("frames", "reason", "match"),
    [
        ([], "frames", "at least 3 frames"),
        ([b"\x00garbage"], "frames", "at least 3 frames"),
        ([b"", b"\xff\xfe\x00", b"{}"], "header", "not UTF-8"),
        ([b"", b"{not json", b"{}"], "header", "not valid JSON"),
        ([b"", b"[1, 2]", b"{}"], "header", "must be a JSON object"),
        ([b"", b'{"msg_id": "x"}', b"{}"], "header", "missing or has non-str"),
        ([b"", pickle.dumps({"msg_id": "x"}), b"{}"], "header", "not (UTF-8|valid JSON)"),
    ],
    ids=["empty", "one-frame", "non-utf8", "bad-json", "list", "fields", "pickle"],
)
def test_garbage_frames_raise_protocol_error(frames, reason, match):
    with pytest.raises(ProtocolError, match=match) as info:
        Session().deserialize(frames)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("header", "tree", "buffers", "reason", "match"),
    [
        (_header(msg_type="launch_missiles"), {}, [], "msg_type", "unknown message type"),
        (_header(version="one"), {"budget": 1}, [], "version", "not 'MAJOR.MINOR'"),
        (_header(parent_id=5), {"budget": 1}, [], "header", "parent_id"),
        (_header(), b"[1]", [], "content", "must be a JSON object"),
        (_header(), b"{\xff}", [], "content", "not UTF-8"),
        (_header(), b'{"budget": NaN}', [], "content", "not valid JSON"),
        (_header(), {"x": 1}, [], "content", "missing required field"),
        (_header(), {"budget": 1.5}, [], "content", "must be int"),
        (
            _header(),
            {"budget": 1, "a": {"__ndarray__": 1, "dtype": "<f4", "shape": [1]}},
            [b"1234"],
            "buffers",
            "points to buffer 1",
        ),
        (
            _header(),
            {"budget": 1, "a": {"__ndarray__": 0, "dtype": "<f4", "shape": [2]}},
            [b"1234"],
            "buffers",
            "has 4 bytes",
        ),
        (
            _header(),
            {"budget": 1, "a": {"__ndarray__": 0, "dtype": "|O", "shape": [1]}},
            [b"12345678"],
            "content",
            "object and structured dtypes are refused",
        ),
        (
            _header(),
            {"budget": 1, "a": {"__ndarray__": 0, "dtype": "<f4", "shape": [-1]}},
            [b"1234"],
            "content",
            "non-negative ints",
        ),
        (_header(), {"budget": 1}, [b"stray"], "buffers", "not referenced"),
        (
            _header(),
            {"budget": 1, "a": {"__bytes__": 0}, "b": {"__bytes__": 0}},
            [b"x"],
            "buffers",
            "referenced twice",
        ),
    ],
    ids=[
        "unknown-type",
        "bad-version",
        "bad-parent",
        "content-list",
        "content-utf8",
        "content-nan",
        "missing-field",
        "wrong-type",
        "buffer-index",
        "buffer-size",
        "object-dtype",
        "bad-shape",
        "stray-buffer",
        "buffer-twice",
    ],
)
def test_bad_messages_with_valid_signature_raise_and_keep_header(
    header, tree, buffers, reason, match
):
    with pytest.raises(ProtocolError, match=match) as info:
        Session(KEY).deserialize(_raw(Session(KEY), header, tree, buffers))
    assert info.value.reason == reason
    assert info.value.header["msg_id"] == header["msg_id"]  # an error reply can name it


# --------------------------------------------------------------------------- #
# Error replies: a worker answers, it never crashes                           #
# --------------------------------------------------------------------------- #


def test_worker_answers_garbage_and_bad_requests_with_error_replies(ctx):
    rep, req = _pair(ctx, zmq.REP, zmq.REQ, "inproc://err")
    worker, client = Session(KEY), Session(KEY)

    req.send_multipart([b"\xde\xad\xbe\xef", b"x"])  # not our protocol at all
    with pytest.raises(ProtocolError) as info:
        worker.recv(rep)
    worker.send_error(rep, info.value)
    err = client.recv(req)
    assert err.msg_type == "error"
    assert err.parent_id is None
    assert err.content["ename"] == "ProtocolError"
    assert err.content["reason"] == "frames"

    bad_id = client.send(req, "query", {"budget": 1})
    msg = worker.recv(rep)
    worker.send_error(rep, InputError("budget 1 exceeds the pool"), request=msg, budget=1)
    err = client.recv(req)
    assert err.parent_id == bad_id
    assert err.content["evalue"] == "budget 1 exceeds the pool"
    assert err.content["budget"] == 1

    # a signed request with content that fails its spec: error reply names the request
    frames = _raw(client, _header(msg_type="query"), {"budget": "x"})
    req.send_multipart([DELIM, *frames])
    with pytest.raises(ProtocolError) as info:
        worker.recv(rep)
    worker.send_error(rep, info.value)
    err = client.recv(req)
    assert err.parent_id == json.loads(frames[1])["msg_id"]
    assert err.content["reason"] == "content"


def test_router_routes_error_reply_for_garbage_back_to_its_sender(ctx):
    router, dealer = _pair(ctx, zmq.ROUTER, zmq.DEALER, "inproc://rerr")
    dealer.send_multipart([b"garbage"])
    worker = Session()
    with pytest.raises(ProtocolError, match="delimiter") as info:
        worker.recv(router)
    assert len(info.value.identities) == 1
    worker.send_error(router, info.value)
    err = Session().recv(dealer)
    assert err.msg_type == "error" and err.content["reason"] == "frames"


def test_error_content_and_error_frames():
    try:
        raise ValueError("bad value")
    except ValueError as exc:
        content = error_content(exc, item_id=7)
    assert content["ename"] == "ValueError"
    assert content["evalue"] == "bad value"
    assert content["item_id"] == 7
    assert any("bad value" in line for line in content["traceback"])
    assert error_content("plain") == {"ename": "Error", "evalue": "plain", "reason": "error"}

    s = Session(KEY)
    exc = ProtocolError("nope", reason="replay", header={"msg_id": "abc"})
    frames = s.error_frames(exc)
    assert frames[0] == DELIM
    msg = Session(KEY).deserialize(frames[1:])
    assert msg.parent_id == "abc" and msg.content["reason"] == "replay"


# --------------------------------------------------------------------------- #
# Registry                                                                    #
# --------------------------------------------------------------------------- #


def test_message_registry_is_read_only_extensible_and_refuses_silent_overwrite():
    for name in ("push_data", "query", "label", "label_many", "status", "stop", "error"):
        assert name in MESSAGE_TYPES
    for name in ("progress", "round_result", "eliminated", "quarantined"):
        assert MESSAGE_KINDS[name] == "event"
    with pytest.raises(TypeError):
        MESSAGE_TYPES["x"] = dict  # type: ignore[index]

    class PingContent(TypedDict):
        nonce: int

    register_message_type("ping_test", PingContent, kind="request")
    register_message_type("ping_test", PingContent, kind="request")  # same spec: no-op
    msg = Session().deserialize(Session().serialize("ping_test", {"nonce": 4}))
    assert msg.content == {"nonce": 4}

    class Other(TypedDict):
        other: str

    with pytest.raises(InputError, match="already registered"):
        register_message_type("ping_test", Other, kind="request")
    with pytest.raises(InputError, match="already registered"):
        register_message_type("query", PingContent, kind="request")
    with pytest.raises(InputError, match="lower_snake_case"):
        register_message_type("Bad Name", PingContent, kind="event")
    register_message_type("ping_test", Other, kind="event", clobber=True)
    assert MESSAGE_KINDS["ping_test"] == "event"


def test_session_arguments_are_checked():
    with pytest.raises(InputError, match="key must be bytes"):
        Session(key=123)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="replay_window"):
        Session(replay_window=0)
    assert Session("text-key").signed and not Session().signed
    key = new_key()
    assert len(key) == 64 and key != new_key()
