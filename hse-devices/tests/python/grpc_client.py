#!/usr/bin/env python3
"""A non-Rust gRPC client of proto/devices.proto (Python grpcio).

Usage: grpc_client.py PROTO_DIR GRPC_ADDR DEVICE_ID

Generates the stubs from the proto, subscribes to the device's changes,
waits for an alarm and a temperature event sent by a device over TCP, sends
a command that the simulated device answers, then reads status and events.
Prints OK and exits 0 when every step passed.
"""
import importlib
import os
import sys
import tempfile
import threading

import grpc
from grpc_tools import protoc


def stubs(proto_dir):
    out = tempfile.mkdtemp()
    rc = protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={out}", f"--grpc_python_out={out}",
                      os.path.join(proto_dir, "devices.proto")])
    assert rc == 0, "protoc failed"
    sys.path.insert(0, out)
    return importlib.import_module("devices_pb2"), importlib.import_module("devices_pb2_grpc")


def main():
    proto_dir, addr, device_id = sys.argv[1:4]
    pb, rpc = stubs(proto_dir)
    channel = grpc.insecure_channel(addr)
    grpc.channel_ready_future(channel).result(timeout=10)
    client = rpc.DeviceStreamStub(channel)

    seen = {}
    done = threading.Event()

    def subscribe():
        request = pb.SubscriptionRequest(device_ids=[device_id], event_types=["temperature"], client_id="py")
        for change in client.SubscribeToDeviceChanges(request, timeout=20):
            assert change.device_id == device_id
            seen[change.event_type] = change
            if "alarm" in seen and "temperature" in seen:
                done.set()
                return

    thread = threading.Thread(target=subscribe, daemon=True)
    thread.start()
    assert done.wait(20), f"changes not received: {sorted(seen)}"
    assert "humidity" not in seen
    assert seen["temperature"].cursor, "changes carry a resume cursor"

    reply = client.SendDeviceCommand(pb.DeviceCommand(device_id=device_id, command_type="unlock",
                                                      params={"door": "front"}, request_id=""), timeout=10)
    assert reply.success and reply.message == "done:unlock", reply

    status = client.GetDeviceStatus(pb.DeviceStatusRequest(device_id=device_id), timeout=10)
    assert status.status == "online" and status.last_seen > 0, status

    events = client.GetDeviceEvents(pb.DeviceEventsRequest(device_id=device_id, limit=5), timeout=10)
    assert len(events.events) > 0 and events.total_count == len(events.events), events
    print("OK")


if __name__ == "__main__":
    main()
