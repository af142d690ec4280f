"""Service configuration: flags > environment (``VECRAFT_*``) > one TOML file > defaults.

Each service declares one ``pydantic-settings`` class derived from
:class:`ServiceSettings` (in its ``settings.py``); :func:`load_settings` turns
its fields into command line flags (``--grpc-port``) and builds it from three
layers: the flags given, pydantic-settings' own environment source
(``VECRAFT_GRPC_PORT``) and its TOML source reading ``--config FILE`` (or
``VECRAFT_CONFIG``). A TOML file may hold the keys at top level or in a table
named after the service (``[journal]``), which :class:`TableTomlSettingsSource`
adds to the library's source. Backend choices are ``Literal`` fields, so a typo
fails at start-up.

The flags stay on argparse rather than pydantic-settings' ``CliSettingsSource``,
because that source cannot keep the command lines and their errors as they are:
it gives ``Literal`` fields no argparse choices (a typo becomes a validation
error instead of the usage error "invalid choice", exit 2), hands a bad number to
pydantic instead of failing it as a usage error, takes a list as repeated flags
or JSON but not as ``--peers a b`` (unless every list field is marked
``CliVariadicArg``), and rewrites every help text (``(default: ...)`` appended,
type names as metavars, ``%`` escaped a second time).

Commands with sub-commands (``vecraft up``) use the two halves of
:func:`load_settings` directly: :func:`add_settings_arguments` on their own
parser, then :func:`settings_from_namespace`.
"""

from __future__ import annotations

import argparse
import errno
import os
import types
import typing
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from pydantic import Field
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

S = TypeVar("S", bound="ServiceSettings")
B = TypeVar("B", bound=BaseSettings)


class ServiceSettings(BaseSettings):
    """Settings every service process has."""

    model_config = SettingsConfigDict(env_prefix="VECRAFT_", extra="ignore")

    node_id: str = Field("", description="stable identity of this process (default: <service>-<port>)")
    host: str = Field("127.0.0.1", description="interface to bind gRPC and HTTP on")
    grpc_port: int = Field(0, ge=0, le=65535, description="gRPC port (0 = any free port)")
    http_port: int = Field(0, ge=0, le=65535, description="HTTP port for /healthz /readyz /metrics (0 = any)")
    data_dir: Path = Field(Path("./vecraft-data"), description="where this service keeps its files")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")
    meta_address: str = Field("", description="meta manager gRPC address host:port ('' = none)")
    # TLS (docs/security.md#tls): files in PEM, as `vecraft certs init` writes them.
    tls_cert: str = Field("", description="certificate (PEM) this service presents on its ports and to "
                                          "the services it calls; with --tls-key, both ports speak TLS")
    tls_key: str = Field("", description="private key (PEM) of --tls-cert")
    tls_ca: str = Field("", description="CA that signs the cluster's service certificates: internal calls "
                                        "use TLS and verify servers with it, and (but on the gateway) "
                                        "callers must present a certificate it signed (mutual TLS)")
    tls_client_ca: str = Field("", description="gateway: require client certificates signed by this CA on "
                                               "the public ports (default: none, clients use API keys)")
    tls_server_name: str = Field("", description="name to verify in the certificate of every service this "
                                                 "one calls, instead of the host of its address (Kubernetes: "
                                                 "pods register their IPs, which no certificate names; "
                                                 "`vecraft certs init --k8s-namespace` adds <release>-peer)")


class TableTomlSettingsSource(TomlConfigSettingsSource):
    """The library's TOML source, reading one file shared by every program of a cluster.

    Keys at top level apply to every program; the program's own table (``[journal]``)
    overrides them, and the other programs' tables are not its business.
    ``toml_table_header`` cannot say this: it selects a table alone and refuses a file
    without it. A file that was named but does not exist is an error (the library's
    source would skip it silently, running the service on defaults).
    """

    def __init__(self, settings_cls: type[BaseSettings], toml_file: Path | None, table: str) -> None:
        if toml_file is not None and not Path(toml_file).is_file():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(toml_file))
        self.table = table
        super().__init__(settings_cls, toml_file=toml_file)

    def _read_file(self, file_path: Path | Traversable) -> dict[str, Any]:
        data = super()._read_file(file_path)
        merged = {k: v for k, v in data.items() if not isinstance(v, dict)}
        merged.update(data.get(self.table, {}))
        return merged


def _flag_type(annotation: Any) -> tuple[Any, list[str] | None, bool]:
    """(argparse type, choices, is_list) for a field annotation."""
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return _flag_type(args[0]) if len(args) == 1 else (str, None, False)
    if origin is Literal:
        choices = [str(a) for a in get_args(annotation)]
        return str, choices, False
    if origin in (list, tuple):
        inner = get_args(annotation)[0] if get_args(annotation) else str
        return inner, None, True
    if annotation is bool:
        return bool, None, False
    if annotation in (int, float, str):
        return annotation, None, False
    return str, None, False


def add_settings_arguments(parser: argparse.ArgumentParser, cls: type[BaseSettings]) -> None:
    """Add ``--config`` and one flag per field of ``cls`` to ``parser``.

    Every flag defaults to ``None`` ("not given"), so :func:`settings_from_namespace`
    can tell a flag from the environment, the file and the field default.
    """
    parser.add_argument("--config", type=Path, default=os.environ.get("VECRAFT_CONFIG"),
                        help="TOML file with settings (flags and VECRAFT_* variables win)")
    for name, field in cls.model_fields.items():
        flag = "--" + name.replace("_", "-")
        ftype, choices, is_list = _flag_type(field.annotation)
        help_text = field.description or ""
        if ftype is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        elif is_list:
            parser.add_argument(flag, dest=name, type=ftype, nargs="*", default=None, help=help_text)
        else:
            parser.add_argument(flag, dest=name, type=ftype, choices=choices, default=None, help=help_text)


def settings_from_namespace(cls: type[B], ns: argparse.Namespace, *, section: str = "") -> B:
    """Build ``cls`` from parsed flags (see :func:`add_settings_arguments`), the environment
    and the TOML file named by ``ns.config`` (its ``[section]`` over its top-level keys).

    The file and the environment are read by the library's sources into mappings,
    merged in priority order with the flags, and passed to ``cls``; its own
    environment source ranks below values passed, and finds nothing new to add.
    """
    config = getattr(ns, "config", None)
    file_values = TableTomlSettingsSource(cls, Path(config) if config else None, section)()
    env_values = EnvSettingsSource(cls)()
    flags = {k: v for k, v in vars(ns).items() if k in cls.model_fields and v is not None}
    return cls(**{**file_values, **env_values, **flags})


def load_settings(cls: type[S], argv: list[str] | None = None, *, section: str = "",
                  description: str = "") -> S:
    """Build ``cls`` from flags, environment and an optional TOML file (in that priority)."""
    parser = argparse.ArgumentParser(description=description or cls.__doc__)
    add_settings_arguments(parser, cls)
    return settings_from_namespace(cls, parser.parse_args(argv), section=section)
