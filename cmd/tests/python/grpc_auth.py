"""Every method of Hydra's gRPC service, as server reflection lists it,
tried without a token, with a token lacking its scope and with one holding
it (grpcio, no generated code). A method this table does not know fails:
a new method cannot ship without a decision on its scope.

Usage: python3 grpc_auth.py HOST:PORT LACKING READ WRITE DELETE
Prints one line per method and a closing "N passed, M failed" line.
"""
import sys

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

ADDR, LACKING, READ, WRITE, DELETE = sys.argv[1:6]
HOLDERS = {"read": READ, "write": WRITE, "delete": DELETE}
channel = grpc.insecure_channel(ADDR)
pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
service = pool.FindServiceByName("hydra.v1.EventStore")

S = {"stream": "s"}
# method: (scope kind, request fields); "open" needs no token.
NEEDS = {
    "Append": ("write", S),
    "AppendMulti": ("write", {"streams": [S]}),
    "ReadStream": ("read", S),
    "ReadAll": ("read", {}),
    "GetEvent": ("read", {"id": "0190b7a4-0000-7000-8000-000000000000"}),
    "StreamVersion": ("read", S),
    "DeleteStream": ("delete", S),
    "SubscribeToStream": ("read", S),
    "SubscribeToAll": ("read", {}),
    "CreateSubscription": ("read", {"name": "sub", "stream": "s"}),
    "ReadSubscription": ("read", {"name": "sub"}),
    "Ack": ("read", {"name": "sub"}),
    "DeleteSubscription": ("read", {"name": "sub"}),
    "SaveSnapshot": ("write", S),
    "LoadSnapshot": ("read", S),
    "ListSnapshots": ("read", S),
    "DeleteSnapshot": ("delete", S),
    "GetHead": ("read", S),
    "Prove": ("read", S),
    "ProveConsistency": ("read", S),
    "Health": ("open", {}),
}


def code(method, token):
    """The status code of one call (OK when it succeeds or is cut short by
    the deadline of a live subscription)."""
    m = service.methods_by_name[method]
    kind, fields = NEEDS[method]
    request = message_factory.GetMessageClass(m.input_type)(**fields)
    out = message_factory.GetMessageClass(m.output_type)
    path = f"/hydra.v1.EventStore/{method}"
    metadata = [("authorization", f"Bearer {token}")] if token else None
    try:
        if m.server_streaming:
            call = channel.unary_stream(path, request_serializer=lambda r: r.SerializeToString(), response_deserializer=out.FromString)
            for _ in call(request, timeout=1, metadata=metadata):
                break
        else:
            call = channel.unary_unary(path, request_serializer=lambda r: r.SerializeToString(), response_deserializer=out.FromString)
            call(request, timeout=10, metadata=metadata)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


DENIED = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
passed = failed = 0
for method in service.methods_by_name:
    problems = []
    if method not in NEEDS:
        problems.append("not in this test's table: decide its scope")
    else:
        kind = NEEDS[method][0]
        if kind == "open":
            if code(method, None) in DENIED:
                problems.append("refused without a token")
        else:
            c = code(method, None)
            if c != grpc.StatusCode.UNAUTHENTICATED:
                problems.append(f"no token: {c}")
            c = code(method, "hydra_not-a-token")
            if c != grpc.StatusCode.UNAUTHENTICATED:
                problems.append(f"unknown token: {c}")
            c = code(method, LACKING)
            if c != grpc.StatusCode.PERMISSION_DENIED:
                problems.append(f"lacking token: {c}")
            c = code(method, HOLDERS[kind])
            if c in DENIED:
                problems.append(f"{kind}:* token: {c}")
    if problems:
        failed += 1
        print(f"FAIL {method}: {'; '.join(problems)}")
    else:
        passed += 1
        print(f"ok   {method}")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed or passed < len(NEEDS) else 0)
