"""The AKS guide's migration and update flows through the real `az` CLI, watched through
armlet's own view of the cluster (`/_armlet/clusters/{id}/nodes|health`) and driven on its
clock (`armlet node-images`, `armlet clock`):

1. service principal -> managed identity with an ACR attached to the service principal: the
   nodes keep the service principal until a node image upgrade onto a *newer* image, then
   use `{cluster}-agentpool`, which cannot pull from the registry until `--attach-acr` runs
   again and its grant propagates;
2. a new kubelet identity on update reimages every node;
3. a node image release staged over region rings: westus2 (ring 3) gets it 64 h later;
4. the guide's custom-VNet create with a user-assigned control plane, and its failure
   (LinkedAuthorizationFailed) when the Network Contributor grant on the subnet is missing;
5. the README's staged publish on the command line, `--at T --rollout-hours 96`.

The module runs its own armlet (2 s propagation delay, real clock; frozen only around the
steps that check a propagation or a wait). Its fixture first moves the clock just past the
next *scheduled* node image release in westus2, so that no scheduled release lands in the
middle of a test (releases come every 14 days; the tests span less than 3 days).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any, Dict, Iterator, List, Optional

import pytest

import conftest
from conftest import Armlet, advance_clock, az, az_login, clean_environ, control, env_for, freeze_clock, running_armlet

LOC = "westus2"
RG = "myResourceGroup"
UBUNTU = "AKSUbuntu-2404gen2containerd"


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def node_rg(cluster: str) -> str:
    return f"MC_{RG}_{cluster}_{LOC}"


def same_id(a: Optional[str], b: Optional[str]) -> bool:
    return a is not None and b is not None and a.lower() == b.lower()


def parse_time(text: str) -> dt.datetime:
    """RFC 3339 with up to 9 fractional digits (armlet prints 7 or 9) -> aware datetime."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    assert m, f"not an RFC 3339 time: {text!r}"
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return dt.datetime.fromisoformat(f"{m.group(1)}.{frac}{zone}")


def control_get(server: Armlet, path: str) -> Any:
    """GET on armlet's control API (conftest's `control` only POSTs)."""
    req = urllib.request.Request(f"{server.http_url}{path}", headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise AssertionError(f"GET {path} -> {e.code}: {e.read().decode(errors='replace')}") from None


def nodes_of(server: Armlet, cluster_id: str) -> List[dict]:
    return control_get(server, f"/_armlet/clusters{cluster_id}/nodes")["value"]


def health_of(server: Armlet, cluster_id: str) -> dict:
    return control_get(server, f"/_armlet/clusters{cluster_id}/health")


def node_images(server: Armlet, location: str = LOC) -> dict:
    return control_get(server, f"/_armlet/node-images?location={location}")


def clock_now(server: Armlet) -> str:
    return control_get(server, "/_armlet/clock")["now"]


def armlet_cli(server: Armlet, *args: str) -> str:
    """Runs `armlet ARGS --url <the server's plain-HTTP URL>`; returns stdout."""
    cmd = [str(server.bin), *args, "--url", server.http_url]
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=clean_environ(), timeout=60)
    assert res.returncode == 0, f"`{' '.join(cmd)}` exited {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    return res.stdout


def image(version: str) -> str:
    return f"{UBUNTU}-{version}"


def release_named(listing: dict, version: str) -> dict:
    found = [r for r in listing["releases"] if r["version"] == version]
    assert len(found) == 1, (version, listing["releases"])
    return found[0]


def assert_reimaged_one_by_one(nodes: List[dict], reason: str) -> None:
    """Each node has exactly one downtime interval of one simulated second, for `reason`,
    and the intervals follow each other (maxSurge 10% of 3 nodes = one node per batch)."""
    spans = []
    for node in nodes:
        assert len(node["downtime"]) == 1, node
        d = node["downtime"][0]
        assert d["reason"] == reason, node
        start, end = parse_time(d["from"]), parse_time(d["to"])
        assert end - start == dt.timedelta(seconds=1), node
        spans.append((start, end))
        assert node["ready"] is True and node["cordoned"] is False, node
    spans.sort()
    for (_, prev_end), (next_start, _) in zip(spans, spans[1:]):
        assert next_start >= prev_end, f"batches overlap: {spans}"


@contextlib.contextmanager
def frozen(server: Armlet) -> Iterator[None]:
    """The clock stands still inside (LROs cannot complete unless the test advances it)."""
    freeze_clock(server)
    try:
        yield
    finally:
        control(server, "/_armlet/clock/resume")


