"""AKS (Microsoft.ContainerService managedClusters / agentPools) through the real `az aks`
commands (api-version 2026-06-01), plus the REST rules az cannot reach.

The module runs its own armlet with a 2 s propagation delay, so the fixed names of the docs
(myResourceGroup, myManagedCluster, MC_myResourceGroup_myManagedCluster_westus2) are safe and
the custom-kubelet-identity create does not wait the default 10 s. One cluster is created once
(module fixture) and most tests read it; tests that change it run in file order (node pools,
stop/start, then delete last). `az` runs with HOME in a temp dir (no ~/.ssh key, so az sends
no linuxProfile) and KUBECONFIG in a temp file.

REST checks go straight to armlet's HTTPS endpoint with a client-credentials token (faster
than `az rest`, and they can see status codes and LRO headers).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import re
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Optional

import pytest
import yaml

import conftest
from conftest import Armlet, advance_clock, az, az_login, env_for, freeze_clock, running_armlet

API = "2026-06-01"
LOC = "westus2"
RG = "myResourceGroup"
CLUSTER = "myManagedCluster"
MC_RG = f"MC_{RG}_{CLUSTER}_{LOC}"
TENANT = "a1e70000-0000-4000-8000-000000000001"
SUBSCRIPTION = "a1e70000-0000-4000-8000-000000000002"

MANAGED_IDENTITY_OPERATOR = "f1a07417-d97a-45cb-824c-7a7467783830"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
CLUSTER_TYPE = "Microsoft.ContainerService/ManagedClusters"  # as AKS (and az aks show) spells it
POOL_TYPE = "Microsoft.ContainerService/managedClusters/agentPools"
MACHINE_TYPE = "Microsoft.ContainerService/managedClusters/agentPools/machines"


def same_id(a: Optional[str], b: Optional[str]) -> bool:
    return a is not None and b is not None and a.lower() == b.lower()


def node_name_re(pool: str) -> re.Pattern:
    return re.compile(rf"^aks-{pool}-\d{{8}}-vmss[0-9a-z]{{6}}$")


# --------------------------------------------------------------------------------------
# direct REST access (ARM over HTTPS with a bearer token) and the control API
# --------------------------------------------------------------------------------------


@dataclass
class Resp:
    status: int
    headers: Any
    body: Any

    @property
    def code(self) -> Optional[str]:
        return ((self.body or {}).get("error") or {}).get("code") if isinstance(self.body, dict) else None

    @property
    def message(self) -> str:
        return ((self.body or {}).get("error") or {}).get("message") or "" if isinstance(self.body, dict) else ""

    def __str__(self) -> str:
        return f"HTTP {self.status}: {json.dumps(self.body)[:3000]}"


class Arm:
    """ARM requests with the default service principal's token (client credentials)."""

    def __init__(self, server: Armlet, env: Dict[str, str]):
        self.base = server.https_url
        self.sub = env["ARMLET_SUBSCRIPTION_ID"]
        self.ctx = ssl.create_default_context(cafile=env["REQUESTS_CA_BUNDLE"])
        form = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": env["ARMLET_CLIENT_ID"],
                "client_secret": env["ARMLET_CLIENT_SECRET"],
                "scope": f"{self.base}/.default",
            }
        ).encode()
        req = urllib.request.Request(f"{self.base}/{env['ARMLET_TENANT_ID']}/oauth2/v2.0/token", data=form, method="POST")
        with urllib.request.urlopen(req, context=self.ctx, timeout=30) as r:
            self.token = json.loads(r.read())["access_token"]

    def call(self, method: str, path: str, body: Any = None, api_version: Optional[str] = API) -> Resp:
        url = path if path.startswith("https://") else self.base + path
        if api_version and "api-version=" not in url:
            url += ("&" if "?" in url else "?") + f"api-version={api_version}"
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=60) as r:
                status, hdrs, raw = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, hdrs, raw = e.code, e.headers, e.read()
        try:
            parsed = json.loads(raw) if raw.strip() else None
        except json.JSONDecodeError:
            parsed = raw.decode(errors="replace")
        return Resp(status, hdrs, parsed)

    def get(self, path: str, **kw) -> Resp:
        return self.call("GET", path, **kw)

    def put(self, path: str, body: Any, **kw) -> Resp:
        return self.call("PUT", path, body, **kw)

    def op_status_response(self, resp: Resp) -> Resp:
        url = resp.headers.get("Azure-AsyncOperation")
        assert url, f"no Azure-AsyncOperation header on {resp}"
        got = self.get(url, api_version=None)
        assert got.status == 200, f"operation status: {got}"
        return got

    def op_status(self, resp: Resp) -> dict:
        return self.op_status_response(resp).body

    def wait(self, resp: Resp, timeout: float = 120.0) -> dict:
        """Polls the Azure-AsyncOperation resource until it is no longer InProgress."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.op_status(resp)
            if status.get("status") != "InProgress":
                return status
            assert time.monotonic() < deadline, f"operation still InProgress after {timeout:.0f}s: {status}"
            time.sleep(0.5)

    def role_assignments_of(self, principal_id: str) -> list:
        flt = urllib.parse.quote(f"principalId eq '{principal_id}'")
        got = self.get(
            f"/subscriptions/{self.sub}/providers/Microsoft.Authorization/roleAssignments?$filter={flt}",
            api_version="2022-04-01",
        )
        assert got.status == 200, got
        return got.body["value"]

    def ensure_grant(self, principal_id: str, role: str, scope: str) -> None:
        for a in self.role_assignments_of(principal_id):
            if a["properties"]["roleDefinitionId"].lower().endswith(role) and same_id(a["properties"]["scope"], scope):
                return
        body = {
            "properties": {
                "roleDefinitionId": f"/subscriptions/{self.sub}/providers/Microsoft.Authorization/roleDefinitions/{role}",
                "principalId": principal_id,
                "principalType": "ServicePrincipal",
            }
        }
        got = self.put(f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}", body, api_version="2022-04-01")
        assert got.status in (200, 201), got


def control_get(server: Armlet, path: str) -> dict:
    """GET on armlet's control API (conftest's `control` only POSTs)."""
    req = urllib.request.Request(f"{server.http_url}{path}", headers={"Accept": "application/json"}, method="GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise AssertionError(f"GET {path} -> {e.code}: {e.read().decode(errors='replace')}") from None


def nodes_of(server: Armlet, cluster_id: str) -> list:
    return control_get(server, f"/_armlet/clusters{cluster_id}/nodes")["value"]


def cluster_path(name: str, rg: str = RG) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}"


def cluster_body(name: str, location: str = LOC, identity: Optional[dict] = None, **props) -> dict:
    body = {
        "location": location,
        "identity": identity if identity is not None else {"type": "SystemAssigned"},
        "properties": {
            "dnsPrefix": name.lower()[:20],
            "agentPoolProfiles": [
                {"name": "nodepool1", "count": 1, "vmSize": "Standard_DS2_v2", "mode": "System", "osType": "Linux"}
            ],
        },
    }
    body["properties"].update(props)
    return body


def user_assigned(*identity_ids: str) -> dict:
    return {"type": "UserAssigned", "userAssignedIdentities": {i: {} for i in identity_ids}}


def kubelet_profile(identity: dict) -> dict:
    return {"kubeletidentity": {"resourceId": identity["id"], "clientId": identity["clientId"], "objectId": identity["principalId"]}}


# --------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def failing_tests_show_log_of(server: Armlet) -> Iterator[None]:
    """conftest attaches the session armlet's output to failing tests; point it at ours."""
    previous = getattr(conftest, "_CURRENT_ARMLET", None)
    conftest._CURRENT_ARMLET = server
    try:
        yield
    finally:
        conftest._CURRENT_ARMLET = previous


