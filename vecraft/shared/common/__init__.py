"""Utilities every service shares: config, logging, errors, metrics, the service shell, the supervisor."""
