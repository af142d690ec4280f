"""The journal client's instance choice (pure bookkeeping): owners, the current instance, suspects."""

from __future__ import annotations

import pytest

from vecraft.clients.journal_instances import InstanceRouter, owner_hints, parse_addresses

pytestmark = pytest.mark.unit

A, B, C = "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def router(*addresses: str) -> tuple[InstanceRouter, Clock]:
    clock = Clock()
    return InstanceRouter(list(addresses), suspect_s=1.0, clock=clock), clock


def test_addresses_are_parsed_in_order_without_blanks_or_repeats() -> None:
    assert parse_addresses(f" {A}, {B},,{A} ") == [A, B]
    assert parse_addresses(A) == [A]


def test_owner_hints_come_from_the_owner_metadata_only() -> None:
    md = [("vecraft-journal-owner", f"data-0={B}"), ("vecraft-error", "not_owner"),
          ("vecraft-journal-owner", b"system=" + C.encode()), ("vecraft-journal-owner", "broken")]
    assert owner_hints(md) == {"data-0": B, "system": C}
    assert owner_hints(None) == {}


def test_calls_go_to_the_first_instance_until_an_owner_is_learned() -> None:
    r, _ = router(A, B)
    assert r.target() == A and r.target("data-0") == A
    r.not_owner("data-0", A, B)
    assert r.target("data-0") == B  # owner-bound calls go to the named owner
    assert r.target() == A  # reads stay on the current instance
    r.succeeded(B, "data-0", owner_bound=True)
    assert r.target() == B and r.owner("data-0") == B


def test_a_refusal_without_an_owner_moves_to_the_next_instance() -> None:
    r, _ = router(A, B)
    r.not_owner("data-0", A, None)
    assert r.target("data-0") == B
    r.not_owner("data-0", B, None)
    assert r.target("data-0") == A  # round and round while a take-over is under way


def test_a_failed_instance_is_passed_over_until_it_stops_being_suspect() -> None:
    r, clock = router(A, B)
    r.succeeded(A, "data-0", owner_bound=True)
    r.failed(A)
    assert r.owner("data-0") is None  # a dead owner is forgotten
    assert r.target("data-0") == B and r.target() == B
    # The survivor still names the dead instance (its lease has not run out yet): not followed.
    r.not_owner("data-0", B, A)
    assert r.target("data-0") == B
    clock.now += 1.5
    assert r.target("data-0") == A  # no longer suspect: asked again


def test_every_instance_suspect_still_gives_an_instance() -> None:
    r, _ = router(A, B)
    r.failed(A)
    r.failed(B)
    assert r.target() in (A, B)


def test_an_owner_outside_the_configured_addresses_is_adopted() -> None:
    r, _ = router(A)
    r.not_owner("system", A, C)
    assert r.target("system") == C and C in r.instances
    r.failed(C)
    assert r.target("system") == A


def test_success_of_a_read_does_not_make_an_owner() -> None:
    r, _ = router(A, B)
    r.succeeded(B, "data-0")
    assert r.owner("data-0") is None and r.target() == B
