"""What can be checked about deploy/ without a container engine or a cluster.

Every YAML parses; every path an image copies exists; every command, module and role the
manifests name exists; the hub image carries no torch and the agent no Django; storage
identities stay separate; probes point at the right endpoints; a GPU variant asks for a GPU.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKER = DEPLOY / "docker"
K8S = DEPLOY / "k8s"
COMPOSE_FILE = DEPLOY / "compose.yaml"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
HUB_SERVICES = ("hub-web", "hub-worker", "hub-clock", "hub-migrate", "hub-bootstrap")
AGENT_SERVICES = ("agent-site-a", "agent-site-b")
KUSTOMIZATIONS = (K8S / "hub", K8S / "agent" / "base", K8S / "agent" / "gpu")

sys.path.insert(0, str(DEPLOY / "compose"))
sys.path.insert(0, str(DOCKER))
import extras  # noqa: E402
import make_secrets  # noqa: E402

# --- helpers -------------------------------------------------------------------------------


def _yaml_docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current += " " + line[:-1] if line.endswith("\\") else " " + line
        if not line.endswith("\\"):
            keyword, _, rest = current.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
            current = ""
    return out


def _copy_sources(dockerfile: Path) -> list[str]:
    """Sources of COPY/ADD taken from the build context (not from another stage)."""
    sources: list[str] = []
    for keyword, args in _instructions(dockerfile):
        if keyword not in {"COPY", "ADD"}:
            continue
        words = args.split()
        if any(w.startswith("--from=") for w in words):
            continue
        words = [w for w in words if not w.startswith("--")]
        sources += words[:-1]
    return sources


def _dockerignore_allows(dockerfile: Path, source: str) -> bool:
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    allowed = [
        line[1:].rstrip("/") for line in ignore.read_text().splitlines() if line.startswith("!")
    ]
    source = source.rstrip("/")
    return any(source == a or source.startswith(a + "/") for a in allowed)


def _entrypoint_roles(script: Path) -> set[str]:
    text = script.read_text()
    case = text[text.index("case ") : text.index("esac")]
    return {m.group(1) for m in re.finditer(r"^\s*([a-z-]+)\)", case, re.M)}


def _k8s_docs() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p in sorted(K8S.rglob("*.yaml")) for d in _yaml_docs(p)]


def _pod_specs(kind_filter: set[str] | None = None) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path, doc in _k8s_docs():
        if doc.get("kind") in {"Deployment", "Job"} and (
            kind_filter is None or doc["kind"] in kind_filter
        ):
            spec = doc["spec"]["template"]["spec"]
            if "containers" in spec and any("image" in c for c in spec["containers"]):
                out.append((f"{path.relative_to(REPO)}:{doc['metadata']['name']}", spec))
    return out


def _k8s_object(path: Path, kind: str, name: str) -> dict[str, Any]:
    for doc in _yaml_docs(path):
        if doc.get("kind") == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind} {name} in {path}")


def _kustomize(folder: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not installed, so kustomize output cannot be rendered here")
    result = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


# --- every file parses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]),
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_every_yaml_file_parses(path: Path) -> None:
    assert _yaml_docs(path), f"{path} is empty"


@pytest.mark.parametrize(
    "path", sorted(DEPLOY.rglob("*.json")), ids=lambda p: str(p.relative_to(REPO))
)
def test_every_json_file_parses(path: Path) -> None:
    json.loads(path.read_text())


@pytest.mark.parametrize("path", sorted(DEPLOY.rglob("*.py")), ids=lambda p: p.name)
def test_every_python_file_compiles(path: Path) -> None:
    compile(path.read_text(), str(path), "exec")


@pytest.mark.parametrize("folder", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(K8S)))
def test_every_kustomization_renders(folder: Path) -> None:
    kinds = {d["kind"] for d in _kustomize(folder)}
    assert {"Deployment", "NetworkPolicy"} <= kinds
    assert "Secret" not in kinds, "secrets come from the cluster, never from the repository"


# --- images --------------------------------------------------------------------------------


def test_three_images_exist() -> None:
    assert {p.name for p in DOCKERFILES} == {
        "hub.Dockerfile",
        "agent.Dockerfile",
        "agent-gpu.Dockerfile",
    }


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_copied_path_exists_and_enters_the_build_context(dockerfile: Path) -> None:
    sources = _copy_sources(dockerfile)
    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"{dockerfile.name} copies {source}, which is missing"
        assert _dockerignore_allows(dockerfile, source), (
            f"{dockerfile.name} copies {source}, but its .dockerignore keeps it out"
        )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_run_as_a_non_root_user(dockerfile: Path) -> None:
    users = [args for keyword, args in _instructions(dockerfile) if keyword == "USER"]
    assert users, f"{dockerfile.name} has no USER"
    assert users[-1].split(":")[0] not in {"root", "0"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_entrypoint_and_roles_exist(dockerfile: Path) -> None:
    instructions = dict(_instructions(dockerfile))
    entrypoint = json.loads(instructions["ENTRYPOINT"])
    script = REPO / entrypoint[0].removeprefix("/app/")
    assert script.is_file() and script.stat().st_mode & 0o111, f"{script} is not executable"
    default_role = json.loads(instructions["CMD"])[0]
    assert default_role in _entrypoint_roles(script)


def _installed_extras(dockerfile: Path) -> set[str]:
    return set(re.findall(r"extras\.py (\w+)", dockerfile.read_text()))


def test_hub_image_installs_the_web_extra_only_and_no_torch() -> None:
    hub = DOCKER / "hub.Dockerfile"
    assert _installed_extras(hub) == {"web"}
    text = hub.read_text()
    assert "workers/pollen_agent" not in text, "the hub image must not carry the agent"
    names = {
        extras.requirement_name(r) for r in extras.requirements(REPO / "pyproject.toml", "web")
    }
    assert "gunicorn" in names and "django" in names
    assert not names & {"torch", "torchvision", "timm"}


@pytest.mark.parametrize("name", ["agent.Dockerfile", "agent-gpu.Dockerfile"])
def test_agent_images_install_the_worker_extra_and_no_django(name: str) -> None:
    dockerfile = DOCKER / name
    assert _installed_extras(dockerfile) == {"worker"}
    assert "COPY platform" not in dockerfile.read_text(), "the agent image must not carry the hub"
    names = {
        extras.requirement_name(r) for r in extras.requirements(REPO / "pyproject.toml", "worker")
    }
    assert "torch" in names
    assert not names & {"django", "djangorestframework", "gunicorn"}


def test_gpu_image_uses_cuda_base_and_cuda_torch_wheels() -> None:
    text = (DOCKER / "agent-gpu.Dockerfile").read_text()
    assert re.search(r"ARG CUDA_IMAGE=nvidia/cuda:\S+", text)
    assert re.search(r"TORCH_INDEX_URL=https://download\.pytorch\.org/whl/cu\d+", text)
    assert "whl/cpu" in (DOCKER / "agent.Dockerfile").read_text()


def test_extras_script_splits_torch_from_the_rest() -> None:
    pyproject = REPO / "pyproject.toml"
    torch_only = extras.requirements(pyproject, "worker", only=["torch", "torchvision"])
    rest = extras.requirements(pyproject, "worker", skip=["torch", "torchvision"])
    assert {extras.requirement_name(r) for r in torch_only} == {"torch", "torchvision"}
    assert not {extras.requirement_name(r) for r in rest} & {"torch", "torchvision"}


# --- the commands the images run exist -----------------------------------------------------


def test_hub_entrypoint_names_modules_that_exist() -> None:
    text = (DOCKER / "hub-entrypoint.sh").read_text()
    assert "pollen.wsgi:application" in text
    assert "application" in (REPO / "platform/pollen/wsgi.py").read_text()
    assert "/app/manage.py" in text and (REPO / "manage.py").is_file()
    assert "--app pollen.celery" in text
    assert "app = Celery(" in (REPO / "platform/pollen/celery.py").read_text()
    assert "/app/deploy/docker/gunicorn.conf.py" in text
    assert (DOCKER / "gunicorn.conf.py").is_file()
    assert _entrypoint_roles(DOCKER / "hub-entrypoint.sh") >= {
        *("web", "migrate", "worker", "check", "clock", "clock-health")
    }
    assert "/app/manage.py clock" in text
    assert (REPO / "platform/pollen/ops/management/commands/clock.py").is_file()


def test_agent_entrypoint_names_the_agent_package() -> None:
    text = (DOCKER / "agent-entrypoint.sh").read_text()
    assert "python -m pollen_agent worker" in text
    assert "python -m pollen_agent health" in text
    assert (REPO / "workers/pollen_agent/__init__.py").is_file()
    assert _entrypoint_roles(DOCKER / "agent-entrypoint.sh") == {"worker", "health"}


def test_agent_command_line_module_exists() -> None:
    if not (REPO / "workers/pollen_agent/__main__.py").is_file():
        pytest.skip("workers/pollen_agent/__main__.py (python -m pollen_agent) is not written yet")
    text = (REPO / "workers/pollen_agent/__main__.py").read_text()
    assert "worker" in text and "health" in text


def test_gunicorn_config_loads() -> None:
    namespace: dict[str, Any] = {}
    exec(compile((DOCKER / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), namespace)
    assert namespace["bind"] == "0.0.0.0:8000"
    assert namespace["accesslog"] is None and namespace["errorlog"] == "-"


def test_manifests_name_only_roles_the_images_have() -> None:
    hub_roles = _entrypoint_roles(DOCKER / "hub-entrypoint.sh")
    agent_roles = _entrypoint_roles(DOCKER / "agent-entrypoint.sh")
    for name, service in _compose()["services"].items():
        command = service.get("command")
        if name.startswith("hub-") and command:
            assert command[0] in hub_roles, f"compose {name} runs {command}"
        if name.startswith("agent-") and command:
            assert command[0] in agent_roles, f"compose {name} runs {command}"
    for where, spec in _pod_specs():
        for container in spec["containers"]:
            roles = hub_roles if "hub" in container["image"] else agent_roles
            assert container.get("args", ["?"])[0] in roles, f"{where} runs {container.get('args')}"
            assert "command" not in container, f"{where} overrides the image's entrypoint"


def test_bootstrap_script_uses_services_that_exist() -> None:
    services = (REPO / "platform/pollen/accounts/services.py").read_text()
    models = (REPO / "platform/pollen/accounts/models.py").read_text()
    assert "def site_create(" in services and "def token_create(" in services
    assert 'AGENT = "agent"' in models


def test_hub_environment_variables_are_ones_the_settings_read() -> None:
    """A typo in a variable name would silently fall back to a default."""
    settings_text = (REPO / "platform/pollen/settings.py").read_text()
    names: set[str] = set()
    for name in HUB_SERVICES:
        names |= set(_compose()["services"][name].get("environment", {}))
    for spec in (s for w, s in _pod_specs() if "hub" in w):
        for container in spec["containers"]:
            names |= {e["name"] for e in container.get("env", [])}
    hub_kustomization = yaml.safe_load((K8S / "hub/kustomization.yaml").read_text())
    for generator in hub_kustomization["configMapGenerator"]:
        names |= {lit.split("=", 1)[0] for lit in generator.get("literals", [])}
    deploy_only = {"POD_IP", "PUBLIC_HOST", "POLLEN_PUBLIC_HOST", "GUNICORN_WORKERS"}
    deploy_only |= {n for n in names if n.startswith("POLLEN_BOOTSTRAP_")}
    for name in sorted(names - deploy_only):
        base = name.removesuffix("_FILE")
        assert f'"{base}"' in settings_text, f"settings.py never reads {base} (set as {name})"


# --- compose -------------------------------------------------------------------------------


def test_compose_has_the_full_stack() -> None:
    services = set(_compose()["services"])
    assert services >= {
        "postgres",
        "redis",
        "s3",
        *HUB_SERVICES,
        *AGENT_SERVICES,
    }


def test_compose_publishes_ports_on_loopback_only() -> None:
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_compose_long_running_services_have_healthchecks() -> None:
    for name, service in _compose()["services"].items():
        if service.get("restart") == "no":
            continue
        assert "healthcheck" in service, f"{name} has no healthcheck"


def test_compose_hub_runs_with_production_settings_and_file_secrets() -> None:
    env = _compose()["services"]["hub-web"]["environment"]
    assert env["POLLEN_ENV"] == "production"
    assert "POLLEN_SECRET_KEY" not in env and env["POLLEN_SECRET_KEY_FILE"].startswith(
        "/run/secrets/"
    )
    assert "DATABASE_URL" not in env and "DATABASE_URL_FILE" in env
    assert env["POLLEN_LOCAL_STORAGE"] == "false" and env["POLLEN_MODEL_STORE_KIND"] == "s3"
    mounted = set(_compose()["services"]["hub-web"]["secrets"])
    for key, value in env.items():
        if key.endswith("_FILE"):
            assert value.removeprefix("/run/secrets/") in mounted, f"{key} is not mounted"


def _agent_config(service: str, secrets_dir: Path) -> dict[str, Any]:
    """The generated config that compose mounts at /etc/pollen/agent.json for an agent."""
    make_secrets.generate(secrets_dir)
    compose = _compose()
    (source,) = [
        e["source"]
        for e in compose["services"][service]["secrets"]
        if isinstance(e, dict) and e.get("target") == "/etc/pollen/agent.json"
    ]
    filename = Path(compose["secrets"][source]["file"]).name
    return json.loads((secrets_dir / filename).read_text())


def _validated_agent_config(config: dict[str, Any], tmp_path: Path) -> Any:
    """Load a config with the agent's own loader, its secret files swapped for temporary ones."""
    from pollen_agent.config import config_from_dict
    from pollen_agent.storage.factory import storage_from_config

    config = json.loads(json.dumps(config))
    for site in config["sites"]:
        for entry in (site, site["storage"]):
            for key in [k for k in entry if k.endswith("_file")]:
                stand_in = tmp_path / f"{site['slug']}-{key}"
                stand_in.write_text("stand-in-value\n")
                entry[key] = str(stand_in)
    loaded = config_from_dict(config)
    for site in loaded.sites:
        storage_from_config(site.storage)
    return loaded


