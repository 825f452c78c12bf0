"""Microsoft Graph through the real `az ad ...` commands.

az reaches Graph at armlet's HTTPS URL (the cloud's `microsoftGraphResourceId`), so these
tests exercise the whole chain: az's Graph client, armlet's Graph routes, the directory, and
the token endpoint signing in the principals az creates.

Applications and service principals are named uniquely per test: the tests share one armlet
server. The clock-advancing test runs against a private server (see TestSecretExpiry), because
moving the shared server's clock would expire other tests' secrets.
"""

from __future__ import annotations

import datetime
import re
import uuid
from pathlib import Path
from typing import Dict

import pytest

from conftest import (
    Armlet,
    EnvDict,
    armlet_env,
    az,
    clean_environ,
    advance_clock,
    running_armlet,
)

# AADSTS7000215: Invalid client secret provided.
BAD_SECRET = "AADSTS7000215"
# AADSTS7000222: The provided client secret keys are expired.
EXPIRED_SECRET = "AADSTS7000222"
# AADSTS700016: Application not found in the directory.
UNKNOWN_APP = "AADSTS700016"
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def fresh_env(server: Armlet, tmp_path: Path, name: str) -> Dict[str, str]:
    """A new, logged-out az config dir for `server` (like the az_env fixture)."""
    directory = tmp_path / f"env-{name}-{uuid.uuid4().hex[:6]}"
    directory.mkdir()
    env = EnvDict(clean_environ())
    env.update(armlet_env(server, directory))
    return env


def sp_login(server: Armlet, tmp_path: Path, app_id: str, secret: str, *, expect_ok=True):
    """`az login --service-principal` as app_id in a fresh config dir. A principal made by
    create-for-rbac has no role assignment, so (as in Azure) it may see no subscription:
    `--allow-no-subscriptions` makes that a tenant-level login instead of an error."""
    env = fresh_env(server, tmp_path, "login")
    res = az(
        env,
        "login",
        "--service-principal",
        "-u",
        app_id,
        "-p",
        secret,
        "--tenant",
        env["ARMLET_TENANT_ID"],
        "--allow-no-subscriptions",
        expect_ok=expect_ok,
    )
    return env, res


def assert_login_refused(server: Armlet, tmp_path: Path, app_id: str, secret: str, code: str):
    _, res = sp_login(server, tmp_path, app_id, secret, expect_ok=False)
    assert code in res.stderr, f"expected {code} in az stderr; got:\n{res.stderr}\nstdout:\n{res.stdout}"


def create_for_rbac(env: Dict[str, str], name: str, *extra: str) -> dict:
    res = az(env, "ad", "sp", "create-for-rbac", "-n", name, *extra)
    out = res.json
    assert set(out) >= {"appId", "password", "tenant", "displayName"}, out
    assert out["displayName"] == name, out
    assert out["tenant"] == env["ARMLET_TENANT_ID"], out
    assert GUID.match(out["appId"]), out
    password = out["password"]
    assert isinstance(password, str) and len(password) == 40 and "~" in password, out
    # az 2.91 makes no role assignment unless --role and --scopes are given.
    assert "role assignment" not in res.stderr.lower(), res.stderr
    return out


def no_traceback(res) -> None:
    assert "Traceback" not in res.stderr, f"az crashed:\n{res.stderr}"


# --------------------------------------------------------------------------------------
# service principals
# --------------------------------------------------------------------------------------


def test_create_for_rbac_credentials_sign_in(armlet, logged_in_env, tmp_path):
    name = unique("rbac-login")
    out = create_for_rbac(logged_in_env, name)

    env, res = sp_login(armlet, tmp_path, out["appId"], out["password"])
    accounts = res.json
    assert accounts and all(a["user"]["name"] == out["appId"] for a in accounts), accounts
    assert all(a["tenantId"] == env["ARMLET_TENANT_ID"] for a in accounts), accounts
    shown = az(env, "account", "show").json
    assert shown["user"] == {"name": out["appId"], "type": "servicePrincipal"}, shown
    assert shown["tenantId"] == env["ARMLET_TENANT_ID"], shown

    # Running it again with the same name patches the same application (az's idempotency):
    # same appId, a new password, and the old one no longer signs in.
    again = create_for_rbac(logged_in_env, name)
    assert again["appId"] == out["appId"], (out, again)
    assert again["password"] != out["password"]
    sp_login(armlet, tmp_path, again["appId"], again["password"])
    assert_login_refused(armlet, tmp_path, out["appId"], out["password"], BAD_SECRET)


