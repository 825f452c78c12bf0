"""The AKS guide "Use managed identities in Azure Kubernetes Service", every `az` command of
it in the order it prints them, with the real az 2.91.0, against one fresh armlet.

Changes to the guide's commands are only those today's az requires, each marked `# change:`
where it happens:

* `--yes` where az 2.91 prompts (it reads no answer from a non-terminal and crashes);
* `--docker-bridge-address` dropped from the custom-VNet creates (az 2.91 removed it);
* placeholders (`<RGName>`, `<AKSName>`, `<identity-id>`, `<subnet-id>`, ...) filled with
  the real ids of earlier steps;
* what the guide takes for granted is created first, marked `# setup:` (a service principal
  cluster with an attached ACR for the migration, a VNet and subnet for the custom-VNet
  creates);
* `az upgrade` is skipped: it would upgrade the pinned CLI.

The guide creates `myManagedCluster` three times. The first (system-assigned) one is
deleted before the custom control plane section creates it again, so both keep the guide's
name; the kubelet-identity section's create is `myManagedCluster2`, so that the guide's last
step, "update kubelet identity on an existing cluster" (`--name myManagedCluster`), updates
a cluster whose kubelet identity really changes.

Every output the guide shows is checked. The steps share one server and run in order;
each test is one section of the guide, so a failure names the section, and a section whose
predecessor failed is skipped. Run with `-s` to see the commands as they run.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import shutil
import subprocess
import urllib.error
import urllib.request
from typing import Any, Dict, Optional

import pytest

import conftest
from conftest import Armlet, advance_clock, az, az_login, clean_environ, control, env_for, running_armlet

RG = "myResourceGroup"
LOC = "westus2"
CLUSTER = "myManagedCluster"
SP_CLUSTER = "myAKSCluster"  # fills the migration's <AKSName>
KUBELET_CLUSTER = "myManagedCluster2"  # the guide's third `--name myManagedCluster`
TENANT = "a1e70000-0000-4000-8000-000000000001"
SUBSCRIPTION = "a1e70000-0000-4000-8000-000000000002"
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MANAGED_IDENTITY_OPERATOR = "f1a07417-d97a-45cb-824c-7a7467783830"


def identity_id(name: str) -> str:
    """A user-assigned identity's id exactly as the guide prints it (`resourcegroups`)."""
    return f"/subscriptions/{SUBSCRIPTION}/resourcegroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"


def same_id(a: Optional[str], b: Optional[str]) -> bool:
    return a is not None and b is not None and a.lower() == b.lower()


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def run(env: Dict[str, str], *args: str, expect_ok: Optional[bool] = True) -> conftest.AzResult:
    """`az ARGS`, echoed so that `pytest -s` prints the walkthrough as it runs."""
    print(f"\n$ az {shlex.join(args)}")
    return az(env, *args, expect_ok=expect_ok)


def control_get(server: Armlet, path: str) -> Any:
    req = urllib.request.Request(f"{server.http_url}{path}", headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise AssertionError(f"GET {path} -> {e.code}: {e.read().decode(errors='replace')}") from None


def nodes_of(server: Armlet, cluster_id: str) -> list:
    return control_get(server, f"/_armlet/clusters{cluster_id}/nodes")["value"]


def health_of(server: Armlet, cluster_id: str) -> dict:
    return control_get(server, f"/_armlet/clusters{cluster_id}/health")


def armlet_cli(server: Armlet, *args: str) -> str:
    cmd = [str(server.bin), *args, "--url", server.http_url]
    print(f"\n$ armlet {shlex.join(args)}")
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=clean_environ(), timeout=60)
    assert res.returncode == 0, f"`{shlex.join(cmd)}` exited {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    return res.stdout


def parse_time(text: str) -> dt.datetime:
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    assert m, f"not an RFC 3339 time: {text!r}"
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return dt.datetime.fromisoformat(f"{m.group(1)}.{frac}{zone}")


def assert_only_nulls_besides(out: dict, shown: dict, what: str) -> None:
    """`out` has every key the guide shows with the value given (placeholders excepted by the
    caller), and anything az 2.91 prints beyond them is null (its models print every field)."""
    extra = {k: v for k, v in out.items() if k not in shown and v is not None}
    assert not extra, f"{what}: az printed more than the guide shows: {extra}"


