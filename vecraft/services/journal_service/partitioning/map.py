"""The partition map: which partitions this journal serves and how writes route to them.

Three classes (DESIGN.md section 4): ``data-0..data-{P-1}`` (vector writes; a
tenant's collections live in one, by hash unless the meta manager records an
override), ``txn`` (writes atomic across collections) and ``system`` (DDL,
tenant changes). The map comes from configuration (``--data-partitions``);
when the meta manager publishes partition overrides they are passed in as
``overrides``. The routing functions themselves live in
:mod:`vecraft.shared.model.routing` so every service agrees on them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from vecraft.shared.common.errors import NotFound
from vecraft.shared.model import routing


class PartitionClass(enum.Enum):
    DATA = "data"
    TXN = "txn"
    SYSTEM = "system"


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

    def class_of(self, name: str) -> PartitionClass:
        """The class of a known partition.

        Raises:
            NotFound: ``name`` is not a partition of this journal.
        """
        self.require(name)
        if name == routing.TXN_PARTITION:
            return PartitionClass.TXN
        if name == routing.SYSTEM_PARTITION:
            return PartitionClass.SYSTEM
        return PartitionClass.DATA

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
