"""The SDK's TLS arguments: checked at construction, before any connection."""

from __future__ import annotations

import re

import pytest

from vecraft_client import AsyncVecraftClient, VecraftClient

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


def test_tls_files_need_a_tls_endpoint() -> None:
    with pytest.raises(ValueError, match=re.escape("use 'https://127.0.0.1:8000'")):
        VecraftClient("http://127.0.0.1:8000", ca_cert="ca.pem")
    with pytest.raises(ValueError, match=re.escape("use 'grpcs://127.0.0.1:50051'")):
        VecraftClient("grpc://127.0.0.1:50051", transport="grpc", ca_cert="ca.pem")
    with pytest.raises(ValueError, match="go together"):
        AsyncVecraftClient("https://127.0.0.1:8000", client_cert="c.pem")


def test_tls_endpoints() -> None:
    with VecraftClient("grpcs://db.example.com:443", transport="grpc") as client:
        assert client.endpoint == "grpcs://db.example.com:443"
    with VecraftClient("https://db.example.com", transport="grpc") as client:
        assert client.endpoint == "grpcs://db.example.com:50051"
    with VecraftClient("grpc://db.example.com:50051", transport="grpc") as client:
        assert client.endpoint == "grpc://db.example.com:50051"
    with VecraftClient("https://db.example.com:8443") as client:
        assert client.endpoint == "https://db.example.com:8443"
