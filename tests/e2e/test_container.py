"""The container files, checked for structure (no Docker engine runs here): a multi-stage
Dockerfile with a small non-root runtime, a data volume and a health check that uses
`armlet health`; a compose file with armlet (volume, ports, health check) and an optional
az client that shares its network namespace."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def stages(dockerfile: str):
    return re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", dockerfile, flags=re.M | re.I)


def test_dockerfile_builds_a_small_non_root_runtime():
    text = (ROOT / "Dockerfile").read_text()
    found = stages(text)
    names = [name for _, name in found]
    assert names == ["build", "runtime", "client"], found
    assert found[0][0].startswith("rust:") and "slim" in found[1][0], found
    runtime = text.split("AS runtime", 1)[1].split("AS client", 1)[0]
    assert re.search(r"^USER\s+armlet", runtime, flags=re.M), "the runtime runs as a non-root user"
    assert 'VOLUME ["/data"]' in runtime and "ARMLET_DATA_DIR=/data" in runtime
    assert re.search(r"EXPOSE\s+8443\s+8080", runtime)
    assert re.search(r"HEALTHCHECK .*\n\s*CMD \[\"armlet\", \"health\"", runtime), "health check through armlet health"
    assert "COPY --from=build /src/target/release/armlet" in runtime
    # What the build copies must exist (the binary embeds fixtures/, COMPATIBILITY.md, openapi/).
    for path in ("Cargo.toml", "Cargo.lock", "src", "fixtures", "openapi", "COMPATIBILITY.md"):
        assert (ROOT / path).exists(), path
    client = text.split("AS client", 1)[1]
    assert "azure-cli==2.91.0" in client


def test_compose_runs_armlet_with_a_volume_and_an_optional_client():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    armlet = compose["services"]["armlet"]
    assert armlet["build"]["target"] == "runtime"
    assert {"8443:8443", "8080:8080"} <= set(armlet["ports"])
    assert any(v.endswith(":/data") for v in armlet["volumes"])
    assert armlet["healthcheck"]["test"][:3] == ["CMD", "armlet", "health"]
    assert "armlet-data" in compose["volumes"]
    client = compose["services"]["client"]
    assert client["profiles"] == ["client"], "the az client is optional"
    assert client["build"]["target"] == "client"
    assert client["network_mode"] == "service:armlet"
    assert client["depends_on"]["armlet"]["condition"] == "service_healthy"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "target" in ignored and ".venv" in ignored
