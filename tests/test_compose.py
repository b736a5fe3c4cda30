"""docker-compose.yml and the Dockerfile: the production shape, checked without Docker (and by Docker when present)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import environ
import pytest
import yaml
from clickhouse_connect.driver import _parse_connection_params
from django.core.management import get_commands

from cxplatform.queues import CeleryQueue

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("migrate", "web", "worker", "beat")
# ${VAR:-default} and ${VAR:?error}, the two forms of compose interpolation the file uses.
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?::-(?P<default>[^}]*)|:\?[^}]*)\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def interpolate(value: str) -> str:
    """``value`` as compose would see it with SECRET_KEY exported and nothing else set."""
    exported = {"SECRET_KEY": "exported-secret"}
    return INTERPOLATION.sub(lambda match: exported.get(match["name"], match["default"]), value)


@pytest.fixture(scope="module")
def app_environment(compose) -> dict[str, str]:
    return {name: interpolate(value) for name, value in compose["services"]["web"]["environment"].items()}


def command_of(service: dict) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else command


def test_the_six_services_and_their_images(compose):
    services = compose["services"]
    assert {"postgres", "clickhouse", "redis", "web", "worker", "beat"} <= set(services)
    assert services["postgres"]["image"] == "postgres:16"
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert services["clickhouse"]["ulimits"]["nofile"]["soft"] >= 262144
    assert services["redis"]["image"] == "redis:7"
    for name in APP_SERVICES:
        assert services[name]["build"] == "."
        assert services[name]["image"] == services["web"]["image"], f"{name} runs the same image as web"


def test_commands(compose):
    services = compose["services"]
    assert command_of(services["migrate"]) == ["python", "manage.py", "setup"]
    assert "setup" in get_commands()
    web = command_of(services["web"])
    assert web[0] == "gunicorn" and web[-1] == "cxplatform.wsgi"
    assert (ROOT / web[web.index("--config") + 1]).is_file()
    worker = command_of(services["worker"])
    assert worker[:4] == ["celery", "-A", "cxplatform", "worker"]
    assert set(worker[worker.index("-Q") + 1].split(",")) == {queue.value for queue in CeleryQueue}
    beat = command_of(services["beat"])
    assert beat[:4] == ["celery", "-A", "cxplatform", "beat"]
    schedule = next(arg.split("=", 1)[1] for arg in beat if arg.startswith("--schedule="))
    mounts = [volume.split(":")[1] for volume in services["beat"]["volumes"]]
    assert str(Path(schedule).parent) in mounts, "beat's schedule survives restarts"


def test_app_services_share_one_environment_that_points_at_the_compose_services(compose, app_environment):
    services = compose["services"]
    for name in APP_SERVICES:
        assert services[name]["environment"] == services["web"]["environment"], name
    assert app_environment["DEBUG"] == "0"
    assert {"DATABASE_URL", "CLICKHOUSE_URL", "REDIS_URL", "SECRET_KEY", "ALLOWED_HOSTS"} <= set(app_environment)

    database = environ.Env.db_url_config(app_environment["DATABASE_URL"])
    postgres = services["postgres"]["environment"]
    assert (database["HOST"], database["PORT"], database["NAME"], database["USER"], database["PASSWORD"]) == (
        "postgres",
        5432,
        postgres["POSTGRES_DB"],
        postgres["POSTGRES_USER"],
        interpolate(postgres["POSTGRES_PASSWORD"]),
    )
    clickhouse = services["clickhouse"]["environment"]
    # What get_client(dsn=...) does with the URL (it takes the interface from the port, not the scheme).
    host, user, password, port, _database, interface = _parse_connection_params(
        None, None, "", None, None, None, False, app_environment["CLICKHOUSE_URL"], {}
    )
    assert (host, port, interface, user, password) == (
        "clickhouse",
        8123,
        "http",
        clickhouse["CLICKHOUSE_USER"],
        interpolate(clickhouse["CLICKHOUSE_PASSWORD"]),
    )
    assert app_environment["REDIS_URL"].startswith("redis://redis:6379/")


def test_dependencies_healthchecks_and_volumes(compose):
    services = compose["services"]
    for name in ("postgres", "clickhouse", "redis", "web"):
        assert services[name]["healthcheck"]["test"], f"{name} has a healthcheck"
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    for name in ("web", "worker", "beat"):
        depends_on = services[name]["depends_on"]
        assert {dependency: depends_on[dependency]["condition"] for dependency in depends_on} == {
            "postgres": "service_healthy",
            "clickhouse": "service_healthy",
            "redis": "service_healthy",
            "migrate": "service_completed_successfully",
        }
    used = {volume.split(":")[0] for service in services.values() for volume in service.get("volumes", [])}
    assert used == set(compose["volumes"])


def test_dockerfile_builds_the_front_end_in_node_and_runs_as_a_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM node:20-slim AS frontend$", dockerfile, re.MULTILINE)
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.MULTILINE)
    assert "npm ci" in dockerfile and "--from=frontend" in dockerfile
    assert "collectstatic" in dockerfile and "pip install -r requirements.txt" in dockerfile
    assert "requirements-dev" not in dockerfile
    assert re.search(r"^USER (?!root)\w+$", dockerfile, re.MULTILINE)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", "frontend/node_modules", ".git"} <= set(ignored)


def test_the_image_installs_no_test_or_lint_tools():
    def pinned(name: str) -> set[str]:
        lines = (ROOT / name).read_text().splitlines()
        return {line.split("==")[0].lower() for line in lines if "==" in line}

    runtime, dev = pinned("requirements.txt"), pinned("requirements-dev.txt")
    assert {"pytest", "pytest-django", "ruff"} <= dev
    assert not runtime & dev
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text().splitlines()


def docker_compose_available() -> bool:
    try:
        return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not docker_compose_available(), reason="the docker compose plugin is not installed")
def test_docker_compose_accepts_the_file():
    result = subprocess.run(
        ["docker", "compose", "--file", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        env={**os.environ, "SECRET_KEY": "exported-secret"},
    )
    assert result.returncode == 0, result.stderr
