"""Print, as one JSON object, what the running Kafka cluster says about its members: the voters of
the KRaft metadata quorum (id, directory id, controller endpoint), the observers, the registered
brokers, and how many partition replicas each node holds. Read-only.

Run by the kafka role (ansible.builtin.script with the admin virtualenv's python) before it changes
anything, to refuse dropping a node that still holds data or a vote, and to decide which new
controllers still have to be added to the quorum. When no broker answers it prints
{"reachable": false, ...} and exits 0: the caller decides what that means."""

from __future__ import annotations

import argparse
import base64
import json
import sys
import uuid
from collections import Counter


def kafka_uuid(value: str) -> str:
    """A UUID as Kafka's tools write it (22 characters of unpadded base64url)."""
    try:
        raw = uuid.UUID(str(value)).bytes
    except ValueError:
        return str(value)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True, help="comma-separated host:port of brokers")
    parser.add_argument("--timeout-ms", type=int, default=10000)
    parser.add_argument("--cafile", help="TLS: the CA the brokers are verified against")
    parser.add_argument("--certfile", help="TLS: this host's certificate (its identity)")
    parser.add_argument("--keyfile", help="TLS: this host's key")
    args = parser.parse_args()
    tls = (
        {
            "security_protocol": "SSL",
            "ssl_cafile": args.cafile,
            "ssl_certfile": args.certfile,
            "ssl_keyfile": args.keyfile,
        }
        if args.cafile
        else {}
    )
    try:
        from kafka.admin import KafkaAdminClient

        admin = KafkaAdminClient(
            bootstrap_servers=args.bootstrap.split(","),
            client_id="chplatform-cluster-state",
            request_timeout_ms=args.timeout_ms,
            bootstrap_timeout_ms=args.timeout_ms,
            **tls,
        )
    except Exception as exc:  # nothing answers: a cluster that is not running yet, or is down
        print(json.dumps({"reachable": False, "error": f"{type(exc).__name__}: {exc}"}))
        return 0
    try:
        quorum = admin.describe_metadata_quorum()
        partition = quorum["topics"][0]["partitions"][0]
        endpoints = {
            n["node_id"]: [f"{lst['host']}:{lst['port']}" for lst in n.get("listeners", [])]
            for n in quorum.get("nodes", [])
        }
        voters = [
            {
                "id": v["replica_id"],
                "directory_id": kafka_uuid(v.get("replica_directory_id", "")),
                "endpoints": endpoints.get(v["replica_id"], []),
            }
            for v in partition["current_voters"]
        ]
        replicas: Counter[int] = Counter()
        for topic in admin.describe_topics():
            for part in topic.get("partitions", []):
                replicas.update(part.get("replica_nodes", []))
        brokers = admin.describe_cluster()["brokers"]
    except Exception as exc:
        print(json.dumps({"reachable": False, "error": f"{type(exc).__name__}: {exc}"}))
        return 0
    finally:
        admin.close()
    state = {
        "reachable": True,
        "leader": partition["leader_id"],
        "voters": sorted(voters, key=lambda v: v["id"]),
        "voter_ids": sorted(v["id"] for v in voters),
        "observer_ids": sorted(o["replica_id"] for o in partition["observers"]),
        "broker_ids": sorted(b["broker_id"] for b in brokers),
        # JSON object keys are strings: node id -> number of partition replicas it holds.
        "replicas": {str(node): count for node, count in sorted(replicas.items())},
    }
    print(json.dumps(state))
    return 0


if __name__ == "__main__":
    sys.exit(main())
