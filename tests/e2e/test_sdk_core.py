"""Acceptance for "armlet core", driven through the real Azure SDK for Python over HTTPS.

azure-identity's ClientSecretCredential talks to armlet's token endpoint (MSAL, with
instance discovery off, authority = armlet's HTTPS host:port), and azure-mgmt-resource's
clients talk to armlet's ARM endpoint, trusting armlet's CA from `armlet env`.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.mgmt.resource import ResourceManagementClient, SubscriptionClient
from azure.mgmt.resource.resources.models import ResourceGroup, ResourceGroupPatchable
from conftest import clean_environ


@dataclass
class Sdk:
    credential: ClientSecretCredential
    subscription_id: str
    tenant_id: str
    base_url: str
    ca_bundle: str

    def client_kwargs(self):
        return dict(
            base_url=self.base_url,
            credential_scopes=[f"{self.base_url}/.default"],
            connection_verify=self.ca_bundle,
            # Only used when armlet sends no Retry-After with a long-running operation.
            polling_interval=1,
        )

    def resources(self) -> ResourceManagementClient:
        return ResourceManagementClient(self.credential, self.subscription_id, **self.client_kwargs())

    def subscriptions(self) -> SubscriptionClient:
        return SubscriptionClient(self.credential, **self.client_kwargs())


@pytest.fixture
def sdk(armlet, armlet_vars, monkeypatch):
    # The SDK runs in this process: hide outer Azure settings (e.g. AZURE_REGIONAL_AUTHORITY_NAME)
    # and keep any proxy away from loopback, as the az tests do for the CLI.
    clean = clean_environ()
    for name in list(os.environ):
        if name not in clean:
            monkeypatch.delenv(name)
    for name, value in clean.items():
        if os.environ.get(name) != value:
            monkeypatch.setenv(name, value)

    ca_bundle = armlet_vars["REQUESTS_CA_BUNDLE"]
    cred = ClientSecretCredential(
        tenant_id=armlet_vars["ARMLET_TENANT_ID"],
        client_id=armlet_vars["ARMLET_CLIENT_ID"],
        client_secret=armlet_vars["ARMLET_CLIENT_SECRET"],
        authority=armlet.https_authority,  # "127.0.0.1:PORT"; azure-identity adds https://
        disable_instance_discovery=True,
        connection_verify=ca_bundle,
    )
    with cred:
        yield Sdk(
            credential=cred,
            subscription_id=armlet_vars["ARMLET_SUBSCRIPTION_ID"],
            tenant_id=armlet_vars["ARMLET_TENANT_ID"],
            base_url=armlet.https_url,
            ca_bundle=ca_bundle,
        )


def test_credential_gets_token(sdk):
    token = sdk.credential.get_token(f"{sdk.base_url}/.default")
    assert token.token and token.token.count(".") == 2, "expected a JWT access token"
    assert token.expires_on > 0


def test_resource_group_lifecycle(sdk):
    name = f"sdk-rg-{uuid.uuid4().hex[:10]}"
    expected_id = f"/subscriptions/{sdk.subscription_id}/resourceGroups/{name}"
    with sdk.resources() as client:
        # create
        rg = client.resource_groups.create_or_update(
            name, ResourceGroup(location="westus2", tags={"owner": "e2e"})
        )
        assert rg.name == name
        assert rg.id == expected_id
        assert rg.location == "westus2"
        assert rg.tags == {"owner": "e2e"}
        assert rg.properties.provisioning_state == "Succeeded"

        # get (case-insensitive name, original casing kept)
        got = client.resource_groups.get(name.upper())
        assert got.name == name
        assert got.id == expected_id
        assert got.location == "westus2"

        # list
        names = [g.name for g in client.resource_groups.list()]
        assert name in names, names

        # update tags (PATCH)
        updated = client.resource_groups.update(
            name, ResourceGroupPatchable(tags={"owner": "e2e", "stage": "updated"})
        )
        assert updated.name == name
        assert updated.tags == {"owner": "e2e", "stage": "updated"}
        assert client.resource_groups.get(name).tags == {"owner": "e2e", "stage": "updated"}

        # delete (long-running operation)
        poller = client.resource_groups.begin_delete(name)
        assert poller.result(timeout=120) is None
        assert poller.done()
        assert poller.status().lower() == "succeeded", poller.status()

        # gone
        with pytest.raises(ResourceNotFoundError) as excinfo:
            client.resource_groups.get(name)
        err = excinfo.value
        assert err.status_code == 404
        assert err.error is not None, f"no ARM error body: {err}"
        assert err.error.code == "ResourceGroupNotFound", err.error
        assert name not in [g.name for g in client.resource_groups.list()]


def test_get_missing_group_raises_not_found(sdk):
    with sdk.resources() as client:
        with pytest.raises(ResourceNotFoundError) as excinfo:
            client.resource_groups.get(f"sdk-missing-{uuid.uuid4().hex[:10]}")
    assert excinfo.value.error is not None
    assert excinfo.value.error.code == "ResourceGroupNotFound"


def test_subscription_client_lists_the_subscription(sdk):
    with sdk.subscriptions() as client:
        subs = list(client.subscriptions.list())
        assert len(subs) == 1, [s.as_dict() for s in subs]
        sub = subs[0]
        assert sub.subscription_id == sdk.subscription_id
        assert sub.id == f"/subscriptions/{sdk.subscription_id}"
        assert sub.tenant_id == sdk.tenant_id
        assert sub.state == "Enabled"
        assert sub.display_name

        got = client.subscriptions.get(sdk.subscription_id)
        assert got.subscription_id == sdk.subscription_id
        assert got.display_name == sub.display_name
