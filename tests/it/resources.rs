//! Microsoft.Resources: subscriptions, tenants, locations, providers, resource groups, the
//! generic resource lists, and the cloud metadata endpoint.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

fn names(list: &Value) -> BTreeSet<String> {
    list["value"]
        .as_array()
        .unwrap_or_else(|| panic!("no value array in {list}"))
        .iter()
        .map(|v| v["name"].as_str().expect("name").to_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn subscriptions_and_tenants() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let sub = sub_id();
    let tenant = tenant_id();

    let (status, list) = app.get(&format!("/subscriptions?api-version={SUB_API}"), &token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let subs = list["value"].as_array().expect("value");
    assert_eq!(subs.len(), 1, "{list}");
    assert!(list.get("nextLink").is_none());
    let expected = json!({
        "id": format!("/subscriptions/{sub}"),
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": sub,
        "tenantId": tenant,
        "displayName": "armlet subscription",
        "state": "Enabled",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off",
        },
    });
    assert_eq!(subs[0], expected);

    let (status, got) = app.get(&format!("/subscriptions/{sub}?api-version={SUB_API}"), &token).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got, expected);
    // By id in upper case.
    let (status, got) = app.get(&format!("/subscriptions/{}?api-version={SUB_API}", sub.to_uppercase()), &token).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["subscriptionId"], sub);

    let (status, tenants) = app.get(&format!("/tenants?api-version={SUB_API}"), &token).await;
    assert_eq!(status, StatusCode::OK, "{tenants}");
    let tenants = tenants["value"].as_array().expect("value");
    assert_eq!(tenants.len(), 1);
    assert_eq!(tenants[0]["id"], format!("/tenants/{tenant}"));
    assert_eq!(tenants[0]["tenantId"], tenant);
    assert_eq!(tenants[0]["defaultDomain"], "armlet.onmicrosoft.com");
    assert_eq!(tenants[0]["domains"], json!(["armlet.onmicrosoft.com"]));
    assert_eq!(tenants[0]["displayName"], "armlet");
    assert_eq!(tenants[0]["tenantCategory"], "Home");
}

#[tokio::test]
async fn locations_include_the_sovereign_clouds() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let sub = sub_id();
    let (status, list) = app.get(&format!("/subscriptions/{sub}/locations?api-version={SUB_API}"), &token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert!(list.get("nextLink").is_none(), "locations come in one page");
    let items = list["value"].as_array().expect("value");
    assert_eq!(items.len(), armlet::fixtures::regions().len());
    let found = names(&list);
    for name in ["westus2", "eastus", "usdodcentral", "usdodeast", "usgoviowa", "chinaeast", "chinanorth"] {
        assert!(found.contains(name), "{name} missing");
    }
    let westus2 = items.iter().find(|l| l["name"] == "westus2").expect("westus2");
    assert_eq!(westus2["id"], format!("/subscriptions/{sub}/locations/westus2"));
    assert_eq!(westus2["type"], "Region");
    assert_eq!(westus2["displayName"], "West US 2");
    assert!(westus2["metadata"]["geography"].is_string(), "{westus2}");
    for paired in westus2["metadata"]["pairedRegion"].as_array().expect("pairedRegion") {
        let name = paired["name"].as_str().expect("paired name");
        assert!(found.contains(name), "paired region {name} is listed");
        assert_eq!(paired["id"], format!("/subscriptions/{sub}/locations/{name}"));
    }
}

async fn provider(app: &TestApp, token: &str, namespace: &str) -> (StatusCode, Value) {
    app.get(&format!("/subscriptions/{}/providers/{namespace}?api-version={RG_API}", sub_id()), token).await
}

