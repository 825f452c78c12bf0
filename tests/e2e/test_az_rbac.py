"""Authorization through the real az CLI: role definitions, role assignments, and the
propagation delay and principal replication lag on armlet's simulated clock.

The propagation scenario runs on a private armlet with a frozen clock, so "a moment ago"
and "after the delay" are exact instead of racing the wall clock.
"""

from __future__ import annotations

import json
import uuid

import pytest

from conftest import advance_clock, az, az_login, env_for, freeze_clock, running_armlet

MANAGED_IDENTITY_OPERATOR = "f1a07417-d97a-45cb-824c-7a7467783830"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_role_definition_list_by_name(logged_in_env):
    env = logged_in_env
    roles = az(env, "role", "definition", "list", "--name", "AcrPull").json
    assert [r["name"] for r in roles] == [ACR_PULL], roles
    assert roles[0]["roleName"] == "AcrPull"
    assert roles[0]["roleType"] == "BuiltInRole"
    assert "Microsoft.ContainerRegistry/registries/pull/read" in roles[0]["permissions"][0]["actions"]
    # ARM matches roleName case-insensitively (az's acs module asks for 'acrpull'); az's own
    # `role definition list` then filters client-side by exact name, so ask ARM directly.
    url = (
        f"/subscriptions/{env['ARMLET_SUBSCRIPTION_ID']}/providers/Microsoft.Authorization/roleDefinitions"
        "?api-version=2022-05-01-preview&$filter=roleName%20eq%20%27acrpull%27"
    )
    listed = az(env, "rest", "--method", "get", "--url", url).json["value"]
    assert [r["name"] for r in listed] == [ACR_PULL], listed
    owner = az(env, "role", "definition", "list", "--name", "Owner").json
    assert owner[0]["permissions"][0]["actions"] == ["*"]


def test_role_assignment_create_list_delete(logged_in_env):
    env = logged_in_env
    sub = env["ARMLET_SUBSCRIPTION_ID"]
    rg = unique("rbac-rg")
    az(env, "group", "create", "--name", rg, "--location", "westus2")
    control = az(env, "identity", "create", "--name", "myIdentity", "--resource-group", rg).json
    kubelet = az(env, "identity", "create", "--name", "myKubeletIdentity", "--resource-group", rg).json

    # The seed's command, with the object id path that needs no Graph lookup.
    created = az(
        env, "role", "assignment", "create", "--assignee-object-id", control["principalId"],
        "--assignee-principal-type", "ServicePrincipal", "--role", "Managed Identity Operator",
        "--scope", kubelet["id"],
    ).json
    assert created["principalId"] == control["principalId"]
    assert created["roleDefinitionId"].endswith(MANAGED_IDENTITY_OPERATOR), created
    assert created["scope"] == kubelet["id"]
    assert created["principalType"] == "ServicePrincipal"
    uuid.UUID(created["name"])

    # The same assignment again: ARM answers 409 RoleAssignmentExists and az shows the existing one.
    again = az(
        env, "role", "assignment", "create", "--assignee-object-id", control["principalId"],
        "--assignee-principal-type", "ServicePrincipal", "--role", "Managed Identity Operator",
        "--scope", kubelet["id"],
    ).json
    assert again["id"] == created["id"], again

    # The Graph path: az resolves --assignee through directoryObjects/getByIds, then PUTs
    # with the principalType Graph reported.
    via_graph = az(
        env, "role", "assignment", "create", "--assignee", control["principalId"], "--role", "Reader",
        "--scope", f"/subscriptions/{sub}/resourceGroups/{rg}",
    ).json
    assert via_graph["principalType"] == "ServicePrincipal", via_graph
    assert via_graph["roleDefinitionId"].endswith(READER), via_graph

    listed = az(env, "role", "assignment", "list", "--assignee", control["principalId"], "--all").json
    assert sorted(a["id"] for a in listed) == sorted([created["id"], via_graph["id"]]), listed
    az(env, "role", "assignment", "delete", "--ids", via_graph["id"])
    at_scope = az(env, "role", "assignment", "list", "--scope", kubelet["id"], "--include-inherited").json
    assert created["id"] in [a["id"] for a in at_scope]
    # The default service principal's Owner role at the subscription is inherited here.
    inherited = [
        a for a in at_scope
        if a["scope"] == f"/subscriptions/{sub}" and a["principalId"] == "a1e70000-0000-4000-8000-000000000004"
    ]
    assert [a["roleDefinitionName"] for a in inherited] == ["Owner"], at_scope

    az(env, "role", "assignment", "delete", "--ids", created["id"])
    assert az(env, "role", "assignment", "list", "--assignee", control["principalId"], "--all").json == []

    # Deleting an identity removes the assignments that name it.
    az(
        env, "role", "assignment", "create", "--assignee-object-id", kubelet["principalId"],
        "--assignee-principal-type", "ServicePrincipal", "--role", "Reader", "--scope", f"/subscriptions/{sub}/resourceGroups/{rg}",
    )
    az(env, "identity", "delete", "-n", "myKubeletIdentity", "-g", rg)
    # The principal is gone from the directory too, so ask ARM directly rather than through --assignee.
    url = (
        f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01"
        f"&$filter=principalId%20eq%20%27{kubelet['principalId']}%27"
    )
    assert az(env, "rest", "--method", "get", "--url", url).json["value"] == []


