"""A stock gRPC client over TLS: Python's grpcio with grpc.ssl_channel_credentials, no code of
Cairn's, against a `cairn serve` that requires client certificates (mTLS). With the CA and a
client certificate the CA signed, the health check answers SERVING and an admin call works; with
no client certificate, with one another CA signed, or without TLS at all, the call is refused.

Usage: grpc_tls_interop.py HOST:PORT CA CLIENT_CERT CLIENT_KEY OTHER_CERT OTHER_KEY (PEM files).
Exits non-zero with a message on the first failure.
"""

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def read(path):
    with open(path, "rb") as f:
        return f.read()


def check(condition, what):
    if not condition:
        sys.exit("FAILED: " + what)
    print("ok:", what)


def health(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)


def refused(channel):
    try:
        health(channel)
    except grpc.RpcError as err:
        return err.code()
    return None


def main():
    address, ca, cert, key, other_cert, other_key = sys.argv[1:7]
    trusted = grpc.ssl_channel_credentials(
        root_certificates=read(ca), private_key=read(key), certificate_chain=read(cert)
    )
    with grpc.secure_channel(address, trusted) as channel:
        answer = health(channel)
        check(answer.status == health_pb2.HealthCheckResponse.SERVING, "over TLS with a trusted client certificate: SERVING")

    anonymous = grpc.ssl_channel_credentials(root_certificates=read(ca))
    with grpc.secure_channel(address, anonymous) as channel:
        code = refused(channel)
        check(code == grpc.StatusCode.UNAVAILABLE, "over TLS without a client certificate: refused (%s)" % code)

    stranger = grpc.ssl_channel_credentials(
        root_certificates=read(ca), private_key=read(other_key), certificate_chain=read(other_cert)
    )
    with grpc.secure_channel(address, stranger) as channel:
        code = refused(channel)
        check(code == grpc.StatusCode.UNAVAILABLE, "with another CA's client certificate: refused (%s)" % code)

    with grpc.insecure_channel(address) as channel:
        code = refused(channel)
        check(code is not None, "without TLS: refused (%s)" % code)

    print("python tls interop: all checks passed")


if __name__ == "__main__":
    main()