def table_rows(text: str) -> list:
    """Parses az's `-o table` output into (header, rows of cells)."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) >= 2, f"not a table:\n{text}"
    header, rule, *rows = lines
    assert re.fullmatch(r"-+(\s+-+)*", rule.strip()), f"no rule under the header:\n{text}"
    return header.split(), [row.split() for row in rows]


def check_identity_list_table(env: Dict[str, str], *names: str) -> None:
    """The guide's `az identity list --query ... -o table`: a Name/Id/Location header and
    one row per identity of the subscription."""
    query = "[].{Name:name, Id:id, Location:location}"
    table = run(env, "identity", "list", "--query", query, "-o", "table").stdout
    print(table)
    header, rows = table_rows(table)
    assert header == ["Name", "Id", "Location"], table
    expected = [[i["Name"], i["Id"], i["Location"]] for i in az(env, "identity", "list", "--query", query).json]
    assert sorted(rows) == sorted(expected), f"{table}\nexpected rows: {expected}"
    for name in names:
        assert [name, identity_id(name), LOC] in rows, table


def check_identity_create_output(env: Dict[str, str], out: dict, name: str) -> None:
    """The guide's `az identity create` result block, field by field."""
    assert out["id"] == identity_id(name), out["id"]
    assert out["name"] == name and out["location"] == LOC and out["resourceGroup"] == RG, out
    assert out["tags"] == {} and out["tenantId"] == TENANT, out
    assert out["type"] == "Microsoft.ManagedIdentity/userAssignedIdentities", out
    assert GUID.match(out["clientId"]) and GUID.match(out["principalId"]), out
    # The guide also shows clientSecretUrl. az 2.91 no longer prints it: its aaz output
    # schema (api-version 2025-05-31-preview) has no such field. That this is only az's
    # doing shows in the REST answer to the same api-version, which carries it.
    assert "clientSecretUrl" not in out, out
    raw = az(env, "rest", "--method", "get", "--url", f"{out['id']}?api-version=2025-05-31-preview").json
    url = raw["properties"]["clientSecretUrl"]
    assert url.startswith(f"{env['ARMLET_HTTPS_URL']}/msi/credentials?"), url
    assert f"oid={out['principalId']}" in url and f"aid={out['clientId']}" in url, url


def check_user_assigned_identity_block(identity: dict, control_plane: dict) -> None:
    """The guide's `"identity": {"principalId": null, ..., "type": "UserAssigned", ...}`."""
    assert identity["principalId"] is None and identity["tenantId"] is None, identity
    assert identity["type"] == "UserAssigned", identity
    assert identity["userAssignedIdentities"] == {
        identity_id("myIdentity"): {"clientId": control_plane["clientId"], "principalId": control_plane["principalId"]}
    }, identity
    assert_only_nulls_besides(identity, {"principalId", "tenantId", "type", "userAssignedIdentities"}, "identity")


def check_kubelet_identity_block(profile: dict, kubelet: dict) -> None:
    """The guide's `"identityProfile": {"kubeletidentity": {clientId, objectId, resourceId}}`.
    (The guide's resourceId reads `.../resourcegroups/resourcegroups/...`, a typo for the
    resource group's name.)"""
    assert set(profile) == {"kubeletidentity"}, profile
    assert profile["kubeletidentity"] == {
        "clientId": kubelet["clientId"],
        "objectId": kubelet["principalId"],
        "resourceId": identity_id("myKubeletIdentity"),
    }, profile


