"""The `armlet` command line against a running armlet: health, clock, explain, env."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest

from conftest import armlet_bin, clean_environ, running_armlet

DEFAULT_SP_OBJECT_ID = "a1e70000-0000-4000-8000-000000000004"


@pytest.fixture(scope="module")
def server():
    """An armlet of this module's own: these tests move its clock."""
    with running_armlet() as s:
        yield s


def armlet(server, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = clean_environ()
    env["ARMLET_URL"] = server.http_url
    res = subprocess.run([str(armlet_bin()), *args], capture_output=True, text=True, env=env, timeout=60)
    if ok:
        assert res.returncode == 0, f"armlet {' '.join(args)} failed: {res.stderr}"
    else:
        assert res.returncode != 0, f"armlet {' '.join(args)} unexpectedly succeeded: {res.stdout}"
    return res


def test_health_wait_reports_ready(server):
    health = json.loads(armlet(server, "health", "--wait", "10s").stdout)
    assert health["status"] == "ready" and health["store"] == "open", health


def test_health_fails_fast_against_nothing(server):
    env = clean_environ()
    res = subprocess.run([str(armlet_bin()), "health", "--url", "http://127.0.0.1:9"], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode != 0 and "cannot reach armlet" in res.stderr, res.stderr


def test_clock_show_advance_set_freeze_resume(server):
    before = armlet(server, "clock", "show").stdout.split()[0]
    advanced = armlet(server, "clock", "advance", "46d").stdout
    after = advanced.split()[0]
    assert after > before, (before, after)
    assert after[:10] != before[:10], "46 days later is another date"
    # Never backwards: setting an earlier time fails and changes nothing.
    res = armlet(server, "clock", "set", before, ok=False)
    assert "never moves backwards" in res.stderr, res.stderr
    assert armlet(server, "clock", "show").stdout.split()[0] >= after
    frozen = armlet(server, "clock", "freeze").stdout
    assert "(frozen)" in frozen, frozen
    assert armlet(server, "clock", "show").stdout == frozen
    assert "(real)" in armlet(server, "clock", "resume").stdout
    res = armlet(server, "clock", "advance", "soon", ok=False)
    assert "not a duration" in res.stderr, res.stderr


def test_explain(server):
    sub = "a1e70000-0000-4000-8000-000000000002"
    out = json.loads(
        armlet(
            server, "explain", "--principal", DEFAULT_SP_OBJECT_ID,
            "--action", "Microsoft.Resources/subscriptions/resourceGroups/write", "--scope", f"/subscriptions/{sub}",
        ).stdout
    )
    assert out["allowed"] is True and out["grantedBy"]["roleName"] == "Owner", out
    out = json.loads(
        armlet(
            server, "explain", "--principal", "00000000-0000-0000-0000-000000000000",
            "--action", "Microsoft.ContainerRegistry/registries/pull/read", "--scope", f"/subscriptions/{sub}",
        ).stdout
    )
    assert out["allowed"] is False and out["rolesThatWouldAllow"][0] == "AcrPull", out


def test_env_prints_quoted_exports(server, tmp_path):
    out = armlet(server, "env", "--url", server.http_url, "--dir", str(tmp_path / "profile")).stdout
    exports = dict(line[len("export "):].split("=", 1) for line in out.splitlines() if line.startswith("export "))
    assert exports["ARMLET_HTTPS_URL"] == f"'{server.https_url}'", exports
    assert exports["AZURE_CORE_INSTANCE_DISCOVERY"] == "'false'"
    assert (tmp_path / "profile" / "ca.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_state_export_reset_import(server, tmp_path):
    """`armlet state`: what az created survives export → reset → import."""
    from conftest import az, az_login, env_for

    env = env_for(server, tmp_path / "az")
    az_login(env)
    az(env, "group", "create", "--name", "snapshot-rg", "--location", "westus2")
    doc = tmp_path / "state.json"
    assert "wrote" in armlet(server, "state", "export", str(doc)).stdout
    assert '"armletState"' in doc.read_text()

    armlet(server, "state", "reset")
    assert az(env, "group", "exists", "--name", "snapshot-rg").json is False
    assert json.loads(armlet(server, "state", "import", str(doc), "--dry-run").stdout)["dryRun"] is True
    assert az(env, "group", "exists", "--name", "snapshot-rg").json is False
    armlet(server, "state", "import", str(doc))
    assert az(env, "group", "show", "--name", "snapshot-rg").json["location"] == "westus2"

    bad = tmp_path / "bad.json"
    bad.write_text('{"armletState": 1, "entries": {"nonsense": 1}}')
    res = armlet(server, "state", "import", str(bad), ok=False)
    assert "unknown key" in res.stderr, res.stderr
    assert az(env, "group", "show", "--name", "snapshot-rg").json["name"] == "snapshot-rg"


def test_subscriptions_create_gives_an_isolated_owner(server, tmp_path):
    from conftest import az, env_for

    created = json.loads(armlet(server, "subscriptions", "create", "--name", "suite-b", "--new-tenant").stdout)
    env = env_for(server, tmp_path / "suite-b")
    az(env, "login", "--service-principal", "-u", created["clientId"], "-p", created["clientSecret"], "--tenant", created["tenantId"])
    account = az(env, "account", "show").json
    assert account["id"] == created["subscriptionId"] and account["tenantId"] == created["tenantId"], account
    az(env, "group", "create", "--name", "isolated-rg", "--location", "westus2")
    assert [g["name"] for g in az(env, "group", "list").json] == ["isolated-rg"]
    with urllib.request.urlopen(f"{server.http_url}/_armlet/requests?limit=5", timeout=30) as response:
        log = json.loads(response.read())
    assert any(e["path"].endswith("/resourcegroups/isolated-rg") and e["method"] == "PUT" for e in log["value"]), log


def test_events_lists_pending_rotations(server, tmp_path):
    from conftest import az, az_login, env_for

    env = env_for(server, tmp_path / "events")
    az_login(env)
    az(env, "group", "create", "--name", "events-rg", "--location", "westus2")
    identity = az(env, "identity", "create", "--name", "rotating", "--resource-group", "events-rg").json
    out = armlet(server, "events").stdout
    assert "pending:" in out and "fired:" in out, out
    assert any("credentialRotation" in line and identity["id"] in line for line in out.splitlines()), out
