"""gunicorn settings for the hub, tuned by environment variables.

GUNICORN_WORKERS (default 2 x CPUs + 1, at most 8), GUNICORN_THREADS (4),
GUNICORN_TIMEOUT (60 s), POLLEN_BIND (0.0.0.0:8000). Logs go to stderr; the
application's own JSON lines carry the request log, so gunicorn's access log is off.
"""

import multiprocessing
import os

bind = os.environ.get("POLLEN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", min(2 * multiprocessing.cpu_count() + 1, 8)))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
# Longer than the load balancer's idle timeout, so it never reuses a connection we closed.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "75"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
# Recycle workers now and then so a slow leak never takes the web tier down.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = 200
# Heartbeat files on tmpfs: the root filesystem may be read-only.
_SHM = "/dev/shm"  # noqa: S108 - gunicorn's own heartbeat files, not user data
worker_tmp_dir = _SHM if os.path.isdir(_SHM) else None
accesslog = None
errorlog = "-"
loglevel = os.environ.get("POLLEN_LOG_LEVEL", "info").lower()
# TLS ends at the ingress; trust its X-Forwarded-* headers (Django reads X-Forwarded-Proto).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")
