"""Authentication, roles and tenancy at the gateway (docs/security.md).

- :mod:`.errors`: 401 ``Unauthenticated`` and 403 ``PermissionDenied``;
- :mod:`.principal`: who a request runs as, what its role and scope allow, and which tenant
  it acts for;
- :mod:`.keyring`: the API key records the gateway follows from the meta manager, and the
  check of a presented key;
- :mod:`.bootstrap`: the first admin key and the refusal to serve beyond loopback without auth.
"""