class Background:
    """`az ARGS` in a thread, so a test can move the frozen clock while az waits."""

    def __init__(self, env: Dict[str, str], *args: str):
        self.result: Optional[conftest.AzResult] = None
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._run, args=(env, args), daemon=True)
        self.thread.start()

    def _run(self, env, args) -> None:
        try:
            self.result = az(env, *args, expect_ok=None)
        except BaseException as e:  # surfaced by join()
            self.error = e

    def join(self, timeout: float = 240.0) -> conftest.AzResult:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"az still running after {timeout:.0f}s"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def wait_for_pending_write(server: Armlet, cluster_id: str, bg: Background, timeout: float = 120.0) -> dict:
    """Waits until armlet holds a running write of the cluster (its PUT has arrived)."""
    deadline = time.monotonic() + timeout
    while True:
        for event in control_get(server, "/_armlet/events").get("pending", []):
            if event["kind"] == "Microsoft.ContainerService/managedClusters/write" and same_id(event["subject"], cluster_id):
                return event
        if not bg.thread.is_alive():
            result = bg.join()
            raise AssertionError(f"az finished before armlet held the create:\n{result.stderr}\n{result.stdout}")
        assert time.monotonic() < deadline, f"no pending write of {cluster_id} after {timeout:.0f}s"
        time.sleep(0.3)


@contextlib.contextmanager
def failing_tests_show_log_of(server: Armlet) -> Iterator[None]:
    """conftest attaches the session armlet's output to failing tests; point it at ours."""
    previous = getattr(conftest, "_CURRENT_ARMLET", None)
    conftest._CURRENT_ARMLET = server
    try:
        yield
    finally:
        conftest._CURRENT_ARMLET = previous


