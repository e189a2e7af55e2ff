"""Rego policy: the ``PolicyEngine`` protocol, embedded and remote OPA engines, input builder."""
