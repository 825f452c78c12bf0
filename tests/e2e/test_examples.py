"""The demos in examples/, each run with bash against an armlet of its own, as a person
would run it after `eval "$(armlet env)"` and `az login`: exit 0, and the narration says
what the demo is about.

Each server runs with `--propagation-delay 3s`. The demos move the simulated clock past
every delay themselves (`armlet clock advance`), so no delay costs wall time; a short one
keeps whatever a demo did not wait out cheap. The armlet binary's directory and the venv's
`az` come first on PATH, and ARMLET_BIN names the binary, as the demos read it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import List

import conftest
from conftest import az_login, control, env_for, running_armlet

EXAMPLES = conftest.REPO_ROOT / "examples"
DEMO_TIMEOUT_S = 180.0


def control_get(server, path: str):
    with urllib.request.urlopen(f"{server.http_url}{path}", timeout=30) as r:
        return json.loads(r.read())


def past_next_westus2_release(server) -> None:
    """Node images release on the clock every 14 days: move just past the next scheduled
    arrival in westus2, so that none lands while the demo expects "no newer image"."""
    listing = control_get(server, "/_armlet/node-images?location=westus2")
    upcoming = [r["availableAt"] for r in listing["releases"] if not r["available"]]
    if upcoming:
        latest = max(dt.datetime.fromisoformat(re.sub(r"\.\d+Z$", "+00:00", t).replace("Z", "+00:00")) for t in upcoming)
        control(server, "/_armlet/clock/advance", {"to": (latest + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")})


def run_demo(script: str, tmp_path: Path, *, prepare=None) -> str:
    """Starts a private armlet, runs examples/<script> with bash, returns its output."""
    with running_armlet("--propagation-delay", "3s") as server:
        previous = conftest._CURRENT_ARMLET
        conftest._CURRENT_ARMLET = server  # a failing demo's report shows this server's log
        try:
            if prepare:
                prepare(server)
            env = env_for(server, tmp_path / "az")
            home = tmp_path / "home"
            home.mkdir()
            env["HOME"] = str(home)  # nothing from the real ~/.ssh or ~/.kube
            env["ARMLET_BIN"] = str(server.bin)
            env["PATH"] = os.pathsep.join([str(server.bin.parent), str(Path(sys.executable).parent), env.get("PATH", "")])
            env["AZURE_CORE_NO_COLOR"] = "true"
            env["AZURE_CORE_SURVEY_MESSAGE"] = "false"
            az_login(env)
            started = time.monotonic()
            try:
                res = subprocess.run(
                    ["bash", str(EXAMPLES / script)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env=env,
                    cwd=str(tmp_path),
                    timeout=DEMO_TIMEOUT_S,
                )
            except subprocess.TimeoutExpired as e:
                raise AssertionError(f"{script} did not finish in {DEMO_TIMEOUT_S:.0f}s\noutput:\n{e.stdout}") from None
            took = time.monotonic() - started
            print(f"\n--- {script} ({took:.1f}s) ---\n{res.stdout}")
            assert res.returncode == 0, f"{script} exited {res.returncode}\noutput:\n{res.stdout}"
            assert "DEMO FAILED" not in res.stdout, res.stdout
            return res.stdout
        finally:
            conftest._CURRENT_ARMLET = previous


def assert_in_order(output: str, expected: List[str]) -> None:
    """Each expected fragment occurs in the output, after the previous one."""
    at = 0
    for fragment in expected:
        found = output.find(fragment, at)
        assert found >= 0, f"{fragment!r} not found (in order) in the demo's output:\n{output}"
        at = found + len(fragment)


def test_migrate_sp_to_mi(tmp_path):
    out = run_demo("migrate-sp-to-mi.sh", tmp_path, prepare=past_next_westus2_release)
    assert_in_order(out, [
        "==> 2. The cluster, on the service principal, with the registry attached",
        ": healthy",
        "Microsoft.Graph/secretExpiry",
        "==> 3. az aks update --enable-managed-identity --yes",
        '"clientId": "msi"',
        "kubelet=ServicePrincipal:",
        "==> 4. az aks nodepool upgrade --node-image-only, with no newer node image released",
        "nothing happened",
        "==> 5. A new node image is released",
        "cordoned: aks-nodepool1-",
        "nodes on the managed identity: 3/3",
        "kubelet=ManagedIdentity:",
        "==> 6. The new kubelet identity cannot pull from the registry",
        ": UNHEALTHY",
        "cannot pull from armletdemo",
        "==> 7. az aks update --attach-acr again",
        "is still propagating",
        "$ armlet clock advance 15s",
        ": healthy",
        "==> Done.",
    ])
    # One node at a time: three different nodes were seen cordoned, one per step.
    cordoned = re.findall(r"t\+\d+s\s+cordoned: (aks-\S+)", out)
    assert len(cordoned) == 3 and len(set(cordoned)) == 3, cordoned


def test_byo_identities(tmp_path):
    out = run_demo("byo-identities.sh", tmp_path)
    assert_in_order(out, [
        "==> 2. May the control plane (myIdentity) assign myKubeletIdentity?",
        '"allowed": false, "pending": []',
        "==> 3. Create the cluster without the grant",
        "CustomKubeletIdentityMissingPermissionError",
        "==> 4. The guide's grant: Managed Identity Operator on the kubelet identity",
        '"pending": [{"roleName": "Managed Identity Operator", "effectiveAt"',
        "==> 5. az aks create --assign-identity --assign-kubelet-identity",
        "Creating",
        "Microsoft.ContainerService/managedClusters/write",
        "Microsoft.Authorization/roleAssignmentPropagation",
        "==> 6. Time passes: armlet clock advance 5s (the propagation delay is 3s)",
        "fired Microsoft.ContainerService/managedClusters/write",
        '"provisioningState": "Succeeded"',
        "every kubelet runs as myKubeletIdentity",
        "==> Done.",
    ])


def test_credential_rotation(tmp_path):
    out = run_demo("credential-rotation.sh", tmp_path)
    assert_in_order(out, [
        "==> 2. Day 0: the workload gets a token and uses it",
        "day 0   token minted by credential",
        "==> Time passes: armlet clock advance 46d (to day 46)",
        "fired Microsoft.ManagedIdentity/credentialRotation",
        "day 46  token minted by credential",
        "==> Time passes: armlet clock advance 46d (to day 92)",
        "fired Microsoft.ManagedIdentity/credentialRotation",
        "day 92  token minted by credential",
        "==> 3. Three credentials in 92 days, and the tokens never stopped",
        "==> Done.",
    ])
    thumbs = re.findall(r"token minted by credential (\S+); GET resource group -> HTTP 200", out)
    assert len(thumbs) == 3 and len(set(thumbs)) == 3, thumbs


def test_propagation(tmp_path):
    out = run_demo("propagation.sh", tmp_path)
    assert_in_order(out, [
        "==> PrincipalNotFound, naive: PUT the role assignment without principalType",
        "PrincipalNotFound",
        "==> PrincipalNotFound, correct: tell ARM it is a service principal",
        '"principalType": "ServicePrincipal"',
        "==> AuthorizationFailed, naive: the workload reads its resource group right after the grant",
        "-> HTTP 403",
        "If access was recently granted",
        "==> AuthorizationFailed, correct: retry 403 AuthorizationFailed with exponential backoff",
        "attempt 1: HTTP 403 AuthorizationFailed",
        "attempt 3: HTTP 200",
        "as the workload identity",
        "==> Done.",
    ])
