"""Kubeconfigs read without the official client, and the cases handed to it.

Requests go to real loopback servers (plain HTTP, and HTTPS with a CA, server
and client certificates generated here), which answer with what they saw: the
path, the Authorization header and the client certificate's common name.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import ipaddress
import json
import os
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.errors import BackendUnavailable, ConfigError
from core.targets import kubeconfig as kc
from core.targets.k8s_api import Api, api_for

ROOT = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------
# Certificates


@dataclass(frozen=True)
class Pem:
    cert: bytes
    key: bytes


def _issue(
    name: str,
    *,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    sans: list[x509.GeneralName] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    return cert, key


def _pem(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pem:
    return Pem(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


@dataclass(frozen=True)
class Pki:
    ca: Pem
    other_ca: Pem
    #: Valid for 127.0.0.1 and localhost.
    server: Pem
    #: Valid only for api.cluster.internal (for tls-server-name).
    named_server: Pem
    client: Pem


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca = _issue("test-ca")
    other = _issue("other-ca")
    loopback = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    return Pki(
        ca=_pem(*ca),
        other_ca=_pem(*other),
        server=_pem(*_issue("apiserver", issuer=ca, sans=loopback)),
        named_server=_pem(
            *_issue("apiserver", issuer=ca, sans=[x509.DNSName("api.cluster.internal")])
        ),
        client=_pem(*_issue("operator-7", issuer=ca)),
    )


# --------------------------------------------------------------------------
# Loopback servers


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers every GET with JSON: the path, Host and Authorization headers, the client's CN."""

    def do_GET(self) -> None:
        client = ""
        peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        for rdn in (peer or {}).get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    client = value
        body = json.dumps(
            {
                "path": self.path,
                "host": self.headers.get("Host", ""),
                "auth": self.headers.get("Authorization", ""),
                "client": client,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


def _serve(tls: ssl.SSLContext | None) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        scheme = "https" if tls else "http"
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _tls(pki: Pki, server: Pem, tmp: Path) -> ssl.SSLContext:
    (tmp / "server.crt").write_bytes(server.cert)
    (tmp / "server.key").write_bytes(server.key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp / "server.crt", tmp / "server.key")
    ctx.load_verify_locations(cadata=pki.ca.cert.decode())
    ctx.verify_mode = ssl.CERT_OPTIONAL  # the client certificate is reported, not demanded
    return ctx


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    yield from _serve(None)


@pytest.fixture(scope="module")
def https_url(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(_tls(pki, pki.server, tmp_path_factory.mktemp("srv")))


@pytest.fixture(scope="module")
def named_https_url(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(_tls(pki, pki.named_server, tmp_path_factory.mktemp("named")))


# --------------------------------------------------------------------------
# Kubeconfigs


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_kubeconfig(
    path: Path,
    server: str,
    *,
    user: dict[str, Any] | None = None,
    cluster: dict[str, Any] | None = None,
    context: str = "ctx",
    current: str | None = "ctx",
    namespace: str = "",
    entry: str = "1",
) -> Path:
    """Write a one-context kubeconfig (YAML via JSON) and return its path.

    Its cluster and user are called ``c<entry>`` and ``u<entry>``.
    """
    ctx: dict[str, Any] = {"cluster": f"c{entry}", "user": f"u{entry}"}
    if namespace:
        ctx["namespace"] = namespace
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": f"c{entry}", "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": f"u{entry}", "user": user or {}}],
        "contexts": [{"name": context, "context": ctx}],
    }
    if current is not None:
        doc["current-context"] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    return path


def get(conn: kc.Connection, path: str = "/version") -> dict[str, Any]:
    """Return the echo server's answer to one GET made through an Api on ``conn``."""
    return Api(conn, conn.context).request("GET", path, timeout=10.0)


@pytest.fixture
def official_loads(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record each call of the official loader (still doing its work)."""
    from kubernetes import config

    calls: list[Any] = []
    real = config.load_kube_config

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("config_file"))
        return real(*args, **kwargs)

    monkeypatch.setattr(config, "load_kube_config", spy)
    return calls


# --------------------------------------------------------------------------
# Read directly


def test_token_is_sent_as_a_bearer_header(
    tmp_path: Path, http_url: str, official_loads: list[Any]
) -> None:
    path = write_kubeconfig(tmp_path / "config", http_url, user={"token": "s3cret"})
    answer = get(kc.load_connection(path))
    assert answer["auth"] == "Bearer s3cret"
    assert answer["path"] == "/version"
    assert official_loads == []


def test_a_rewritten_kubeconfig_gives_a_new_shared_client(tmp_path: Path, http_url: str) -> None:
    """The shared client follows its kubeconfig: a recreated cluster or new token is used."""
    path = write_kubeconfig(tmp_path / "config", http_url, user={"token": "first"})
    first = api_for("ctx", path)
    assert api_for("ctx", path) is first
    assert first.request("GET", "/version", timeout=10.0)["auth"] == "Bearer first"
    write_kubeconfig(path, http_url, user={"token": "second-token"})
    second = api_for("ctx", path)
    assert second is not first
    assert second.request("GET", "/version", timeout=10.0)["auth"] == "Bearer second-token"
    assert api_for("ctx", path) is second


def test_token_file_is_read_again_for_every_request(
    tmp_path: Path, http_url: str, official_loads: list[Any]
) -> None:
    (tmp_path / "kube" / "tokens").mkdir(parents=True)
    token = tmp_path / "kube" / "tokens" / "sa"
    token.write_text("first\n")
    path = write_kubeconfig(tmp_path / "kube" / "config", http_url, user={"tokenFile": "tokens/sa"})
    conn = kc.load_connection(path)
    assert conn.token_file == str(token)  # relative to the kubeconfig's directory
    api = Api(conn, conn.context)
    assert api.request("GET", "/a", timeout=10.0)["auth"] == "Bearer first"
    token.write_text("rotated\n")
    assert api.request("GET", "/b", timeout=10.0)["auth"] == "Bearer rotated"
    assert official_loads == []


def test_token_wins_over_token_file_and_basic_auth(tmp_path: Path, http_url: str) -> None:
    user = {"token": "t", "tokenFile": "missing", "username": "u", "password": "p"}
    path = write_kubeconfig(tmp_path / "config", http_url, user=user)
    assert get(kc.load_connection(path))["auth"] == "Bearer t"


def test_username_and_password_are_sent_as_basic_auth(tmp_path: Path, http_url: str) -> None:
    path = write_kubeconfig(
        tmp_path / "config", http_url, user={"username": "admin", "password": "pw:1"}
    )
    expected = "Basic " + base64.b64encode(b"admin:pw:1").decode()
    assert get(kc.load_connection(path))["auth"] == expected


def test_a_user_without_credentials_sends_no_authorization(tmp_path: Path, http_url: str) -> None:
    path = write_kubeconfig(tmp_path / "config", http_url)
    assert get(kc.load_connection(path))["auth"] == ""


def test_query_parameters_are_encoded(tmp_path: Path, http_url: str) -> None:
    conn = kc.load_connection(write_kubeconfig(tmp_path / "config", http_url))
    answer = Api(conn, "ctx").request(
        "GET", "/x", timeout=10.0, query=[("labelSelector", "app=a,tier in (b)"), ("watch", True)]
    )
    assert answer["path"] == "/x?labelSelector=app%3Da%2Ctier+in+%28b%29&watch=true"


def test_certificate_data_verifies_the_server_and_presents_the_client(
    tmp_path: Path, pki: Pki, https_url: str, official_loads: list[Any]
) -> None:
    user = {
        "client-certificate-data": _b64(pki.client.cert),
        "client-key-data": _b64(pki.client.key),
    }
    cluster = {"certificate-authority-data": _b64(pki.ca.cert)}
    path = write_kubeconfig(tmp_path / "config", https_url, user=user, cluster=cluster)
    conn = kc.load_connection(path)
    assert conn.ca_data == pki.ca.cert and conn.cert_data == pki.client.cert
    assert get(conn)["client"] == "operator-7"
    assert official_loads == []


def test_certificate_data_leaves_no_file_behind(
    tmp_path: Path, pki: Pki, https_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    user = {
        "client-certificate-data": _b64(pki.client.cert),
        "client-key-data": _b64(pki.client.key),
    }
    cluster = {"certificate-authority-data": _b64(pki.ca.cert)}
    path = write_kubeconfig(tmp_path / "config", https_url, user=user, cluster=cluster)
    assert get(kc.load_connection(path))["client"] == "operator-7"
    assert list(scratch.iterdir()) == []


def test_certificate_files_relative_to_the_kubeconfig(
    tmp_path: Path, pki: Pki, https_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki_dir = tmp_path / "kube" / "pki"
    pki_dir.mkdir(parents=True)
    (pki_dir / "ca.crt").write_bytes(pki.ca.cert)
    (pki_dir / "me.crt").write_bytes(pki.client.cert)
    (pki_dir / "me.key").write_bytes(pki.client.key)
    user = {"client-certificate": "pki/me.crt", "client-key": "pki/me.key"}
    cluster = {"certificate-authority": "pki/ca.crt"}
    path = write_kubeconfig(tmp_path / "kube" / "config", https_url, user=user, cluster=cluster)
    monkeypatch.chdir(tmp_path)  # not the kubeconfig's directory
    conn = kc.load_connection(path)
    assert (conn.ca_file, conn.cert_file, conn.key_file) == (
        str(pki_dir / "ca.crt"),
        str(pki_dir / "me.crt"),
        str(pki_dir / "me.key"),
    )
    assert get(conn)["client"] == "operator-7"


def test_a_server_signed_by_another_ca_is_refused(tmp_path: Path, pki: Pki, https_url: str) -> None:
    cluster = {"certificate-authority-data": _b64(pki.other_ca.cert)}
    path = write_kubeconfig(tmp_path / "config", https_url, cluster=cluster)
    with pytest.raises(BackendUnavailable, match=r"cannot reach ctx API server: .*CERTIFICATE"):
        get(kc.load_connection(path))


def test_insecure_skip_tls_verify_accepts_any_server(
    tmp_path: Path, pki: Pki, https_url: str
) -> None:
    cluster = {"insecure-skip-tls-verify": True}
    path = write_kubeconfig(tmp_path / "config", https_url, user={"token": "t"}, cluster=cluster)
    conn = kc.load_connection(path)
    assert conn.insecure
    assert get(conn)["auth"] == "Bearer t"


def test_tls_server_name_is_the_name_verified(
    tmp_path: Path, pki: Pki, named_https_url: str
) -> None:
    ca = {"certificate-authority-data": _b64(pki.ca.cert)}
    plain = write_kubeconfig(tmp_path / "plain", named_https_url, cluster=ca)
    with pytest.raises(BackendUnavailable, match=r"127\.0\.0\.1"):
        get(kc.load_connection(plain))  # the certificate names api.cluster.internal only
    named = write_kubeconfig(
        tmp_path / "named",
        named_https_url,
        cluster={**ca, "tls-server-name": "api.cluster.internal"},
    )
    conn = kc.load_connection(named)
    assert conn.tls_server_name == "api.cluster.internal"
    assert get(conn)["path"] == "/version"


def test_current_context_is_the_default_and_its_namespace_is_kept(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        "https://k8s.example:6443/",
        context="prod",
        current="prod",
        namespace="ml",
    )
    conn = kc.load_connection(path)
    assert (conn.context, conn.namespace, conn.server) == ("prod", "ml", "https://k8s.example:6443")


def test_kubeconfig_env_and_default_locations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = write_kubeconfig(
        tmp_path / "env-config", "http://env:1", context="from-env", current="from-env"
    )
    monkeypatch.setenv("KUBECONFIG", str(env))
    assert kc.load_connection().context == "from-env"
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    write_kubeconfig(tmp_path / ".kube" / "config", "http://home:1", context="home", current="home")
    assert kc.load_connection().server == "http://home:1"


def test_api_for_shares_one_client_per_kubeconfig_and_context(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "config", "http://127.0.0.1:9", context="a", current="a")
    first = api_for(None, path)
    assert first.context == "a"
    assert api_for(None, path) is first
    assert api_for("a", path) is not first  # a different key, same settings
    assert api_for("a", path).connection == first.connection


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update({"current-context": ""}), "no current-context is set"),
        (
            lambda d: d.update({"current-context": "gone"}),
            "context 'gone' not found (contexts: ctx)",
        ),
        (
            lambda d: d["contexts"][0]["context"].update(cluster="c9"),
            "cluster 'c9' of context 'ctx' not found",
        ),
        (
            lambda d: d["contexts"][0]["context"].update(user="u9"),
            "user 'u9' of context 'ctx' not found",
        ),
        (
            lambda d: d["clusters"][0]["cluster"].pop("server"),
            "cluster 'c1' of context ctx has no server",
        ),
        (
            lambda d: d["users"][0]["user"].update(tokenFile="nope"),
            "tokenFile {dir}/nope does not exist",
        ),
        (
            lambda d: d["users"][0]["user"].update({"client-certificate": "/no/such.crt"}),
            "client-certificate /no/such.crt does not exist",
        ),
        (
            lambda d: d["clusters"][0]["cluster"].update({"certificate-authority-data": "!!!"}),
            "certificate-authority-data is not valid base64",
        ),
    ],
)
def test_broken_kubeconfigs_name_the_file_and_what_is_missing(
    tmp_path: Path, edit: Callable[[dict[str, Any]], Any], message: str
) -> None:
    path = write_kubeconfig(tmp_path / "config", "https://k8s.example")
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError) as caught:
        kc.load_connection(path)
    assert caught.value.path == str(path)
    assert message.format(dir=tmp_path) in str(caught.value)


def test_a_missing_or_unreadable_kubeconfig_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read kubeconfig: No such file"):
        kc.load_connection(tmp_path / "absent")
    (tmp_path / "list").write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="not a valid kubeconfig"):
        kc.load_connection(tmp_path / "list")
    with pytest.raises(ConfigError, match=r"context 'x' not found"):
        api_for("x", write_kubeconfig(tmp_path / "config", "http://127.0.0.1:9"))


def test_a_certificate_that_cannot_be_loaded_is_a_config_error(tmp_path: Path, pki: Pki) -> None:
    user = {
        "client-certificate-data": _b64(b"not a certificate"),
        "client-key-data": _b64(pki.client.key),
    }
    path = write_kubeconfig(tmp_path / "config", "https://127.0.0.1:9", user=user)
    with pytest.raises(ConfigError, match="context ctx: TLS: ") as caught:
        api_for(None, path)
    assert caught.value.path == str(path)


def test_an_unreadable_token_file_at_request_time_is_a_config_error(
    tmp_path: Path, http_url: str
) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    conn = kc.load_connection(
        write_kubeconfig(tmp_path / "config", http_url, user={"tokenFile": str(token)})
    )
    token.unlink()
    with pytest.raises(ConfigError, match="cannot read tokenFile"):
        get(conn)


# --------------------------------------------------------------------------
# Handed to the official loader


EXEC_PLUGIN = """\
import json, pathlib, sys
counter = pathlib.Path(sys.argv[1])
n = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(n))
print(json.dumps({
    "apiVersion": "client.authentication.k8s.io/v1beta1",
    "kind": "ExecCredential",
    "status": {"token": f"exec-{n}", "expirationTimestamp": "2000-01-01T00:00:00Z"},
}))
"""


def test_an_exec_plugin_goes_to_the_official_loader_and_its_token_is_renewed(
    tmp_path: Path, http_url: str, official_loads: list[Any]
) -> None:
    plugin = tmp_path / "plugin.py"
    plugin.write_text(EXEC_PLUGIN)
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": sys.executable,
            "args": [str(plugin), str(tmp_path / "count")],
        }
    }
    path = write_kubeconfig(tmp_path / "config", http_url, user=user, namespace="ml")
    conn = kc.load_connection(path)
    assert official_loads == [str(path)]
    assert (conn.context, conn.namespace, conn.server) == ("ctx", "ml", http_url)
    api = Api(conn, conn.context)
    first = api.request("GET", "/a", timeout=10.0)["auth"]
    second = api.request("GET", "/b", timeout=10.0)["auth"]
    # The token has expired, so every request asks the plugin again.
    assert first.startswith("Bearer exec-") and second.startswith("Bearer exec-")
    assert int(second.removeprefix("Bearer exec-")) > int(first.removeprefix("Bearer exec-"))


def _jwt(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


def test_an_auth_provider_goes_to_the_official_loader(
    tmp_path: Path, http_url: str, official_loads: list[Any]
) -> None:
    token = _jwt({"exp": 4102444800, "sub": "op"})  # 2100-01-01
    user = {
        "auth-provider": {
            "name": "oidc",
            "config": {"id-token": token, "client-id": "mrc", "idp-issuer-url": "http://idp"},
        }
    }
    path = write_kubeconfig(tmp_path / "config", http_url, user=user)
    conn = kc.load_connection(path)
    assert official_loads == [str(path)]
    assert get(conn)["auth"] == f"Bearer {token}"


def test_several_kubeconfig_files_go_to_the_official_loader(
    tmp_path: Path, http_url: str, monkeypatch: pytest.MonkeyPatch, official_loads: list[Any]
) -> None:
    first = write_kubeconfig(tmp_path / "a", "http://127.0.0.1:9", context="a", current="a")
    second = write_kubeconfig(
        tmp_path / "b", http_url, user={"token": "from-b"}, context="b", current="b", entry="2"
    )
    merged = os.pathsep.join([str(first), str(second)])
    monkeypatch.setenv("KUBECONFIG", merged)
    conn = kc.load_connection(None, "b")
    assert official_loads == [merged]
    assert conn.context == "b"
    assert get(conn)["auth"] == "Bearer from-b"


def test_a_proxy_url_goes_to_the_official_loader_and_requests_use_the_proxy(
    tmp_path: Path, http_url: str, official_loads: list[Any]
) -> None:
    # The echo server stands in for the proxy: it sees the absolute URL.
    path = write_kubeconfig(
        tmp_path / "config",
        "http://cluster.invalid:6443",
        user={"token": "t"},
        cluster={"proxy-url": http_url},
    )
    conn = kc.load_connection(path)
    assert official_loads == [str(path)]
    assert conn.proxy == http_url
    answer = get(conn)
    assert answer["path"] == "http://cluster.invalid:6443/version"
    assert answer["host"] == "cluster.invalid:6443"
    assert answer["auth"] == "Bearer t"


class _Tunnel(socketserver.StreamRequestHandler):
    """A CONNECT proxy: records the request head, then relays bytes both ways."""

    heads: list[str] = []

    def handle(self) -> None:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            byte = self.rfile.read(1)
            if not byte:
                return
            head += byte
        text = head.decode("latin-1")
        self.heads.append(text)
        host, _, port = text.split(" ", 2)[1].rpartition(":")
        with socket.create_connection((host, int(port))) as upstream:
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            relay = threading.Thread(target=_pipe, args=(upstream, self.connection), daemon=True)
            relay.start()
            _pipe(self.connection, upstream)
            relay.join(10)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


@pytest.fixture
def tunnel() -> Iterator[tuple[str, list[str]]]:
    heads: list[str] = []
    handler = type("Recording", (_Tunnel,), {"heads": heads})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://op:pw%21@127.0.0.1:{server.server_address[1]}", heads
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_an_https_server_behind_a_proxy_is_reached_through_a_connect_tunnel(
    tmp_path: Path, pki: Pki, https_url: str, tunnel: tuple[str, list[str]]
) -> None:
    proxy, heads = tunnel
    path = write_kubeconfig(
        tmp_path / "config",
        https_url,
        user={"token": "t"},
        cluster={"proxy-url": proxy, "certificate-authority-data": _b64(pki.ca.cert)},
    )
    conn = kc.load_connection(path)
    assert conn.proxy == proxy
    api = Api(conn, conn.context)
    netloc = https_url.removeprefix("https://")
    assert api.request("GET", "/a", timeout=10.0) == {
        "path": "/a",
        "host": netloc,  # the server's, not the proxy's
        "auth": "Bearer t",
        "client": "",
    }
    assert api.request("GET", "/b", timeout=10.0)["path"] == "/b"
    credentials = base64.b64encode(b"op:pw!").decode()
    assert set(heads) == {  # the echo server closes after each answer: a tunnel each
        f"CONNECT {netloc} HTTP/1.1\r\nHost: {netloc}\r\n"
        f"Proxy-Authorization: Basic {credentials}\r\n\r\n"
    }


# --------------------------------------------------------------------------
# The rollback path never imports the official client


def test_the_rollback_path_does_not_import_the_kubernetes_package_or_urllib3(
    tmp_path: Path, pki: Pki, https_url: str
) -> None:
    """A token + client-certificate kubeconfig: the modules a rollback loads, and a request.

    Neither the official client nor urllib3 (about 35 ms of imports) is loaded.
    """
    (tmp_path / "ca.crt").write_bytes(pki.ca.cert)
    (tmp_path / "me.crt").write_bytes(pki.client.cert)
    (tmp_path / "me.key").write_bytes(pki.client.key)
    user = {"client-certificate": "me.crt", "client-key": "me.key", "token": "t"}
    path = write_kubeconfig(
        tmp_path / "config", https_url, user=user, cluster={"certificate-authority": "ca.crt"}
    )
    code = textwrap.dedent(
        f"""
        import json, sys
        import core.services.workspace, core.targets.kinds, core.targets.kubernetes
        import core.targets.k8s_rollback
        from core.targets.k8s_api import api_for
        answer = api_for(None, {str(path)!r}).request("GET", "/version", timeout=10.0)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("kubernetes", "urllib3"))
        print(json.dumps([answer, loaded]))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert out.returncode == 0, out.stderr
    answer, loaded = json.loads(out.stdout)
    assert (answer["auth"], answer["client"]) == ("Bearer t", "operator-7")
    assert loaded == []