def _secret_sources(service: str) -> dict[str, str]:
    """target -> source for a service's compose secrets."""
    out = {}
    for entry in _compose()["services"][service].get("secrets", []):
        if isinstance(entry, str):
            out[entry] = entry
        else:
            out[entry.get("target", entry["source"])] = entry["source"]
    return out


def test_compose_agents_have_separate_storage_credentials(tmp_path: Path) -> None:
    a, b = (_agent_config(s, tmp_path / "secrets") for s in AGENT_SERVICES)
    (site_a,), (site_b,) = a["sites"], b["sites"]
    assert site_a["slug"] == "site-a" and site_b["slug"] == "site-b"
    assert site_a["storage"]["bucket"] != site_b["storage"]["bucket"]
    assert site_a["storage"]["access_key"] != site_b["storage"]["access_key"]
    secrets_a, secrets_b = (_secret_sources(s) for s in AGENT_SERVICES)
    assert secrets_a["storage_secret_key"] != secrets_b["storage_secret_key"]
    assert secrets_a["agent_token"] != secrets_b["agent_token"]
    for site, secrets in ((site_a, secrets_a), (site_b, secrets_b)):
        assert site["token_file"].removeprefix("/run/secrets/") in secrets
        assert site["storage"]["secret_key_file"].removeprefix("/run/secrets/") in secrets