def test_sp_show_by_app_id_and_object_id_and_list(logged_in_env):
    env = logged_in_env
    name = unique("rbac-show")
    out = create_for_rbac(env, name)

    by_app_id = az(env, "ad", "sp", "show", "--id", out["appId"]).json
    assert by_app_id["appId"] == out["appId"], by_app_id
    assert by_app_id["displayName"] == name, by_app_id
    assert by_app_id["servicePrincipalType"] == "Application", by_app_id
    assert by_app_id["accountEnabled"] is True, by_app_id
    assert by_app_id["appOwnerOrganizationId"] == env["ARMLET_TENANT_ID"], by_app_id
    assert out["appId"] in by_app_id["servicePrincipalNames"], by_app_id
    assert GUID.match(by_app_id["id"]) and by_app_id["id"] != out["appId"], by_app_id
    # create-for-rbac puts the password on the application, not the service principal.
    assert by_app_id["passwordCredentials"] == [], by_app_id

    by_object_id = az(env, "ad", "sp", "show", "--id", by_app_id["id"]).json
    assert by_object_id["id"] == by_app_id["id"], by_object_id
    assert by_object_id["appId"] == out["appId"], by_object_id

    listed = az(env, "ad", "sp", "list", "--display-name", name).json
    assert [sp["id"] for sp in listed] == [by_app_id["id"]], listed
    by_spn = az(env, "ad", "sp", "list", "--spn", out["appId"]).json
    assert [sp["id"] for sp in by_spn] == [by_app_id["id"]], by_spn
    # The prefix match of --display-name finds both of two similarly named principals.
    twin = create_for_rbac(env, name + "-twin")
    listed = az(env, "ad", "sp", "list", "--display-name", name).json
    assert sorted(sp["appId"] for sp in listed) == sorted([out["appId"], twin["appId"]]), listed

    # The default principal is there too, with its never-expiring well-known secret.
    default = az(env, "ad", "sp", "show", "--id", env["ARMLET_CLIENT_ID"]).json
    assert default["passwordCredentials"][0]["endDateTime"] is None, default

    missing = az(env, "ad", "sp", "show", "--id", str(uuid.uuid4()), expect_ok=False)
    no_traceback(missing)
    assert "does not exist" in missing.stderr, missing.stderr


def test_sp_credential_reset(armlet, logged_in_env, tmp_path):
    env = logged_in_env
    out = create_for_rbac(env, unique("rbac-reset"))
    app_password = out["password"]

    reset = az(env, "ad", "sp", "credential", "reset", "--id", out["appId"]).json
    assert reset["appId"] == out["appId"], reset
    assert reset["tenant"] == env["ARMLET_TENANT_ID"], reset
    first = reset["password"]
    assert first and first != app_password and len(first) == 40, reset
    sp_login(armlet, tmp_path, out["appId"], first)
    # As in Azure, `az ad sp credential reset` replaces the service principal's own
    # passwords; the application's password (from create-for-rbac) is a separate credential
    # and keeps working until the application's credentials are reset.
    sp_login(armlet, tmp_path, out["appId"], app_password)
    creds = az(env, "ad", "sp", "credential", "list", "--id", out["appId"]).json
    assert len(creds) == 1 and creds[0]["hint"] == first[:3] and creds[0]["secretText"] is None, creds

    # Resetting again retires the previous service-principal password.
    second = az(env, "ad", "sp", "credential", "reset", "--id", out["appId"]).json["password"]
    sp_login(armlet, tmp_path, out["appId"], second)
    assert_login_refused(armlet, tmp_path, out["appId"], first, BAD_SECRET)

    # Resetting the application's credentials retires create-for-rbac's password.
    app_reset = az(env, "ad", "app", "credential", "reset", "--id", out["appId"]).json
    assert app_reset["appId"] == out["appId"] and app_reset["tenant"] == env["ARMLET_TENANT_ID"], app_reset
    sp_login(armlet, tmp_path, out["appId"], app_reset["password"])
    assert_login_refused(armlet, tmp_path, out["appId"], app_password, BAD_SECRET)


def test_sp_delete_keeps_the_application(armlet, logged_in_env, tmp_path):
    env = logged_in_env
    out = create_for_rbac(env, unique("rbac-delete"))
    az(env, "ad", "sp", "delete", "--id", out["appId"])
    gone = az(env, "ad", "sp", "show", "--id", out["appId"], expect_ok=False)
    no_traceback(gone)
    # The application survives; without a service principal it cannot sign in.
    assert az(env, "ad", "app", "show", "--id", out["appId"]).json["appId"] == out["appId"]
    assert_login_refused(armlet, tmp_path, out["appId"], out["password"], UNKNOWN_APP)
    # `az ad sp create` gives it a new principal, and the application's password works again.
    sp = az(env, "ad", "sp", "create", "--id", out["appId"]).json
    assert sp["appId"] == out["appId"] and sp["servicePrincipalType"] == "Application", sp
    sp_login(armlet, tmp_path, out["appId"], out["password"])


# --------------------------------------------------------------------------------------
# applications
# --------------------------------------------------------------------------------------


