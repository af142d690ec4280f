"""`vecraft certs init` (vecraft.shared.common.certs) and the checks of TLS files (tls.files_of)."""

from __future__ import annotations

import argparse
import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from vecraft.shared.common import certs_cli, tls
from vecraft.shared.common.certs import DEFAULT_SERVICES, init_certs

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_init_writes_a_ca_and_one_certificate_per_service(tmp_path: Path) -> None:
    made = init_certs(tmp_path / "certs", hosts=["db.example.com", "10.0.0.7"])
    assert set(made.services) == set(DEFAULT_SERVICES)
    assert len(made.created) == 2 * (len(DEFAULT_SERVICES) + 1)
    ca = _cert(made.ca.cert)
    for name, pair in made.services.items():
        assert stat.S_IMODE(pair.key.stat().st_mode) == 0o600
        cert = _cert(pair.cert)
        cert.verify_directly_issued_by(ca)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "db.example.com"}
        assert set(san.get_values_for_type(x509.IPAddress)) == {
            ipaddress.ip_address(a) for a in ("127.0.0.1", "::1", "10.0.0.7")}
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(usage) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        assert f"vecraft-{name}" in cert.subject.rfc4514_string()
    assert stat.S_IMODE(made.ca.key.stat().st_mode) == 0o600
    # The files load as a server's chain and a client's trust store.
    context = ssl.create_default_context(cafile=str(made.ca.cert))
    context.load_cert_chain(str(made.services["gateway"].cert), str(made.services["gateway"].key))


def test_a_second_init_keeps_the_files_and_adds_missing_services(tmp_path: Path) -> None:
    first = init_certs(tmp_path, services=["journal"])
    before = first.services["journal"].cert.read_bytes(), first.ca.cert.read_bytes()
    second = init_certs(tmp_path, services=["journal", "extra"])
    assert second.created == (second.services["extra"].cert, second.services["extra"].key)
    assert (second.services["journal"].cert.read_bytes(), second.ca.cert.read_bytes()) == before
    _cert(second.services["extra"].cert).verify_directly_issued_by(_cert(second.ca.cert))
    forced = init_certs(tmp_path, services=["journal"], force=True)
    assert forced.ca.cert.read_bytes() != before[1]
    _cert(forced.services["journal"].cert).verify_directly_issued_by(_cert(forced.ca.cert))


def test_half_a_ca_and_bad_names_are_refused(tmp_path: Path) -> None:
    made = init_certs(tmp_path, services=["journal"])
    made.ca.key.unlink()
    with pytest.raises(ValueError, match="half of the CA"):
        init_certs(tmp_path, services=["journal"])
    with pytest.raises(ValueError, match="invalid service name"):
        init_certs(tmp_path / "x", services=["../etc"])


def cli_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vecraft")
    certs_cli.add_commands(parser.add_subparsers(), argparse.HelpFormatter, str)
    ns = parser.parse_args(argv)
    return int(ns.handler(ns))


def test_cli_init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["certs", "init", "--dir", str(tmp_path), "--services", "gateway,journal",
                     "--hosts", "vecraft.internal"]) == 0
    out = capsys.readouterr().out
    assert f"CA: {tmp_path / 'ca.pem'}" in out and "wrote" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ca.key", "ca.pem", "gateway.key", "gateway.pem", "journal.key", "journal.pem"]
    assert cli_main(["certs", "init", "--dir", str(tmp_path), "--services", "gateway"]) == 0
    assert "kept the existing certificates of gateway" in capsys.readouterr().out


def test_files_of_checks_the_files(tmp_path: Path) -> None:
    made = init_certs(tmp_path, services=["a", "b"])
    a, b = made.services["a"], made.services["b"]
    assert tls.files_of("", "", "") is None
    assert tls.files_of(a.cert, a.key, made.ca.cert) == tls.TlsFiles(a.cert, a.key, made.ca.cert)
    with pytest.raises(ValueError, match="go together"):
        tls.files_of(a.cert, "", "")
    with pytest.raises(ValueError, match="needs --tls-cert"):
        tls.files_of("", "", made.ca.cert)
    with pytest.raises(ValueError, match="does not exist"):
        tls.files_of(tmp_path / "nope.pem", a.key, "")
    with pytest.raises(ValueError, match="cannot load"):
        tls.files_of(a.cert, b.key, "")  # a key that is not the certificate's


def test_https_context_reloads_changed_files_and_keeps_a_broken_pair_out(tmp_path: Path) -> None:
    made = init_certs(tmp_path, services=["a", "b"])
    a, b = made.services["a"], made.services["b"]
    https = tls.ReloadingSslContext(tls.TlsFiles(a.cert, a.key, made.ca.cert))
    assert https.reload_if_changed() is False
    a.cert.write_bytes(b.cert.read_bytes())  # certificate of b, key still a's: does not load
    assert https.reload_if_changed() is False and https.reloads == 0
    a.key.write_bytes(b.key.read_bytes())
    assert https.reload_if_changed() is True and https.reloads == 1