def test_compose_agent_configs_load_with_the_agents_own_loader(tmp_path: Path) -> None:
    for service in AGENT_SERVICES:
        loaded = _validated_agent_config(_agent_config(service, tmp_path / "secrets"), tmp_path)
        assert loaded.broker_url.startswith("redis://") and loaded.result_backend
        assert loaded.io_queues() == [f"site.{service.removeprefix('agent-')}.io"]


def test_compose_agents_hold_no_database_or_hub_secrets() -> None:
    for service in AGENT_SERVICES:
        sources = set(_secret_sources(service).values())
        assert not sources & {"database_url", "hub_secret_key", "hub_storage_secret_key"}
        assert "DATABASE_URL" not in json.dumps(_compose()["services"][service])


def test_compose_hub_has_no_site_storage_credentials() -> None:
    compose = _compose()
    for service in HUB_SERVICES:
        definition = compose["services"][service]
        sources = set(_secret_sources(service).values())
        assert not any(s.startswith(("site_", "admin_")) for s in sources), (
            f"{service} mounts {sources}"
        )
        env_text = json.dumps(definition.get("environment", {}))
        assert "pollen-site-" not in env_text and "pollen-admin" not in env_text


def test_compose_secret_files_are_the_ones_make_secrets_writes(tmp_path: Path) -> None:
    written = make_secrets.generate(tmp_path / "secrets")
    for name, secret in _compose()["secrets"].items():
        filename = Path(secret["file"]).name
        assert Path(secret["file"]).parent == Path("./compose/secrets"), name
        assert filename in written, f"compose secret {name} reads {filename}, never generated"


