"""The deployment files parse and name every setting (no container engine runs here, so
``docker compose config`` cannot; this is the part of it that can be checked)."""

from pathlib import Path

import yaml

from memetrade.config import SETTINGS

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_is_valid_yaml_with_the_whole_stack() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"nats", "postgres", "redis", "aggregate", "ingest", "api"} <= set(services)
    roles = {name: s["environment"].get("ROLE") for name, s in services.items() if "build" in s}
    assert roles == {"aggregate": "aggregate", "ingest": "ingest", "api": "api"}
    for name in roles:
        env = services[name]["environment"]
        assert env["BUS_URL"].startswith("nats://")
        assert env["DATABASE_URL"].startswith("postgresql://")
    assert "-js" in services["nats"]["command"]


def test_deploy_doc_names_every_setting() -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    missing = [s.env for s in SETTINGS if f"`{s.env}`" not in doc]
    assert not missing


def test_dockerfile_installs_the_package_and_serves() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "pip install" in text
    assert 'CMD ["memetrade", "serve"]' in text
