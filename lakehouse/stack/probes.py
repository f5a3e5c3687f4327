"""Readiness probes that talk to each service for real: Kafka metadata, WebHDFS, the MLflow REST API."""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

logging.getLogger("kafka").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class Probe:
    """Outcome of one readiness check: ``ok`` and a one-line human detail."""

    ok: bool
    detail: str


def _http_json(url: str, timeout_s: float) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        return json.loads(resp.read().decode())


def _listening(host_port: str, timeout_s: float) -> bool:
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return True
    except OSError:
        return False


def kafka(bootstrap: str, timeout_s: float = 5.0, settings: dict[str, Any] | None = None) -> Probe:
    """Kafka answers a metadata request (describe cluster) through kafka-python's admin client (``settings``: the
    client's security settings, e.g. SASL_SSL as a user)."""
    from kafka import KafkaAdminClient

    if not any(_listening(s, min(timeout_s, 2.0)) for s in bootstrap.split(",")):
        return Probe(False, f"nothing listens at {bootstrap}")
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="lakehouse-probe",
            request_timeout_ms=int(timeout_s * 1000),
            **(settings or {}),
        )
    except Exception as exc:  # noqa: BLE001 - any client failure means "not ready"
        return Probe(False, f"no Kafka broker answers at {bootstrap} ({type(exc).__name__})")
    try:
        cluster = admin.describe_cluster()
        brokers = cluster.get("brokers", [])
        return Probe(bool(brokers), f"{len(brokers)} broker(s), cluster {cluster.get('cluster_id')}")
    except Exception as exc:  # noqa: BLE001
        return Probe(False, f"Kafka at {bootstrap} did not describe its cluster ({type(exc).__name__}: {exc})")
    finally:
        admin.close()


def _namenode_state(webhdfs_url: str, timeout_s: float) -> dict[str, Any]:
    query = "Hadoop:service=NameNode,name=FSNamesystemState"
    beans = _http_json(f"{webhdfs_url.rstrip('/')}/jmx?qry={query}", timeout_s)["beans"]
    return beans[0] if beans else {}


def hdfs_namenode(webhdfs_url: str, user: str, timeout_s: float = 5.0) -> Probe:
    """The NameNode answers WebHDFS (hdfs client status of /) and has left safe mode."""
    from hdfs import InsecureClient

    try:
        InsecureClient(webhdfs_url, user=user, timeout=timeout_s).status("/")
        state = _namenode_state(webhdfs_url, timeout_s)
    except Exception as exc:  # noqa: BLE001
        return Probe(False, f"WebHDFS at {webhdfs_url} does not answer ({type(exc).__name__})")
    if state.get("FSState") == "safeMode":
        return Probe(False, "NameNode is in safe mode")
    return Probe(True, f"NameNode up, {state.get('NumLiveDataNodes', 0)} live DataNode(s)")


def hdfs_datanode(webhdfs_url: str, user: str, timeout_s: float = 10.0, address: str | None = None) -> Probe:
    """A DataNode is live: the NameNode counts it (the one at ``address``, host:transfer port, when several
    serve the region) and a small file round-trips through WebHDFS."""
    from hdfs import InsecureClient

    try:
        live = int(_namenode_state(webhdfs_url, timeout_s).get("NumLiveDataNodes", 0))
        if address is not None:
            query = "Hadoop:service=NameNode,name=NameNodeInfo"
            beans = _http_json(f"{webhdfs_url.rstrip('/')}/jmx?qry={query}", timeout_s)["beans"]
            nodes = json.loads(beans[0].get("LiveNodes") or "{}") if beans else {}
            if not any(info.get("xferaddr") == address or name == address for name, info in nodes.items()):
                return Probe(False, f"the NameNode does not count the DataNode at {address} live ({live} live)")
    except Exception as exc:  # noqa: BLE001
        return Probe(False, f"NameNode at {webhdfs_url} does not answer ({type(exc).__name__})")
    if live < 1:
        return Probe(False, "no DataNode has registered with the NameNode yet")
    client = InsecureClient(webhdfs_url, user=user, timeout=timeout_s)
    # a file of this probe's own: two processes probing at once (two Airflow tasks) would otherwise overwrite
    # each other's file mid-write, and the NameNode rejects the loser's close (lease lost): a false "down"
    path = f"/tmp/.lakehouse-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        client.write(path, data=b"ok", overwrite=True)
        with client.read(path) as reader:
            body = reader.read()
    except Exception as exc:  # noqa: BLE001
        return Probe(False, f"a probe file did not round-trip through WebHDFS ({type(exc).__name__}: {exc})")
    finally:
        try:
            client.delete(path)
        except Exception:  # noqa: BLE001, S110 - a leftover probe file in /tmp harms nothing
            pass
    return Probe(body == b"ok", f"{live} live DataNode(s), write/read ok")