@pytest.fixture(scope="module")
def server():
    with running_armlet("--propagation-delay", "2s") as s:
        with failing_tests_show_log_of(s):
            yield s


@pytest.fixture(scope="module")
def env(server, tmp_path_factory):
    base = tmp_path_factory.mktemp("aks")
    e = env_for(server, base / "az")
    home = base / "home"
    home.mkdir()
    e["HOME"] = str(home)  # no ~/.ssh/id_rsa.pub: az sends no linuxProfile
    e["KUBECONFIG"] = str(base / "kubeconfig")
    az_login(e)
    assert e["ARMLET_TENANT_ID"] == TENANT and e["ARMLET_SUBSCRIPTION_ID"] == SUBSCRIPTION, e
    az(e, "group", "create", "--name", RG, "--location", LOC)
    return e


@pytest.fixture(scope="module")
def arm(server, env) -> Arm:
    return Arm(server, env)


@pytest.fixture(scope="module")
def default_version(env) -> str:
    versions = az(env, "aks", "get-versions", "-l", LOC).json
    defaults = [v for v in versions["values"] if v.get("isDefault")]
    assert len(defaults) == 1, versions
    return defaults[0]["version"]


@pytest.fixture(scope="module")
def created(env) -> dict:
    started = time.monotonic()
    out = az(env, "aks", "create", "-g", RG, "-n", CLUSTER, "--enable-managed-identity").json
    print(f"\n`az aks create -g {RG} -n {CLUSTER} --enable-managed-identity` took {time.monotonic() - started:.1f}s")
    return out


@pytest.fixture(scope="module")
def shown(env, created) -> dict:
    return az(env, "aks", "show", "-g", RG, "-n", CLUSTER).json


@pytest.fixture(scope="module")
def my_identity(env) -> dict:
    return az(env, "identity", "create", "--name", "myIdentity", "--resource-group", RG).json


@pytest.fixture(scope="module")
def my_kubelet_identity(env) -> dict:
    return az(env, "identity", "create", "--name", "myKubeletIdentity", "-g", RG).json


@pytest.fixture(scope="module")
def aks_sp(env) -> dict:
    return az(env, "ad", "sp", "create-for-rbac", "--name", "aks-sp").json


