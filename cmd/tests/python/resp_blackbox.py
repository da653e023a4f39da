"""Black-box tests of Hydra's RESP3 API with redis-py, a client nobody here wrote.

Usage: python3 resp_blackbox.py PORT
Prints one line per test and a closing "N passed, M failed" line; exits 1 on
any failure.
"""
import sys
import time
import uuid

import redis

PORT = int(sys.argv[1])
results = []


def test(fn):
    try:
        fn()
        results.append((fn.__name__, None))
        print(f"ok   {fn.__name__}")
    except Exception as e:  # noqa: BLE001 - report every failure
        results.append((fn.__name__, e))
        print(f"FAIL {fn.__name__}: {e!r}")
    return fn


def client(protocol=3):
    return redis.Redis(host="127.0.0.1", port=PORT, protocol=protocol)


def as_dict(reply):
    """A RESP3 map arrives as a dict; a RESP2 reply as a flat list."""
    if isinstance(reply, dict):
        return {k.decode() if isinstance(k, bytes) else k: v for k, v in reply.items()}
    it = iter(reply)
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in zip(it, it)}


@test
def hello_and_ping():
    r = client()
    assert r.ping() is True
    info = as_dict(r.execute_command("HELLO", "3"))
    assert info["server"] == b"hydra", info
    assert info["proto"] == 3
    assert info["num_partitions"] == 32


@test
def eappend_escan_esver():
    r = client()
    s = f"user-{uuid.uuid4()}"
    a = as_dict(r.execute_command("EAPPEND", s, "UserRegistered", "PAYLOAD", '{"name":"Alice"}'))
    assert a["stream_version"] == 0
    b = as_dict(r.execute_command("EAPPEND", s, "EmailVerified", "EXPECTED_VERSION", "0", "METADATA", "m"))
    assert b["stream_version"] == 1
    assert b["partition_sequence"] == a["partition_sequence"] + 1
    scan = as_dict(r.execute_command("ESCAN", s, "-", "+", "COUNT", "10"))
    assert scan["has_more"] in (False, 0)
    events = [as_dict(e) for e in scan["events"]]
    assert [e["event_name"] for e in events] == [b"UserRegistered", b"EmailVerified"]
    assert events[0]["payload"] == b'{"name":"Alice"}'
    assert events[1]["metadata"] == b"m"
    assert r.execute_command("ESVER", s) == 1
    assert r.execute_command("ESVER", f"none-{uuid.uuid4()}") is None
    part = as_dict(r.execute_command("ESCAN", s, "1", "+", "COUNT", "1"))
    assert len(part["events"]) == 1
    # As SierraDB's: a full page, or an event past the end, has more.
    assert part["has_more"] in (True, 1)
    first = as_dict(r.execute_command("ESCAN", s, "0", "0"))
    assert len(first["events"]) == 1 and first["has_more"] in (True, 1)


@test
def wrong_expected_version_is_a_wrongver_error():
    r = client()
    s = f"order-{uuid.uuid4()}"
    r.execute_command("EAPPEND", s, "Placed", "EXPECTED_VERSION", "empty")
    try:
        r.execute_command("EAPPEND", s, "Placed", "EXPECTED_VERSION", "empty")
    except redis.ResponseError as e:
        assert str(e).startswith("WRONGVER"), e
    else:
        raise AssertionError("no error")


@test
def event_ids_eget_and_idempotency():
    r = client()
    s = f"pay-{uuid.uuid4()}"
    eid = str(uuid.uuid4())
    first = as_dict(r.execute_command("EAPPEND", s, "Paid", "EVENT_ID", eid, "PAYLOAD", "x"))
    again = as_dict(r.execute_command("EAPPEND", s, "Paid", "EVENT_ID", eid, "PAYLOAD", "x"))
    assert first["stream_version"] == again["stream_version"] == 0
    e = as_dict(r.execute_command("EGET", eid))
    assert e["stream_id"] == s.encode() and e["payload"] == b"x"
    assert r.execute_command("EGET", str(uuid.uuid4())) is None


@test
def emappend_is_all_or_nothing():
    r = client()
    a, b = f"a-{uuid.uuid4()}", f"b-{uuid.uuid4()}"
    pk = str(uuid.uuid4())
    ok = as_dict(r.execute_command("EMAPPEND", pk, a, "EvA", "PAYLOAD", "1", b, "EvB", "PAYLOAD", "2"))
    assert len(ok["events"]) == 2
    try:
        r.execute_command("EMAPPEND", pk, a, "EvA", "EXPECTED_VERSION", "9", b, "EvB")
    except redis.ResponseError as e:
        assert str(e).startswith("WRONGVER"), e
    else:
        raise AssertionError("no error")
    assert r.execute_command("ESVER", b) == 0, "the failed EMAPPEND wrote nothing"


