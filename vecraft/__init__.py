"""Vecraft: a journal-based distributed vector database."""

__version__ = "0.1.0"
