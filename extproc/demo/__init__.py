"""The demo stack: OpenAI-compatible loopback backends, the Envoy launcher, the runner."""
