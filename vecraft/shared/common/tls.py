"""TLS for Vecraft's servers and internal clients (docs/security.md#tls).

A service given ``--tls-cert``/``--tls-key`` serves TLS on both its ports: gRPC through
:func:`server_credentials`, HTTP (uvicorn) through :class:`ReloadingSslContext`. With a
client CA (``--tls-ca`` on internal services, ``--tls-client-ca`` on the gateway's public
ports) its gRPC port requires a client certificate signed by that CA: mutual TLS.
HTTP ports ask for a certificate and verify the one given, but do not require one, so
probes and metric scrapers (which present none) still reach ``/healthz`` and ``/metrics``.

The files are watched: a new TLS connection after a change of their modification time
uses the new certificate and key (gRPC: the fetcher of ``dynamic_ssl_server_credentials``
runs at each new connection; HTTP: :meth:`ReloadingSslContext.reload_if_changed`, called
every :data:`RELOAD_CHECK_S` seconds, loads them into the live ``SSLContext``). A pair that
does not load (a key that does not match its certificate, half-written files) is skipped
and the old one kept until the next change.

Client side: :func:`configure_client` sets, once per process, the CA that internal
channels verify servers with and the certificate they present; :func:`channel` then
opens secure channels (every ``grpc_channel`` of the process goes through it), and
:func:`http_scheme` / :func:`httpx_verify` do the same for internal HTTP calls.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import grpc

log = logging.getLogger(__name__)

#: Seconds between two checks of the certificate files of an HTTPS port.
RELOAD_CHECK_S = 2.0


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """A certificate and key in PEM files, and the CA the other end must be signed by (if any)."""

    cert: Path
    key: Path
    #: Server: clients must present a certificate from this CA (gRPC) / are verified with it (HTTP).
    #: Client: servers are verified with this CA (None = the system's trust store).
    ca: Path | None = None


def _path(value: Any) -> Path | None:
    return Path(value) if value not in (None, "") else None


def files_of(cert: Any, key: Any, ca: Any, *, what: str = "--tls") -> TlsFiles | None:
    """The files of a TLS configuration, checked at once; None when no certificate is given.

    Raises:
        ValueError: a certificate without key (or the reverse), a CA without certificate, a
            file that cannot be read, or a key that does not belong to its certificate.
    """
    cert_path, key_path, ca_path = _path(cert), _path(key), _path(ca)
    if cert_path is None and key_path is None:
        if ca_path is not None:
            raise ValueError(f"{what}-ca needs {what}-cert and {what}-key: a service checking its peers' "
                             "certificates must present one itself")
        return None
    if cert_path is None or key_path is None:
        raise ValueError(f"{what}-cert and {what}-key go together (one of them is missing)")
    for path in (cert_path, key_path, ca_path):
        if path is not None and not path.is_file():
            raise ValueError(f"TLS file {path} does not exist (create them with `vecraft certs init`)")
    files = TlsFiles(cert_path, key_path, ca_path)
    try:
        _check_pair(files)
        if ca_path is not None:
            ssl.create_default_context(cafile=str(ca_path))
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"cannot load TLS files {cert_path}, {key_path}"
                         f"{', ' + str(ca_path) if ca_path else ''}: {exc}") from exc
    return files


def _check_pair(files: TlsFiles) -> None:
    """Raises ssl.SSLError unless the key belongs to the certificate."""
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(str(files.cert), str(files.key))


def _mtimes(files: TlsFiles) -> tuple[int, ...]:
    return tuple(p.stat().st_mtime_ns if p.exists() else -1 for p in (files.cert, files.key, files.ca)
                 if p is not None)


# ---- gRPC server --------------------------------------------------------------------


class _CertificateFetcher:
    """The fetcher of ``grpc.dynamic_ssl_server_credentials``: a new configuration after the
    files changed, else None ("unchanged"). gRPC calls it at every new connection."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self._loaded = _mtimes(files)
        #: How many times a changed set of files was handed to gRPC (tests, logs).
        self.reloads = 0

    def configuration(self) -> Any:
        import grpc  # here: `vecraft up` and the CLI plan with this module and never need grpc

        ca = self.files.ca.read_bytes() if self.files.ca is not None else None
        return grpc.ssl_server_certificate_configuration(
            [(self.files.key.read_bytes(), self.files.cert.read_bytes())], root_certificates=ca)

    def __call__(self) -> Any:
        try:
            mtimes = _mtimes(self.files)
            if mtimes == self._loaded:
                return None
            _check_pair(self.files)
            config = self.configuration()
        except (OSError, ssl.SSLError) as exc:
            log.warning("TLS files changed but do not load (kept the previous ones): %s", exc)
            return None
        self._loaded = mtimes
        self.reloads += 1
        log.info("TLS certificate reloaded for new gRPC connections", extra={"cert": str(self.files.cert)})
        return config