def test_compose_bind_mounts_exist() -> None:
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("./") and "/secrets/" not in source:
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which is missing"


def test_storage_identities_reach_only_their_own_bucket(tmp_path: Path) -> None:
    make_secrets.generate(tmp_path)
    doc = json.loads((tmp_path / "s3_identities.json").read_text())
    by_name = {i["name"]: i for i in doc["identities"]}
    assert by_name["hub"]["actions"] == [
        "Read:pollen-hub-models",
        "Write:pollen-hub-models",
        "List:pollen-hub-models",
    ]
    for site in ("site-a", "site-b"):
        assert all(a.endswith(f":pollen-{site}") for a in by_name[site]["actions"])
    keys = [i["credentials"][0]["secretKey"] for i in doc["identities"]]
    assert len(set(keys)) == len(keys), "every identity has its own secret"


def test_make_secrets_keeps_existing_secrets(tmp_path: Path) -> None:
    make_secrets.generate(tmp_path)
    first = (tmp_path / "hub_secret_key").read_text()
    (tmp_path / "site_a_agent_token").write_text("pln_kept\n")
    make_secrets.generate(tmp_path)
    assert (tmp_path / "hub_secret_key").read_text() == first
    assert (tmp_path / "site_a_agent_token").read_text() == "pln_kept\n"