def test_role_assignment_errors(logged_in_env):
    env = logged_in_env
    sub = env["ARMLET_SUBSCRIPTION_ID"]
    scope = f"/subscriptions/{sub}"
    body = {"properties": {"roleDefinitionId": f"{scope}/providers/Microsoft.Authorization/roleDefinitions/{READER}", "principalId": str(uuid.uuid4())}}
    url = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{{}}?api-version=2022-04-01"
    res = az(env, "rest", "--method", "put", "--url", url.format("not-a-guid"), "--body", json.dumps(body), expect_ok=False)
    assert "InvalidRoleAssignmentId" in res.stderr, res.stderr
    res = az(env, "rest", "--method", "put", "--url", url.format(uuid.uuid4()), "--body", json.dumps(body), expect_ok=False)
    assert "PrincipalNotFound" in res.stderr and "does not exist in the directory" in res.stderr, res.stderr
    body["properties"]["roleDefinitionId"] = f"{scope}/providers/Microsoft.Authorization/roleDefinitions/{uuid.uuid4()}"
    res = az(env, "rest", "--method", "put", "--url", url.format(uuid.uuid4()), "--body", json.dumps(body), expect_ok=False)
    assert "RoleDefinitionDoesNotExist" in res.stderr, res.stderr


@pytest.fixture(scope="module")
def private_armlet():
    """An armlet of this module's own: its clock is frozen and moved by the test."""
    with running_armlet() as server:
        yield server


def test_propagation_delay_and_replication_lag(private_armlet, tmp_path):
    """A grant exists at once but takes effect after the delay; a deleted grant fades the
    same way; a brand-new principal is unknown to ARM unless principalType is given."""
    admin = env_for(private_armlet, tmp_path / "admin")
    az_login(admin)
    freeze_clock(private_armlet)
    sub = admin["ARMLET_SUBSCRIPTION_ID"]
    rg = unique("prop-rg")
    az(admin, "group", "create", "--name", rg, "--location", "westus2")
    identity = az(admin, "identity", "create", "--name", "workload", "--resource-group", rg).json
    oid = identity["principalId"]

    # Replication lag: the identity is a moment old, and no principalType is given.
    reader = {"properties": {"roleDefinitionId": f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{READER}", "principalId": oid}}
    url = f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}?api-version=2022-04-01"
    res = az(admin, "rest", "--method", "put", "--url", url, "--body", json.dumps(reader), expect_ok=False)
    assert "PrincipalNotFound" in res.stderr, res.stderr
    reader["properties"]["principalType"] = "ServicePrincipal"
    az(admin, "rest", "--method", "put", "--url", url, "--body", json.dumps(reader))

    # The Reader grant exists but has not taken effect: the identity sees no subscription.
    mi = env_for(private_armlet, tmp_path / "mi")
    res = az(mi, "login", "--identity", "--client-id", identity["clientId"], expect_ok=False)
    assert "no subscriptions were found" in res.stderr.lower(), res.stderr
    advance_clock(private_armlet, "10s")
    az(mi, "login", "--identity", "--client-id", identity["clientId"])

    # Reader cannot write.
    res = az(mi, "identity", "create", "--name", "made-by-mi", "--resource-group", rg, expect_ok=False)
    assert "AuthorizationFailed" in res.stderr and "userAssignedIdentities/write" in res.stderr, res.stderr

    # Contributor on the group, granted a moment ago: still denied...
    grant = az(
        admin, "role", "assignment", "create", "--assignee-object-id", oid, "--assignee-principal-type",
        "ServicePrincipal", "--role", "Contributor", "--scope", f"/subscriptions/{sub}/resourceGroups/{rg}",
    ).json
    res = az(mi, "identity", "create", "--name", "made-by-mi", "--resource-group", rg, expect_ok=False)
    assert "AuthorizationFailed" in res.stderr, res.stderr
    # ...until the propagation delay has passed.
    advance_clock(private_armlet, "10s")
    az(mi, "identity", "create", "--name", "made-by-mi", "--resource-group", rg)

    # Deleted: it keeps working for the delay, then stops.
    az(admin, "role", "assignment", "delete", "--ids", grant["id"])
    az(mi, "identity", "create", "--name", "made-by-mi-2", "--resource-group", rg)
    advance_clock(private_armlet, "10s")
    res = az(mi, "identity", "create", "--name", "made-by-mi-3", "--resource-group", rg, expect_ok=False)
    assert "AuthorizationFailed" in res.stderr, res.stderr
