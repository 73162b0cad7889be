"""Interop check of a Cairn broker with Eclipse Paho for Python.

Usage: paho_interop.py HOST PORT TRANSPORT VERSION
  TRANSPORT: tcp or websockets (path /mqtt);  VERSION: 311 or 5

A subscriber (QoS 2 on a wildcard) and a publisher exchange a retained
message and QoS 0, 1 and 2 messages; then a persistent subscriber receives
what was queued while it was away. It prints one JSON object with what it
saw and exits 0 (the Go test asserts on the object), or 2 on a usage error.
Works with paho-mqtt 1.x and 2.x.
"""

import json
import sys
import threading
import time

import paho.mqtt.client as mqtt

TIMEOUT = 15


def new_client(client_id, transport, version, clean=True):
    kwargs = {"client_id": client_id, "transport": transport}
    if version == "5":
        kwargs["protocol"] = mqtt.MQTTv5
    else:
        kwargs["protocol"] = mqtt.MQTTv311
        kwargs["clean_session"] = clean
    if hasattr(mqtt, "CallbackAPIVersion"):  # paho-mqtt 2
        kwargs["callback_api_version"] = mqtt.CallbackAPIVersion.VERSION1
    c = mqtt.Client(**kwargs)
    if transport == "websockets":
        c.ws_set_options(path="/mqtt")
    return c


def connect(c, host, port, version, clean=True, expiry=0):
    connected = threading.Event()
    result = {}

    def on_connect(client, userdata, flags, rc, properties=None):
        result["rc"] = int(rc) if not hasattr(rc, "value") else rc.value
        result["session_present"] = bool(flags.get("session present", 0)) if isinstance(flags, dict) else bool(getattr(flags, "session_present", 0))
        connected.set()

    c.on_connect = on_connect
    if version == "5":
        props = None
        if expiry:
            from paho.mqtt.properties import Properties
            from paho.mqtt.packettypes import PacketTypes
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = expiry
        c.connect(host, port, keepalive=30, clean_start=clean, properties=props)
    else:
        c.connect(host, port, keepalive=30)
    c.loop_start()
    if not connected.wait(TIMEOUT):
        raise SystemExit(json.dumps({"error": "no CONNACK"}))
    return result


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    host, port, transport, version = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    tag = "%s-%s" % (transport, version)
    out = {"transport": transport, "version": version, "paho": getattr(mqtt, "__version__", "?")}
    base = "py/" + tag

    # Retained first, then a live subscription.
    pub = new_client("py-pub-" + tag, transport, version)
    out["pub_connack"] = connect(pub, host, port, version)
    info = pub.publish(base + "/retained", b"kept", qos=1, retain=True)
    info.wait_for_publish(TIMEOUT)

    got = []
    lock = threading.Lock()
    done = threading.Event()

    def on_message(client, userdata, msg):
        with lock:
            got.append({"topic": msg.topic, "payload": msg.payload.decode(), "qos": msg.qos, "retain": bool(msg.retain)})
            if len(got) >= 4:
                done.set()

    subscribed = threading.Event()
    sub = new_client("py-sub-" + tag, transport, version)
    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    out["sub_connack"] = connect(sub, host, port, version)
    sub.subscribe(base + "/#", qos=2)
    if not subscribed.wait(TIMEOUT):
        raise SystemExit(json.dumps({"error": "no SUBACK"}))
    for qos in (0, 1, 2):
        pub.publish(base + "/q%d" % qos, ("message at QoS %d" % qos).encode(), qos=qos).wait_for_publish(TIMEOUT)
    done.wait(TIMEOUT)
    out["live"] = got[:]
    sub.disconnect()
    sub.loop_stop()

    # A persistent session: subscribe, go away, messages queued, come back.
    queued = []
    qdone = threading.Event()

    def on_queued(client, userdata, msg):
        queued.append({"topic": msg.topic, "payload": msg.payload.decode(), "qos": msg.qos})
        if len(queued) >= 2:
            qdone.set()

    ps = new_client("py-persist-" + tag, transport, version, clean=False)
    connect(ps, host, port, version, clean=False, expiry=3600)
    sub_ok = threading.Event()
    ps.on_subscribe = lambda *a: sub_ok.set()
    ps.subscribe(base + "/away", qos=1)
    sub_ok.wait(TIMEOUT)
    ps.disconnect()
    ps.loop_stop()
    for i in range(2):
        pub.publish(base + "/away", ("queued %d" % i).encode(), qos=1).wait_for_publish(TIMEOUT)
    ps = new_client("py-persist-" + tag, transport, version, clean=False)
    ps.on_message = on_queued
    out["resume_connack"] = connect(ps, host, port, version, clean=False, expiry=3600)
    qdone.wait(TIMEOUT)
    out["queued"] = queued[:]
    ps.disconnect()
    ps.loop_stop()
    pub.disconnect()
    pub.loop_stop()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
