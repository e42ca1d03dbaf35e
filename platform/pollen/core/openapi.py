"""How the API documentation is ordered: the public API first, the site agent's API apart.

Hospital systems read /api/v1/docs/; the site agent's endpoints are internal (an agent token calls
them, never a hospital system), so they come last under one tag, and have their own schema and
docs page at /api/v1/agent/schema/ and /api/v1/agent/docs/.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.generators import SchemaGenerator

AGENT_PREFIX = "/api/v1/agent/"
AGENT_TAG = "agent (internal)"
# The order a hospital system meets them: sign in, find its site, then the work itself.
PUBLIC_TAGS: dict[str, str] = {
    "auth": "Sign in and out, and who the caller is.",
    "sites": "The caller's sites, their members and their API tokens.",
    "datasets": "Labelled images at a site: upload, check, label, split.",
    "training": "Train or fine-tune a model on a site's own images.",
    "jobs": "Training runs and their progress.",
    "marketplace": "Published models, their cards and their results at each site.",
    "predictions": "Apply a model to a site's own images.",
    "federation": "Training across hospitals: the model travels, the images stay.",
    "audit": "Who did what, for site administrators.",
}
AGENT_TAG_DESCRIPTION = (
    "Used by each site agent with its agent token or a job token, never by a hospital system. "
    "Listed apart in /api/v1/agent/docs/."
)


def _operations(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (path, operation)
        for path, item in result.get("paths", {}).items()
        for operation in item.values()
        if isinstance(operation, dict) and "responses" in operation
    ]


def public_api_first(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: agent paths last under one tag, public tags in order."""
    for path, operation in _operations(result):
        if path.startswith(AGENT_PREFIX):
            operation["tags"] = [AGENT_TAG]
    paths = result.get("paths", {})
    result["paths"] = {
        path: paths[path]
        for path in sorted(paths, key=lambda p: p.startswith(AGENT_PREFIX))  # stable: keeps order
    }
    used = {tag for _, operation in _operations(result) for tag in operation.get("tags", [])}
    # A tag that a later endpoint brings goes after the known ones, never after the agent's.
    others = sorted(used - set(PUBLIC_TAGS) - {AGENT_TAG})
    tags = [{"name": n, "description": d} for n, d in PUBLIC_TAGS.items() if n in used]
    tags += [{"name": name} for name in others]
    if AGENT_TAG in used:
        tags.append({"name": AGENT_TAG, "description": AGENT_TAG_DESCRIPTION})
    result["tags"] = tags
    return result


class AgentSchemaGenerator(SchemaGenerator):
    """The site agent's endpoints only, for /api/v1/agent/schema/."""

    def _initialise_endpoints(self) -> None:
        super()._initialise_endpoints()
        self.endpoints = [e for e in self.endpoints or [] if e[0].startswith(AGENT_PREFIX)]

    def get_schema(self, request: Any = None, public: bool = False) -> dict[str, Any]:
        schema: dict[str, Any] = super().get_schema(request=request, public=public)
        schema["info"]["title"] = "Pollen site agent API"
        schema["info"]["description"] = (
            "Internal: the endpoints a site agent calls with its agent token or a job token. "
            "Hospital systems use the public API at /api/v1/docs/."
        )
        return schema
