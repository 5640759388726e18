"""Where an API server is and how to authenticate to it, read from a kubeconfig.

:func:`load_connection` returns a small frozen :class:`Connection` that
:mod:`core.targets.k8s_api` builds its HTTP pool from.

Read directly (PyYAML, its C loader when available), because importing the
official ``kubernetes`` package costs about 420-580 ms of start-up on the
machines we measured (its ``config`` package alone pulls pydantic, google-auth
and requests-oauthlib), which dominated ``mrc rollback --no-wait``:

* one kubeconfig file: the ``kubeconfig`` argument, else ``$KUBECONFIG`` when
  it names one file, else ``~/.kube/config``;
* the named context, or the file's ``current-context``; its namespace;
* the cluster's ``server``, ``certificate-authority`` / ``-data``,
  ``insecure-skip-tls-verify`` and ``tls-server-name``;
* the user's ``client-certificate`` / ``-data`` and ``client-key`` / ``-data``,
  ``token`` or ``tokenFile`` (re-read on every request, so a rotated
  projected token keeps working, as client-go does), ``username`` and
  ``password`` (basic auth).

Relative file paths are resolved against the kubeconfig file's directory.
The official loader's order is kept: a ``token`` wins over ``tokenFile``, a
token wins over basic auth, and certificate files are only used for an
``https`` server.

Handed to the official loader (``kubernetes.config.load_kube_config``,
imported only then), whose result is turned into the same ``Connection``,
because these need machinery we do not want to copy:

* a user with ``exec`` or ``auth-provider`` (credential plugins, OIDC, GCP):
  the token is asked of the official ``Configuration`` on every request, so
  its refresh hook renews expiring tokens in a long-running console;
* a cluster with ``proxy-url``;
* a ``$KUBECONFIG`` listing several files (merging).
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError

#: The kubeconfig read when neither an argument nor ``$KUBECONFIG`` names one.
DEFAULT_KUBECONFIG = "~/.kube/config"


@dataclass(frozen=True)
class Connection:
    """One API server and the credentials to use with it.

    ``server`` is its URL without a trailing slash. Certificate and key data
    are PEM bytes; file fields are absolute paths ("" when unset). Build one
    with :func:`load_connection`.
    """

    server: str
    #: The context's name (for messages) and its default namespace ("" when unset).
    context: str = ""
    namespace: str = ""
    ca_file: str = ""
    ca_data: bytes = b""
    cert_file: str = ""
    key_file: str = ""
    cert_data: bytes = b""
    key_data: bytes = b""
    token: str = ""
    #: Read again on every request (see :meth:`authorization`).
    token_file: str = ""
    username: str = ""
    password: str = ""
    insecure: bool = False
    tls_server_name: str = ""
    #: The proxy URL (only set by the official loader, for ``proxy-url``).
    proxy: str = ""
    #: Where the settings came from, for messages.
    source: str = ""
    #: For users the official loader handles: returns the Authorization header
    #: value of the next request (refreshing an expired token), "" for none.
    credentials: Callable[[], str] | None = field(default=None, compare=False, repr=False)

    @property
    def https(self) -> bool:
        """Return True when the server is reached over TLS."""
        return self.server.lower().startswith("https:")

    def authorization(self) -> str:
        """Return the ``Authorization`` header value for the next request ("" for none).

        Reads ``token_file`` again each time. Raises ConfigError when it
        cannot be read, or when the official loader's credential plugin fails.
        """
        if self.credentials is not None:
            try:
                return self.credentials()
            except Exception as exc:
                raise ConfigError(self.source, [f"context {self.context}: {exc}"]) from exc
        if self.token:
            return f"Bearer {self.token}"
        if self.token_file:
            return f"Bearer {_read_token(self.token_file, self.source, self.context)}"
        if self.username and self.password:
            pair = f"{self.username}:{self.password}".encode()
            return "Basic " + base64.b64encode(pair).decode("ascii")
        return ""

    def ssl_context(self) -> ssl.SSLContext:
        """Return a TLS client context: the CA (or the system's), the client certificate.

        Certificate and key data are written to a private temporary directory
        only while they are loaded, and removed at once. With ``insecure``
        neither the certificate nor the host name is verified. Raises
        ConfigError when a certificate or key cannot be loaded.
        """
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            if self.insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            elif self.ca_file or self.ca_data:
                ctx.load_verify_locations(
                    cafile=self.ca_file or None,
                    cadata=self.ca_data.decode("ascii", "replace") if self.ca_data else None,
                )
            else:
                ctx.load_default_certs()
            if self.cert_file or self.cert_data:
                _load_cert_chain(ctx, self)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise ConfigError(self.source, [f"context {self.context}: TLS: {exc}"]) from exc
        return ctx


def _load_cert_chain(ctx: ssl.SSLContext, conn: Connection) -> None:
    """Load the client certificate and key of ``conn`` into ``ctx``; raises OSError, SSLError."""
    if not (conn.cert_data or conn.key_data):
        ctx.load_cert_chain(conn.cert_file, conn.key_file or None)
        return
    import tempfile  # only for certificate data; its imports cost start-up

    with tempfile.TemporaryDirectory(prefix="mrc-kube-") as tmp:  # mode 0700
        cert = conn.cert_file
        key = conn.key_file
        if conn.cert_data:
            cert = _private_file(Path(tmp) / "client.crt", conn.cert_data)
        if conn.key_data:
            key = _private_file(Path(tmp) / "client.key", conn.key_data)
        ctx.load_cert_chain(cert, key or None)


def _private_file(path: Path, data: bytes) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return str(path)


def _read_token(path: str, source: str, context: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(source, [f"context {context}: cannot read tokenFile: {exc}"]) from exc


def kubeconfig_paths(kubeconfig: str | os.PathLike[str] | None) -> list[str]:
    """Return the kubeconfig files to read: ``kubeconfig``, ``$KUBECONFIG``'s, or the default.

    ``$KUBECONFIG`` may list several files (separated by ``os.pathsep``);
    empty entries are skipped. Paths are ``~``-expanded. Never raises.
    """
    if kubeconfig:
        return [os.path.expanduser(os.fspath(kubeconfig))]
    listed = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return [os.path.expanduser(p) for p in listed or [DEFAULT_KUBECONFIG]]


def load_connection(
    kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None
) -> Connection:
    """Return the :class:`Connection` of ``context`` (None: the current context) in a kubeconfig.

    ``kubeconfig`` None means ``$KUBECONFIG`` or ``~/.kube/config``. The
    cases listed in the module docstring go to the official loader. Raises
    ConfigError naming the file and what is missing or wrong (no such file,
    no current context, an unknown context, cluster or user, a missing
    certificate, key or token file, bad base64 data).
    """
    paths = kubeconfig_paths(kubeconfig)
    if len(paths) > 1:
        merged = os.pathsep.join(paths)  # the official loader splits and merges them
        return _official(merged, context, merged)
    path = paths[0]
    doc = _read_yaml(path)
    name, ctx = _context(doc, context, path)
    cluster = _named(doc, "clusters", "cluster", str(ctx.get("cluster") or ""), name, path)
    user_name = str(ctx.get("user") or "")
    user = _named(doc, "users", "user", user_name, name, path) if user_name else {}
    if "exec" in user or "auth-provider" in user or "proxy-url" in cluster:
        return _official(path, context, path)
    server = str(cluster.get("server") or "").rstrip("/")
    if not server:
        raise ConfigError(path, [f"cluster {ctx.get('cluster')!r} of context {name} has no server"])
    base = os.path.dirname(os.path.abspath(path))
    fields: dict[str, Any] = {}
    if server.lower().startswith("https:"):
        fields["ca_file"], fields["ca_data"] = _file_or_data(
            cluster, "certificate-authority", base, path
        )
        fields["cert_file"], fields["cert_data"] = _file_or_data(
            user, "client-certificate", base, path
        )
        fields["key_file"], fields["key_data"] = _file_or_data(user, "client-key", base, path)
    token = str(user.get("token") or "")
    token_file = ""
    if not token and user.get("tokenFile"):
        token_file = _existing(str(user["tokenFile"]), base, path, "tokenFile")
        _read_token(token_file, path, name)  # fail now, not on the first request
    return Connection(
        server=server,
        context=name,
        namespace=str(ctx.get("namespace") or ""),
        token=token,
        token_file=token_file,
        username=str(user.get("username") or ""),
        password=str(user.get("password") or ""),
        insecure=_true(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=str(cluster.get("tls-server-name") or ""),
        source=path,
        **fields,
    )


def _read_yaml(path: str) -> Mapping[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader is optional
    try:
        with open(path, "rb") as handle:
            doc = yaml.load(handle, Loader=loader)  # a safe loader
    except OSError as exc:
        raise ConfigError(path, [f"cannot read kubeconfig: {exc.strerror or exc}"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(path, [f"not a valid kubeconfig: {exc}"]) from exc
    if not isinstance(doc, dict):
        raise ConfigError(path, ["not a valid kubeconfig: expected a mapping at the top"])
    return doc


def _entries(doc: Mapping[str, Any], section: str) -> dict[str, Any]:
    """Return ``doc[section]`` (a list of ``{name, <kind>}``) as a dict by name."""
    found: dict[str, Any] = {}
    for entry in doc.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") is not None:
            found.setdefault(str(entry["name"]), entry)
    return found


def _context(doc: Mapping[str, Any], wanted: str | None, path: str) -> tuple[str, dict[str, Any]]:
    """Return the name and body of the wanted (or current) context; raises ConfigError."""
    name = wanted or str(doc.get("current-context") or "")
    if not name:
        raise ConfigError(path, ["no current-context is set; name a context"])
    contexts = _entries(doc, "contexts")
    if name not in contexts:
        have = ", ".join(sorted(contexts)) or "none"
        raise ConfigError(path, [f"context {name!r} not found (contexts: {have})"])
    body = contexts[name].get("context")
    if not isinstance(body, dict):
        raise ConfigError(path, [f"context {name!r} has no settings"])
    return name, body


def _named(
    doc: Mapping[str, Any], section: str, kind: str, name: str, context: str, path: str
) -> dict[str, Any]:
    """Return the body of the ``kind`` called ``name``; raises ConfigError naming ``context``."""
    if not name:
        raise ConfigError(path, [f"context {context!r} names no {kind}"])
    entry = _entries(doc, section).get(name)
    if entry is None:
        raise ConfigError(path, [f"{kind} {name!r} of context {context!r} not found"])
    body = entry.get(kind)
    return body if isinstance(body, dict) else {}


def _file_or_data(section: Mapping[str, Any], key: str, base: str, path: str) -> tuple[str, bytes]:
    """Return (file, b"") or ("", decoded data) for ``key`` / ``key-data``; ("", b"") if unset.

    Data wins over a file, as in the official loader. Raises ConfigError for
    bad base64 or a file that does not exist.
    """
    data = section.get(f"{key}-data")
    if data:
        try:
            return "", base64.b64decode("".join(str(data).split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError(path, [f"{key}-data is not valid base64: {exc}"]) from exc
    if section.get(key):
        return _existing(str(section[key]), base, path, key), b""
    return "", b""


def _existing(name: str, base: str, path: str, key: str) -> str:
    """Return ``name`` resolved against ``base``; raises ConfigError when no such file exists."""
    resolved = os.path.normpath(os.path.join(base, name))
    if not os.path.isfile(resolved):
        raise ConfigError(path, [f"{key} {resolved} does not exist"])
    return resolved


def _true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _official(path: str, context: str | None, where: str) -> Connection:
    """Return the Connection the official ``kubernetes`` loader makes of ``path``.

    Imports ``kubernetes`` (slow; only reached for the cases in the module
    docstring). Raises ConfigError naming ``where`` when loading fails.
    """
    from kubernetes import client, config

    cfg = client.Configuration()
    try:
        config.load_kube_config(
            config_file=path, context=context, client_configuration=cfg, persist_config=False
        )
        contexts, active = config.list_kube_config_contexts(config_file=path)
    except Exception as exc:
        raise ConfigError(where, [f"context {context or '(current)'}: {exc}"]) from exc

    def credentials() -> str:
        # Runs the refresh hook (an exec plugin or auth provider renewing an expired token).
        return cfg.get_api_key_with_prefix("BearerToken", alias="authorization") or ""

    name = context or str(active.get("name", "current context"))
    chosen = next((c for c in contexts if c.get("name") == name), active)
    return Connection(
        server=str(cfg.host).rstrip("/"),
        context=name,
        namespace=str((chosen.get("context") or {}).get("namespace") or ""),
        ca_file=cfg.ssl_ca_cert or "",
        cert_file=cfg.cert_file or "",
        key_file=cfg.key_file or "",
        insecure=not cfg.verify_ssl,
        tls_server_name=cfg.tls_server_name or "",
        proxy=cfg.proxy or "",
        source=where,
        credentials=credentials,
    )
