"""Routing: embedder, classifiers, profiles and tiers, selector, A/B assignment."""
