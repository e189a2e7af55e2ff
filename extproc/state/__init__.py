"""Shared state: the ``StateStore`` protocol, in-memory and Redis implementations."""
