"""Adapters to Envoy: the ext_proc servicer, its mutation builders, health and admin HTTP."""