def test_app_create_show_list_delete(logged_in_env):
    env = logged_in_env
    name = unique("app")
    created = az(env, "ad", "app", "create", "--display-name", name).json
    app_id, object_id = created["appId"], created["id"]
    assert GUID.match(app_id) and GUID.match(object_id) and app_id != object_id, created
    assert created["displayName"] == name, created
    assert created["signInAudience"] == "AzureADMyOrg", created
    assert created["publisherDomain"] == "armlet.onmicrosoft.com", created
    assert created["passwordCredentials"] == [], created

    for identifier in (app_id, object_id):
        shown = az(env, "ad", "app", "show", "--id", identifier).json
        assert shown["id"] == object_id and shown["appId"] == app_id, shown
    assert [a["id"] for a in az(env, "ad", "app", "list", "--display-name", name).json] == [object_id]
    assert [a["id"] for a in az(env, "ad", "app", "list", "--app-id", app_id).json] == [object_id]

    # update (PATCH) shows up in the next read
    az(env, "ad", "app", "update", "--id", app_id, "--web-redirect-uris", "https://localhost/cb")
    shown = az(env, "ad", "app", "show", "--id", app_id).json
    assert shown["web"]["redirectUris"] == ["https://localhost/cb"], shown["web"]

    az(env, "ad", "sp", "create", "--id", app_id)
    assert az(env, "ad", "sp", "show", "--id", app_id).json["appId"] == app_id

    # `az ad app credential reset` returns a secret that signs in.
    cred = az(env, "ad", "app", "credential", "reset", "--id", app_id).json
    assert cred["appId"] == app_id and len(cred["password"]) == 40, cred

    # Deleting the application deletes its service principal.
    az(env, "ad", "app", "delete", "--id", app_id)
    for kind in ("app", "sp"):
        res = az(env, "ad", kind, "show", "--id", app_id, expect_ok=False)
        no_traceback(res)
        assert "does not exist" in res.stderr, res.stderr
    assert az(env, "ad", "app", "list", "--display-name", name).json == []


# --------------------------------------------------------------------------------------
# errors and lookups az does not expect to fail badly
# --------------------------------------------------------------------------------------


def test_graph_errors_are_json_az_can_print(logged_in_env):
    env = logged_in_env
    # An application token has no signed-in user.
    res = az(env, "ad", "signed-in-user", "show", expect_ok=False)
    no_traceback(res)
    assert "/me request is only valid with delegated authentication flow" in res.stderr, res.stderr

    # A filter armlet does not evaluate is refused, never answered wrongly.
    res = az(env, "ad", "sp", "list", "--filter", "displayName ne 'x'", expect_ok=False)
    no_traceback(res)
    assert "not supported" in res.stderr, res.stderr

    # No users exist: a UPN lookup is an empty list.
    assert az(env, "ad", "user", "list", "--upn", "nobody@armlet.onmicrosoft.com").json == []


# --------------------------------------------------------------------------------------
# secret expiry on the simulated clock (a private armlet: the clock moves)
# --------------------------------------------------------------------------------------


def private_armlet():
    """Another armlet of this module's own (its clock moves)."""
    return running_armlet()


def utc(text: str) -> datetime.datetime:
    """An RFC 3339 UTC time from armlet (seconds precision is enough here)."""
    return datetime.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)


class TestSecretExpiry:
    """Overrides the session's `armlet` for this class only: az_env and logged_in_env (which
    depend on `armlet`) point at a private server whose clock the test may move."""

    @pytest.fixture(scope="class")
    @classmethod
    def armlet(cls):
        with private_armlet() as server:
            yield server

    def test_secret_expires_on_the_simulated_clock_and_reset_renews_it(self, armlet, logged_in_env, tmp_path):
        env = logged_in_env
        assert env["ARM_CLOUD_METADATA_URL"].startswith(armlet.http_url), "not the private armlet"
        out = create_for_rbac(env, unique("rbac-expiry"), "--years", "1")
        app = az(env, "ad", "app", "show", "--id", out["appId"]).json
        assert len(app["passwordCredentials"]) == 1, app
        sp_login(armlet, tmp_path, out["appId"], out["password"])

        moved = advance_clock(armlet, "400d")
        assert "now" in moved, moved
        assert_login_refused(armlet, tmp_path, out["appId"], out["password"], EXPIRED_SECRET)

        # A reset made after the jump lasts a year of simulated time, although az computes
        # its dates from the wall clock.
        reset = az(env, "ad", "sp", "credential", "reset", "--id", out["appId"]).json
        sp_login(armlet, tmp_path, out["appId"], reset["password"])
        sp = az(env, "ad", "sp", "show", "--id", out["appId"]).json
        end = utc(sp["passwordCredentials"][0]["endDateTime"])
        lasts = end - utc(moved["now"])
        assert datetime.timedelta(days=364) < lasts <= datetime.timedelta(days=366), (sp, moved)
        # The expired application password stays expired.
        assert_login_refused(armlet, tmp_path, out["appId"], out["password"], EXPIRED_SECRET)
