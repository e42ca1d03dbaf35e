"""One-shot (compose service hub-bootstrap): create the demo sites and each site's agent token.

Piped into ``manage.py shell`` in the hub image. For each slug in POLLEN_BOOTSTRAP_SITES it
creates the site when missing and, when /bootstrap/<slug>_agent_token is empty, creates an
agent token and writes its plaintext there (in place: compose bind-mounts that file as the
agent's secret). In production a site administrator does this in the dashboard or with
``POST /api/v1/sites/{slug}/tokens/ {"name": ..., "kind": "agent"}``; see docs/hospital-it.md.
"""

import os
from pathlib import Path

from pollen.accounts.models import Site, TokenKind
from pollen.accounts.services import site_create, token_create

OUT = Path(os.environ.get("POLLEN_BOOTSTRAP_DIR", "/bootstrap"))

for slug in os.environ.get("POLLEN_BOOTSTRAP_SITES", "site-a site-b").split():
    site = Site.objects.filter(slug=slug).first() or site_create(
        slug=slug, name=slug.replace("-", " ").title()
    )
    token_file = OUT / f"{slug.replace('-', '_')}_agent_token"
    if token_file.read_text().strip():
        print(f"hub-bootstrap: {slug} already has an agent token")
        continue
    _token, plaintext = token_create(
        caller=None, site=site, name="compose agent", kind=TokenKind.AGENT
    )
    with token_file.open("r+") as fh:
        fh.truncate(0)
        fh.write(plaintext + "\n")
    print(f"hub-bootstrap: wrote the agent token of {slug}")
