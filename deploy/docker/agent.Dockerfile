# syntax=docker/dockerfile:1.7
# The Pollen site agent, CPU build: Celery workers with torch (CPU wheels). Never Django.
# For NVIDIA GPUs use agent-gpu.Dockerfile; both share agent-entrypoint.sh.
#
# The build context is the repository root:
#   docker build -f deploy/docker/agent.Dockerfile -t pollen-agent:dev .
# BuildKit reads deploy/docker/agent.Dockerfile.dockerignore for the context.
#
# Roles (agent-entrypoint.sh is the one place that spells out each command):
#   worker (default) | health

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS deps
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml deploy/docker/extras.py /tmp/pollen/
RUN python -m venv /opt/venv \
    && cd /tmp/pollen \
    # torch first, from the CPU index (the PyPI default is the large CUDA build) ...
    && python extras.py worker --only torch torchvision > torch.txt \
    && /opt/venv/bin/pip install --index-url "${TORCH_INDEX_URL}" -r torch.txt \
    # ... then everything else, with torch already satisfied.
    && python extras.py worker --skip torch torchvision > rest.txt \
    && /opt/venv/bin/pip install -r rest.txt -c torch.txt \
    # The agent must never carry Django (DESIGN.md, "Two roles"): fail the build if it does.
    && if /opt/venv/bin/python -c "import django" 2>/dev/null; then echo "Django leaked into the agent image" >&2; exit 1; fi

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 pollen \
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
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN chmod 0755 deploy/docker/agent-entrypoint.sh
USER 10001:10001
ENTRYPOINT ["/app/deploy/docker/agent-entrypoint.sh"]
CMD ["worker"]
