"""Managed-identity tokens: `az login --identity` and azure-identity's ManagedIdentityCredential
against armlet's IMDS (`armlet env` exports AZURE_POD_IDENTITY_AUTHORITY_HOST), ARM accepting
the identity's tokens, and the 46-day credential rotation seen through the tokens'
`cred_thumbprint` and the identity's `clientSecretUrl`.

Identities are created with the real `az identity create` in a config dir logged in as the
default service principal; `az login --identity` runs in a *separate* config dir that never
saw a service-principal login. The rotation test advances the clock, so it runs on its own
armlet server (the session server is shared).
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Dict

import pytest
from azure.identity import ManagedIdentityCredential
from azure.mgmt.resource import ResourceManagementClient
from conftest import (
    EnvDict,
    advance_clock,
    az,
    az_login,
    env_for,
    running_armlet,
)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def create_identity(admin_env: Dict[str, str], prefix: str) -> dict:
    """`az group create` + `az identity create`, then Contributor on the subscription for the
    identity (ARM authorizes identities like any principal; az login --identity finds no
    subscription without a role), waited out past the propagation delay."""
    rg = unique(prefix)
    az(admin_env, "group", "create", "--name", rg, "--location", "westus2")
    identity = az(admin_env, "identity", "create", "--name", unique("id"), "--resource-group", rg).json
    az(
        admin_env, "role", "assignment", "create", "--assignee-object-id", identity["principalId"],
        "--assignee-principal-type", "ServicePrincipal", "--role", "Contributor",
        "--scope", f"/subscriptions/{admin_env['ARMLET_SUBSCRIPTION_ID']}",
    )
    advance_clock(admin_env, "15s")
    return identity


def client_secret_url(admin_env: Dict[str, str], identity: dict) -> str:
    """The identity's clientSecretUrl. az 2.91's `identity show` drops it from its output
    (its aaz schema has no such field), so read it from the REST API as the SDK sees it."""
    shown = az(admin_env, "identity", "show", "--ids", identity["id"]).json
    if shown.get("clientSecretUrl"):
        return shown["clientSecretUrl"]
    raw = az(admin_env, "rest", "--method", "get", "--url", f"{identity['id']}?api-version=2024-11-30").json
    return raw["properties"]["clientSecretUrl"]


def fetch_json(url: str, ca_bundle: str) -> dict:
    context = ssl.create_default_context(cafile=ca_bundle)
    with urllib.request.urlopen(url, context=context, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture
def admin_env(logged_in_env):
    """A config dir logged in as the default service principal (to create identities)."""
    return logged_in_env


@pytest.fixture
def mi_env(armlet, tmp_path):
    """A fresh config dir from `armlet env` in which no service principal ever logged in."""
    return env_for(armlet, tmp_path / "mi-env")


# --------------------------------------------------------------------------------------
# az login --identity
# --------------------------------------------------------------------------------------


def test_az_login_identity_with_client_id(admin_env, mi_env, armlet):
    identity = create_identity(admin_env, "mi-login")
    client_id, principal_id = identity["clientId"], identity["principalId"]

    accounts = az(mi_env, "login", "--identity", "--client-id", client_id).json
    assert [a["id"] for a in accounts] == [mi_env["ARMLET_SUBSCRIPTION_ID"]], accounts

    account = az(mi_env, "account", "show").json
    assert account["id"] == mi_env["ARMLET_SUBSCRIPTION_ID"], account
    assert account["tenantId"] == mi_env["ARMLET_TENANT_ID"], account
    assert account["user"]["type"] == "servicePrincipal", account
    assert account["user"]["name"] == "userAssignedIdentity", account
    assert account["user"]["assignedIdentityInfo"] == f"MSIClient-{client_id}", account

    # az keeps no managed-identity token: every command asks IMDS again, and ARM accepts it.
    groups = az(mi_env, "group", "list").json
    assert isinstance(groups, list), groups
    rg = unique("mi-made")
    made = az(mi_env, "group", "create", "--name", rg, "--location", "westus2").json
    assert made["name"] == rg, made
    assert rg in [g["name"] for g in az(mi_env, "group", "list").json]
    az(mi_env, "group", "delete", "--name", rg, "--yes")

    # The token az holds is the identity's.
    token = az(mi_env, "account", "get-access-token").json["accessToken"]
    claims = jwt_claims(token)
    assert claims["oid"] == principal_id, claims
    assert claims["appid"] == client_id, claims
    assert claims["tid"] == mi_env["ARMLET_TENANT_ID"], claims
    assert claims["xms_mirid"].lower() == identity["id"].lower(), claims
    assert claims["aud"].rstrip("/") == armlet.https_url, claims
    assert claims["cred_thumbprint"], claims


@pytest.mark.parametrize("flag", ["--object-id", "--resource-id"])
def test_az_login_identity_by_object_or_resource_id(admin_env, mi_env, flag):
    identity = create_identity(admin_env, "mi-flag")
    value = identity["principalId"] if flag == "--object-id" else identity["id"]
    az(mi_env, "login", "--identity", flag, value)
    account = az(mi_env, "account", "show").json
    kind = "MSIObject" if flag == "--object-id" else "MSIResource"
    assert account["user"]["assignedIdentityInfo"] == f"{kind}-{value}", account
    token = az(mi_env, "account", "get-access-token").json["accessToken"]
    assert jwt_claims(token)["oid"] == identity["principalId"]


def test_az_login_identity_unknown_client_id_fails(mi_env):
    res = az(mi_env, "login", "--identity", "--client-id", str(uuid.uuid4()), expect_ok=False)
    assert "Identity not found" in res.stderr, res.stderr


def test_imds_wire_format(admin_env, armlet):
    """What az and the SDKs rely on, straight over HTTP: strings for numbers, the header rule."""
    identity = create_identity(admin_env, "mi-wire")
    query = urllib.parse.urlencode(
        {"api-version": "2018-02-01", "resource": f"{armlet.https_url}/", "client_id": identity["clientId"]}
    )
    url = f"{armlet.http_url}/metadata/identity/oauth2/token?{query}"
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Metadata": "true"}), timeout=30) as r:
        body = json.loads(r.read())
    assert set(body) == {
        "access_token", "client_id", "expires_in", "expires_on", "ext_expires_in", "not_before", "resource", "token_type",
    }, body
    assert body["client_id"] == identity["clientId"]
    assert body["resource"] == f"{armlet.https_url}/"
    assert body["token_type"] == "Bearer"
    for field in ("expires_in", "expires_on", "ext_expires_in", "not_before"):
        assert isinstance(body[field], str) and body[field].isdigit(), (field, body)

    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(url, timeout=30)
    assert excinfo.value.code == 400
    assert json.loads(excinfo.value.read()) == {
        "error": "invalid_request",
        "error_description": "Required metadata header not specified",
    }


def test_az_login_identity_through_the_app_service_form(admin_env, mi_env, armlet):
    """With IDENTITY_ENDPOINT/IDENTITY_HEADER (not exported by `armlet env`), MSAL uses
    App Service's protocol: GET /msi/token with X-IDENTITY-HEADER."""
    identity = create_identity(admin_env, "mi-appsvc")
    with urllib.request.urlopen(f"{armlet.http_url}/_armlet/info", timeout=30) as r:
        info = json.loads(r.read())
    assert info["identityEndpoint"] == f"{armlet.http_url}/msi/token", info["identityEndpoint"]
    assert "IDENTITY_ENDPOINT" not in mi_env and "IDENTITY_HEADER" not in mi_env, "MSAL would prefer them over IMDS"

    env = EnvDict(mi_env)
    env.update(IDENTITY_ENDPOINT=info["identityEndpoint"], IDENTITY_HEADER=info["identityHeader"])
    az(env, "login", "--identity", "--client-id", identity["clientId"])
    token = az(env, "account", "get-access-token").json["accessToken"]
    assert jwt_claims(token)["oid"] == identity["principalId"]
    az(env, "group", "list")

    env["IDENTITY_HEADER"] = "not-the-secret"
    res = az(env, "account", "get-access-token", expect_ok=False)
    assert "401, The X-IDENTITY-HEADER header does not match" in res.stderr, res.stderr