# --------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server():
    # A 2 s propagation delay (instead of 10 s): the kubelet-identity create waits for the
    # Managed Identity Operator grant az makes just before it to take effect, and the
    # custom-VNet creates for the subnet grant, so each would otherwise hold for 10 s.
    with running_armlet("--propagation-delay", "2s") as s:
        previous = conftest._CURRENT_ARMLET
        conftest._CURRENT_ARMLET = s  # failing steps show this server's log
        try:
            # Node images release on the clock every 14 days. Move just past the next
            # scheduled release's arrival in westus2, so that none lands mid-walkthrough
            # and the guide's "no newer VHD: the upgrade does nothing" holds.
            upcoming = [parse_time(r["availableAt"]) for r in control_get(s, f"/_armlet/node-images?location={LOC}")["releases"] if not r["available"]]
            if upcoming:
                control(s, "/_armlet/clock/advance", {"to": (max(upcoming) + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")})
            yield s
        finally:
            conftest._CURRENT_ARMLET = previous


@pytest.fixture(scope="module")
def env(server, tmp_path_factory):
    base = tmp_path_factory.mktemp("walkthrough")
    e = env_for(server, base / "az")
    home = base / "home"
    home.mkdir()
    e["HOME"] = str(home)  # no ~/.ssh/id_rsa.pub: az sends no linuxProfile
    e["KUBECONFIG"] = str(base / "kubeconfig")  # get-credentials merges here, not into ~/.kube
    az_login(e)
    assert e["ARMLET_TENANT_ID"] == TENANT and e["ARMLET_SUBSCRIPTION_ID"] == SUBSCRIPTION, e
    return e


@pytest.fixture(scope="module")
def state() -> Dict[str, Any]:
    """What earlier sections made (ids, outputs), for the later ones."""
    return {}


def needs(state: Dict[str, Any], *keys: str) -> None:
    missing = [k for k in keys if k not in state]
    if missing:
        pytest.skip(f"an earlier section failed (it did not produce {missing})")


# --------------------------------------------------------------------------------------
# Create an AKS cluster using a managed identity
# --------------------------------------------------------------------------------------


def test_01_create_cluster_with_managed_identity(env, state):
    # Create an Azure resource group
    group = run(env, "group", "create", "--name", "myResourceGroup", "--location", "westus2").json
    assert group["name"] == RG and group["location"] == LOC, group
    assert group["properties"]["provisioningState"] == "Succeeded", group

    mc = run(env, "aks", "create", "-g", "myResourceGroup", "-n", "myManagedCluster", "--enable-managed-identity").json
    assert mc["provisioningState"] == "Succeeded", mc["provisioningState"]
    assert mc["identity"]["type"] == "SystemAssigned", mc["identity"]
    assert mc["servicePrincipalProfile"]["clientId"] == "msi", mc["servicePrincipalProfile"]
    # "AKS will create a kubelet MI in the Node resource group if you do not bring your own."
    kubelet = mc["identityProfile"]["kubeletidentity"]
    assert kubelet["resourceId"].lower().endswith(
        f"/resourcegroups/mc_{RG}_{CLUSTER}_{LOC}/providers/microsoft.managedidentity/userassignedidentities/{CLUSTER}-agentpool".lower()
    ), kubelet
    state["first_cluster"] = mc


def test_02_get_credentials(env, state):
    needs(state, "first_cluster")
    run(env, "aks", "get-credentials", "--resource-group", "myResourceGroup", "--name", "myManagedCluster")
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is not on PATH"
    res = subprocess.run([kubectl, "config", "view", "-o", "json"], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    cfg = json.loads(res.stdout)
    assert cfg["current-context"] == CLUSTER, cfg
    [context] = [c["context"] for c in cfg["contexts"] if c["name"] == CLUSTER]
    [cluster] = [c["cluster"] for c in cfg["clusters"] if c["name"] == context["cluster"]]
    assert cluster["server"] == f"https://{state['first_cluster']['fqdn']}:443", cluster
    assert context["user"] == f"clusterUser_{RG}_{CLUSTER}", context


# --------------------------------------------------------------------------------------
# Update an AKS cluster to managed identities
# --------------------------------------------------------------------------------------


def test_03_update_service_principal_cluster_to_managed_identity(server, env, state):
    # setup: `--enable-managed-identity` on update is only meaningful for a cluster that
    # uses a service principal, which the guide assumes exists. Make one, with a registry
    # attached (the guide's ACR note below), as its readers would have.
    sp = run(env, "ad", "sp", "create-for-rbac", "--name", "myAKSClusterServicePrincipal").json
    acr = run(env, "acr", "create", "-n", "myacrwalkthrough", "-g", RG, "--sku", "Basic").json
    mc = run(env, "aks", "create", "-g", RG, "-n", SP_CLUSTER, "--service-principal", sp["appId"],
             "--client-secret", sp["password"], "--attach-acr", acr["id"]).json
    assert mc["servicePrincipalProfile"]["clientId"] == sp["appId"], mc["servicePrincipalProfile"]
    assert mc.get("identity") is None, mc["identity"]
    state.update(sp=sp, acr=acr, sp_cluster=mc)

    # change: <RGName>/<AKSName> filled; --yes, because az 2.91 asks "Your cluster is using
    # service principal, and you are going to update the cluster to use systemassigned
    # managed identity. ... Are you sure you want to perform this operation? (y/N)".
    updated = run(env, "aks", "update", "-g", RG, "-n", SP_CLUSTER, "--enable-managed-identity", "--yes").json
    assert updated["provisioningState"] == "Succeeded", updated["provisioningState"]
    assert updated["identity"]["type"] == "SystemAssigned", updated["identity"]
    assert updated.get("identityProfile") is None, "no kubelet identity before the node pool is upgraded"

    # "kubelet will KEEP USING SERVICE PRINCIPAL until you upgrade your agentpool"
    nodes = nodes_of(server, mc["id"])
    assert len(nodes) == 3, nodes
    for node in nodes:
        assert node["kubelet"] == {"type": "ServicePrincipal", "clientId": sp["appId"]}, node
    state["migrated"] = updated


def test_04_node_image_upgrade_and_attach_acr_again(server, env, state):
    needs(state, "migrated")
    cid = state["sp_cluster"]["id"]
    booted = state["sp_cluster"]["agentPoolProfiles"][0]["nodeImageVersion"]

    # change: the guide names `az aks nodepool upgrade --node-image-only` in prose; the
    # resource group, cluster and pool it needs are filled in.
    upgrade = ("aks", "nodepool", "upgrade", "-g", RG, "--cluster-name", SP_CLUSTER, "-n", "nodepool1", "--node-image-only")
    # "An update will only work if there is an actual VHD update to consume": there is none.
    assert run(env, *upgrade).json is None
    for node in nodes_of(server, cid):
        assert node["nodeImageVersion"] == booted and node["downtime"] == [], node
        assert node["kubelet"]["type"] == "ServicePrincipal", node

    # setup: "you will need to wait till the next VHD is available": armlet publishes one now.
    release = json.loads(armlet_cli(server, "node-images", "publish"))
    assert release["published"] is True, release
    run(env, *upgrade)
    kubelet = run(env, "aks", "show", "-g", RG, "-n", SP_CLUSTER, "--query", "identityProfile.kubeletidentity").json
    assert kubelet["resourceId"].lower().endswith(f"/userassignedidentities/{SP_CLUSTER.lower()}-agentpool"), kubelet
    nodes = nodes_of(server, cid)
    assert len(nodes) == 3, nodes
    for node in nodes:
        assert node["nodeImageVersion"].endswith(release["version"]), node
        assert node["kubelet"]["type"] == "ManagedIdentity" and node["kubelet"]["clientId"] == kubelet["clientId"], node
        assert len(node["downtime"]) == 1, "cordoned, drained and reimaged once"

    # "Otherwise you will not be able to pull from ACR after the upgrade."
    health = health_of(server, cid)
    assert health["healthy"] is False, health
    [pull] = health["registries"][0]["pulls"]
    assert (pull["credential"], pull["clientId"], pull["ok"]) == ("ManagedIdentity", kubelet["clientId"], False), pull

    # change: `az aks update --attach-acr <ACR Resource ID>` with the cluster named.
    run(env, "aks", "update", "-g", RG, "-n", SP_CLUSTER, "--attach-acr", state["acr"]["id"])
    advance_clock(server, "3s")  # past the 2 s propagation delay of az's AcrPull grant
    health = health_of(server, cid)
    assert health["healthy"] is True and health["problems"] == [], health
    [pull] = health["registries"][0]["pulls"]
    assert (pull["credential"], pull["ok"]) == ("ManagedIdentity", True), pull
    state["upgraded"] = True


def test_05_confirm_the_cluster_uses_managed_identity(env, state):
    needs(state, "upgraded")
    # change: <RGName>/<ClusterName> filled with the migrated cluster.
    sp_profile = run(env, "aks", "show", "-g", RG, "-n", SP_CLUSTER, "--query", "servicePrincipalProfile").json
    # The guide shows {"clientId": "msi"}; az 2.91's model also prints the write-only secret, as null.
    assert sp_profile == {"clientId": "msi", "secret": None}, sp_profile

    identity = run(env, "aks", "show", "-g", RG, "-n", SP_CLUSTER, "--query", "identity").json
    assert GUID.match(identity["principalId"]), identity
    assert identity["tenantId"] == TENANT, identity
    assert identity["type"] == "SystemAssigned", identity
    assert identity["userAssignedIdentities"] is None, identity
    assert_only_nulls_besides(identity, {"principalId", "tenantId", "type", "userAssignedIdentities"}, "identity")
    assert identity["principalId"] == state["migrated"]["identity"]["principalId"]


# --------------------------------------------------------------------------------------
# Bring your own control plane managed identity
# --------------------------------------------------------------------------------------


def test_06_custom_control_plane_identity(server, env, state):
    needs(state, "first_cluster")
    my_identity = run(env, "identity", "create", "--name", "myIdentity", "--resource-group", "myResourceGroup").json
    assert my_identity["id"] == identity_id("myIdentity"), my_identity
    state["myIdentity"] = my_identity

    # change: <control-plane-identity-object-id> is myIdentity's principalId. The guide's
    # <kubelet-identity-resource-id>: its own kubelet identity (myKubeletIdentity) comes
    # only in the next section, so the one kubelet identity there is now, the first
    # cluster's myManagedCluster-agentpool, is the scope.
    kubelet_scope = state["first_cluster"]["identityProfile"]["kubeletidentity"]["resourceId"]
    grant = run(env, "role", "assignment", "create", "--assignee", my_identity["principalId"],
                "--role", "Managed Identity Operator", "--scope", kubelet_scope).json
    assert grant["principalId"] == my_identity["principalId"], grant
    assert grant["roleDefinitionId"].endswith(MANAGED_IDENTITY_OPERATOR), grant
    assert same_id(grant["scope"], kubelet_scope) and grant["principalType"] == "ServicePrincipal", grant

    check_identity_list_table(env, "myIdentity")

    # setup: the guide's <subnet-id> needs a VNet and subnet (armlet emulates Microsoft.Network).
    vnet = run(env, "network", "vnet", "create", "-g", RG, "-n", "myVnet", "--address-prefixes", "192.168.0.0/16",
               "--subnet-name", "mySubnet", "--subnet-prefix", "192.168.1.0/24").json["newVNet"]
    [subnet] = vnet["subnets"]
    state["subnet"] = subnet

    # setup: the guide creates myManagedCluster again; the first one goes first.
    run(env, "aks", "delete", "-g", RG, "-n", CLUSTER, "--yes")

    # change: --docker-bridge-address 172.17.0.1/16 dropped (az 2.91 has no such option);
    # <subnet-id> and <identity-id> filled.
    mc = run(env, "aks", "create",
             "--resource-group", "myResourceGroup",
             "--name", "myManagedCluster",
             "--network-plugin", "azure",
             "--vnet-subnet-id", subnet["id"],
             "--dns-service-ip", "10.2.0.10",
             "--service-cidr", "10.2.0.0/24",
             "--enable-managed-identity",
             "--assign-identity", my_identity["id"]).json
    assert mc["provisioningState"] == "Succeeded", mc["provisioningState"]
    check_user_assigned_identity_block(mc["identity"], my_identity)
    net = mc["networkProfile"]
    assert (net["networkPlugin"], net["dnsServiceIp"], net["serviceCidr"]) == ("azure", "10.2.0.10", "10.2.0.0/24"), net
    assert same_id(mc["agentPoolProfiles"][0]["vnetSubnetId"], subnet["id"]), mc["agentPoolProfiles"][0]
    # "CLI will add the role assignment automatically": the subnet join is granted and works.
    [pool] = health_of(server, mc["id"])["pools"]
    assert pool["subnet"]["ok"] is True, pool["subnet"]
    state["custom_cluster"] = mc


# --------------------------------------------------------------------------------------
# Use a pre-created kubelet managed identity
# --------------------------------------------------------------------------------------


def test_07_custom_kubelet_identity(server, env, state):
    needs(state, "custom_cluster")
    again = run(env, "identity", "create", "--name", "myIdentity", "--resource-group", "myResourceGroup").json
    check_identity_create_output(env, again, "myIdentity")
    # The same identity a second time: an update, same ids.
    for key in ("clientId", "principalId", "id"):
        assert again[key] == state["myIdentity"][key], (key, again, state["myIdentity"])

    kubelet = run(env, "identity", "create", "--name", "myKubeletIdentity", "--resource-group", "myResourceGroup").json
    check_identity_create_output(env, kubelet, "myKubeletIdentity")
    state["myKubeletIdentity"] = kubelet

    check_identity_list_table(env, "myIdentity", "myKubeletIdentity")

    # change: --docker-bridge-address dropped; placeholders filled; the name is
    # myManagedCluster2, because myManagedCluster (above) is the "existing cluster" whose
    # kubelet identity the last section updates.
    mc = run(env, "aks", "create",
             "--resource-group", "myResourceGroup",
             "--name", KUBELET_CLUSTER,
             "--network-plugin", "azure",
             "--vnet-subnet-id", state["subnet"]["id"],
             "--dns-service-ip", "10.2.0.10",
             "--service-cidr", "10.2.0.0/24",
             "--enable-managed-identity",
             "--assign-identity", again["id"],
             "--assign-kubelet-identity", kubelet["id"]).json
    assert mc["provisioningState"] == "Succeeded", mc["provisioningState"]
    check_user_assigned_identity_block(mc["identity"], again)
    check_kubelet_identity_block(mc["identityProfile"], kubelet)
    for node in nodes_of(server, mc["id"]):
        assert node["kubelet"]["type"] == "ManagedIdentity" and node["kubelet"]["clientId"] == kubelet["clientId"], node


# --------------------------------------------------------------------------------------
# Update kubelet identity on an existing cluster
# --------------------------------------------------------------------------------------


def test_08_update_kubelet_identity_on_existing_cluster(server, env, state):
    needs(state, "custom_cluster", "myKubeletIdentity")
    # Check the version of Azure CLI modules
    version = run(env, "version").json
    assert version["azure-cli"] == "2.91.0", version
    # Upgrade the version to make sure it is 2.37.0 or later
    # change: `az upgrade` skipped: it would upgrade the pinned CLI (2.91.0 is later anyway).

    cid = state["custom_cluster"]["id"]
    before = nodes_of(server, cid)
    assert before and all(n["kubelet"]["resourceId"].lower().endswith(f"/{CLUSTER.lower()}-agentpool") for n in before), before

    # change: placeholders filled; --yes, because az 2.91 asks whether to go ahead both with
    # the (same) control plane identity and with the kubelet identity change, which
    # "will upgrade every node pool in the cluster".
    mc = run(env, "aks", "update",
             "--resource-group", "myResourceGroup",
             "--name", "myManagedCluster",
             "--enable-managed-identity",
             "--assign-identity", state["myIdentity"]["id"],
             "--assign-kubelet-identity", state["myKubeletIdentity"]["id"],
             "--yes").json
    assert mc["provisioningState"] == "Succeeded", mc["provisioningState"]
    check_user_assigned_identity_block(mc["identity"], state["myIdentity"])
    check_kubelet_identity_block(mc["identityProfile"], state["myKubeletIdentity"])

    # "Updating kubelet MI will upgrade Nodepool": every node reimaged onto the new identity.
    after = nodes_of(server, cid)
    assert sorted(n["name"] for n in after) == sorted(n["name"] for n in before), after
    for node in after:
        assert node["kubelet"]["clientId"] == state["myKubeletIdentity"]["clientId"], node
        assert [d["reason"] for d in node["downtime"]] == ["kubelet identity change"], node