def mlflow(tracking_uri: str, timeout_s: float = 5.0, auth: tuple[str, str] | None = None) -> Probe:
    """The MLflow tracking server answers its REST API (search experiments), as user ``auth`` (basic auth)."""
    url = f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/experiments/search?max_results=1"
    request = urllib.request.Request(url)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            body = json.loads(resp.read().decode())
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            who = f"user {auth[0]!r}" if auth else "an anonymous client"
            return Probe(False, f"MLflow at {tracking_uri} refuses {who} (HTTP {exc.code}): check mlflow.username "
                         "and mlflow.password_file of the profile")  # fmt: skip
        return Probe(False, f"MLflow at {tracking_uri} answers HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return Probe(False, f"MLflow at {tracking_uri} does not answer ({type(exc).__name__})")
    return Probe(True, f"tracking API ok ({len(body.get('experiments', []))} experiment(s) listed)")


def derby(java: str, classpath: str, host: str, port: int, timeout_s: float = 5.0) -> Probe:
    """The Derby network server answers a DRDA ping (Derby's own `NetworkServerControl ping`)."""
    import subprocess

    if not _listening(f"{host}:{port}", min(timeout_s, 2.0)):
        return Probe(False, f"nothing listens at {host}:{port}")
    cmd = [java, "-cp", classpath, "org.apache.derby.drda.NetworkServerControl", "ping", "-h", host, "-p", str(port)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s + 10, check=False)
    except subprocess.TimeoutExpired:
        return Probe(False, f"Derby at {host}:{port} did not answer a ping in time")
    if out.returncode != 0:
        return Probe(False, f"Derby at {host}:{port} did not answer a ping: {(out.stdout + out.stderr).strip()[-200:]}")
    return Probe(True, "Derby network server answers (Hive metastore databases)")


def _thrift_call(name: str, seqid: int = 1) -> bytes:
    """A Thrift binary-protocol CALL of ``name`` with no arguments (strict header, empty args struct)."""
    import struct

    encoded = name.encode()
    return struct.pack(">Ii", 0x80010001, len(encoded)) + encoded + struct.pack(">i", seqid) + b"\x00"


def hive_metastore(uri: str, timeout_s: float = 5.0) -> Probe:
    """An external Hive metastore answers a Thrift ``get_all_databases`` call with a reply."""
    import struct
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    host, port = parsed.hostname or "", parsed.port or 9083
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as conn:
            conn.sendall(_thrift_call("get_all_databases"))
            head = conn.recv(4)
    except OSError as exc:
        return Probe(False, f"Hive metastore at {uri} does not answer ({type(exc).__name__})")
    if len(head) < 4:
        return Probe(False, f"Hive metastore at {uri} closed the connection")
    (version_and_type,) = struct.unpack(">I", head)
    if version_and_type & 0xFF != 2:  # 2 = REPLY, 3 = EXCEPTION
        return Probe(False, f"Hive metastore at {uri} did not reply to get_all_databases")
    return Probe(True, "Hive metastore answers get_all_databases")


def spark_connect(url: str, timeout_s: float = 5.0) -> Probe:
    """The Spark Connect server answers a gRPC AnalyzePlan(spark_version) request in a throwaway session."""
    import uuid
    from urllib.parse import urlparse

    parsed = urlparse(url)
    target = f"{parsed.hostname}:{parsed.port}"
    if not _listening(target, min(timeout_s, 2.0)):
        return Probe(False, f"nothing listens at {target}")
    import grpc
    from pyspark.sql.connect.proto import base_pb2, base_pb2_grpc

    session = str(uuid.uuid4())
    user = base_pb2.UserContext(user_id="lakehouse-probe")
    try:
        with grpc.insecure_channel(target) as channel:
            stub = base_pb2_grpc.SparkConnectServiceStub(channel)
            reply = stub.AnalyzePlan(
                base_pb2.AnalyzePlanRequest(
                    session_id=session, user_context=user, spark_version=base_pb2.AnalyzePlanRequest.SparkVersion()
                ),
                timeout=timeout_s,
            )
            stub.ReleaseSession(
                base_pb2.ReleaseSessionRequest(session_id=session, user_context=user), timeout=timeout_s
            )
    except grpc.RpcError as exc:
        return Probe(False, f"Spark Connect at {target} did not answer ({exc.code().name})")
    return Probe(True, f"Spark {reply.spark_version.version} answers over Spark Connect")


def spark_master(web_url: str, timeout_s: float = 5.0) -> Probe:
    """A Spark standalone master answers its JSON status (``/json/``) as ALIVE, with its workers."""
    try:
        state = _http_json(web_url.rstrip("/") + "/json/", timeout_s)
    except (OSError, ValueError) as exc:
        return Probe(False, f"no Spark master answers at {web_url} ({type(exc).__name__})")
    alive = [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]
    return Probe(
        state.get("status") == "ALIVE",
        f"master {state.get('status')} at {state.get('url')}, {len(alive)} worker(s) alive, "
        f"{state.get('cores', 0)} cores",
    )


def spark_worker(web_url: str, host: str, port: int, timeout_s: float = 5.0) -> Probe:
    """The Spark master lists the worker at ``host:port`` as ALIVE (it registered and sends heartbeats)."""
    try:
        state = _http_json(web_url.rstrip("/") + "/json/", timeout_s)
    except (OSError, ValueError) as exc:
        return Probe(False, f"no Spark master answers at {web_url} ({type(exc).__name__})")
    for worker in state.get("workers", []):
        if worker.get("host") == host and int(worker.get("port", -1)) == port and worker.get("state") == "ALIVE":
            return Probe(True, f"registered with the master: {worker.get('cores')} cores, {worker.get('memory')} MiB")
    return Probe(False, f"no ALIVE worker {host}:{port} at the master {web_url}")