# --------------------------------------------------------------------------------------
# azure-identity
# --------------------------------------------------------------------------------------


@pytest.fixture
def sdk_environ(mi_env, monkeypatch):
    """This process's environment = the `armlet env` one (the SDK reads it in-process)."""
    for name in list(os.environ):
        if name not in mi_env:
            monkeypatch.delenv(name)
    for name, value in mi_env.items():
        if os.environ.get(name) != value:
            monkeypatch.setenv(name, value)
    return mi_env


def test_managed_identity_credential_gets_a_token_arm_accepts(admin_env, sdk_environ, armlet):
    identity = create_identity(admin_env, "mi-sdk")
    scope = f"{armlet.https_url}/.default"
    with ManagedIdentityCredential(client_id=identity["clientId"]) as cred:
        token = cred.get_token(scope)
        claims = jwt_claims(token.token)
        assert claims["oid"] == identity["principalId"], claims
        assert claims["appid"] == identity["clientId"], claims
        assert claims["aud"].rstrip("/") == armlet.https_url, claims
        assert claims["tid"] == sdk_environ["ARMLET_TENANT_ID"], claims
        assert token.expires_on > time.time() + 600

        client = ResourceManagementClient(
            cred,
            sdk_environ["ARMLET_SUBSCRIPTION_ID"],
            base_url=armlet.https_url,
            credential_scopes=[scope],
            connection_verify=sdk_environ["REQUESTS_CA_BUNDLE"],
        )
        with client:
            names = [g.name for g in client.resource_groups.list()]
    assert identity["resourceGroup"] in names, names


