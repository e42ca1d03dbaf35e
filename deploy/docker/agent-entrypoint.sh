#!/bin/sh
# The site agent image's roles. Compose and Kubernetes name a role, never a command,
# so the agent's command line changes here and nowhere else.
#   worker  consume this site's queues (site.<slug>.io, .gpu, .quick and .infer), each with its own worker
#   health  exit 0 when the agent is healthy (liveness/readiness probes)
set -eu
role="${1:-worker}"
[ "$#" -gt 0 ] && shift
config="${POLLEN_AGENT_CONFIG:-/etc/pollen/agent.json}"

case "$role" in
  worker) exec python -m pollen_agent worker --config "$config" "$@" ;;
  health) exec python -m pollen_agent health --config "$config" "$@" ;;
  *)
    echo "agent-entrypoint: unknown role '$role' (worker, health)" >&2
    exit 64 ;;
esac
