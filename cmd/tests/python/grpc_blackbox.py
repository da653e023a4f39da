"""Black-box test of Hydra's gRPC API with Python grpcio, discovering the
service through server reflection (as grpcurl does): no generated code.

Usage: python3 grpc_blackbox.py HOST:PORT
Prints one line per test and a closing "N passed, M failed" line.
"""
import sys
import uuid

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

ADDR = sys.argv[1]
channel = grpc.insecure_channel(ADDR)
db = ProtoReflectionDescriptorDatabase(channel)
pool = descriptor_pool.DescriptorPool(db)
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


def msg(name, **fields):
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"hydra.v1.{name}"))
    return cls(**fields)


def call(method, request, stream=False):
    svc = pool.FindServiceByName("hydra.v1.EventStore")
    m = svc.FindMethodByName(method)
    out = message_factory.GetMessageClass(m.output_type)
    path = f"/hydra.v1.EventStore/{method}"
    if stream:
        return channel.unary_stream(path, request_serializer=lambda r: r.SerializeToString(), response_deserializer=out.FromString)(request, timeout=10)
    return channel.unary_unary(path, request_serializer=lambda r: r.SerializeToString(), response_deserializer=out.FromString)(request, timeout=10)


@test
def reflection_lists_the_service():
    services = db.get_services()
    assert "hydra.v1.EventStore" in services, services


@test
def append_read_and_versions():
    s = f"order-{uuid.uuid4()}"
    ev = msg("NewEvent", type="Placed", data=b'{"total":42}')
    r = call("Append", msg("AppendRequest", stream=s, expected=msg("ExpectedVersion", no_stream=msg("Empty")), events=[ev]))
    assert r.version == 0
    r = call("Append", msg("AppendRequest", stream=s, expected=msg("ExpectedVersion", exact=0), events=[msg("NewEvent", type="Paid")]))
    assert r.version == 1
    events = list(call("ReadStream", msg("ReadStreamRequest", stream=s), stream=True))
    assert [e.type for e in events] == ["Placed", "Paid"]
    assert events[0].data == b'{"total":42}'
    back = list(call("ReadStream", msg("ReadStreamRequest", stream=s, direction=1, count=1), stream=True))
    assert back[0].version == 1
    assert call("StreamVersion", msg("StreamVersionRequest", stream=s)).version == 1
    got = call("GetEvent", msg("GetEventRequest", id=events[0].id))
    assert got.type == "Placed"
    alls = list(call("ReadAll", msg("ReadAllRequest", types=["Paid"], stream_prefix=s), stream=True))
    assert len(alls) == 1


@test
def errors_are_grpc_statuses():
    s = f"err-{uuid.uuid4()}"
    call("Append", msg("AppendRequest", stream=s, events=[msg("NewEvent", type="A")]))
    try:
        call("Append", msg("AppendRequest", stream=s, expected=msg("ExpectedVersion", exact=5), events=[msg("NewEvent", type="A")]))
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e
        assert "is at version 0, expected 5" in e.details()
    else:
        raise AssertionError("no error")
    for req, code in [
        (("GetEvent", msg("GetEventRequest", id=str(uuid.uuid4()))), grpc.StatusCode.NOT_FOUND),
        (("GetEvent", msg("GetEventRequest", id="nope")), grpc.StatusCode.INVALID_ARGUMENT),
        (("Append", msg("AppendRequest", stream="$all", events=[msg("NewEvent", type="A")])), grpc.StatusCode.INVALID_ARGUMENT),
    ]:
        try:
            call(*req)
        except grpc.RpcError as e:
            assert e.code() == code, (req[0], e.code())
        else:
            raise AssertionError(f"{req[0]} did not fail")
    try:
        list(call("ReadStream", msg("ReadStreamRequest", stream=f"missing-{uuid.uuid4()}"), stream=True))
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND
    else:
        raise AssertionError("no error")


@test
def subscribe_catches_up_then_goes_live():
    s = f"sub-{uuid.uuid4()}"
    call("Append", msg("AppendRequest", stream=s, events=[msg("NewEvent", type="Old")]))
    it = call("SubscribeToStream", msg("SubscribeToStreamRequest", stream=s, **{"from": 0}), stream=True)
    first = next(it)
    assert first.type == "Old"
    call("Append", msg("AppendRequest", stream=s, events=[msg("NewEvent", type="New")]))
    second = next(it)
    assert (second.type, second.version) == ("New", 1)
    it.cancel()


@test
def snapshots_proofs_and_health():
    s = f"acct-{uuid.uuid4()}"
    for i in range(3):
        call("Append", msg("AppendRequest", stream=s, events=[msg("NewEvent", type="Dep", data=str(i).encode())]))
    call("SaveSnapshot", msg("SaveSnapshotRequest", stream=s, version=1, data=b"state"))
    snap = call("LoadSnapshot", msg("LoadSnapshotRequest", stream=s))
    assert (snap.version, snap.data) == (1, b"state")
    p = call("Prove", msg("ProveRequest", stream=s, version=2))
    assert p.head.length == 3 and len(p.head.signature) == 64
    assert p.event.version == 2
    h = call("Health", msg("HealthRequest"))
    assert h.status == "ok" and h.peer_id.startswith("12D3KooW")


failed = [n for n, e in results if e is not None]
print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