# --------------------------------------------------------------------------------------
# rotation, on a private armlet (its clock moves)
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def private_armlet():
    """An armlet of this module's own: its clock moves."""
    with running_armlet() as server:
        yield server


def test_credential_rotation_after_46_days(private_armlet, tmp_path):
    admin = env_for(private_armlet, tmp_path / "admin")
    az_login(admin)
    identity = create_identity(admin, "mi-rotate")
    url = client_secret_url(admin, identity)
    assert url.startswith(f"{private_armlet.https_url}/msi/credentials?"), url
    ca_bundle = admin["REQUESTS_CA_BUNDLE"]

    mi = env_for(private_armlet, tmp_path / "mi")
    az(mi, "login", "--identity", "--client-id", identity["clientId"])

    def thumbprint() -> str:
        token = az(mi, "account", "get-access-token").json["accessToken"]
        return jwt_claims(token)["cred_thumbprint"]

    first = thumbprint()
    before = fetch_json(url, ca_bundle)
    assert before["thumbprint"] == first, before
    assert before["client_id"] == identity["clientId"]
    assert before["object_id"] == identity["principalId"]
    assert before["tenant_id"] == identity["tenantId"]

    advance_clock(private_armlet, "46d")

    second = thumbprint()
    assert second != first, "a new credential backs tokens after renewAfter"
    after = fetch_json(url, ca_bundle)
    assert after["thumbprint"] == second, after

    def parse(ts: str) -> float:
        from datetime import datetime

        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()

    day = 86400
    assert parse(after["not_before"]) - parse(before["not_before"]) == 46 * day, (before, after)
    assert parse(after["renew_after"]) - parse(before["renew_after"]) == 46 * day, (before, after)
    assert parse(after["not_before"]) == parse(before["renew_after"]), "the new credential starts at renewAfter"
    assert parse(after["not_after"]) - parse(after["not_before"]) == 90 * day, after