async fn set_registration(app: &TestApp, token: &str, namespace: &str, action: &str) -> Value {
    let (status, _, body) = app
        .send(
            Method::POST,
            &format!("/subscriptions/{}/providers/{namespace}/{action}?api-version={RG_API}", sub_id()),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{action} {namespace}: {body}");
    body
}

#[tokio::test]
async fn providers_list_get_register_and_unregister() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let sub = sub_id();

    let (status, list) = app.get(&format!("/subscriptions/{sub}/providers?api-version={RG_API}"), &token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let namespaces: BTreeSet<String> = list["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|p| p["namespace"].as_str().expect("namespace").to_owned())
        .collect();
    for ns in
        ["Microsoft.Resources", "Microsoft.ContainerService", "Microsoft.ManagedIdentity", "Microsoft.Authorization"]
    {
        assert!(namespaces.contains(ns), "{ns} missing from {namespaces:?}");
    }
    for p in list["value"].as_array().expect("value") {
        assert_eq!(p["registrationState"], "Registered", "{}", p["namespace"]);
    }

    let (status, resources) = provider(&app, &token, "Microsoft.Resources").await;
    assert_eq!(status, StatusCode::OK, "{resources}");
    assert_eq!(resources["id"], format!("/subscriptions/{sub}/providers/Microsoft.Resources"));
    assert_eq!(resources["registrationPolicy"], "RegistrationFree");
    let group_type = resources["resourceTypes"]
        .as_array()
        .expect("resourceTypes")
        .iter()
        .find(|t| t["resourceType"] == "resourceGroups")
        .expect("resourceGroups type");
    assert!(group_type["apiVersions"].as_array().expect("apiVersions").contains(&json!(RG_API)));

    // Namespaces match case-insensitively and answer in ARM's casing.
    let (status, aks) = provider(&app, &token, "microsoft.containerservice").await;
    assert_eq!(status, StatusCode::OK, "{aks}");
    assert_eq!(aks["namespace"], "Microsoft.ContainerService");
    assert_eq!(aks["registrationState"], "Registered");
    assert_eq!(aks["registrationPolicy"], "RegistrationRequired");

    let body = set_registration(&app, &token, "Microsoft.ContainerService", "unregister").await;
    assert_eq!(body["namespace"], "Microsoft.ContainerService");
    assert_eq!(body["registrationState"], "NotRegistered");
    let (_, aks) = provider(&app, &token, "Microsoft.ContainerService").await;
    assert_eq!(aks["registrationState"], "NotRegistered");
    let (_, list) = app.get(&format!("/subscriptions/{sub}/providers?api-version={RG_API}"), &token).await;
    let listed = list["value"]
        .as_array()
        .expect("value")
        .iter()
        .find(|p| p["namespace"] == "Microsoft.ContainerService")
        .expect("listed");
    assert_eq!(listed["registrationState"], "NotRegistered");
    // Unregistering twice keeps it unregistered; registering flips it back.
    let body = set_registration(&app, &token, "MICROSOFT.CONTAINERSERVICE", "unregister").await;
    assert_eq!(body["registrationState"], "NotRegistered");
    let body = set_registration(&app, &token, "Microsoft.ContainerService", "register").await;
    assert_eq!(body["registrationState"], "Registered");
    let (_, aks) = provider(&app, &token, "Microsoft.ContainerService").await;
    assert_eq!(aks["registrationState"], "Registered");

    // ARM's own namespace cannot be unregistered.
    let body = set_registration(&app, &token, "Microsoft.Resources", "unregister").await;
    assert_eq!(body["registrationState"], "Registered");

    let (status, body) = provider(&app, &token, "Microsoft.Nope").await;
    let message = assert_arm_error(status, &body, StatusCode::NOT_FOUND, "InvalidResourceNamespace");
    assert_eq!(message, "The resource namespace 'Microsoft.Nope' is invalid.");
    let (status, _, body) = app
        .send(
            Method::POST,
            &format!("/subscriptions/{sub}/providers/Microsoft.Nope/register?api-version={RG_API}"),
            Some(&token),
            None,
        )
        .await;
    assert_arm_error(status, &body, StatusCode::NOT_FOUND, "InvalidResourceNamespace");
}

#[tokio::test]
async fn providers_at_tenant_scope() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let (status, list) = app.get(&format!("/providers?api-version={RG_API}"), &token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let all = list["value"].as_array().expect("value");
    assert_eq!(all.len(), armlet::fixtures::providers().len());
    let (status, one) = app.get(&format!("/providers/Microsoft.ManagedIdentity?api-version={RG_API}"), &token).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["id"], "/providers/Microsoft.ManagedIdentity");
    assert_eq!(one["namespace"], "Microsoft.ManagedIdentity");
    assert!(one.get("registrationState").is_none(), "{one}");
    assert!(
        one["resourceTypes"]
            .as_array()
            .expect("resourceTypes")
            .iter()
            .any(|t| t["resourceType"] == "userAssignedIdentities")
    );
}

#[tokio::test]
async fn resource_group_crud() {
    let app = TestApp::new().await;
    let token = app.token().await;

    let (status, _, created) = app
        .send(
            Method::PUT,
            &group_uri("crud"),
            Some(&token),
            Some(json!({ "location": "eastus", "tags": { "env": "dev", "team": "a" }, "managedBy": "someone" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created,
        json!({
            "id": group_id("crud"),
            "name": "crud",
            "type": "Microsoft.Resources/resourceGroups",
            "location": "eastus",
            "properties": { "provisioningState": "Succeeded" },
            "tags": { "env": "dev", "team": "a" },
            "managedBy": "someone",
        })
    );
    let (status, got) = app.get(&group_uri("crud"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, created);

    // HEAD: 204 or 404, never a body.
    let (status, headers, body) = app.send(Method::HEAD, &group_uri("CRUD"), Some(&token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
    assert!(header_str(&headers, "x-ms-request-id").is_some());
    let (status, _, body) = app.send(Method::HEAD, &group_uri("absent"), Some(&token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, Value::Null);
    // Even HEAD errors carry no body.
    let (status, _, body) = app.send(Method::HEAD, &group_uri("crud"), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, Value::Null);

    // PATCH replaces the tags and leaves everything else.
    let (status, _, patched) =
        app.send(Method::PATCH, &group_uri("crud"), Some(&token), Some(json!({ "tags": { "env": "prod" } }))).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["tags"], json!({ "env": "prod" }));
    assert_eq!(patched["location"], "eastus");
    assert_eq!(patched["managedBy"], "someone");
    let (_, got) = app.get(&group_uri("crud"), &token).await;
    assert_eq!(got, patched);
    // An empty PATCH changes nothing.
    let (status, _, same) = app.send(Method::PATCH, &group_uri("crud"), Some(&token), Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(same, patched);
    let (status, _, body) =
        app.send(Method::PATCH, &group_uri("absent"), Some(&token), Some(json!({ "tags": {} }))).await;
    assert_arm_error(status, &body, StatusCode::NOT_FOUND, "ResourceGroupNotFound");
    let (status, _, body) =
        app.send(Method::PATCH, &group_uri("crud"), Some(&token), Some(json!({ "tags": { "n": 1 } }))).await;
    assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "InvalidRequestContent");

    // A PUT replaces the group: tags it does not give are gone.
    let (status, replaced) = app.put_group(&token, "crud", "eastus").await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert!(replaced.get("tags").is_none(), "{replaced}");

    let (status, headers, _) = app.send(Method::DELETE, &group_uri("crud"), Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let location = header_str(&headers, "location").expect("Location");
    let (status, _, _) = app.send(Method::GET, &path_of(location), Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = app.send(Method::HEAD, &group_uri("crud"), Some(&token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn resource_groups_filter_by_tag() {
    let app = TestApp::new().await;
    let token = app.token().await;
    for (name, tags) in [
        ("prod-a", json!({ "env": "prod" })),
        ("dev-b", json!({ "env": "dev" })),
        ("untagged", json!(null)),
        ("other", json!({ "owner": "prod" })),
        ("prod-c", json!({ "Env": "prod", "x": "y" })),
    ] {
        let mut body = json!({ "location": "westus2" });
        if !tags.is_null() {
            body["tags"] = tags;
        }
        let (status, _, resp) = app.send(Method::PUT, &group_uri(name), Some(&token), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{resp}");
    }
    let (app_ref, token_ref) = (&app, token.as_str());
    let list = move |filter: &str| {
        let uri = format!(
            "/subscriptions/{}/resourcegroups?api-version={RG_API}&$filter={}",
            sub_id(),
            percent_encoding::utf8_percent_encode(filter, percent_encoding::NON_ALPHANUMERIC)
        );
        async move { app_ref.get(&uri, token_ref).await }
    };
    let (status, body) = list("tagName eq 'env' and tagValue eq 'prod'").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(names(&body), set(&["prod-a", "prod-c"]));
    let (status, body) = list("tagName eq 'env'").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(names(&body), set(&["prod-a", "prod-c", "dev-b"]));
    let (status, body) = list("tagname eq 'owner' AND tagvalue eq 'prod'").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(names(&body), set(&["other"]));
    let (status, body) = list("tagName eq 'nobody'").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(names(&body), set(&[]));

    for bad in ["location eq 'westus2'", "garbage", "tagName eq unquoted"] {
        let (status, body) = list(bad).await;
        let message = assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "InvalidFilterInQueryString");
        assert_eq!(message, format!("Invalid $filter '{bad}' specified in the query string."));
    }
}

fn tracked(group: &str, ty: &str, name: &str, tags: Value) -> (String, Value) {
    let id = format!("{}/providers/{ty}/{name}", group_id(group));
    let mut value = json!({
        "id": id,
        "name": name,
        "type": ty,
        "location": "westus2",
        "properties": { "secret": "not listed" },
    });
    if !tags.is_null() {
        value["tags"] = tags;
    }
    (id, value)
}

#[tokio::test]
async fn generic_resources_list_tracked_top_level_resources_with_filters() {
    let app = TestApp::new().await;
    let token = app.token().await;
    for group in ["rg1", "rg2", "empty"] {
        let (status, body) = app.put_group(&token, group, "westus2").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let resources = [
        tracked("rg1", "Microsoft.Fake/widgets", "w1", json!({ "env": "prod" })),
        tracked("rg1", "Microsoft.Fake/widgets", "w2", json!(null)),
        tracked("rg2", "Microsoft.Fake/widgets", "w3", json!(null)),
        tracked("rg2", "Microsoft.Other/gadgets", "g1", json!({ "env": "dev" })),
    ];
    for (id, value) in &resources {
        app.put_raw_resource(id, value).await;
    }
    // Not listed: a child resource and an untracked (location-less) one.
    let child = format!("{}/parts/p1", resources[0].0);
    app.put_raw_resource(
        &child,
        &json!({ "id": child, "name": "p1", "type": "Microsoft.Fake/widgets/parts", "location": "westus2" }),
    )
    .await;
    let untracked = format!("{}/providers/Microsoft.Fake/settings/s1", group_id("rg1"));
    app.put_raw_resource(&untracked, &json!({ "id": untracked, "name": "s1", "type": "Microsoft.Fake/settings" }))
        .await;

    let sub = sub_id();
    let query = |path: &str, filter: Option<&str>| {
        let mut uri = format!("/subscriptions/{sub}{path}?api-version={RG_API}");
        if let Some(f) = filter {
            uri.push_str("&$filter=");
            uri.push_str(&percent_encoding::utf8_percent_encode(f, percent_encoding::NON_ALPHANUMERIC).to_string());
        }
        uri
    };

    let (status, all) = app.get(&query("/resources", None), &token).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(names(&all), set(&["w1", "w2", "w3", "g1"]));
    let w1 = all["value"].as_array().expect("value").iter().find(|r| r["name"] == "w1").expect("w1");
    assert_eq!(
        *w1,
        json!({
            "id": resources[0].0,
            "name": "w1",
            "type": "Microsoft.Fake/widgets",
            "location": "westus2",
            "tags": { "env": "prod" },
        }),
        "the list shows the envelope, not properties"
    );

    let (status, widgets) =
        app.get(&query("/resources", Some("resourceType eq 'Microsoft.Fake/widgets'")), &token).await;
    assert_eq!(status, StatusCode::OK, "{widgets}");
    assert_eq!(names(&widgets), set(&["w1", "w2", "w3"]));
    for item in widgets["value"].as_array().expect("value") {
        assert_eq!(item["type"], "Microsoft.Fake/widgets");
    }
    let (status, body) = app.get(&query("/resources", Some("resourcetype eq 'microsoft.other/GADGETS'")), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(names(&body), set(&["g1"]));
    let (status, body) =
        app.get(&query("/resources", Some("resourceType eq 'Microsoft.Fake/widgets' and name eq 'w3'")), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(names(&body), set(&["w3"]));
    let (status, body) = app.get(&query("/resources", Some("tagName eq 'env' and tagValue eq 'dev'")), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(names(&body), set(&["g1"]));

    let (status, rg2) = app.get(&query("/resourceGroups/rg2/resources", None), &token).await;
    assert_eq!(status, StatusCode::OK, "{rg2}");
    assert_eq!(names(&rg2), set(&["w3", "g1"]));
    let (status, body) = app
        .get(&query("/resourcegroups/RG1/resources", Some("resourceType eq 'Microsoft.Fake/widgets'")), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(names(&body), set(&["w1", "w2"]));
    let (status, body) = app.get(&query("/resourcegroups/empty/resources", None), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["value"], json!([]));

    let (status, body) = app.get(&query("/resources", Some("atScope()")), &token).await;
    assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "InvalidFilterInQueryString");
}

#[tokio::test]
async fn cloud_metadata_endpoints() {
    let app = TestApp::new().await;

    let (status, cloud) = app.get_public("/metadata/endpoints?api-version=2022-09-01").await;
    assert_eq!(status, StatusCode::OK, "{cloud}");
    assert!(cloud.is_object(), "{cloud}");
    let base = format!("https://{HOST}/");
    assert_eq!(cloud["name"], "armlet");
    assert_eq!(cloud["resourceManager"], base);
    assert_eq!(cloud["authentication"]["loginEndpoint"], base);
    assert_eq!(cloud["authentication"]["audiences"], json!([base]));
    assert_eq!(cloud["authentication"]["tenant"], "common");

    let (status, old) = app.get_public("/metadata/endpoints?api-version=2019-05-01").await;
    assert_eq!(status, StatusCode::OK, "{old}");
    assert_eq!(old, json!([cloud.clone()]), "older versions answer an array");

    let (status, doubled) = app.get_public("//metadata/endpoints?api-version=2019-05-01").await;
    assert_eq!(status, StatusCode::OK, "{doubled}");
    assert_eq!(doubled, old, "a doubled slash is accepted");

    // Clients that reach armlet as localhost get localhost URLs (on the HTTPS port).
    let (status, _, local) = app
        .send_raw(
            Method::GET,
            "/metadata/endpoints?api-version=2022-09-01",
            None,
            &[("host", "localhost:8080")],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{local}");
    assert_eq!(local["resourceManager"], "https://localhost:8443/");
}

#[tokio::test]
async fn generic_resources_tag_value_belongs_to_the_named_tag() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let (status, body) = app.put_group(&token, "rg1", "westus2").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for (name, tags) in [
        ("dev", json!({ "env": "dev" })),
        ("prod", json!({ "env": "prod", "owner": "dev" })),
        ("ownerless", json!({ "owner": "dev" })),
    ] {
        let (id, value) = tracked("rg1", "Microsoft.Fake/widgets", name, tags);
        app.put_raw_resource(&id, &value).await;
    }
    let uri = |filter: &str| {
        format!(
            "/subscriptions/{}/resources?api-version={RG_API}&$filter={}",
            sub_id(),
            percent_encoding::utf8_percent_encode(filter, percent_encoding::NON_ALPHANUMERIC)
        )
    };
    // As for resource groups: the value of the tag tagName names, not of any tag.
    let (status, body) = app.get(&uri("tagName eq 'env' and tagValue eq 'dev'"), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(names(&body), set(&["dev"]), "'prod' has env=prod (and owner=dev): it does not have env=dev");
    let (status, body) = app.get(&uri("tagName eq 'owner' and tagValue eq 'dev'"), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(names(&body), set(&["prod", "ownerless"]));
}
