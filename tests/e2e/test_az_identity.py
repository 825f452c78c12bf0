"""Managed identities through the real `az identity` commands (aaz, api-version
2025-05-31-preview; federated credentials 2025-01-31-preview).

The seed's `az identity create` output also shows `clientSecretUrl`; az 2.91 no longer prints
it (its aaz output schema has no such field), so it is checked through the REST API instead.
"""

from __future__ import annotations

import json
import re
import uuid

from conftest import az


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_identity_create_list_show_update_delete(logged_in_env):
    env = logged_in_env
    sub = env["ARMLET_SUBSCRIPTION_ID"]
    rg = unique("mi-rg")
    az(env, "group", "create", "--name", rg, "--location", "westus2")

    created = az(env, "identity", "create", "--name", "myIdentity", "--resource-group", rg).json
    expected_id = f"/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/myIdentity"
    assert created["id"] == expected_id, created
    assert created["name"] == "myIdentity"
    assert created["location"] == "westus2", "location comes from the resource group"
    assert created["resourceGroup"] == rg
    assert created["type"] == "Microsoft.ManagedIdentity/userAssignedIdentities"
    assert created["tenantId"] == env["ARMLET_TENANT_ID"]
    assert created["tags"] == {}
    for field in ("clientId", "principalId"):
        uuid.UUID(created[field])
    assert created["clientId"] != created["principalId"]

    # The seed's table, exactly as printed there.
    table = az(env, "identity", "list", "--query", "[].{Name:name, Id:id, Location:location}", "-o", "table").stdout
    assert re.search(rf"^myIdentity\s+{re.escape(expected_id)}\s+westus2\s*$", table, re.MULTILINE), table

    by_group = az(env, "identity", "list", "-g", rg).json
    assert [i["name"] for i in by_group] == ["myIdentity"], by_group

    shown = az(env, "identity", "show", "-n", "myidentity", "-g", rg.upper()).json
    assert shown["principalId"] == created["principalId"], "ids never change"
    assert shown["clientId"] == created["clientId"]
    assert shown["name"] == "myIdentity", "the caller's original casing is kept"

    updated = az(env, "identity", "update", "-n", "myIdentity", "-g", rg, "--tags", "team=armlet").json
    assert updated["tags"] == {"team": "armlet"}, updated
    assert updated["principalId"] == created["principalId"]

    # A second identity gets fresh ids.
    other = az(env, "identity", "create", "--name", "myKubeletIdentity", "--resource-group", rg).json
    assert other["principalId"] not in (created["principalId"], created["clientId"])
    assert other["clientId"] not in (created["principalId"], created["clientId"])

    az(env, "identity", "delete", "-n", "myIdentity", "-g", rg)
    res = az(env, "identity", "show", "-n", "myIdentity", "-g", rg, expect_ok=False)
    assert "ResourceNotFound" in res.stderr, res.stderr
    assert [i["name"] for i in az(env, "identity", "list", "-g", rg).json] == ["myKubeletIdentity"]

    # Deleting the group takes the remaining identity (and its directory object) with it.
    az(env, "group", "delete", "-n", rg, "--yes")
    remaining = [i for i in az(env, "identity", "list").json if i["resourceGroup"].lower() == rg.lower()]
    assert remaining == [], remaining


def test_identity_rest_shape_has_client_secret_url_and_version_specific_fields(logged_in_env):
    env = logged_in_env
    rg = unique("mi-rest")
    az(env, "group", "create", "--name", rg, "--location", "eastus")
    az(env, "identity", "create", "--name", "restIdentity", "--resource-group", rg)
    path = (
        f"/subscriptions/{env['ARMLET_SUBSCRIPTION_ID']}/resourceGroups/{rg}"
        "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/restIdentity"
    )
    new = az(env, "rest", "--method", "get", "--url", f"{path}?api-version=2024-11-30").json
    old = az(env, "rest", "--method", "get", "--url", f"{path}?api-version=2023-01-31").json
    assert new["properties"]["isolationScope"] == "None", new
    assert "isolationScope" not in old["properties"], "2023-01-31 has no isolationScope"
    url = new["properties"]["clientSecretUrl"]
    assert url.startswith(env["ARMLET_HTTPS_URL"] + "/"), url
    assert f"oid={new['properties']['principalId']}" in url and f"aid={new['properties']['clientId']}" in url
    bad = az(env, "rest", "--method", "get", "--url", f"{path}?api-version=2099-01-01", expect_ok=False)
    assert "NoRegisteredProviderFound" in bad.stderr, bad.stderr


def test_identity_name_rules(logged_in_env):
    env = logged_in_env
    rg = unique("mi-names")
    az(env, "group", "create", "--name", rg, "--location", "westus2")
    for bad in ("ab", "-leading", "has.dot"):
        res = az(env, "identity", "create", f"--name={bad}", "--resource-group", rg, expect_ok=False)
        assert "InvalidResourceName" in res.stderr, (bad, res.stderr)
    missing = unique("no-such-rg")
    res = az(env, "identity", "create", "--name", "fine", "--resource-group", missing, "-l", "westus2", expect_ok=False)
    assert "ResourceGroupNotFound" in res.stderr, res.stderr


def test_federated_credentials(logged_in_env):
    env = logged_in_env
    rg = unique("fic-rg")
    az(env, "group", "create", "--name", rg, "--location", "westus2")
    az(env, "identity", "create", "--name", "wid", "--resource-group", rg)
    fic = az(
        env, "identity", "federated-credential", "create", "--name", "kubernetes-sa", "--identity-name", "wid",
        "--resource-group", rg, "--issuer", "https://oidc.example.com/issuer/",
        "--subject", "system:serviceaccount:default:workload", "--audiences", "api://AzureADTokenExchange",
    ).json
    assert fic["name"] == "kubernetes-sa"
    assert fic["issuer"] == "https://oidc.example.com/issuer/"
    assert fic["subject"] == "system:serviceaccount:default:workload"
    assert fic["audiences"] == ["api://AzureADTokenExchange"]
    assert fic["type"] == "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials"

    listed = az(env, "identity", "federated-credential", "list", "--identity-name", "wid", "-g", rg).json
    assert [f["name"] for f in listed] == ["kubernetes-sa"], listed
    shown = az(env, "identity", "federated-credential", "show", "--name", "kubernetes-sa", "--identity-name", "wid", "-g", rg).json
    assert shown["subject"] == fic["subject"]

    # Azure allows at most 20 per identity.
    for i in range(1, 20):
        path = (
            f"/subscriptions/{env['ARMLET_SUBSCRIPTION_ID']}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity"
            f"/userAssignedIdentities/wid/federatedIdentityCredentials/fic{i:02d}?api-version=2023-01-31"
        )
        body = {"properties": {"issuer": "https://oidc.example.com/", "subject": f"s{i}", "audiences": ["api://AzureADTokenExchange"]}}
        az(env, "rest", "--method", "put", "--url", path, "--body", json.dumps(body))
    res = az(
        env, "identity", "federated-credential", "create", "--name", "one-too-many", "--identity-name", "wid",
        "--resource-group", rg, "--issuer", "https://oidc.example.com/", "--subject", "s21", expect_ok=False,
    )
    assert res.returncode != 0 and "maximum of 20" in res.stderr, res.stderr

    az(env, "identity", "federated-credential", "delete", "--name", "kubernetes-sa", "--identity-name", "wid", "-g", rg, "--yes")
    names = [f["name"] for f in az(env, "identity", "federated-credential", "list", "--identity-name", "wid", "-g", rg).json]
    assert "kubernetes-sa" not in names and len(names) == 19, names
