"""A client no one on the Cairn team wrote: Python's grpcio, with stubs generated from proto/ by
grpcio-tools, checks health and reflection, then creates a topic, produces and fetches through
the generated stubs, and reads typed errors the standard way (google.rpc.Status details): an
unknown topic, a 10,000-character name (its echo once overflowed grpcio's metadata limit),
undecodable bytes and an oversized request sent through grpcio's generic calls.

With a third argument `auth` it checks authentication and authorization instead, against a
broker started with `--authorization on --super-users User:admin` that has the users alice
(password alice-pw) and admin (admin-pw) and the topic `orders`: passwords go as
`authorization: Basic ...` call metadata, the standard way, over plaintext loopback.

Usage: grpc_interop.py HOST:PORT PROTO_DIR [auth]. Exits non-zero with a message on the first
failure.
"""

import base64

import os
import sys
import tempfile
import uuid

import grpc
from grpc_tools import protoc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from google.rpc import error_details_pb2


def compile_protos(proto_dir, out_dir):
    files = [os.path.join("cairn", "v1", name + ".proto") for name in ("common", "producer", "consumer", "admin", "metadata")]
    args = ["protoc", "-I" + proto_dir, "--python_out=" + out_dir, "--grpc_python_out=" + out_dir] + files
    if protoc.main(args) != 0:
        sys.exit("grpcio-tools could not compile " + proto_dir)
    sys.path.insert(0, out_dir)


def check(condition, what):
    if not condition:
        sys.exit("FAILED: " + what)
    print("ok:", what)


def reasons_of(err):
    status = rpc_status.from_call(err)
    reasons = []
    for detail in status.details if status else []:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            reasons.append(info.reason)
    return reasons