@test
def partitions_number_their_events_without_gaps():
    r = client()
    s = f"p-{uuid.uuid4()}"
    a = as_dict(r.execute_command("EAPPEND", s, "E"))
    p, seq = a["partition_id"], a["partition_sequence"]
    assert 0 <= p < 32
    assert r.execute_command("EPSEQ", str(p)) == seq
    b = as_dict(r.execute_command("EAPPEND", s, "F"))
    assert (b["partition_id"], b["partition_sequence"]) == (p, seq + 1)
    scan = as_dict(r.execute_command("EPSCAN", str(p), str(seq), "+", "COUNT", "5"))
    events = [as_dict(e) for e in scan["events"]]
    assert [e["partition_sequence"] for e in events][:2] == [seq, seq + 1]
    assert events[0]["stream_id"] == s.encode()
    # A key names its partition too.
    key = a["partition_key"].decode() if isinstance(a["partition_key"], bytes) else a["partition_key"]
    assert r.execute_command("EPSEQ", key) == seq + 1
    try:
        r.execute_command("EPSEQ", "32")
    except redis.ResponseError as e:
        assert "partition 32 does not exist" in str(e)
    else:
        raise AssertionError("no error")


@test
def resp2_clients_get_flat_replies():
    r = client(protocol=2)
    s = f"r2-{uuid.uuid4()}"
    reply = r.execute_command("EAPPEND", s, "E", "PAYLOAD", "p")
    assert isinstance(reply, list), reply
    assert as_dict(reply)["stream_version"] == 0


@test
def errors_for_bad_input_and_unknown_commands():
    r = client()
    for cmd, prefix in [
        (("NOPE",), "unknown command"),
        (("EAPPEND",), "INVALIDARG"),
        (("EAPPEND", "s"), "INVALIDARG missing event name"),
        (("EAPPEND", "$all", "E"), "INVALIDARG"),
        (("EAPPEND", "s", "E", "EXPECTED_VERSION", "sometimes"), "INVALIDARG"),
        (("EAPPEND", "s", "E", "BOGUS"), "INVALIDARG"),
        (("EGET", "not-a-uuid"), "INVALIDARG"),
        (("EACK", str(uuid.uuid4()), "1"), "NOTFOUND"),
    ]:
        try:
            r.execute_command(*cmd)
        except redis.ResponseError as e:
            assert prefix in str(e), (cmd, str(e))
        else:
            raise AssertionError(f"{cmd} did not fail")


@test
def esub_catches_up_then_goes_live_with_a_window():
    r = client()
    s = f"sub-{uuid.uuid4()}"
    for i in range(3):
        r.execute_command("EAPPEND", s, "Old", "PAYLOAD", str(i))
    conn = r.connection_pool.get_connection()
    conn.send_command("ESUB", s, "FROM", "0", "WINDOW", "2")
    sub_id = conn.read_response().decode()
    confirm = conn.read_response(push_request=True)
    assert confirm[0] == b"subscribe" and confirm[1].decode() == sub_id, confirm
    messages = [conn.read_response(push_request=True) for _ in range(2)]
    assert [m[2] for m in messages] == [0, 1], messages
    # The window is full: nothing more until an ack.
    assert not conn.can_read(timeout=0.5)
    conn.send_command("EACK", sub_id, "1")
    replies = []
    while b"OK" not in replies and len(replies) < 5:
        replies.append(conn.read_response(push_request=True))
    client().execute_command("EAPPEND", s, "New", "PAYLOAD", "3")
    deadline = time.time() + 10
    while len([m for m in replies if isinstance(m, list)]) < 2 and time.time() < deadline:
        if conn.can_read(timeout=0.2):
            replies.append(conn.read_response(push_request=True))
    live = [m for m in replies if isinstance(m, list) and m[0] == b"message"]
    assert [m[2] for m in live] == [2, 3], replies
    assert as_dict(live[1][3])["event_name"] == b"New"
    r.connection_pool.release(conn)


@test
def epsub_follows_partitions_by_sequence():
    r = client()
    conn = r.connection_pool.get_connection()
    conn.send_command("EPSUB", "*", "WINDOW", "10")
    sub_id = conn.read_response()
    assert conn.read_response(push_request=True)[0] == b"subscribe"
    s = f"ps-{uuid.uuid4()}"
    a = as_dict(client().execute_command("EAPPEND", s, "Global", "PAYLOAD", "g"))
    msg = conn.read_response(push_request=True)
    assert msg[0] == b"message" and msg[1] == sub_id, msg
    assert msg[2] == a["partition_sequence"], (msg, a)
    assert as_dict(msg[3])["stream_id"] == s.encode()
    r.connection_pool.release(conn)


@test
def connection_commands():
    r = client()
    assert r.execute_command("CLIENT", "SETNAME", "tester") in (b"OK", "OK", True)
    assert r.execute_command("CLIENT", "GETNAME") == b"tester"
    conn = r.connection_pool.get_connection()
    conn.send_command("PING", "hello")
    assert conn.read_response() == b"hello"
    conn.send_command("COMMAND", "COUNT")
    assert conn.read_response() >= 10
    conn.send_command("QUIT")
    assert conn.read_response() in (b"OK", "OK")
    conn.disconnect()


failed = [n for n, e in results if e is not None]
print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