# --- Kubernetes ----------------------------------------------------------------------------


def test_hub_web_probes_point_at_healthz_and_readyz() -> None:
    deployment = _k8s_object(K8S / "hub/web-deployment.yaml", "Deployment", "pollen-hub-web")
    (web,) = deployment["spec"]["template"]["spec"]["containers"]
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["startupProbe"]["httpGet"]["path"] == "/healthz"
    # kubelet sends Host: <pod IP>; it must be an allowed host or the probes get 400.
    env = {e["name"]: e for e in web["env"]}
    assert "$(POD_IP)" in env["POLLEN_ALLOWED_HOSTS"]["value"]
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"


def test_the_clock_runs_once_everywhere_the_hub_runs_and_is_restarted_when_it_dies() -> None:
    clock = _compose()["services"]["hub-clock"]
    assert clock["command"] == ["clock"] and clock["restart"] == "unless-stopped"
    assert clock["healthcheck"]["test"][-1] == "clock-health"
    deployment = _k8s_object(K8S / "hub/clock-deployment.yaml", "Deployment", "pollen-hub-clock")
    assert deployment["spec"]["replicas"] == 1
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["clock"]
    assert container["livenessProbe"]["exec"]["command"][-1] == "clock-health"
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert Path(env["POLLEN_CLOCK_HEARTBEAT_PATH"]).parent.as_posix() in mounts, "writable"
    kustomization = yaml.safe_load((K8S / "hub/kustomization.yaml").read_text())
    assert "clock-deployment.yaml" in kustomization["resources"]
    embedded = (REPO / "scripts/run_embedded.sh").read_text()
    assert '--service "clock=python manage.py clock"' in embedded


def test_hub_has_a_migrate_job_and_an_ingress() -> None:
    job = _k8s_object(K8S / "hub/migrate-job.yaml", "Job", "pollen-hub-migrate")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    ingress = _k8s_object(K8S / "hub/ingress.yaml", "Ingress", "pollen-hub")
    assert ingress["spec"]["tls"]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    service = _k8s_object(K8S / "hub/service.yaml", "Service", backend["name"])
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "web"


def test_every_pod_requests_resources_and_runs_locked_down() -> None:
    for where, spec in _pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        for container in spec["containers"]:
            assert container["resources"]["requests"], where
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where


def test_every_file_secret_is_mounted_from_a_cluster_secret() -> None:
    for where, spec in _pod_specs():
        secret_mounts = {v["name"] for v in spec.get("volumes", []) if "secret" in v}
        for container in spec["containers"]:
            paths = [
                m["mountPath"] for m in container["volumeMounts"] if m["name"] in secret_mounts
            ]
            for env in container.get("env", []):
                if env["name"].endswith("_FILE"):
                    assert any(env["value"].startswith(p + "/") for p in paths), (
                        f"{where}: {env['name']} points outside the mounted Secret"
                    )
            inline = [
                e["name"]
                for e in container.get("env", [])
                if re.search(r"SECRET|PASSWORD|TOKEN|DATABASE_URL|BROKER_URL", e["name"])
                and not e["name"].endswith("_FILE")
            ]
            assert not inline, f"{where} sets secrets inline: {inline}"