# --------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server():
    with running_armlet("--propagation-delay", "2s") as s:
        with failing_tests_show_log_of(s):
            # Past the next scheduled release's arrival in westus2: 14 quiet days follow.
            upcoming = [parse_time(r["availableAt"]) for r in node_images(s)["releases"] if not r["available"]]
            if upcoming:
                to = (max(upcoming) + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
                control(s, "/_armlet/clock/advance", {"to": to})
            listing = node_images(s)
            quiet_until = min((parse_time(r["availableAt"]) for r in listing["releases"] if not r["available"]), default=None)
            assert quiet_until is None or quiet_until - parse_time(listing["time"]) > dt.timedelta(days=13), listing
            yield s


@pytest.fixture(scope="module")
def env(server, tmp_path_factory):
    base = tmp_path_factory.mktemp("migration")
    e = env_for(server, base / "az")
    home = base / "home"
    home.mkdir()
    e["HOME"] = str(home)  # no ~/.ssh/id_rsa.pub: az sends no linuxProfile
    az_login(e)
    az(e, "group", "create", "--name", RG, "--location", LOC)
    return e


# --------------------------------------------------------------------------------------
# 1. service principal -> managed identity, with an ACR attached to the service principal
# --------------------------------------------------------------------------------------


def test_sp_to_managed_identity_migration_with_attached_acr(server, env):
    name = "mySPCluster"
    sp = az(env, "ad", "sp", "create-for-rbac", "--name", "myAKSClusterServicePrincipal").json
    app_id, password = sp["appId"], sp["password"]
    acr_name = f"myacr{uuid.uuid4().hex[:10]}"
    acr = az(env, "acr", "create", "-n", acr_name, "-g", RG, "--sku", "Basic").json
    assert acr["loginServer"] == f"{acr_name}.azurecr.io" and acr["sku"]["name"] == "Basic", acr

    created = az(env, "aks", "create", "-g", RG, "-n", name, "--service-principal", app_id,
                 "--client-secret", password, "--attach-acr", acr["id"]).json
    cid = created["id"]
    assert created["provisioningState"] == "Succeeded", created["provisioningState"]
    assert created["servicePrincipalProfile"]["clientId"] == app_id, created["servicePrincipalProfile"]
    assert created.get("identity") is None and created.get("identityProfile") is None, created
    booted = created["agentPoolProfiles"][0]["nodeImageVersion"]
    assert booted == node_images(server)["latest"]["Ubuntu"], booted

    # Once az's AcrPull grant to the service principal has propagated (the create does not
    # wait for it), the cluster is healthy and its nodes pull from the registry.
    advance_clock(server, "3s")
    health = health_of(server, cid)
    assert health["healthy"] is True and health["problems"] == [], health
    assert health["controlPlane"]["type"] == "ServicePrincipal", health["controlPlane"]
    assert health["controlPlane"]["clientId"] == app_id, health["controlPlane"]
    assert health["registryPullsDenied"] == 0, health
    [registry] = health["registries"]
    assert same_id(registry["id"], acr["id"]) and registry["loginServer"] == acr["loginServer"], registry
    assert registry["attached"] is True, registry
    assert [(p["pool"], p["credential"], p["clientId"], p["ok"]) for p in registry["pulls"]] == [
        ("nodepool1", "ServicePrincipal", app_id, True)
    ], registry

    # The migration: control plane on a system-assigned identity at once...
    updated = az(env, "aks", "update", "-g", RG, "-n", name, "--enable-managed-identity", "--yes").json
    assert updated["provisioningState"] == "Succeeded", updated["provisioningState"]
    assert updated["identity"]["type"] == "SystemAssigned", updated["identity"]
    principal = updated["identity"]["principalId"]
    assert updated.get("identityProfile") is None, "no kubelet identity before a node image upgrade"
    # ARM sends {"clientId": "msi"}; az's model prints the write-only secret as null.
    shown = az(env, "aks", "show", "-g", RG, "-n", name, "--query", "servicePrincipalProfile").json
    assert shown == {"clientId": "msi", "secret": None}, shown
    assert az(env, "aks", "show", "-g", RG, "-n", name, "--query", "identityProfile").json is None

    # ...but every node's kubelet still uses the service principal.
    nodes = nodes_of(server, cid)
    assert len(nodes) == 3, nodes
    for node in nodes:
        assert node["kubelet"]["type"] == "ServicePrincipal" and node["kubelet"]["clientId"] == app_id, node
        assert node["nodeImageVersion"] == booted and node["downtime"] == [], node
    health = health_of(server, cid)
    assert health["controlPlane"]["type"] == "SystemAssigned", health["controlPlane"]
    assert health["controlPlane"]["principalId"] == principal, health["controlPlane"]
    assert health["migration"]["from"] == "ServicePrincipal", health["migration"]
    assert health["migration"]["servicePrincipal"] == app_id, health["migration"]
    assert health["healthy"] is True, health  # the service principal still has AcrPull
    mc_identities = [i["name"] for i in az(env, "identity", "list", "-g", node_rg(name)).json]
    assert f"{name}-agentpool" not in mc_identities, mc_identities

    # No newer image in westus2: the node image upgrade answers 200 and changes nothing.
    upgrade = ("aks", "nodepool", "upgrade", "-g", RG, "--cluster-name", name, "-n", "nodepool1", "--node-image-only")
    noop = az(env, *upgrade)
    assert noop.json is None, noop.stdout
    for node in nodes_of(server, cid):
        assert node["nodeImageVersion"] == booted and node["downtime"] == [], node
        assert node["kubelet"]["type"] == "ServicePrincipal", node
    assert az(env, "aks", "show", "-g", RG, "-n", name, "--query", "identityProfile").json is None

    # A newer image, everywhere at once; the upgrade moves every node to {name}-agentpool.
    release = json.loads(armlet_cli(server, "node-images", "publish"))
    assert release["rolloutHours"] == 0 and release["published"] is True, release
    newest = image(release["version"])
    assert newest > booted and node_images(server)["latest"]["Ubuntu"] == newest, (newest, booted)
    az(env, *upgrade)

    kubelet = az(env, "aks", "show", "-g", RG, "-n", name, "--query", "identityProfile.kubeletidentity").json
    assert kubelet["resourceId"].lower().endswith(f"/resourcegroups/{node_rg(name).lower()}/providers/microsoft.managedidentity/userassignedidentities/{name.lower()}-agentpool"), kubelet
    agentpool = {i["name"]: i for i in az(env, "identity", "list", "-g", node_rg(name)).json}.get(f"{name}-agentpool")
    assert agentpool is not None, f"{name}-agentpool not in {node_rg(name)}"
    assert same_id(agentpool["id"], kubelet["resourceId"]), (agentpool, kubelet)
    assert kubelet["clientId"] == agentpool["clientId"] and kubelet["objectId"] == agentpool["principalId"], kubelet
    nodes = nodes_of(server, cid)
    assert len(nodes) == 3, nodes
    for node in nodes:
        assert node["nodeImageVersion"] == newest, node
        assert node["kubelet"]["type"] == "ManagedIdentity", node
        assert node["kubelet"]["clientId"] == kubelet["clientId"], node
        assert same_id(node["kubelet"]["resourceId"], kubelet["resourceId"]), node
    assert_reimaged_one_by_one(nodes, "node image upgrade")

    # The registry attached to the service principal: the new kubelet may not pull from it.
    health = health_of(server, cid)
    assert health["healthy"] is False and health["registryPullsDenied"] >= 1, health
    [pool] = health["pools"]
    assert pool["nodeImageVersion"] == newest == pool["latestNodeImageVersion"], pool
    assert [(k["credential"]["type"], k["credential"]["clientId"], k["nodes"]) for k in pool["kubelets"]] == [
        ("ManagedIdentity", kubelet["clientId"], 3)
    ], pool
    [registry] = health["registries"]
    assert registry["attached"] is True, registry
    [pull] = registry["pulls"]
    assert (pull["pool"], pull["credential"], pull["clientId"], pull["ok"]) == (
        "nodepool1", "ManagedIdentity", kubelet["clientId"], False), pull
    assert "Microsoft.ContainerRegistry/registries/pull/read" in pull["reason"], pull
    assert any(acr["loginServer"] in p for p in health["problems"]), health["problems"]

    # Attach again: az grants AcrPull to the kubelet identity; it takes effect after the delay.
    with frozen(server):
        az(env, "aks", "update", "-g", RG, "-n", name, "--attach-acr", acr["id"])
        health = health_of(server, cid)
        assert health["healthy"] is False and health["registryPullsDenied"] == 1, health
        [pull] = health["registries"][0]["pulls"]
        assert pull["ok"] is False and "propagating" in pull["reason"], pull
        assert any(p["kind"] == "Microsoft.Authorization/roleAssignmentPropagation" for p in health["pending"]), health["pending"]
        advance_clock(server, "3s")
        health = health_of(server, cid)
    assert health["healthy"] is True and health["problems"] == [], health
    assert health["registryPullsDenied"] == 0, health
    [pull] = health["registries"][0]["pulls"]
    assert (pull["credential"], pull["clientId"], pull["ok"]) == ("ManagedIdentity", kubelet["clientId"], True), pull
    assert pull["grantedBy"]["roleName"] == "AcrPull" and same_id(pull["grantedBy"]["scope"], acr["id"]), pull


# --------------------------------------------------------------------------------------
# 2. a new kubelet identity on update
# --------------------------------------------------------------------------------------


def test_assign_kubelet_identity_on_update_reimages_every_node(server, env):
    name = "myKubeletSwapCluster"
    control_plane = az(env, "identity", "create", "--name", "myIdentity", "-g", RG).json
    kubelet = az(env, "identity", "create", "--name", "myKubeletIdentity", "-g", RG).json
    created = az(env, "aks", "create", "-g", RG, "-n", name, "--enable-managed-identity",
                 "--assign-identity", control_plane["id"]).json
    cid = created["id"]
    assert created["identity"]["type"] == "UserAssigned", created["identity"]
    assert [same_id(k, control_plane["id"]) for k in created["identity"]["userAssignedIdentities"]] == [True], created["identity"]
    default_kubelet = created["identityProfile"]["kubeletidentity"]
    assert default_kubelet["resourceId"].lower().endswith(f"/{name.lower()}-agentpool"), default_kubelet
    booted = created["agentPoolProfiles"][0]["nodeImageVersion"]
    before = nodes_of(server, cid)
    assert len(before) == 3, before
    assert all(n["kubelet"]["clientId"] == default_kubelet["clientId"] and n["downtime"] == [] for n in before), before

    updated = az(env, "aks", "update", "-g", RG, "-n", name, "--enable-managed-identity",
                 "--assign-identity", control_plane["id"], "--assign-kubelet-identity", kubelet["id"], "--yes").json
    assert updated["provisioningState"] == "Succeeded", updated["provisioningState"]
    new = updated["identityProfile"]["kubeletidentity"]
    assert same_id(new["resourceId"], kubelet["id"]), new
    assert new["clientId"] == kubelet["clientId"] and new["objectId"] == kubelet["principalId"], new

    after = nodes_of(server, cid)
    assert sorted(n["name"] for n in after) == sorted(n["name"] for n in before), after
    for node in after:
        assert node["kubelet"]["type"] == "ManagedIdentity", node
        assert same_id(node["kubelet"]["resourceId"], kubelet["id"]), node
        assert node["kubelet"]["clientId"] == kubelet["clientId"], node
        assert node["kubelet"]["objectId"] == kubelet["principalId"], node
        assert node["nodeImageVersion"] == booted, "a kubelet identity change keeps the image"
    assert_reimaged_one_by_one(after, "kubelet identity change")
    [pool] = health_of(server, cid)["pools"]
    assert [(k["credential"]["clientId"], k["nodes"]) for k in pool["kubelets"]] == [(kubelet["clientId"], 3)], pool


# --------------------------------------------------------------------------------------
# 3. a release staged over region rings
# --------------------------------------------------------------------------------------


def test_staged_node_image_rollout_reaches_westus2_after_64_hours(server, env):
    name = "myStagedCluster"
    created = az(env, "aks", "create", "-g", RG, "-n", name, "--enable-managed-identity").json
    cid = created["id"]
    booted = created["agentPoolProfiles"][0]["nodeImageVersion"]
    assert booted == node_images(server)["latest"]["Ubuntu"], booted

    # Released now (the default --at; see the last test for --at with --rollout-hours).
    before = parse_time(clock_now(server))
    release = json.loads(armlet_cli(server, "node-images", "publish", "--rollout-hours", "96"))
    version = release["version"]
    released = parse_time(release["released"])
    assert release["rolloutHours"] == 96 and release["published"] is True, release
    assert before <= released <= parse_time(clock_now(server)), (before, release)
    assert image(version) > booted, (version, booted)

    listing = node_images(server)
    entry = release_named(listing, version)
    assert entry["available"] is False, entry
    assert parse_time(entry["availableAt"]) == released + dt.timedelta(hours=64), entry
    assert listing["latest"]["Ubuntu"] == booted, listing["latest"]
    assert release_named(node_images(server, "westcentralus"), version)["available"] is True, "ring 1 gets it at once"
    text = armlet_cli(server, "node-images", "list", "--location", LOC)
    assert re.search(rf"^\s*Ubuntu\s+{re.escape(booted)}\s*$", text, re.MULTILINE), text
    assert re.search(rf"^\s*{re.escape(version)}\s.*reaches it", text, re.MULTILINE), text

    # `az aks upgrade --node-image-only` starts each pool's upgrade without waiting for it
    # (az passes no_wait) and prints the cluster it reads right after.
    upgrade = ("aks", "upgrade", "-g", RG, "-n", name, "--node-image-only", "--yes")
    out = az(env, *upgrade).json
    [pool] = out["agentPoolProfiles"]
    assert (pool["provisioningState"], pool["nodeImageVersion"]) == ("Succeeded", booted), pool
    for node in nodes_of(server, cid):
        assert node["nodeImageVersion"] == booted and node["downtime"] == [], node

    armlet_cli(server, "clock", "advance", "65h")
    listing = node_images(server)
    assert release_named(listing, version)["available"] is True, listing
    assert listing["latest"]["Ubuntu"] == image(version), listing["latest"]

    out = az(env, *upgrade).json
    [pool] = out["agentPoolProfiles"]
    assert pool["provisioningState"] == "UpgradingNodeImageVersion", pool
    advance_clock(server, "5s")  # 3 batches of one simulated second each
    nodes = nodes_of(server, cid)
    assert len(nodes) == 3, nodes
    assert all(n["nodeImageVersion"] == image(version) for n in nodes), nodes
    assert_reimaged_one_by_one(nodes, "node image upgrade")
    shown = az(env, "aks", "nodepool", "show", "-g", RG, "--cluster-name", name, "-n", "nodepool1").json
    assert shown["nodeImageVersion"] == image(version), shown["nodeImageVersion"]


# --------------------------------------------------------------------------------------
# 4. the guide's custom VNet
# --------------------------------------------------------------------------------------


def test_custom_vnet_create_and_missing_subnet_grant(server, env):
    vnet = az(env, "network", "vnet", "create", "-g", RG, "-n", "myVnet", "--address-prefixes", "192.168.0.0/16",
              "--subnet-name", "mySubnet", "--subnet-prefix", "192.168.1.0/24").json["newVNet"]
    assert vnet["addressSpace"]["addressPrefixes"] == ["192.168.0.0/16"], vnet
    [subnet] = vnet["subnets"]
    assert subnet["name"] == "mySubnet" and subnet["addressPrefix"] == "192.168.1.0/24", subnet
    assert same_id(subnet["id"], f"{vnet['id']}/subnets/mySubnet"), subnet
    other = az(env, "network", "vnet", "subnet", "create", "-g", RG, "--vnet-name", "myVnet", "-n", "noGrantSubnet",
               "--address-prefixes", "192.168.2.0/24").json
    assert same_id(other["id"], f"{vnet['id']}/subnets/noGrantSubnet"), other

    network = ("--network-plugin", "azure", "--dns-service-ip", "10.2.0.10", "--service-cidr", "10.2.0.0/24")
    identity = az(env, "identity", "create", "--name", "myVnetIdentity", "-g", RG).json
    created = az(env, "aks", "create", "-g", RG, "-n", "myVnetCluster", *network, "--vnet-subnet-id", subnet["id"],
                 "--enable-managed-identity", "--assign-identity", identity["id"]).json
    assert created["provisioningState"] == "Succeeded", created["provisioningState"]
    net = created["networkProfile"]
    assert (net["networkPlugin"], net["serviceCidr"], net["dnsServiceIp"]) == ("azure", "10.2.0.0/24", "10.2.0.10"), net
    assert net.get("networkPluginMode") is None and net.get("podCidr") is None, "no overlay"
    assert same_id(created["agentPoolProfiles"][0]["vnetSubnetId"], subnet["id"]), created["agentPoolProfiles"][0]
    health = health_of(server, created["id"])
    assert health["healthy"] is True, health
    [pool] = health["pools"]
    join = pool["subnet"]
    assert join["ok"] is True and join["action"] == "Microsoft.Network/virtualNetworks/subnets/join/action", join
    assert join["grantedBy"]["roleName"] == "Network Contributor" and same_id(join["grantedBy"]["scope"], subnet["id"]), join
    assert health["controlPlane"]["principalId"] == identity["principalId"], health["controlPlane"]
    assert pool["nodes"] == 3 and len(nodes_of(server, created["id"])) == 3, pool

    # No grant on the subnet: armlet holds the create 30 simulated seconds, then fails it.
    lonely = az(env, "identity", "create", "--name", "myUngrantedIdentity", "-g", RG).json
    name = "myBrokenVnetCluster"
    cid = f"/subscriptions/{env['ARMLET_SUBSCRIPTION_ID']}/resourceGroups/{RG}/providers/Microsoft.ContainerService/managedClusters/{name}"
    with frozen(server):
        advance_clock(server, "10s")  # the identity is known everywhere (replication lag)
        bg = Background(env, "aks", "create", "-g", RG, "-n", name, *network, "--vnet-subnet-id", other["id"],
                        "--enable-managed-identity", "--assign-identity", lonely["id"], "--skip-subnet-role-assignment")
        wait_for_pending_write(server, cid, bg)
        advance_clock(server, "20s")
        assert any(same_id(e["subject"], cid) for e in control_get(server, "/_armlet/events")["pending"]), \
            "20 s < 30 s: armlet still waits for a grant"
        advance_clock(server, "11s")
        res = bg.join()
    assert res.returncode != 0, f"the create succeeded without a subnet grant:\n{res.stdout}"
    assert "LinkedAuthorizationFailed" in res.stderr, res.stderr
    assert "Microsoft.Network/virtualNetworks/subnets/join/action" in res.stderr, res.stderr
    assert other["id"].lower() in res.stderr.lower() and lonely["principalId"] in res.stderr, res.stderr
    assert az(env, "aks", "show", "-g", RG, "-n", name, "--query", "provisioningState").json == "Failed"
    assert nodes_of(server, cid) == []
    problems = health_of(server, cid)["problems"]
    assert any("subnets/join/action" in p and "noGrantSubnet" in p for p in problems), problems


# --------------------------------------------------------------------------------------
# 5. the README's staged publish: --at together with --rollout-hours (last: it publishes)
# --------------------------------------------------------------------------------------


def test_publish_at_a_time_with_rollout_hours(server):
    """`armlet node-images publish --at T --rollout-hours 96`, as the README shows it."""
    now = clock_now(server)
    release = json.loads(armlet_cli(server, "node-images", "publish", "--at", now, "--rollout-hours", "96"))
    assert release["rolloutHours"] == 96 and release["published"] is True, release
    assert parse_time(release["released"]) == parse_time(now), (release, now)
    entry = release_named(node_images(server), release["version"])
    assert entry["available"] is False, entry
    assert parse_time(entry["availableAt"]) == parse_time(now) + dt.timedelta(hours=64), entry
