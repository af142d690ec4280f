"""The partition map: which partitions this journal serves and how writes route to them.

Two classes (DESIGN.md section 4, docs/journal.md): ``data-0..data-{P-1}``
(every write of a collection, transactions included; a tenant's collections
live in one, by hash unless the meta manager records an override) and
``system`` (DDL, tenant changes). The map comes from configuration (``--data-partitions``);
when the meta manager publishes partition overrides they are passed in as
``overrides``. The routing functions themselves live in
:mod:`vecraft.shared.model.routing` so every service agrees on them.
"""

from __future__ import annotations

from collections.abc import Mapping

from vecraft.shared.common.errors import NotFound
from vecraft.shared.model import routing


class PartitionMap:
    """The partitions of one journal. Immutable once built."""

    def __init__(self, data_partitions: int, overrides: Mapping[str, str] | None = None) -> None:
        if data_partitions < 1:
            raise ValueError("data_partitions must be >= 1")
        self.data_partitions = data_partitions
        self.names: tuple[str, ...] = tuple(routing.all_partitions(data_partitions))
        self._overrides = dict(overrides or {})
        for tenant, name in self._overrides.items():
            if not routing.is_data_partition(name) or name not in self.names:
                raise ValueError(f"tenant {tenant!r} is mapped to {name!r}, not a data partition here")

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def require(self, name: str) -> str:
        """``name`` if this journal serves it.

        Raises:
            NotFound: naming the known partitions.
        """
        if name not in self.names:
            raise NotFound(f"unknown journal partition {name!r}; known partitions: {', '.join(self.names)}",
                           details={"partitions": list(self.names)})
        return name

    def for_tenant(self, tenant: str) -> str:
        """The data partition of ``tenant``'s vector writes."""
        return self._overrides.get(tenant) or routing.tenant_partition(tenant, self.data_partitions)
