"""Service configuration: flags > environment (``VECRAFT_*``) > one TOML file > defaults.

Each service declares one ``pydantic-settings`` class derived from
:class:`ServiceSettings`; :func:`load_settings` turns its fields into command
line flags (``--grpc-port``), reads ``VECRAFT_GRPC_PORT`` from the environment
and ``--config FILE`` (or ``VECRAFT_CONFIG``) as TOML. A TOML file may hold the
keys at top level or in a table named after the service (``[journal]``).
Backend choices are ``Literal`` fields, so a typo fails at start-up.

Commands with sub-commands (``vecraft up``) use the two halves of
:func:`load_settings` directly: :func:`add_settings_arguments` on their own
parser, then :func:`settings_from_namespace`.
"""

from __future__ import annotations

import argparse
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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


def _read_toml(path: Path, section: str) -> dict[str, Any]:
    data = tomllib.loads(path.read_text())
    merged = {k: v for k, v in data.items() if not isinstance(v, dict)}
    merged.update(data.get(section, {}))
    return merged


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
    and the TOML file named by ``ns.config``, in that priority."""
    values: dict[str, Any] = {}
    if getattr(ns, "config", None):
        file_values = _read_toml(Path(ns.config), section)
        # The environment outranks the file: drop file keys that are set in the env.
        values.update({k: v for k, v in file_values.items()
                       if f"VECRAFT_{k.upper()}" not in os.environ and k in cls.model_fields})
    values.update({k: v for k, v in vars(ns).items() if k in cls.model_fields and v is not None})
    # Init kwargs outrank env in pydantic-settings; file values must not, hence the filter above.
    return cls(**values)


def load_settings(cls: type[S], argv: list[str] | None = None, *, section: str = "",
                  description: str = "") -> S:
    """Build ``cls`` from flags, environment and an optional TOML file (in that priority)."""
    parser = argparse.ArgumentParser(description=description or cls.__doc__)
    add_settings_arguments(parser, cls)
    return settings_from_namespace(cls, parser.parse_args(argv), section=section)
