"""Acceptance for "armlet core", driven through the real `az` CLI.

Every test gets its own AZURE_CONFIG_DIR (see the az_env fixture), so tests do not depend
on each other's login state; they share one armlet server, so resource-group names that
are not fixed by the acceptance text are made unique per test.
"""

from __future__ import annotations

import json
import re
import urllib.request
import uuid

from conftest import EnvDict, az, az_login

# AADSTS7000215: Invalid client secret provided.
BAD_SECRET_CODE = "AADSTS7000215"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def rg_id(sub: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{name}"


# --------------------------------------------------------------------------------------
# login / account
# --------------------------------------------------------------------------------------


def test_login_service_principal_lists_subscription(az_env):
    sub = az_env["ARMLET_SUBSCRIPTION_ID"]
    tenant = az_env["ARMLET_TENANT_ID"]
    accounts = az_login(az_env).json
    assert isinstance(accounts, list), f"az login output is not a list: {accounts!r}"
    ids = [a.get("id") for a in accounts]
    assert sub in ids, f"subscription {sub} not in az login output: {json.dumps(accounts, indent=2)}"
    mine = next(a for a in accounts if a.get("id") == sub)
    assert mine.get("tenantId") == tenant, mine
    assert mine.get("state") == "Enabled", mine
    assert mine.get("user", {}).get("type") == "servicePrincipal", mine
    assert mine.get("user", {}).get("name") == az_env["ARMLET_CLIENT_ID"], mine


def test_account_show(logged_in_env):
    env = logged_in_env
    acct = az(env, "account", "show").json
    assert acct["id"] == env["ARMLET_SUBSCRIPTION_ID"], acct
    assert acct["tenantId"] == env["ARMLET_TENANT_ID"], acct
    assert acct["state"] == "Enabled", acct
    assert acct["user"]["type"] == "servicePrincipal", acct
    assert acct["user"]["name"] == env["ARMLET_CLIENT_ID"], acct
    assert acct.get("isDefault") is True, acct


def test_login_with_wrong_secret_fails(az_env):
    res = az_login(az_env, secret="wrong", expect_ok=False)
    assert BAD_SECRET_CODE in res.stderr, (
        f"expected {BAD_SECRET_CODE} in az stderr; got:\n{res.stderr}\nstdout:\n{res.stdout}"
    )
    # Nothing must have been logged in.
    res = az(az_env, "account", "show", expect_ok=False)
    assert "az login" in res.stderr, res.stderr


# --------------------------------------------------------------------------------------
# resource groups
# --------------------------------------------------------------------------------------


def test_resource_group_lifecycle(logged_in_env):
    env = logged_in_env
    sub = env["ARMLET_SUBSCRIPTION_ID"]

    # create
    rg = az(env, "group", "create", "--name", "myResourceGroup", "--location", "westus2").json
    assert rg["name"] == "myResourceGroup", rg
    assert rg["location"] == "westus2", rg
    assert rg["properties"]["provisioningState"] == "Succeeded", rg
    assert rg["id"] == rg_id(sub, "myResourceGroup"), rg
    assert rg.get("type") == "Microsoft.Resources/resourceGroups", rg

    # show with a different casing: names are case-insensitive, original casing is kept
    shown = az(env, "group", "show", "--name", "myresourcegroup").json
    assert shown["name"] == "myResourceGroup", shown
    assert shown["id"] == rg_id(sub, "myResourceGroup"), shown
    assert shown["location"] == "westus2", shown
    assert shown["properties"]["provisioningState"] == "Succeeded", shown

    # list, as JSON and as a table
    listed = az(env, "group", "list").json
    assert any(g["name"] == "myResourceGroup" for g in listed), listed
    table = az(env, "group", "list", "-o", "table").stdout
    row = re.compile(r"^\s*myResourceGroup\s+westus2\s+Succeeded\s*$", re.MULTILINE)
    assert row.search(table), f"no 'myResourceGroup westus2 Succeeded' row in:\n{table}"

    # delete (a long-running operation that az polls to completion)
    res = az(env, "group", "delete", "--name", "myResourceGroup", "--yes")
    assert res.returncode == 0

    # gone
    res = az(env, "group", "show", "--name", "myResourceGroup", expect_ok=False)
    assert res.returncode != 0
    assert "ResourceGroupNotFound" in res.stderr, (
        f"expected ResourceGroupNotFound in az stderr; got:\n{res.stderr}"
    )
    listed = az(env, "group", "list").json
    assert not any(g["name"].lower() == "myresourcegroup" for g in listed), listed


def test_group_exists(logged_in_env):
    env = logged_in_env
    name = unique("exists-rg")
    assert az(env, "group", "exists", "--name", name).json is False
    az(env, "group", "create", "--name", name, "--location", "westus2")
    assert az(env, "group", "exists", "--name", name.upper()).json is True


def test_group_show_missing_is_not_found(logged_in_env):
    name = unique("missing-rg")
    res = az(logged_in_env, "group", "show", "--name", name, expect_ok=False)
    assert "ResourceGroupNotFound" in res.stderr, res.stderr


def test_group_create_with_tags_and_update(logged_in_env):
    env = logged_in_env
    name = unique("tagged-rg")
    rg = az(env, "group", "create", "-n", name, "-l", "eastus", "--tags", "env=test", "team=armlet").json
    assert rg["tags"] == {"env": "test", "team": "armlet"}, rg
    updated = az(env, "group", "update", "-n", name, "--set", "tags.owner=e2e").json
    assert updated["tags"] == {"env": "test", "team": "armlet", "owner": "e2e"}, updated
    assert az(env, "group", "show", "-n", name).json["tags"] == updated["tags"]


# --------------------------------------------------------------------------------------
# clouds / metadata
# --------------------------------------------------------------------------------------


def test_cloud_register_path(armlet, az_env, tmp_path):
    """Without ARM_CLOUD_METADATA_URL: `az cloud register` discovers armlet's endpoints."""
    env = EnvDict(az_env)
    env.pop("ARM_CLOUD_METADATA_URL", None)
    config_dir = tmp_path / "cloud-register-config"
    config_dir.mkdir()
    env["AZURE_CONFIG_DIR"] = str(config_dir)
    assert env.get("REQUESTS_CA_BUNDLE"), "armlet env must export REQUESTS_CA_BUNDLE"
    assert env.get("AZURE_CORE_INSTANCE_DISCOVERY", "").lower() == "false", env.get(
        "AZURE_CORE_INSTANCE_DISCOVERY"
    )

    # The trailing slash is what people type; az then GETs
    # <https_url>//metadata/endpoints?api-version=2022-09-01
    az(env, "cloud", "register", "-n", "armletcloud", "--endpoint-resource-manager", armlet.https_url + "/")
    az(env, "cloud", "set", "-n", "armletcloud")

    cloud = az(env, "cloud", "show", "-n", "armletcloud").json
    assert cloud["name"] == "armletcloud", cloud
    assert cloud["isActive"] is True, cloud
    assert cloud["endpoints"]["resourceManager"].startswith(armlet.https_url), cloud
    # These come from the metadata document (az cannot log in without them).
    assert cloud["endpoints"]["activeDirectory"], cloud
    assert cloud["endpoints"]["activeDirectoryResourceId"], cloud

    accounts = az_login(env).json
    assert env["ARMLET_SUBSCRIPTION_ID"] in [a.get("id") for a in accounts], accounts
    assert all(a.get("cloudName") == "armletcloud" for a in accounts), accounts

    assert isinstance(az(env, "group", "list").json, list)
    name = unique("cloudreg-rg")
    az(env, "group", "create", "-n", name, "-l", "westus2")
    listed = az(env, "group", "list").json
    assert name in [g["name"] for g in listed], listed


def _get_json(url: str):
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200, resp.status
        ctype = resp.headers.get("Content-Type", "")
        body = resp.read()
    assert "application/json" in ctype, f"{url}: Content-Type {ctype!r}"
    return json.loads(body)


def _assert_cloud_metadata(doc, where: str):
    assert isinstance(doc, dict), f"{where}: not an object: {doc!r}"
    for key in ("name", "authentication", "resourceManager", "microsoftGraphResourceId", "suffixes"):
        assert key in doc, f"{where}: missing {key!r} in {json.dumps(doc, indent=2)}"
    auth = doc["authentication"]
    assert auth.get("loginEndpoint"), f"{where}: authentication.loginEndpoint: {auth!r}"
    audiences = auth.get("audiences")
    assert isinstance(audiences, list) and audiences and all(audiences), (
        f"{where}: authentication.audiences: {auth!r}"
    )
    assert isinstance(doc["suffixes"], dict), f"{where}: suffixes: {doc['suffixes']!r}"
    assert doc["resourceManager"].startswith("https://"), f"{where}: {doc['resourceManager']!r}"
    assert doc["authentication"]["loginEndpoint"].startswith("https://"), where
    # az replaces the login endpoint of a cloud named AzureCloud with Entra ID's real one.
    assert doc["name"] != "AzureCloud", f"{where}: cloud must not be named AzureCloud"


def test_metadata_endpoints_over_http(armlet):
    listing = _get_json(f"{armlet.http_url}/metadata/endpoints?api-version=2019-05-01")
    assert isinstance(listing, list) and listing, f"2019-05-01 must return a non-empty array: {listing!r}"
    _assert_cloud_metadata(listing[0], "api-version=2019-05-01 [0]")

    single = _get_json(f"{armlet.http_url}/metadata/endpoints?api-version=2022-09-01")
    assert isinstance(single, dict), f"2022-09-01 must return a single object: {single!r}"
    _assert_cloud_metadata(single, "api-version=2022-09-01")
    assert single["name"] == listing[0]["name"]
    assert single["resourceManager"] == listing[0]["resourceManager"]
