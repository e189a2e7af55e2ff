"""Errors raised while building a config snapshot."""


class ConfigError(Exception):
    """The config (or something it references) cannot be used; the message says why."""
