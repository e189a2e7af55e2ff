"""RouteIQ: policy and routing for OpenAI-format LLM traffic in a service mesh."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("routeiq")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