def server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    """gRPC server credentials of ``files`` that follow changes of the files; a client
    certificate signed by ``files.ca`` is required when ``files.ca`` is set."""
    import grpc

    fetcher = _CertificateFetcher(files)
    return grpc.dynamic_ssl_server_credentials(fetcher.configuration(), fetcher,
                                               require_client_authentication=files.ca is not None)


# ---- HTTP server (uvicorn) ----------------------------------------------------------


class ReloadingSslContext:
    """The ``SSLContext`` of an HTTPS port; :meth:`reload_if_changed` loads changed files into it.

    Loading a new chain into a live context changes what the next handshakes present;
    connections already open keep theirs. A CA file that changes is loaded too, but CAs
    only add up: one removed from the file stays trusted until the restart.
    """

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.load_cert_chain(str(files.cert), str(files.key))
        if files.ca is not None:
            self.context.load_verify_locations(cafile=str(files.ca))
            # Asked for and verified, not required: probes and scrapers present no certificate.
            self.context.verify_mode = ssl.CERT_OPTIONAL
        self._loaded = _mtimes(files)
        self.reloads = 0

    def reload_if_changed(self) -> bool:
        """Load the files again if they changed; True if a new certificate is in use."""
        try:
            mtimes = _mtimes(self.files)
            if mtimes == self._loaded:
                return False
            _check_pair(self.files)
            self.context.load_cert_chain(str(self.files.cert), str(self.files.key))
            if self.files.ca is not None:
                self.context.load_verify_locations(cafile=str(self.files.ca))
        except (OSError, ssl.SSLError) as exc:
            log.warning("TLS files changed but do not load (kept the previous ones): %s", exc)
            return False
        self._loaded = mtimes
        self.reloads += 1
        log.info("TLS certificate reloaded for new HTTPS connections", extra={"cert": str(self.files.cert)})
        return True


# ---- internal clients ---------------------------------------------------------------

_client_files: TlsFiles | None = None
_client_credentials: tuple[tuple[int, ...], grpc.ChannelCredentials] | None = None
_server_name = ""


def configure_client(files: TlsFiles | None, *, server_name: str = "") -> None:
    """Make every internal channel of this process TLS with ``files`` (None: plaintext).

    ``files.ca`` verifies the servers, ``files.cert``/``files.key`` is the certificate the
    process presents (mutual TLS). ``server_name``, when given, is the name checked in every
    server's certificate instead of the host of the address dialed: services register the
    address they bind, in Kubernetes a pod IP no certificate can name, so every certificate
    of the cluster names one peer name instead (docs/deployment.md, mutual TLS between pods).
    Services call it at construction; in a process that runs several services they share one
    configuration, the last one given.
    """
    global _client_files, _client_credentials, _server_name
    _client_files = files
    _client_credentials = None
    _server_name = server_name


def client_files() -> TlsFiles | None:
    """What :func:`configure_client` set."""
    return _client_files


def channel_credentials(files: TlsFiles) -> grpc.ChannelCredentials:
    """Channel credentials of ``files`` (read now: a channel keeps them for its life)."""
    import grpc

    ca = files.ca.read_bytes() if files.ca is not None else None
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=files.key.read_bytes(),
                                        certificate_chain=files.cert.read_bytes())


def _current_credentials(files: TlsFiles) -> grpc.ChannelCredentials:
    global _client_credentials
    mtimes = _mtimes(files)
    if _client_credentials is None or _client_credentials[0] != mtimes:
        # Files changed (a rotation): channels opened from now on present the new certificate.
        _client_credentials = (mtimes, channel_credentials(files))
    return _client_credentials[1]


def channel(address: str, options: list[tuple[str, Any]]) -> grpc.aio.Channel:
    """An aio channel to ``address``: TLS with the process's files, else plaintext."""
    import grpc

    files = _client_files
    if files is None:
        return grpc.aio.insecure_channel(address, options=options)
    if _server_name:
        options = [*options, ("grpc.ssl_target_name_override", _server_name)]
    return grpc.aio.secure_channel(address, _current_credentials(files), options=options)


def http_scheme() -> str:
    """``https`` when internal calls use TLS, else ``http``."""
    return "http" if _client_files is None else "https"


def httpx_verify() -> ssl.SSLContext | bool:
    """``verify=`` for an internal httpx client: the CA and the process's certificate, or True."""
    files = _client_files
    if files is None:
        return True
    context = ssl.create_default_context(cafile=str(files.ca) if files.ca is not None else None)
    context.load_cert_chain(str(files.cert), str(files.key))
    if _server_name:
        # Every peer's certificate holds the same peer name (configure_client), so checking it
        # adds nothing to the CA's signature; httpx cannot check another name than the host's.
        context.check_hostname = False
    return context