def refusal(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except grpc.RpcError as err:
        return err
    sys.exit("FAILED: a call that must be refused succeeded")


def check_refusals(channel, admin, admin_pb2):
    long_name = "n" * 10000
    err = refusal(admin.CreateTopic, admin_pb2.CreateTopicRequest(name=long_name, partitions=1), timeout=10)
    check(
        err.code() == grpc.StatusCode.INVALID_ARGUMENT and reasons_of(err) == ["INVALID_TOPIC"] and len(err.details()) < 1200,
        "a 10,000-character topic name is INVALID_ARGUMENT/INVALID_TOPIC with a short message",
    )
    for method in ("/cairn.v1.Producer/Produce", "/cairn.v1.Admin/CreateTopic", "/cairn.v1.Consumer/Fetch", "/cairn.v1.Groups/Heartbeat"):
        call = channel.unary_unary(method, request_serializer=lambda _: b"\x0f", response_deserializer=lambda raw: raw)
        err = refusal(call, None, timeout=10)
        check(
            err.code() == grpc.StatusCode.INVALID_ARGUMENT and reasons_of(err) == ["INVALID_REQUEST"],
            "undecodable bytes to " + method + " are INVALID_ARGUMENT/INVALID_REQUEST",
        )
    call = channel.unary_unary("/cairn.v1.Producer/Produce", request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw)
    err = refusal(call, b"\0" * (17 << 20), timeout=30)
    check(
        err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and reasons_of(err) == ["REQUEST_TOO_LARGE"],
        "a 17 MiB produce is RESOURCE_EXHAUSTED/REQUEST_TOO_LARGE",
    )


def basic(user, password):
    token = base64.b64encode((user + ":" + password).encode()).decode()
    return [("authorization", "Basic " + token)]


def check_auth(channel, admin_pb2, admin_pb2_grpc, common_pb2, producer_pb2, producer_pb2_grpc):
    admin = admin_pb2_grpc.AdminStub(channel)
    producer = producer_pb2_grpc.ProducerStub(channel)
    request = producer_pb2.ProduceRequest(
        topic="orders", partition=0, records=producer_pb2.RecordList(records=[common_pb2.Record(value=b"paid")])
    )
    err = refusal(producer.Produce, request, metadata=basic("alice", "alice-pw"), timeout=10)
    check(
        err.code() == grpc.StatusCode.PERMISSION_DENIED
        and reasons_of(err) == ["TOPIC_AUTHORIZATION_FAILED"]
        and "User:alice" in err.details()
        and "orders" in err.details(),
        "a produce the ACLs do not allow is PERMISSION_DENIED/TOPIC_AUTHORIZATION_FAILED naming principal and topic",
    )
    err = refusal(producer.Produce, request, metadata=basic("alice", "wrong-pw"), timeout=10)
    check(
        err.code() == grpc.StatusCode.UNAUTHENTICATED and reasons_of(err) == ["SASL_AUTHENTICATION_FAILED"],
        "a wrong password is UNAUTHENTICATED/SASL_AUTHENTICATION_FAILED",
    )
    err = refusal(admin.ListAcls, admin_pb2.ListAclsRequest(), timeout=10)
    check(
        err.code() == grpc.StatusCode.PERMISSION_DENIED and reasons_of(err) == ["CLUSTER_AUTHORIZATION_FAILED"],
        "an anonymous ListAcls is PERMISSION_DENIED/CLUSTER_AUTHORIZATION_FAILED",
    )
    acl = admin_pb2.Acl(principal="User:alice", operation="Write", resource_type="Topic", resource_name="orders")
    admin.CreateAcls(admin_pb2.CreateAclsRequest(acls=[acl]), metadata=basic("admin", "admin-pw"), timeout=10)
    produced = producer.Produce(request, metadata=basic("alice", "alice-pw"), timeout=10)
    check(len(produced.placements) == 1, "after the super user's CreateAcls, alice's produce is placed")
    bad = admin_pb2.Acl(principal="User:alice", operation="Fly", resource_type="Topic", resource_name="orders")
    err = refusal(admin.CreateAcls, admin_pb2.CreateAclsRequest(acls=[bad]), metadata=basic("admin", "admin-pw"), timeout=10)
    check(
        err.code() == grpc.StatusCode.INVALID_ARGUMENT and reasons_of(err) == ["INVALID_REQUEST"] and "operation" in err.details(),
        "an unknown operation is INVALID_ARGUMENT naming the field",
    )
    print("python interop: all auth checks passed")


def main():
    address, proto_dir = sys.argv[1], sys.argv[2]
    out_dir = tempfile.mkdtemp(prefix="cairn-interop-")
    compile_protos(proto_dir, out_dir)
    from cairn.v1 import admin_pb2, admin_pb2_grpc, common_pb2, consumer_pb2, consumer_pb2_grpc, producer_pb2, producer_pb2_grpc

    channel = grpc.insecure_channel(address)
    if len(sys.argv) > 3 and sys.argv[3] == "auth":
        check_auth(channel, admin_pb2, admin_pb2_grpc, common_pb2, producer_pb2, producer_pb2_grpc)
        return
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="cairn.v1.Producer"), timeout=10)
    check(health.status == health_pb2.HealthCheckResponse.SERVING, "health says SERVING")

    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
    services = {s.name for answer in answers for s in answer.list_services_response.service}
    check({"cairn.v1.Producer", "cairn.v1.Consumer", "cairn.v1.Admin", "cairn.v1.Metadata"} <= services, "reflection lists the cairn.v1 services")

    topic = "interop-" + uuid.uuid4().hex[:8]
    admin = admin_pb2_grpc.AdminStub(channel)
    created = admin.CreateTopic(admin_pb2.CreateTopicRequest(name=topic, partitions=3), timeout=10)
    check(len(created.topic.partitions) == 3, "CreateTopic made 3 partitions")

    producer = producer_pb2_grpc.ProducerStub(channel)
    records = [common_pb2.Record(key=b"order-%d" % i, value=b"created-%d" % i) for i in range(20)]
    produced = producer.Produce(
        producer_pb2.ProduceRequest(topic=topic, partition=2, records=producer_pb2.RecordList(records=records)), timeout=10
    )
    check([p.offset for p in produced.placements] == list(range(20)), "Produce placed 20 records at offsets 0..19")

    consumer = consumer_pb2_grpc.ConsumerStub(channel)
    fetched = consumer.Fetch(consumer_pb2.FetchRequest(topic=topic, partition=2, offset=0), timeout=10)
    check([r.value for r in fetched.records] == [r.value for r in records], "Fetch returned the same 20 values in order")

    err = refusal(consumer.Fetch, consumer_pb2.FetchRequest(topic="no-such-topic", partition=0, offset=0), timeout=10)
    check(err.code() == grpc.StatusCode.NOT_FOUND and reasons_of(err) == ["UNKNOWN_TOPIC_OR_PARTITION"], "errors carry a typed ErrorInfo")
    check_refusals(channel, admin, admin_pb2)
    print("python interop: all checks passed")


if __name__ == "__main__":
    main()
