"""HTTP middleware of the gateway: request ids, body-size limit, access log and metrics, and the
one mapping of errors to HTTP responses (:mod:`.errors`)."""
