"""The clients services publish to each other: the journal's and the meta manager's.

They live apart from both services because each service uses the other's client (DDL is ordered
through the journal's ``system`` partition, partition ownership is leased from the meta manager): kept
inside the services, the two packages would import each other. A client imports only ``shared/``.
"""
