"""A client no one on the Cairn team wrote: Python's grpcio, with stubs generated from proto/ by
grpcio-tools, checks health and reflection, then creates a topic, produces and fetches through
the generated stubs, and reads a typed error the standard way (google.rpc.Status details).

Usage: grpc_interop.py HOST:PORT PROTO_DIR. Exits non-zero with a message on the first failure.
"""

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


def main():
    address, proto_dir = sys.argv[1], sys.argv[2]
    out_dir = tempfile.mkdtemp(prefix="cairn-interop-")
    compile_protos(proto_dir, out_dir)
    from cairn.v1 import admin_pb2, admin_pb2_grpc, common_pb2, consumer_pb2, consumer_pb2_grpc, producer_pb2, producer_pb2_grpc

    channel = grpc.insecure_channel(address)
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

    try:
        consumer.Fetch(consumer_pb2.FetchRequest(topic="no-such-topic", partition=0, offset=0), timeout=10)
        sys.exit("FAILED: a fetch of an unknown topic succeeded")
    except grpc.RpcError as err:
        status = rpc_status.from_call(err)
        reasons = []
        for detail in status.details if status else []:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                reasons.append(info.reason)
        check(err.code() == grpc.StatusCode.NOT_FOUND and reasons == ["UNKNOWN_TOPIC_OR_PARTITION"], "errors carry a typed ErrorInfo")
    print("python interop: all checks passed")


if __name__ == "__main__":
    main()
