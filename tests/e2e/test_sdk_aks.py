"""AKS through the real azure-mgmt-containerservice SDK (41.6.0, api-version 2026-06-01)
against the session armlet, authenticated with azure-identity's ClientSecretCredential.

One cluster is created once (module fixture) and the tests read it; the delete test runs last.
"""

from __future__ import annotations

import os
import re
import uuid

import pytest
import yaml
from azure.core.exceptions import ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.mgmt.containerservice import ContainerServiceClient
from azure.mgmt.containerservice.models import (
    AgentPool,
    ManagedCluster,
    ManagedClusterAgentPoolProfile,
    ManagedClusterIdentity,
)
from azure.mgmt.resource import ResourceManagementClient
from azure.mgmt.resource.resources.models import ResourceGroup

from conftest import armlet_env, clean_environ

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
LOC = "westus2"
CLUSTER = "sdkCluster"


@pytest.fixture(scope="module")
def sdk(armlet, tmp_path_factory):
    """(ContainerServiceClient, ResourceManagementClient, vars) for the session armlet."""
    exported = armlet_env(armlet, tmp_path_factory.mktemp("sdk-aks"))
    # The SDK runs in this process: hide outer Azure settings, keep proxies off loopback.
    with pytest.MonkeyPatch.context() as mp:
        clean = clean_environ()
        for name in list(os.environ):
            if name not in clean:
                mp.delenv(name)
        for name, value in clean.items():
            if os.environ.get(name) != value:
                mp.setenv(name, value)
        ca_bundle = exported["REQUESTS_CA_BUNDLE"]
        cred = ClientSecretCredential(
            tenant_id=exported["ARMLET_TENANT_ID"],
            client_id=exported["ARMLET_CLIENT_ID"],
            client_secret=exported["ARMLET_CLIENT_SECRET"],
            authority=armlet.https_authority,
            disable_instance_discovery=True,
            connection_verify=ca_bundle,
        )
        kwargs = dict(
            base_url=armlet.https_url,
            credential_scopes=[f"{armlet.https_url}/.default"],
            connection_verify=ca_bundle,
            polling_interval=1,
        )
        sub = exported["ARMLET_SUBSCRIPTION_ID"]
        with cred, ContainerServiceClient(cred, sub, **kwargs) as aks, ResourceManagementClient(cred, sub, **kwargs) as res:
            yield aks, res, exported


@pytest.fixture(scope="module")
def rg(sdk):
    _, res, _ = sdk
    name = f"sdk-aks-{uuid.uuid4().hex[:8]}"
    res.resource_groups.create_or_update(name, ResourceGroup(location=LOC))
    yield name
    res.resource_groups.begin_delete(name).result(timeout=120)


@pytest.fixture(scope="module")
def created(sdk, rg) -> ManagedCluster:
    aks, _, _ = sdk
    cluster = ManagedCluster(
        location=LOC,
        identity=ManagedClusterIdentity(type="SystemAssigned"),
        kubernetes_version="",
        dns_prefix="sdkcluster",
        agent_pool_profiles=[
            ManagedClusterAgentPoolProfile(name="nodepool1", count=1, vm_size="Standard_DS2_v2", mode="System", os_type="Linux")
        ],
    )
    return aks.managed_clusters.begin_create_or_update(rg, CLUSTER, cluster).result(timeout=180)


def test_create_result(sdk, created):
    aks, _, exported = sdk
    assert created.provisioning_state == "Succeeded", created.as_dict()
    assert created.power_state.code == "Running"
    assert created.identity.type == "SystemAssigned"
    assert GUID.match(created.identity.principal_id or ""), created.identity
    assert created.identity.tenant_id == exported["ARMLET_TENANT_ID"]
    versions = aks.managed_clusters.list_kubernetes_versions(LOC).values_property  # `values` is the Mapping method
    defaults = [v.version for v in versions if v.is_default]
    assert len(defaults) == 1, [v.as_dict() for v in versions]
    assert created.kubernetes_version == defaults[0], created.kubernetes_version
    assert created.current_kubernetes_version.startswith(defaults[0] + ".")
    assert re.fullmatch(rf"sdkcluster-[0-9a-z]{{8}}\.hcp\.{LOC}\.azmk8s\.io", created.fqdn), created.fqdn
    assert [p.name for p in created.agent_pool_profiles] == ["nodepool1"]
    assert created.agent_pool_profiles[0].mode == "System" and created.agent_pool_profiles[0].count == 1


def test_get_and_list(sdk, rg, created):
    aks, _, _ = sdk
    got = aks.managed_clusters.get(rg, CLUSTER)
    assert got.id == created.id and got.name == CLUSTER
    assert got.type == "Microsoft.ContainerService/ManagedClusters"  # AKS's own spelling
    assert got.identity.principal_id == created.identity.principal_id
    assert got.node_resource_group == f"MC_{rg}_{CLUSTER}_{LOC}"
    assert created.id in [c.id for c in aks.managed_clusters.list()]
    assert [c.name for c in aks.managed_clusters.list_by_resource_group(rg)] == [CLUSTER]


def test_agent_pools(sdk, rg, created):
    aks, _, _ = sdk
    pool = aks.agent_pools.begin_create_or_update(
        rg, CLUSTER, "userpool", AgentPool(count=1, vm_size="Standard_DS2_v2", mode="User", os_type="Linux")
    ).result(timeout=120)
    assert pool.name == "userpool" and pool.mode == "User" and pool.count == 1, pool.as_dict()
    assert pool.provisioning_state == "Succeeded"
    assert pool.type == "Microsoft.ContainerService/managedClusters/agentPools"
    assert sorted(p.name for p in aks.agent_pools.list(rg, CLUSTER)) == ["nodepool1", "userpool"]
    got = aks.agent_pools.get(rg, CLUSTER, "userpool")
    assert got.id == pool.id and got.count == 1 and got.mode == "User"
    assert got.current_orchestrator_version == created.current_kubernetes_version


def test_credentials(sdk, rg, created):
    aks, _, _ = sdk
    user = aks.managed_clusters.list_cluster_user_credentials(rg, CLUSTER)
    text = user.kubeconfigs[0].value.decode()
    assert "server: https://" in text, text
    doc = yaml.safe_load(text)
    assert doc["clusters"][0]["cluster"]["server"] == f"https://{created.fqdn}:443", text
    assert doc["current-context"] == CLUSTER
    assert doc["users"][0]["name"] == f"clusterUser_{rg}_{CLUSTER}", text

    admin = aks.managed_clusters.list_cluster_admin_credentials(rg, CLUSTER)
    doc = yaml.safe_load(admin.kubeconfigs[0].value.decode())
    # The raw admin kubeconfig names its context after the cluster, like the user one; it is
    # az that renames a clusterAdmin context to "<name>-admin" when merging.
    assert doc["current-context"] == CLUSTER, doc
    assert doc["contexts"][0]["context"]["user"] == f"clusterAdmin_{rg}_{CLUSTER}", doc
    assert doc["users"][0]["name"] == f"clusterAdmin_{rg}_{CLUSTER}", doc


def test_delete(sdk, rg, created):
    aks, res, _ = sdk
    aks.managed_clusters.begin_delete(rg, CLUSTER).result(timeout=120)
    with pytest.raises(ResourceNotFoundError) as excinfo:
        aks.managed_clusters.get(rg, CLUSTER)
    assert excinfo.value.status_code == 404
    assert excinfo.value.error is not None and excinfo.value.error.code == "ResourceNotFound", excinfo.value
    assert not res.resource_groups.check_existence(f"MC_{rg}_{CLUSTER}_{LOC}")