def test_agent_example_config_reads_its_secrets_from_the_mounted_secret(tmp_path: Path) -> None:
    config = json.loads((K8S / "agent/base/agent.example.json").read_text())
    deployment = _k8s_object(K8S / "agent/base/deployment.yaml", "Deployment", "pollen-agent")
    (agent,) = deployment["spec"]["template"]["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in agent["volumeMounts"]}
    (volume,) = [
        v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "secrets"
    ]
    assert volume["secret"]["secretName"] == "pollen-agent"
    env = {e["name"]: e["value"] for e in agent["env"]}
    assert env["POLLEN_AGENT_CONFIG"] == mounts["secrets"] + "/agent.json"
    for site in config["sites"]:
        for entry in (site, site["storage"]):
            for key in [k for k in entry if k.endswith("_file")]:
                assert entry[key].startswith(mounts["secrets"] + "/"), key
    secret_keys = set(
        yaml.safe_load((K8S / "agent/base/secret.example.yaml").read_text())["stringData"]
    )
    assert {"agent.json", "agent-token", "storage-access-key", "storage-secret-key"} == secret_keys
    _validated_agent_config(config, tmp_path)


def test_agent_probes_run_the_health_command() -> None:
    deployment = _k8s_object(K8S / "agent/base/deployment.yaml", "Deployment", "pollen-agent")
    (agent,) = deployment["spec"]["template"]["spec"]["containers"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        command = agent[probe]["exec"]["command"]
        assert command == ["/app/deploy/docker/agent-entrypoint.sh", "health"], probe
    assert "ports" not in agent, "nothing connects to the agent"


def _gpu_of(container: dict[str, Any]) -> tuple[Any, Any]:
    resources = container["resources"]
    return resources["requests"].get("nvidia.com/gpu"), resources["limits"].get("nvidia.com/gpu")


def test_gpu_variant_requests_one_gpu_and_targets_gpu_nodes() -> None:
    (deployment,) = [d for d in _kustomize(K8S / "agent/gpu") if d["kind"] == "Deployment"]
    spec = deployment["spec"]["template"]["spec"]
    (agent,) = spec["containers"]
    assert _gpu_of(agent) == (1, 1)
    assert spec["nodeSelector"] and spec["tolerations"]
    assert agent["image"].split(":")[0].endswith("agent-gpu")
    assert agent["livenessProbe"]["exec"]["command"][-1] == "health"


def test_gpu_patch_asks_for_a_gpu_even_without_kubectl() -> None:
    patch = yaml.safe_load((K8S / "agent/gpu/gpu-patch.yaml").read_text())
    (agent,) = patch["spec"]["template"]["spec"]["containers"]
    assert _gpu_of(agent) == (1, 1)


def test_cpu_agent_asks_for_no_gpu() -> None:
    deployment = _k8s_object(K8S / "agent/base/deployment.yaml", "Deployment", "pollen-agent")
    (agent,) = deployment["spec"]["template"]["spec"]["containers"]
    assert _gpu_of(agent) == (None, None)


def test_agent_network_policy_denies_ingress_and_limits_egress() -> None:
    policy = _k8s_object(K8S / "agent/base/networkpolicy.yaml", "NetworkPolicy", "pollen-agent")
    spec = policy["spec"]
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    assert spec.get("ingress") in ([], None)
    ports = {(p["protocol"], p["port"]) for rule in spec["egress"] for p in rule["ports"]}
    # hub HTTPS, broker TLS, site storage HTTPS, DNS: nothing else.
    assert ports == {("TCP", 443), ("TCP", 6380), ("UDP", 53), ("TCP", 53)}
    for rule in spec["egress"]:
        assert rule["to"], "an egress rule without a destination allows everything"
        for peer in rule["to"]:
            assert peer.get("ipBlock", {}).get("cidr") != "0.0.0.0/0"


def test_no_secret_values_are_committed_in_kubernetes_manifests() -> None:
    for path, doc in _k8s_docs():
        if doc.get("kind") == "Secret":
            assert path.name == "secret.example.yaml", f"{path} holds a Secret"
            for value in doc.get("stringData", {}).values():
                assert "<" in value or value.endswith("..."), f"{path} holds a real-looking value"
