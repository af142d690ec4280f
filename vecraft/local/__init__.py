"""The local-cluster engine behind ``vecraft up``: not service code.

- :mod:`.topology`: the plan of a cluster (processes, ports, flags) kept in ``cluster.json``;
- :mod:`.supervisor`: starts the planned processes in order, restarts them with backoff, stops them;
- :mod:`.process`: one child process handle, service processes for tests and benchmarks, free ports;
- :mod:`.etcd` and :mod:`.nats`: the etcd and NATS JetStream servers of ``vecraft up --cluster``.

Services never import this package; it imports the services only by module name (to start them).
"""
