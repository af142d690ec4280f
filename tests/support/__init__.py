"""Helpers for tests that start real service processes."""
