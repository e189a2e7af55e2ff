# syntax=docker/dockerfile:1
#
# RouteIQ ext_proc server image.
#   docker build -t routeiq:0.1.0 .
#   docker run --rm -p 50051:50051 -p 9180:9180 -v "$PWD/deploy/examples:/etc/routeiq:ro" \
#     -e ROUTEIQ_CONFIG_PATH=/etc/routeiq/litellm-in-front-of-providers.yaml \
#     -e ROUTEIQ_ADMIN_TOKEN="$(openssl rand -hex 32)" routeiq:0.1.0
#
# The admin port listens on 0.0.0.0 so that probes and Prometheus reach it from outside
# the container. /healthz, /readyz and /metrics are open; /v1/explain and /v1/config
# need "Authorization: Bearer $ROUTEIQ_ADMIN_TOKEN" and answer 403 when no token is set.
#
# Two stages: the builder makes a wheel of this project and installs it with its pinned
# serving dependencies into /opt/venv; the runtime stage copies only that venv and the
# model artefacts. No compiler, no pip cache and no torch reach the runtime image
# (torch is only in the [train] extra, which is never installed here).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml ./
COPY extproc ./extproc
# Build the wheel, install it (serving dependencies only), restore opentelemetry-proto's
# files (xds-protos overwrites them with older copies), then refuse an image that
# pulled torch in, and drop pip/setuptools, which the runtime never needs.
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /dist . \
 && /opt/venv/bin/pip install /dist/routeiq-*.whl \
 && /opt/venv/bin/pip install --no-deps --force-reinstall opentelemetry-proto==1.45.2 \
 && /opt/venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is not None)" \
 && /opt/venv/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="routeiq" \
      org.opencontainers.image.description="Envoy ext_proc that applies Rego policy and ML routing to OpenAI-format LLM traffic" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric uid/gid so Kubernetes runAsNonRoot can verify it without /etc/passwd.
RUN groupadd --system --gid 10001 routeiq \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /app \
      --shell /usr/sbin/nologin routeiq
COPY --from=builder /opt/venv /opt/venv
# Model artefacts (ONNX embedder, tokenizer, centroids, manifests): read-only, owned by
# root. Mount a volume over /app/models to ship other models without rebuilding.
COPY models /app/models
# RoutingConfig spec.routing.modelsDir defaults to the models/ directory next to the
# extproc package; in the image that is site-packages/models, so point it here.
RUN ln -s /app/models /opt/venv/lib/python3.11/site-packages/models
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ROUTEIQ_GRPC_HOST=0.0.0.0 \
    ROUTEIQ_GRPC_PORT=50051 \
    ROUTEIQ_ADMIN_HOST=0.0.0.0 \
    ROUTEIQ_ADMIN_PORT=9180 \
    ROUTEIQ_CONFIG_PATH=/etc/routeiq/routeiq.yaml
WORKDIR /app
USER 10001:10001
# 50051: ext_proc gRPC (and grpc.health.v1). 9180: admin HTTP (/healthz, /readyz, /metrics
# open; /v1/explain, /v1/config behind ROUTEIQ_ADMIN_TOKEN).
EXPOSE 50051 9180
# The slim image has no curl: ask the admin endpoint with the standard library.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ROUTEIQ_ADMIN_PORT', '9180'), timeout=2)"]
ENTRYPOINT ["routeiq"]
CMD ["serve"]