# --------------------------------------------------------------------------------------
# the default cluster
# --------------------------------------------------------------------------------------


def test_create_defaults(created, shown, default_version):
    for mc in (created, shown):
        props_view = {k: mc.get(k) for k in ("provisioningState", "kubernetesVersion", "currentKubernetesVersion", "fqdn")}
        assert mc["provisioningState"] == "Succeeded", props_view
        assert mc["powerState"]["code"] == "Running", mc["powerState"]
        assert same_id(mc["id"], cluster_path(CLUSTER)), mc["id"]  # AKS writes "resourcegroups"
        assert mc["name"] == CLUSTER and mc["type"] == CLUSTER_TYPE and mc["location"] == LOC
        assert mc["kubernetesVersion"] == default_version, props_view
        assert mc["currentKubernetesVersion"].startswith(default_version + "."), props_view
        assert re.fullmatch(r"\d+\.\d+\.\d+", mc["currentKubernetesVersion"]), props_view
        prefix = mc["dnsPrefix"]
        assert prefix, mc
        m = re.fullmatch(rf"({re.escape(prefix)}-[0-9a-z]{{8}})\.hcp\.{LOC}\.azmk8s\.io", mc["fqdn"], re.IGNORECASE)
        assert m, (prefix, mc["fqdn"])
        assert mc["azurePortalFqdn"].lower() == f"{m.group(1)}.portal.hcp.{LOC}.azmk8s.io".lower(), mc["azurePortalFqdn"]
        assert mc["nodeResourceGroup"] == MC_RG, mc["nodeResourceGroup"]
        assert mc["enableRbac"] is True
        assert mc["supportPlan"] == "KubernetesOfficial"
        assert mc["sku"] == {"name": "Base", "tier": "Free"}, mc["sku"]
        assert mc.get("linuxProfile") is None, "no ~/.ssh key: az sends no linuxProfile"

        pools = mc["agentPoolProfiles"]
        assert [p["name"] for p in pools] == ["nodepool1"], pools
        pool = pools[0]
        assert pool["count"] == 3 and pool["mode"] == "System", pool
        assert pool["vmSize"], pool
        assert pool["osDiskSizeGb"] == 128, pool
        assert pool["maxPods"] > 0, pool
        assert pool["osSku"] == "Ubuntu", pool
        assert pool["orchestratorVersion"] == mc["kubernetesVersion"], pool
        assert pool["currentOrchestratorVersion"] == mc["currentKubernetesVersion"], pool
        assert pool["nodeImageVersion"].startswith("AKSUbuntu-"), pool
        assert pool["provisioningState"] == "Succeeded", pool
        assert pool["powerState"]["code"] == "Running", pool

        net = mc["networkProfile"]
        assert net["networkPlugin"] and net["serviceCidr"] and net["dnsServiceIp"], net
        assert net["loadBalancerSku"] == "standard", net
        assert net["outboundType"] == "loadBalancer", net


def test_service_principal_profile_is_msi_and_identity_is_system_assigned(env, shown):
    # az 2.91 prints every attribute of the (typespec) SDK model, so an absent secret shows as null.
    sp = az(env, "aks", "show", "-g", RG, "-n", CLUSTER, "--query", "servicePrincipalProfile").json
    assert sp == {"clientId": "msi", "secret": None}, sp
    identity = shown["identity"]
    assert identity["type"] == "SystemAssigned", identity
    assert GUID.match(identity["principalId"]), identity
    assert identity["tenantId"] == TENANT, identity
    assert identity.get("userAssignedIdentities") is None, identity
    graph = az(env, "ad", "sp", "show", "--id", identity["principalId"]).json
    assert graph["id"] == identity["principalId"], graph


def test_node_resource_group_kubelet_identity_and_grants(env, shown):
    group = az(env, "group", "show", "-n", MC_RG).json
    assert same_id(group["managedBy"], shown["id"]), group
    assert group["location"] == LOC, group

    kubelet = shown["identityProfile"]["kubeletidentity"]
    identities = {i["name"]: i for i in az(env, "identity", "list", "-g", MC_RG).json}
    assert f"{CLUSTER}-agentpool" in identities, sorted(identities)
    agentpool = identities[f"{CLUSTER}-agentpool"]
    assert kubelet["clientId"] == agentpool["clientId"], (kubelet, agentpool)
    assert kubelet["objectId"] == agentpool["principalId"], (kubelet, agentpool)
    assert same_id(kubelet["resourceId"], agentpool["id"]), (kubelet, agentpool)

    principal = shown["identity"]["principalId"]
    grants = az(env, "role", "assignment", "list", "--assignee", principal, "--scope", group["id"]).json
    assert "Contributor" in [g["roleDefinitionName"] for g in grants], grants
    assert all(same_id(g["scope"], group["id"]) for g in grants if g["roleDefinitionName"] == "Contributor"), grants


