"""The simulation controls with the real az CLI: fault injection (az retries a throttled
cluster PUT; a failed operation shows Azure's error), and reproducible runs (`--seed`)."""

from __future__ import annotations

import json
import subprocess

from conftest import armlet_bin, az, az_login, clean_environ, env_for, running_armlet

DEFAULT_TENANT = "a1e70000-0000-4000-8000-000000000001"


def armlet_cli(server, *args: str) -> str:
    env = clean_environ()
    env["ARMLET_URL"] = server.http_url
    res = subprocess.run([str(armlet_bin()), *args], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, f"armlet {' '.join(args)} failed: {res.stderr}"
    return res.stdout


def test_az_retries_a_throttled_cluster_put(tmp_path):
    with running_armlet() as server:
        env = env_for(server, tmp_path / "az")
        az_login(env)
        az(env, "group", "create", "-n", "rg", "-l", "westus2")
        added = json.loads(
            armlet_cli(
                server, "faults", "add", "--method", "PUT",
                "--resource-type", "Microsoft.ContainerService/managedClusters",
                "--throttle", "1", "--count", "1",
            )
        )
        assert added["action"] == {"kind": "throttle", "retryAfter": 1}
        cluster = az(env, "aks", "create", "-g", "rg", "-n", "throttled", "--no-ssh-key").json
        assert cluster["provisioningState"] == "Succeeded"
        rules = json.loads(armlet_cli(server, "faults", "list"))["value"]
        assert rules[0]["fired"] == 1, rules
        log = "\n".join(server.log)
        assert "managedClusters/throttled -> 429" in log and "managedClusters/throttled -> 201" in log


def test_a_failed_operation_shows_azures_error_in_az(tmp_path):
    with running_armlet() as server:
        env = env_for(server, tmp_path / "az")
        az_login(env)
        az(env, "group", "create", "-n", "rg", "-l", "westus2")
        armlet_cli(
            server, "faults", "add", "--operation", "ManagedClusters_CreateOrUpdate",
            "--fail-operation", "InternalOperationError", "--message", "Provisioning of the node pool failed.",
        )
        failed = az(env, "aks", "create", "-g", "rg", "-n", "doomed", "--no-ssh-key", expect_ok=False)
        assert "(InternalOperationError) Provisioning of the node pool failed." in failed.stderr, failed.stderr
        armlet_cli(server, "faults", "clear")
        shown = az(env, "aks", "show", "-g", "rg", "-n", "doomed").json
        assert shown["provisioningState"] == "Failed"
        assert shown["status"]["provisioningError"]["code"] == "InternalOperationError"


def seeded_run(tmp_path, name: str):
    """One scripted az session against a fresh seeded, stepping armlet; outputs with the
    server's address (which differs per run) replaced."""
    outputs = []
    with running_armlet("--seed", "42", "--freeze-at", "2026-06-01T00:00:00Z", "--clock-step", "1s") as server:
        env = env_for(server, tmp_path / name)
        az_login(env)
        for args in (
            ("group", "create", "-n", "seeded", "-l", "westus2"),
            ("identity", "create", "-n", "seededIdentity", "-g", "seeded"),
            ("ad", "sp", "create-for-rbac", "-n", "seeded-app"),
            ("aks", "create", "-g", "seeded", "-n", "seededCluster", "--no-ssh-key"),
        ):
            out = az(env, *args).stdout
            outputs.append(out.replace(server.https_authority, "ARMLET").replace(server.http_url, "ARMLET-HTTP"))
    return outputs


def test_two_seeded_runs_give_identical_outputs(tmp_path):
    first = seeded_run(tmp_path, "first")
    second = seeded_run(tmp_path, "second")
    for a, b in zip(first, second):
        assert a == b
    identity = json.loads(first[1])
    assert identity["tenantId"] == DEFAULT_TENANT
    cluster = json.loads(first[3])
    assert cluster["identity"]["principalId"] and cluster["fqdn"].endswith(".hcp.westus2.azmk8s.io")
    assert json.loads(first[2])["password"], "secrets are reproducible too"


def test_operation_timing_and_the_request_log_from_the_cli(tmp_path):
    with running_armlet() as server:
        env = env_for(server, tmp_path / "az")
        az_login(env)
        shown = json.loads(armlet_cli(server, "config", "set", "Microsoft.Resources/resourceGroups/delete=2polls"))
        assert shown["operationTiming"] == [
            {"kind": "Microsoft.Resources/resourceGroups/delete", "duration": "0ms", "polls": 2}
        ]
        az(env, "group", "create", "-n", "timed", "-l", "westus2")
        az(env, "group", "delete", "-n", "timed", "--yes")
        assert az(env, "group", "exists", "-n", "timed").stdout.strip() == "false"
        # az polled the operation result twice (202) before it answered 200.
        log = armlet_cli(server, "requests", "--limit", "20")
        results = [line for line in log.splitlines() if "/operationresults/" in line]
        assert [line.split()[1] for line in results] == ["202", "202", "200"], log
        assert all("api-version=" in line and "caller=a1e70000-0000-4000-8000-000000000004" in line for line in results)
        assert json.loads(armlet_cli(server, "config", "unset", "Microsoft.Resources/resourceGroups/delete"))["operationTiming"] == []
