# syntax=docker/dockerfile:1.7
# The Pollen site agent, NVIDIA GPU build: torch CUDA wheels on a CUDA base image. Never Django.
# The host needs an NVIDIA driver new enough for CUDA_VERSION and the NVIDIA container
# toolkit (Kubernetes: the NVIDIA device plugin). See docs/hospital-it.md.
#
# The build context is the repository root:
#   docker build -f deploy/docker/agent-gpu.Dockerfile -t pollen-agent-gpu:dev .
# BuildKit reads deploy/docker/agent-gpu.Dockerfile.dockerignore for the context.
#
# Ubuntu 24.04 ships Python 3.12, which pyproject.toml allows (>=3.11,<3.13).
# torch's CUDA wheels bring their own CUDA runtime libraries, so the "base" flavour suffices.

ARG CUDA_IMAGE=nvidia/cuda:12.8.1-base-ubuntu24.04

FROM ${CUDA_IMAGE} AS deps
# Must match CUDA_IMAGE: cu128 wheels for CUDA 12.8.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml deploy/docker/extras.py /tmp/pollen/
RUN python3 -m venv /opt/venv \
    && cd /tmp/pollen \
    && python3 extras.py worker --only torch torchvision > torch.txt \
    && /opt/venv/bin/pip install --index-url "${TORCH_INDEX_URL}" -r torch.txt \
    && python3 extras.py worker --skip torch torchvision > rest.txt \
    && /opt/venv/bin/pip install -r rest.txt -c torch.txt \
    && if /opt/venv/bin/python -c "import django" 2>/dev/null; then echo "Django leaked into the agent image" >&2; exit 1; fi

FROM ${CUDA_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 pollen \
    && useradd --system --uid 10001 --gid pollen --home-dir /var/lib/pollen --create-home \
       --shell /usr/sbin/nologin pollen
COPY --from=deps /opt/venv /opt/venv
WORKDIR /app
COPY workers/pollen_agent/ workers/pollen_agent/
COPY workers/pollen_contracts/ workers/pollen_contracts/
COPY deploy/docker/agent-entrypoint.sh deploy/docker/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app/workers \
    POLLEN_AGENT_CONFIG=/etc/pollen/agent.json \
    TORCH_HOME=/var/lib/pollen/torch \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN chmod 0755 deploy/docker/agent-entrypoint.sh
USER 10001:10001
ENTRYPOINT ["/app/deploy/docker/agent-entrypoint.sh"]
CMD ["worker"]
