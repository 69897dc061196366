"""TLS and a password, on real servers: one server by ``rediss://`` URL, and a (one-node) cluster.

The certificates come from a throwaway CA made with ``openssl`` the way a real CA issues them
(``EXTENSIONS``), so they pass strict X.509 checks; the servers also listen in plain text on
another port, used only to start and check them.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
import redis
from flask import Flask

from bot import create_app, get_services

from ..bookings import book
from ..conftest import REQUIRE_REAL, TOKEN, app_config, need_redis_server
from ..redis_server import RedisServer, free_port
from ..whatsapp import WhatsApp
from .servers import running, wait_until

PASSWORD = "tls-test-password"


# How a real CA issues them, so strict X.509 checks (Python 3.13's default contexts, OpenSSL's
# x509_strict) accept the chain: a CA marked critical CA:TRUE that may only sign certificates and
# CRLs, and a server certificate that is no CA, for TLS servers, naming its addresses; each
# certificate says which key it holds and which signed it.
EXTENSIONS = """\
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.pem, and server.pem/server.key for 127.0.0.1 and localhost signed by it."""
    need_redis_server()
    if shutil.which("openssl") is None:
        message = "openssl is not installed"
        if REQUIRE_REAL:
            pytest.fail(message + " but TAPBOOK_REQUIRE_REAL_REDIS=1")
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("tls")
    (folder / "extensions.cnf").write_text(EXTENSIONS)
    for command in (
        "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=tapbook-test-ca"
        " -config extensions.cnf -extensions ca",
        "req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 -config extensions.cnf",
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2"
        " -extfile extensions.cnf -extensions server",
    ):
        subprocess.run(["openssl", *command.split()], cwd=folder, check=True, capture_output=True, timeout=30)
    return folder


class TlsServer(RedisServer):
    """A redis-server answering TLS on ``tls_port`` (and plain text on ``port``, for the test only)."""

    def __init__(self, workdir: Path, certificates: Path, *extra_args: str) -> None:
        self.tls_port = free_port()
        super().__init__(
            workdir,
            "--tls-port",
            str(self.tls_port),
            "--tls-cert-file",
            str(certificates / "server.pem"),
            "--tls-key-file",
            str(certificates / "server.key"),
            "--tls-ca-cert-file",
            str(certificates / "ca.pem"),
            "--tls-auth-clients",
            "no",
            *extra_args,
        )

    def start(self) -> None:
        super().start()
        with redis.Redis(port=self.port) as plain:
            plain.config_set("requirepass", PASSWORD)


def ready(app: Flask) -> str:
    return app.test_client().get("/readyz").get_json()["checks"]["redis"]


def test_the_private_ca_passes_strict_x509_checks(certificates: Path, tmp_path: Path) -> None:
    """The checks Python 3.13's default contexts make, made on every Python (issue 13, item 10).

    3.13 turned on ``VERIFY_X509_STRICT`` (and ``VERIFY_X509_PARTIAL_CHAIN``): a CA without key
    usage fails with "CA cert does not include key usage extension".
    """
    context = ssl.create_default_context(cafile=certificates / "ca.pem")
    context.verify_flags |= ssl.VERIFY_X509_STRICT | ssl.VERIFY_X509_PARTIAL_CHAIN
    with running(TlsServer(tmp_path / "redis", certificates)) as server:
        for name in ("127.0.0.1", "localhost"):
            with (
                socket.create_connection(("127.0.0.1", server.tls_port), timeout=10) as raw,
                context.wrap_socket(raw, server_hostname=name) as tls,
            ):
                assert tls.getpeercert()["subjectAltName"] == (("IP Address", "127.0.0.1"), ("DNS", "localhost"))


def test_one_server_over_tls_with_a_private_ca(certificates: Path, tmp_path: Path) -> None:
    with running(TlsServer(tmp_path / "redis", certificates)) as server:
        url = f"rediss://:{PASSWORD}@127.0.0.1:{server.tls_port}/0"
        app = create_app(app_config(REDIS_URL=url, REDIS_TLS_CA_FILE=str(certificates / "ca.pem")))
        assert ready(app) == "ok"
        get_services(app).redis.close()
        untrusted = create_app(app_config(REDIS_URL=url))  # the certificate is checked: unknown CA, no connection
        assert ready(untrusted).startswith("unreachable")


def test_a_cluster_over_tls_with_a_password(certificates: Path, tmp_path: Path) -> None:
    node = TlsServer(
        tmp_path / "node",
        certificates,
        "--cluster-enabled",
        "yes",
        "--tls-cluster",
        "yes",
        "--cluster-port",
        str(free_port()),
    )
    with running(node):
        with redis.Redis(port=node.port, password=PASSWORD, decode_responses=True) as plain:
            plain.execute_command("CLUSTER ADDSLOTSRANGE", 0, 16383)  # a cluster of one master
            wait_until(lambda: plain.cluster("info")["cluster_state"] == "ok", "the cluster to be ok")
        app = create_app(
            app_config(
                REDIS_CLUSTER_NODES=f"127.0.0.1:{node.tls_port}",
                REDIS_TLS="true",
                REDIS_TLS_CA_FILE=str(certificates / "ca.pem"),
                REDIS_PASSWORD=PASSWORD,
            )
        )
        assert ready(app) == "ok"
        ref = book(WhatsApp(app.test_client(), TOKEN))
        assert get_services(app).redis.hget(f"tapbook:{{test}}:booking:{ref}", "status") == "confirmed"
        get_services(app).redis.close()
        url = f"rediss+cluster://:{PASSWORD}@127.0.0.1:{node.tls_port}"  # the same, as one URL
        app = create_app(app_config(REDIS_URL=url, REDIS_TLS_CA_FILE=str(certificates / "ca.pem")))
        assert ready(app) == "ok"
        assert get_services(app).redis.hget(f"tapbook:{{test}}:booking:{ref}", "status") == "confirmed"
        get_services(app).redis.close()