def test_get_versions_and_upgrades(env, shown, default_version):
    versions = az(env, "aks", "get-versions", "-l", LOC).json["values"]
    assert sum(1 for v in versions if v.get("isDefault")) == 1, versions
    assert default_version in [v["version"] for v in versions]
    upgrades = az(env, "aks", "get-upgrades", "-g", RG, "-n", CLUSTER).json
    assert upgrades["controlPlaneProfile"]["kubernetesVersion"] == shown["currentKubernetesVersion"], upgrades


def _kubeconfig(path) -> dict:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is not on PATH"
    res = subprocess.run([kubectl, "config", "view", "--kubeconfig", str(path), "-o", "json", "--raw"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def _assert_kubeconfig(cfg: dict, context: str, user: str, fqdn: str) -> None:
    from cryptography import x509

    assert cfg["current-context"] == context, cfg["current-context"]
    ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == context)
    assert ctx["user"] == user, ctx
    cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
    assert cluster["server"] == f"https://{fqdn}:443", cluster
    pem = base64.b64decode(cluster["certificate-authority-data"])
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----"), pem[:60]
    cert = x509.load_pem_x509_certificate(pem)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True, cert
    creds = next(u["user"] for u in cfg["users"] if u["name"] == user)
    assert {"token", "client-certificate-data", "exec"} & set(creds), creds


def test_get_credentials(env, shown):
    path = env["KUBECONFIG"]
    az(env, "aks", "get-credentials", "--resource-group", RG, "--name", CLUSTER)
    _assert_kubeconfig(_kubeconfig(path), CLUSTER, f"clusterUser_{RG}_{CLUSTER}", shown["fqdn"])

    printed = az(env, "aks", "get-credentials", "-g", RG, "-n", CLUSTER, "-f", "-").stdout
    doc = yaml.safe_load(printed)
    assert doc["current-context"] == CLUSTER, printed
    assert doc["clusters"][0]["cluster"]["server"] == f"https://{shown['fqdn']}:443", printed
    assert doc["users"][0]["name"] == f"clusterUser_{RG}_{CLUSTER}", printed

    # The admin kubeconfig names its context after the cluster, as the user one does; az
    # itself appends "-admin" to a context whose user is clusterAdmin_* when it merges.
    az(env, "aks", "get-credentials", "--resource-group", RG, "--name", CLUSTER, "--admin")
    cfg = _kubeconfig(path)
    _assert_kubeconfig(cfg, f"{CLUSTER}-admin", f"clusterAdmin_{RG}_{CLUSTER}", shown["fqdn"])
    assert {c["name"] for c in cfg["contexts"]} == {CLUSTER, f"{CLUSTER}-admin"}, cfg["contexts"]


def test_nodes_and_machines(server, env, shown):
    pool = shown["agentPoolProfiles"][0]
    kubelet = shown["identityProfile"]["kubeletidentity"]
    nodes = nodes_of(server, shown["id"])
    assert len(nodes) == 3, nodes
    names = [n["name"] for n in nodes]
    assert len(set(names)) == 3, names
    for node in nodes:
        assert node_name_re("nodepool1").match(node["name"]), node
        assert node["pool"] == "nodepool1", node
        assert node["nodeImageVersion"] == pool["nodeImageVersion"], node
        assert node["kubernetesVersion"].lstrip("v") == pool["currentOrchestratorVersion"], node
        assert node["ready"] is True and node["cordoned"] is False, node
        assert node["kubelet"]["type"] == "ManagedIdentity", node
        assert node["kubelet"]["clientId"] == kubelet["clientId"], node
        assert same_id(node["kubelet"]["resourceId"], kubelet["resourceId"]), node

    machines = az(env, "rest", "--method", "get", "--url",
                  f"{shown['id']}/agentPools/nodepool1/machines?api-version={API}").json["value"]
    assert sorted(m["name"] for m in machines) == sorted(names), machines
    assert {m["type"] for m in machines} == {MACHINE_TYPE}, machines


def test_nodepool_lifecycle(server, env, arm, shown):
    common = ("-g", RG, "--cluster-name", CLUSTER)
    added = az(env, "aks", "nodepool", "add", *common, "-n", "userpool", "--node-count", "2").json
    assert added["name"] == "userpool" and added["type"] == POOL_TYPE, added
    assert added["count"] == 2 and added["mode"] == "User", added
    assert added["provisioningState"] == "Succeeded", added
    assert added["currentOrchestratorVersion"] == shown["currentKubernetesVersion"], added
    assert same_id(added["id"], f"{shown['id']}/agentPools/userpool"), added["id"]

    listed = az(env, "aks", "nodepool", "list", *common).json
    assert sorted(p["name"] for p in listed) == ["nodepool1", "userpool"], listed
    assert {p["name"]: p["mode"] for p in listed} == {"nodepool1": "System", "userpool": "User"}, listed
    got = az(env, "aks", "nodepool", "show", *common, "-n", "userpool").json
    assert got["count"] == 2 and got["mode"] == "User", got
    nodes = nodes_of(server, shown["id"])
    user_nodes = [n for n in nodes if n["pool"] == "userpool"]
    assert len(nodes) == 5 and len(user_nodes) == 2, nodes
    assert all(node_name_re("userpool").match(n["name"]) for n in user_nodes), user_nodes

    scaled = az(env, "aks", "nodepool", "scale", *common, "-n", "userpool", "--node-count", "1").json
    assert scaled["count"] == 1 and scaled["provisioningState"] == "Succeeded", scaled
    assert len([n for n in nodes_of(server, shown["id"]) if n["pool"] == "userpool"]) == 1

    az(env, "aks", "nodepool", "delete", *common, "-n", "userpool")
    assert [p["name"] for p in arm.get(f"{shown['id']}/agentPools").body["value"]] == ["nodepool1"]
    assert {n["pool"] for n in nodes_of(server, shown["id"])} == {"nodepool1"}

    res = az(env, "aks", "nodepool", "delete", *common, "-n", "nodepool1", expect_ok=False)
    assert "MustDefineAtLeastOneSystemPool" in res.stderr, res.stderr
    assert arm.get(f"{shown['id']}/agentPools/nodepool1").body["properties"]["count"] == 3

    # Pool names: ^[a-z][a-z0-9]{0,11}$. az only checks "alphanumeric, at most 12", so an
    # upper-case name reaches armlet; the rest go straight to the API.
    res = az(env, "aks", "nodepool", "add", *common, "-n", "UserPool", "--node-count", "1", expect_ok=False)
    assert re.search(r"ERROR: \(\w+\)", res.stderr) and "UserPool" in res.stderr, res.stderr  # armlet's ARM error
    pool_body = {"properties": {"count": 1, "vmSize": "Standard_DS2_v2", "mode": "User", "osType": "Linux"}}
    for bad in ("1pool", "pool-1", "abcdefghijklm", "Upper"):
        got = arm.put(f"{shown['id']}/agentPools/{bad}", pool_body)
        assert got.status == 400, (bad, str(got))
    assert [p["name"] for p in arm.get(f"{shown['id']}/agentPools").body["value"]] == ["nodepool1"]


def test_stop_and_start(env, created):
    az(env, "aks", "stop", "-g", RG, "-n", CLUSTER)
    assert az(env, "aks", "show", "-g", RG, "-n", CLUSTER).json["powerState"]["code"] == "Stopped"
    res = az(env, "aks", "stop", "-g", RG, "-n", CLUSTER, expect_ok=False)
    assert "stopping cannot be performed" in res.stderr.lower(), res.stderr
    az(env, "aks", "start", "-g", RG, "-n", CLUSTER)
    after = az(env, "aks", "show", "-g", RG, "-n", CLUSTER).json
    assert after["powerState"]["code"] == "Running", after["powerState"]
    assert after["provisioningState"] == "Succeeded", after["provisioningState"]


def test_identity_is_immutable(env, arm, shown):
    path = cluster_path(CLUSTER)
    current = arm.get(path)
    assert current.status == 200, current
    principal = current.body["identity"]["principalId"]
    assert principal == shown["identity"]["principalId"]

    other_principal = copy.deepcopy(current.body)
    other_principal["identity"]["principalId"] = str(uuid.uuid4())
    got = arm.put(path, other_principal)
    assert got.status == 400, str(got)
    assert "must be empty or match the existing principalId" in got.message, str(got)

    to_sp = copy.deepcopy(current.body)
    to_sp["identity"] = {"type": "None"}
    to_sp["properties"]["servicePrincipalProfile"] = {"clientId": env["ARMLET_CLIENT_ID"], "secret": env["ARMLET_CLIENT_SECRET"]}
    got = arm.put(path, to_sp)
    assert got.status == 400 and got.code == "BadRequest", str(got)

    after = arm.get(path).body
    assert after["identity"]["type"] == "SystemAssigned" and after["identity"]["principalId"] == principal, after["identity"]
    assert after["properties"]["servicePrincipalProfile"] == {"clientId": "msi"}, after["properties"]["servicePrincipalProfile"]


# --------------------------------------------------------------------------------------
# custom control-plane and kubelet identities
# --------------------------------------------------------------------------------------


def test_custom_control_plane_identity(env, my_identity):
    out = az(env, "aks", "create", "--resource-group", RG, "--name", "myManagedCluster2",
             "--enable-managed-identity", "--assign-identity", my_identity["id"]).json
    assert out["provisioningState"] == "Succeeded", out["provisioningState"]
    identity = out["identity"]
    assert identity["type"] == "UserAssigned", identity
    assert identity["principalId"] is None and identity["tenantId"] is None, identity
    entries = identity["userAssignedIdentities"]
    assert len(entries) == 1 and same_id(next(iter(entries)), my_identity["id"]), entries
    entry = next(iter(entries.values()))
    assert entry["clientId"] == my_identity["clientId"], entry
    assert entry["principalId"] == my_identity["principalId"], entry
    # Without --assign-kubelet-identity the kubelet identity is made in the node group.
    kubelet = out["identityProfile"]["kubeletidentity"]
    assert kubelet["resourceId"].lower().endswith(
        f"/resourcegroups/mc_{RG}_myManagedCluster2_{LOC}/providers/microsoft.managedidentity"
        f"/userassignedidentities/myManagedCluster2-agentpool".lower()
    ), kubelet


def test_custom_kubelet_identity(env, arm, my_identity, my_kubelet_identity):
    started = time.monotonic()
    out = az(env, "aks", "create", "--resource-group", RG, "--name", "myManagedCluster3", "--enable-managed-identity",
             "--assign-identity", my_identity["id"], "--assign-kubelet-identity", my_kubelet_identity["id"]).json
    print(f"\naz aks create --assign-kubelet-identity took {time.monotonic() - started:.1f}s (2 s propagation delay)")
    assert out["provisioningState"] == "Succeeded", out["provisioningState"]
    kubelet = out["identityProfile"]["kubeletidentity"]
    assert kubelet["clientId"] == my_kubelet_identity["clientId"], kubelet
    assert kubelet["objectId"] == my_kubelet_identity["principalId"], kubelet
    assert same_id(kubelet["resourceId"], my_kubelet_identity["id"]), kubelet
    assert out["identity"]["type"] == "UserAssigned", out["identity"]
    # az granted Managed Identity Operator on the kubelet identity to the control-plane identity.
    grants = [
        a for a in arm.role_assignments_of(my_identity["principalId"])
        if a["properties"]["roleDefinitionId"].endswith(MANAGED_IDENTITY_OPERATOR)
    ]
    assert [g["properties"]["scope"].lower() for g in grants] == [my_kubelet_identity["id"].lower()], grants


def test_kubelet_and_control_plane_identity_rules(arm, my_identity, my_kubelet_identity):
    ungranted = arm.put(
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ungrantedKubelet",
        {"location": LOC}, api_version="2023-01-31",
    )
    assert ungranted.status in (200, 201), str(ungranted)
    ungranted_identity = {"id": ungranted.body["id"], **ungranted.body["properties"]}
    arm.ensure_grant(my_identity["principalId"], MANAGED_IDENTITY_OPERATOR, my_kubelet_identity["id"])

    got = arm.put(cluster_path("noGrantCluster"), cluster_body(
        "noGrantCluster", identity=user_assigned(my_identity["id"]), identityProfile=kubelet_profile(ungranted_identity)))
    assert got.status == 400 and got.code == "CustomKubeletIdentityMissingPermissionError", str(got)
    assert "Managed Identity Operator" in got.message, str(got)

    got = arm.put(cluster_path("systemKubelet"), cluster_body(
        "systemKubelet", identityProfile=kubelet_profile(my_kubelet_identity)))
    assert got.status == 400 and got.code == "CustomKubeletIdentityOnlySupportedOnUserAssignedMSICluster", str(got)

    for region in ("usdodeast", "usdodcentral", "usgoviowa"):
        got = arm.put(cluster_path(f"cp{region}"), cluster_body(f"cp{region}", location=region, identity=user_assigned(my_identity["id"])))
        assert got.status == 400 and got.code == "RegionNotSupported", (region, str(got))
        assert "custom control plane identity" in got.message.lower(), (region, str(got))

    for region in ("chinaeast", "chinanorth"):
        got = arm.put(cluster_path(f"kl{region}"), cluster_body(
            f"kl{region}", location=region, identity=user_assigned(my_identity["id"]),
            identityProfile=kubelet_profile(my_kubelet_identity)))
        assert got.status == 400 and got.code == "RegionNotSupported", (region, str(got))

    got = arm.put(cluster_path("twoIdentities"), cluster_body(
        "twoIdentities", identity=user_assigned(my_identity["id"], my_kubelet_identity["id"])))
    assert got.status == 400 and "Only one user assigned identity" in got.message, str(got)

    for name in ("noGrantCluster", "systemKubelet", "cpusdodeast", "klchinaeast", "twoIdentities"):
        assert arm.get(cluster_path(name)).status == 404, f"{name} was created"


# --------------------------------------------------------------------------------------
# service principal cluster
# --------------------------------------------------------------------------------------


def test_service_principal_cluster(server, env, arm, aks_sp, created):
    app_id, password = aks_sp["appId"], aks_sp["password"]
    out = az(env, "aks", "create", "-g", RG, "-n", "mySPCluster", "--service-principal", app_id, "--client-secret", password).json
    assert out["provisioningState"] == "Succeeded", out["provisioningState"]
    assert out.get("identity") is None, out.get("identity")
    assert out.get("identityProfile") is None, out.get("identityProfile")
    sp = az(env, "aks", "show", "-g", RG, "-n", "mySPCluster", "--query", "servicePrincipalProfile").json
    assert sp == {"clientId": app_id, "secret": None}, sp
    raw = arm.get(cluster_path("mySPCluster")).body
    assert raw["properties"]["servicePrincipalProfile"] == {"clientId": app_id}, "ARM never returns the secret"
    assert raw.get("identity") is None and raw["properties"].get("identityProfile") is None, raw

    nodes = nodes_of(server, out["id"])
    assert len(nodes) == out["agentPoolProfiles"][0]["count"], nodes
    assert all(n["kubelet"]["type"] == "ServicePrincipal" and n["kubelet"]["clientId"] == app_id for n in nodes), nodes

    new_secret = az(env, "ad", "sp", "credential", "reset", "--id", app_id).json["password"]
    reset = ("aks", "update-credentials", "-g", RG, "-n", "mySPCluster", "--reset-service-principal", "--service-principal", app_id)
    az(env, *reset, "--client-secret", new_secret)
    bad = az(env, *reset, "--client-secret", "not-the-secret-" + uuid.uuid4().hex, expect_ok=False)
    assert "ServicePrincipalValidationClientError" in bad.stderr, bad.stderr
    assert arm.get(cluster_path("mySPCluster")).body["properties"]["servicePrincipalProfile"] == {"clientId": app_id}

    on_mi = az(env, "aks", "update-credentials", "-g", RG, "-n", CLUSTER, "--reset-service-principal",
               "--service-principal", app_id, "--client-secret", new_secret, expect_ok=False)
    assert re.search(r"ERROR: \(\w+\)", on_mi.stderr), on_mi.stderr  # an ARM error, not an az crash


# --------------------------------------------------------------------------------------
# add-ons
# --------------------------------------------------------------------------------------

ADDON_ROLES = {
    # addon key: (role definition GUID, scope: "cluster" or "node group") or None (no grant)
    "omsagent": (MONITORING_METRICS_PUBLISHER, "cluster"),
    "ingressApplicationGateway": (CONTRIBUTOR, "node group"),
    "httpApplicationRouting": (READER, "node group"),
    "aciConnectorLinux": (CONTRIBUTOR, "node group"),
}


def test_addon_identities_and_grants(env, arm):
    name = "myAddonCluster"
    mc_rg = f"MC_{RG}_{name}_{LOC}"
    workspace = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.OperationalInsights/workspaces/myWorkspace"
    body = cluster_body(name, addonProfiles={
        "omsagent": {"enabled": True, "config": {"logAnalyticsWorkspaceResourceID": workspace}},
        "ingressApplicationGateway": {"enabled": True, "config": {"applicationGatewayName": "myApplicationGateway", "subnetCIDR": "10.225.0.0/16"}},
        "httpApplicationRouting": {"enabled": True},
        "aciConnectorLinux": {"enabled": True, "config": {"SubnetName": "virtual-node-subnet"}},
        "azurepolicy": {"enabled": True},
    })
    put = arm.put(cluster_path(name), body)
    assert put.status == 201, str(put)
    op_url = put.headers.get("Azure-AsyncOperation") or ""
    assert re.fullmatch(
        rf"https://[^/]+/subscriptions/{SUBSCRIPTION}/providers/Microsoft\.ContainerService/locations/{LOC}/operations/[^/?]+(\?.*)?",
        op_url, re.IGNORECASE), op_url
    assert put.headers.get("Retry-After") == "1", dict(put.headers)
    assert arm.wait(put)["status"] == "Succeeded"

    mc = arm.get(cluster_path(name)).body
    cluster_id = mc["id"]
    profiles = mc["properties"]["addonProfiles"]
    identities = {i["name"]: i for i in az(env, "identity", "list", "-g", mc_rg).json}
    expected_names = {f"{key.lower()}-{name}" for key in ADDON_ROLES} | {f"{name}-agentpool"}
    assert set(identities) == expected_names, sorted(identities)
    for key, (role, where) in ADDON_ROLES.items():
        ident = profiles[key]["identity"]
        resource = identities[f"{key.lower()}-{name}"]
        assert same_id(ident["resourceId"], resource["id"]), (key, ident, resource["id"])
        assert ident["clientId"] == resource["clientId"] and ident["objectId"] == resource["principalId"], (key, ident)
        grants = arm.role_assignments_of(ident["objectId"])
        scope = cluster_id if where == "cluster" else f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{mc_rg}"
        assert [(g["properties"]["roleDefinitionId"].rsplit("/", 1)[-1], g["properties"]["scope"].lower()) for g in grants] == [
            (role, scope.lower())
        ], (key, grants)
    assert profiles["azurepolicy"]["enabled"] is True and profiles["azurepolicy"].get("identity") is None, profiles["azurepolicy"]


def test_keyvault_addon_enable_and_disable(env, arm, created):
    """Through az, on the default cluster: az's enable-addons does extra client-side work when
    ingress-appgw or virtual-node are on, so the add-on cluster above is not used for this."""
    enabled = az(env, "aks", "enable-addons", "-a", "azure-keyvault-secrets-provider", "-g", RG, "-n", CLUSTER).json
    kv = enabled["addonProfiles"]["azureKeyvaultSecretsProvider"]
    assert kv["enabled"] is True, kv
    kv_name = f"azurekeyvaultsecretsprovider-{CLUSTER}"
    kv_identity = next((i for i in az(env, "identity", "list", "-g", MC_RG).json if i["name"] == kv_name), None)
    assert kv_identity is not None, f"{kv_name} not in {MC_RG}"
    assert same_id(kv["identity"]["resourceId"], kv_identity["id"]), kv
    assert kv["identity"]["clientId"] == kv_identity["clientId"] and kv["identity"]["objectId"] == kv_identity["principalId"], kv
    assert arm.role_assignments_of(kv_identity["principalId"]) == [], "the secrets provider gets no role"

    disabled = az(env, "aks", "disable-addons", "-a", "azure-keyvault-secrets-provider", "-g", RG, "-n", CLUSTER).json
    kv = disabled["addonProfiles"]["azureKeyvaultSecretsProvider"]
    assert kv["enabled"] is False and kv.get("identity") is None, kv
    assert kv_name not in [i["name"] for i in az(env, "identity", "list", "-g", MC_RG).json]


# --------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------


def test_errors(env, arm, created):
    res = az(env, "aks", "show", "-g", RG, "-n", "noSuchCluster", expect_ok=False)
    assert "ResourceNotFound" in res.stderr, res.stderr
    got = arm.get(cluster_path("noSuchCluster"))
    assert got.status == 404 and got.code == "ResourceNotFound", str(got)

    got = arm.put(cluster_path("-bad"), cluster_body("bad"))
    assert got.status == 400, str(got)
    got = arm.put(cluster_path("oldVersion"), cluster_body("oldVersion", kubernetesVersion="1.10"))
    assert got.status == 400, str(got)
    assert arm.get(cluster_path("oldVersion")).status == 404


# --------------------------------------------------------------------------------------
# delete (last: it removes the module's cluster)
# --------------------------------------------------------------------------------------


def test_delete_removes_node_group_principals_and_grants(env, arm, shown):
    cluster_principal = shown["identity"]["principalId"]
    kubelet_principal = shown["identityProfile"]["kubeletidentity"]["objectId"]
    assert arm.role_assignments_of(cluster_principal), "the cluster had a grant before delete"

    az(env, "aks", "delete", "-g", RG, "-n", CLUSTER, "--yes")
    assert az(env, "group", "exists", "-n", MC_RG).json is False
    for principal in (cluster_principal, kubelet_principal):
        res = az(env, "ad", "sp", "show", "--id", principal, expect_ok=False)
        assert "does not exist" in res.stderr, res.stderr
        assert arm.role_assignments_of(principal) == [], principal
    assert arm.get(cluster_path(CLUSTER)).status == 404


# --------------------------------------------------------------------------------------
# a grant made moments before: the create waits for it on the simulated clock
# --------------------------------------------------------------------------------------


def test_kubelet_grant_propagation_holds_the_create(tmp_path):
    with running_armlet() as frozen:  # default 10 s propagation delay
        log_start = frozen.log_len()
        try:
            env = env_for(frozen, tmp_path / "frozen")
            arm = Arm(frozen, env)
            freeze_clock(frozen)
            rg = "frozenGroup"
            assert arm.put(f"/subscriptions/{SUBSCRIPTION}/resourcegroups/{rg}", {"location": LOC}, api_version="2021-04-01").status in (200, 201)
            ids = {}
            for ident in ("controlPlane", "kubelet"):
                got = arm.put(
                    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{ident}",
                    {"location": LOC}, api_version="2023-01-31")
                assert got.status in (200, 201), str(got)
                ids[ident] = {"id": got.body["id"], **got.body["properties"]}
            body = cluster_body("frozen", identity=user_assigned(ids["controlPlane"]["id"]), identityProfile=kubelet_profile(ids["kubelet"]))

            got = arm.put(cluster_path("frozen", rg), body)
            assert got.status == 400 and got.code == "CustomKubeletIdentityMissingPermissionError", str(got)

            arm.ensure_grant(ids["controlPlane"]["principalId"], MANAGED_IDENTITY_OPERATOR, ids["kubelet"]["id"])
            put = arm.put(cluster_path("frozen", rg), body)
            assert put.status == 201, str(put)
            status = arm.op_status_response(put)
            assert status.body["status"] == "InProgress", status
            in_progress_headers = {k.lower(): v for k, v in dict(status.headers).items()}
            time.sleep(1.5)
            assert arm.op_status(put)["status"] == "InProgress", "the clock is frozen: nothing may complete"
            advance_clock(frozen, "5s")
            assert arm.op_status(put)["status"] == "InProgress", "5 s < the 10 s propagation delay"
            advance_clock(frozen, "6s")
            assert arm.wait(put, timeout=10)["status"] == "Succeeded"
            mc = arm.get(cluster_path("frozen", rg)).body
            assert mc["properties"]["provisioningState"] == "Succeeded", mc["properties"]["provisioningState"]
            assert same_id(mc["properties"]["identityProfile"]["kubeletidentity"]["resourceId"], ids["kubelet"]["id"]), mc
            # While it runs the status resource must also say Retry-After: 1; without it az's
            # poller falls back to its 30 s default and a held create costs 30 s of wall clock.
            assert in_progress_headers.get("retry-after") == "1", in_progress_headers
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- armlet output ---\n" + "\n".join(frozen.log_since(log_start)[-200:])) from None
