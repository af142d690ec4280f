"""Schemathesis against the live /openapi.json: no 5xx and every response matches its schema.

Bounded run (a few examples per operation, positive generation, stateless
checks only). Requests use their own tenant, so generated collection creates
and drops never touch the data other tests in this package use. Run twice: against
the package's open gateway, and against one started with ``--auth``, every request
carrying its admin key (the key check must not turn any request into a 5xx).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests.integration.gateway.cluster import Cluster, run_cluster

pytestmark = pytest.mark.integration

FUZZ_TENANT = "fuzz"
EXAMPLES_PER_OPERATION = 12


@pytest.fixture(scope="module")
def auth_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("fuzz-auth")
    key_file = root / "admin.key"
    with run_cluster(root, shards=1, data_partitions=1,
                     gateway_args=["--auth", "--bootstrap-admin-key-file", str(key_file)]) as c:
        c.api_key = key_file.read_text().strip()
        yield c


@pytest.mark.parametrize("gateway", ["open", "auth"])
def test_no_server_errors_and_conforming_responses(gateway: str, request: pytest.FixtureRequest) -> None:
    cluster: Cluster = request.getfixturevalue("cluster" if gateway == "open" else "auth_cluster")
    schema = schemathesis.openapi.from_url(f"{cluster.url}/openapi.json")  # open without a key
    labels: list[str] = []
    statuses: list[int] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call_and_validate(headers={"X-Tenant": FUZZ_TENANT, **cluster.auth_headers},
                                              timeout=60,
                                              checks=[not_a_server_error, response_schema_conformance])
            statuses.append(response.status_code)

        fuzz()
    assert "POST /v1/vectors/search" in labels and len(labels) >= 14
    # Not only refusals: generated requests also succeed (schemas of 2xx answers were checked).
    assert sum(200 <= s < 300 for s in statuses) >= 10, sorted(statuses)
    print({s: statuses.count(s) for s in sorted(set(statuses))})
    assert cluster.healthy(), cluster.logs()
    # Generated PUT /v1/quotas/{tenant} may have limited some tenant of this shared cluster: clear them.
    with cluster.client() as c:
        for quota in c.get("/v1/quotas").json()["quotas"]:
            c.delete(f"/v1/quotas/{quota['tenant']}", params={"key_id": quota["key_id"]} if quota["key_id"]
                     else None)
        assert c.get("/v1/quotas").json()["quotas"] == []
