"""Who a request runs as: a key's role, tenant and collection scope, and what they allow.

Roles nest: ``read`` < ``write`` < ``admin``. ``read`` searches, gets, lists and reads
the journal of its tenant; ``write`` adds inserts, upserts, deletes and transactions;
``admin`` adds DDL (create, alter, drop collections), key management and the cluster
endpoints. A key's tenant decides the tenant of every request: a tenant the request
names (``X-Tenant``, a message's ``tenant``) must be absent or equal to it; a key for
every tenant (``*``) chooses one that way. A collection scope limits every request that
names a collection.

With auth off every request runs as :data:`OPEN`, which allows everything and takes the
tenant the request names, as before keys existed.

Denial messages name what the caller sent (its own collection or tenant) and never what
the key or the cluster holds beyond that.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from vecraft.shared.common.errors import PermissionDenied
from vecraft.shared.model.routing import DEFAULT_TENANT

ALL_TENANTS = "*"


class Role(enum.IntEnum):
    READ = 1
    WRITE = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str) -> Role:
        return cls[name.upper()]


@dataclass(frozen=True, slots=True)
class Principal:
    """The identity of one request.

    Attributes:
        key_id: the key's public id ("" for :data:`OPEN`).
        role: what the key may do.
        tenant: the key's tenant, or ``*`` for every tenant.
        collections: the collections the key may name; empty = every collection.
        open: True only for :data:`OPEN` (auth off): nothing is checked.
    """

    key_id: str
    role: Role
    tenant: str
    collections: frozenset[str] = frozenset()
    open: bool = False

    @property
    def all_tenants(self) -> bool:
        return self.tenant == ALL_TENANTS

    @property
    def unrestricted(self) -> bool:
        """True when the key sees every tenant and every collection."""
        return self.open or (self.all_tenants and not self.collections)

    def resolve_tenant(self, requested: str | None) -> str:
        """The tenant a request acts for, given the tenant it names (None or "" = none).

        Raises:
            PermissionDenied: the request names a tenant the key is not for.
        """
        if self.open or self.all_tenants:
            return requested or DEFAULT_TENANT
        if requested and requested != self.tenant:
            raise PermissionDenied("this API key is not for the tenant the request names; leave the "
                                   "tenant out (X-Tenant, `tenant`) to act for the key's own tenant")
        return self.tenant

    def require(self, role: Role, what: str) -> None:
        """Raise PermissionDenied unless the key's role is at least ``role``."""
        if not self.open and self.role < role:
            raise PermissionDenied(f"{what} needs an API key with role {role.name.lower()} or above; "
                                   f"this key's role is {self.role.name.lower()}",
                                   details={"required_role": role.name.lower(),
                                            "key_role": self.role.name.lower()})

    def require_all_tenants(self, what: str) -> None:
        """Raise PermissionDenied unless the key is an admin key for every tenant."""
        self.require(Role.ADMIN, what)
        if not self.open and (not self.all_tenants or self.collections):
            raise PermissionDenied(f"{what} needs an admin API key for every tenant (tenant *) "
                                   "without a collection scope")

    def may_use(self, collection: str) -> bool:
        return self.open or not self.collections or collection in self.collections

    def check_collections(self, role: Role, what: str, collections: Iterable[str]) -> None:
        """Raise PermissionDenied unless the role suffices and every collection is in scope."""
        self.require(role, what)
        for name in collections:
            if not self.may_use(name):
                raise PermissionDenied(f"this API key may not use collection {name[:128]!r}",
                                       details={"collection": name[:128]})


#: The principal of every request when auth is off.
OPEN = Principal(key_id="", role=Role.ADMIN, tenant=ALL_TENANTS, open=True)
