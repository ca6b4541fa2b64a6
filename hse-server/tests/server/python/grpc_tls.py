#!/usr/bin/env python3
"""Standard gRPC tooling against hse-server over TLS, with PyPI clients:
grpcio, grpcio-health-checking and grpcio-reflection.

Usage: grpc_tls.py CA_PEM GRPC_ADDR DEVICE_ID

Over a channel that verifies the server certificate against CA_PEM (for
the name `localhost`):
1. grpc.health.v1: the server ("") and devices.DeviceStream are SERVING,
   an unknown service is NOT_FOUND;
2. reflection, v1 and v1alpha: the services are listed; the device
   service's descriptor is fetched, and GetDeviceStatus is called with
   messages built from that descriptor alone (no generated stubs);
3. a health Watch prints WATCHING, then, once the server drains (the
   caller sends SIGTERM), sees NOT_SERVING and prints DRAINED.
Exits 0 when every step passed.
"""
import sys

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2 as reflection
from grpc_reflection.v1alpha import reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

DEVICE_SERVICE = "devices.DeviceStream"


def say(line):
    print(line, flush=True)


def check_health(channel):
    health = health_pb2_grpc.HealthStub(channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    for service in ["", DEVICE_SERVICE]:
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert reply.status == serving, (service, reply)
    try:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
        raise AssertionError("an unknown service has no health")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND, e
    say("HEALTH OK")


def list_services_v1(channel):
    """Reflection v1, with the v1alpha messages (the same on the wire)."""
    info = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection.ServerReflectionResponse.FromString,
    )
    request = reflection.ServerReflectionRequest(list_services="")
    replies = list(info(iter([request]), timeout=10))
    return {s.name for s in replies[0].list_services_response.service}


def check_reflection(channel, device_id):
    expected = {DEVICE_SERVICE, "grpc.health.v1.Health"}
    v1 = list_services_v1(channel)
    assert expected <= v1, v1
    database = ProtoReflectionDescriptorDatabase(channel)
    v1alpha = set(database.get_services())
    assert expected <= v1alpha, v1alpha
    pool = descriptor_pool.DescriptorPool(database)
    method = pool.FindServiceByName(DEVICE_SERVICE).FindMethodByName("GetDeviceStatus")
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    call = channel.unary_unary(
        f"/{DEVICE_SERVICE}/GetDeviceStatus",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    status = call(request_class(device_id=device_id), timeout=10)
    assert status.device_id == device_id and status.status == "online", status
    say("REFLECTION OK")


def watch_the_drain(channel):
    health = health_pb2_grpc.HealthStub(channel)
    seen = []
    try:
        for reply in health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=30):
            seen.append(reply.status)
            if reply.status == health_pb2.HealthCheckResponse.SERVING and len(seen) == 1:
                say("WATCHING")
            if reply.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                break
    except grpc.RpcError as e:
        raise AssertionError(f"the watch ended without NOT_SERVING: {e.code()} after {seen}")
    assert seen[-1] == health_pb2.HealthCheckResponse.NOT_SERVING, seen
    say("DRAINED")


def main():
    ca_path, addr, device_id = sys.argv[1:4]
    with open(ca_path, "rb") as f:
        credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
    target = "localhost:" + addr.rsplit(":", 1)[1]
    channel = grpc.secure_channel(target, credentials)
    grpc.channel_ready_future(channel).result(timeout=10)
    check_health(channel)
    check_reflection(channel, device_id)
    watch_the_drain(channel)


if __name__ == "__main__":
    main()
