//! Requests that really overlap (a multi-threaded runtime, every request its own task, all
//! released together): no update is lost, nothing is created twice, optimistic concurrency
//! lets exactly one writer through, and a long-running operation completes once however
//! many pollers race to settle it. The races that matter most run on the in-memory store
//! and on a real sled store, whose writers share flushes.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;

use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::common::*;

const MI_API: &str = "2026-05-31";
const RA_API: &str = "2022-04-01";
const AKS_API: &str = "2026-06-01";
const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
/// Reader, Contributor, Managed Identity Operator and Contributor, Network Contributor,
/// AcrPull, AcrPush, AcrDelete: one principal can hold each once per scope.
const ROLES: [&str; 8] = [
    READER,
    "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "f1a07417-d97a-45cb-824c-7a7467783830",
    "e40ec5ca-96e0-45a2-b4ff-59039f2c2b59",
    "4d97b98b-1d4f-4787-a291-c67834d212e7",
    "7f951dda-4ed3-4680-a7ca-43fe172d538d",
    "8311e382-0749-4cb8-b61a-304f252e45ec",
    "c2f4ef07-c644-48eb-af81-4b1b4947fb11",
];

/// Runs `n` copies of `f` as separate tasks, released at the same moment; results in index order.
async fn together<T, Fut>(n: usize, f: impl Fn(usize) -> Fut) -> Vec<T>
where
    T: Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            let work = f(i);
            tokio::spawn(async move {
                barrier.wait().await;
                work.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for task in tasks {
        out.push(task.await.expect("a concurrent request panicked"));
    }
    out
}

fn identity_uri(group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}?api-version={MI_API}",
        sub_id()
    )
}

fn role_definition_id(role: &str) -> String {
    format!("/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{role}", sub_id())
}

fn assignment_uri(scope: &str, name: &str) -> String {
    format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version={RA_API}")
}

fn assignment_body(role: &str, principal: &str) -> Value {
    json!({ "properties": {
        "roleDefinitionId": role_definition_id(role),
        "principalId": principal,
        "principalType": "ServicePrincipal",
    }})
}

fn cluster_uri(group: &str, name: &str, tail: &str) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{group}/providers/Microsoft.ContainerService/managedClusters/{name}{tail}?api-version={AKS_API}",
        sub_id()
    )
}

async fn new_group(app: &TestApp, token: &str, name: &str) {
    let (status, body) = app.put_group(token, name, "westus2").await;
    assert!(status == StatusCode::CREATED || status == StatusCode::OK, "group {name}: {body}");
}

async fn new_identity(app: &TestApp, token: &str, group: &str, name: &str) -> Value {
    let (status, _, body) =
        app.send(Method::PUT, &identity_uri(group, name), Some(token), Some(json!({ "location": "westus2" }))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// Every role assignment in the default subscription (at, above and below it).
async fn all_assignments(app: &TestApp, token: &str) -> Vec<Value> {
    let uri = format!(
        "/subscriptions/{}/providers/Microsoft.Authorization/roleAssignments?api-version={RA_API}&$top=1000",
        sub_id()
    );
    let (status, body) = app.get(&uri, token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("nextLink").is_none(), "more than one page: {body}");
    body["value"].as_array().expect("value").clone()
}

/// The service principals that stand for the resource `id`.
async fn principals_for(app: &TestApp, token: &str, id: &str) -> Vec<Value> {
    let (status, body) = app.get("/v1.0/servicePrincipals?$top=999", token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("@odata.nextLink").is_none(), "more than one page: {body}");
    body["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter(|sp| {
            sp["alternativeNames"]
                .as_array()
                .is_some_and(|names| names.iter().any(|n| n.as_str().is_some_and(|n| n.eq_ignore_ascii_case(id))))
        })
        .cloned()
        .collect()
}

fn tags_of(resource: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(resource["tags"].clone()).unwrap_or_default()
}

// ---- (a) no lost updates, no mixed writes ----

/// Rounds of concurrent PATCHes: one writer moves `isolationScope`, the others each replace
/// the tags with their own. ARM's PATCH replaces the tag dictionary, so the tags end as
/// exactly one writer's; the scope writer's change must survive every tag writer.
async fn identity_patches_lose_nothing(app: Arc<TestApp>) {
    let token = app.token().await;
    new_group(&app, &token, "conc-patch").await;
    let created = new_identity(&app, &token, "conc-patch", "patched").await;
    let writers = 24;
    for round in 0..4 {
        let scope = if round % 2 == 0 { "Regional" } else { "None" };
        let bodies: Vec<Value> = (0..writers)
            .map(|i| {
                if i == 5 {
                    json!({ "properties": { "isolationScope": scope } })
                } else {
                    json!({ "tags": { format!("r{round}-w{i}"): format!("{i}"), "round": format!("{round}") } })
                }
            })
            .collect();
        let answers =
            together(writers, |i| {
                let (app, token, body) = (Arc::clone(&app), token.clone(), bodies[i].clone());
                async move {
                    app.send(Method::PATCH, &identity_uri("conc-patch", "patched"), Some(&token), Some(body)).await
                }
            })
            .await;
        for (i, (status, _, body)) in answers.iter().enumerate() {
            assert_eq!(*status, StatusCode::OK, "round {round}, writer {i}: {body}");
            if let Some(tags) = bodies[i].get("tags") {
                assert_eq!(&body["tags"], tags, "writer {i} is answered with its own write");
            } else {
                assert_eq!(body["properties"]["isolationScope"], scope, "{body}");
            }
        }
        let (status, now) = app.get(&identity_uri("conc-patch", "patched"), &token).await;
        assert_eq!(status, StatusCode::OK, "{now}");
        assert_eq!(now["properties"]["isolationScope"], scope, "round {round}: the scope update was lost: {now}");
        assert!(
            bodies.iter().any(|b| b.get("tags") == Some(&now["tags"])),
            "round {round}: the tags are no single writer's: {}",
            now["tags"]
        );
        for field in ["principalId", "clientId", "tenantId"] {
            assert_eq!(now["properties"][field], created["properties"][field], "{field} changed: {now}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_of_an_identity_lose_no_update() {
    identity_patches_lose_nothing(Arc::new(TestApp::new().await)).await;
}

/// Concurrent PUTs of one new identity: exactly one creates it (201, one service principal),
/// the rest update it (200, the same principal), and what remains is one writer's body whole.
async fn identity_puts_never_mix(app: Arc<TestApp>) {
    let token = app.token().await;
    new_group(&app, &token, "conc-put").await;
    let writers = 16;
    let bodies: Vec<Value> = (0..writers)
        .map(|i| {
            json!({
                "location": "westus2",
                "tags": { "writer": format!("{i}"), format!("only-{i}"): "yes" },
                "properties": { "isolationScope": if i % 2 == 0 { "None" } else { "Regional" } },
            })
        })
        .collect();
    let answers = together(writers, |i| {
        let (app, token, body) = (Arc::clone(&app), token.clone(), bodies[i].clone());
        async move { app.send(Method::PUT, &identity_uri("conc-put", "contested"), Some(&token), Some(body)).await }
    })
    .await;
    let created: Vec<usize> = (0..writers).filter(|i| answers[*i].0 == StatusCode::CREATED).collect();
    assert_eq!(
        created.len(),
        1,
        "exactly one PUT creates the identity: {:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    let principal = answers[created[0]].2["properties"]["principalId"].clone();
    for (i, (status, _, body)) in answers.iter().enumerate() {
        assert!(*status == StatusCode::CREATED || *status == StatusCode::OK, "writer {i}: {body}");
        assert_eq!(body["properties"]["principalId"], principal, "writer {i} saw another principal: {body}");
        assert_eq!(body["tags"], bodies[i]["tags"], "writer {i}: {body}");
    }
    let (status, now) = app.get(&identity_uri("conc-put", "contested"), &token).await;
    assert_eq!(status, StatusCode::OK, "{now}");
    let winner = bodies.iter().position(|b| b["tags"] == now["tags"]).unwrap_or_else(|| panic!("tags mixed: {now}"));
    assert_eq!(
        now["properties"]["isolationScope"], bodies[winner]["properties"]["isolationScope"],
        "tags of writer {winner} with another writer's properties: {now}"
    );
    assert_eq!(now["properties"]["principalId"], principal);
    let id = now["id"].as_str().expect("id");
    let sps = principals_for(&app, &token, id).await;
    assert_eq!(sps.len(), 1, "one service principal for the identity: {sps:?}");
    assert_eq!(sps[0]["id"], principal);
    assert_eq!(sps[0]["appId"], now["properties"]["clientId"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_puts_of_an_identity_never_mix_bodies() {
    identity_puts_never_mix(Arc::new(TestApp::new().await)).await;
}

// ---- (b) one role assignment per principal, role and scope ----

/// The same assignment created concurrently, under one name and under many.
async fn role_assignment_races(app: Arc<TestApp>) {
    let token = app.token().await;
    new_group(&app, &token, "conc-ra").await;
    let scope = group_id("conc-ra");
    let writers = 16;

    // One name: ARM treats repeats as idempotent, every writer gets the one assignment.
    let first = new_identity(&app, &token, "conc-ra", "same-name").await;
    let principal = first["properties"]["principalId"].as_str().expect("principalId").to_owned();
    let name = uuid::Uuid::new_v4().to_string();
    let answers = together(writers, |_| {
        let (app, token, uri) = (Arc::clone(&app), token.clone(), assignment_uri(&scope, &name));
        let body = assignment_body(READER, &principal);
        async move { app.send(Method::PUT, &uri, Some(&token), Some(body)).await }
    })
    .await;
    for (i, (status, _, body)) in answers.iter().enumerate() {
        assert_eq!(*status, StatusCode::CREATED, "writer {i}: {body}");
        assert_eq!(body, &answers[0].2, "writer {i} got another assignment");
    }
    let mine: Vec<Value> = all_assignments(&app, &token)
        .await
        .into_iter()
        .filter(|a| a["properties"]["principalId"].as_str() == Some(principal.as_str()))
        .collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["name"], name.as_str());

    // Many names: one wins, the rest get RoleAssignmentExists naming the winner.
    let second = new_identity(&app, &token, "conc-ra", "many-names").await;
    let principal = second["properties"]["principalId"].as_str().expect("principalId").to_owned();
    let names: Vec<String> = (0..writers).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let answers = together(writers, |i| {
        let (app, token, uri) = (Arc::clone(&app), token.clone(), assignment_uri(&scope, &names[i]));
        let body = assignment_body(READER, &principal);
        async move { app.send(Method::PUT, &uri, Some(&token), Some(body)).await }
    })
    .await;
    let winners: Vec<usize> = (0..writers).filter(|i| answers[*i].0 == StatusCode::CREATED).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one assignment is made: {:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    let winner = &answers[winners[0]].2;
    assert_eq!(winner["name"], names[winners[0]].as_str());
    for (i, (status, _, body)) in answers.iter().enumerate() {
        if i == winners[0] {
            continue;
        }
        assert_arm_error(*status, body, StatusCode::CONFLICT, "RoleAssignmentExists");
        assert_eq!(body["error"]["target"], winner["id"], "the conflict names the assignment that exists: {body}");
        let (status, body) = app.get(&assignment_uri(&scope, &names[i]), &token).await;
        assert_arm_error(status, &body, StatusCode::NOT_FOUND, "RoleAssignmentNotFound");
    }
    let mine: Vec<Value> = all_assignments(&app, &token)
        .await
        .into_iter()
        .filter(|a| a["properties"]["principalId"].as_str() == Some(principal.as_str()))
        .collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(&mine[0], winner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creation_of_one_role_assignment_makes_exactly_one() {
    role_assignment_races(Arc::new(TestApp::new().await)).await;
}

/// Role assignments created for a principal while its identity is deleted: each one either
/// lands before the deletion (which then removes it) or is refused with PrincipalNotFound;
/// none outlives the principal.
async fn assignments_never_outlive_their_principal(app: Arc<TestApp>) {
    let token = app.token().await;
    new_group(&app, &token, "conc-orphan").await;
    let scope = group_id("conc-orphan");
    for attempt in 0..12 {
        let name = format!("vanishing-{attempt}");
        let identity = new_identity(&app, &token, "conc-orphan", &name).await;
        let principal = identity["properties"]["principalId"].as_str().expect("principalId").to_owned();
        let answers = together(ROLES.len() + 1, |i| {
            let (app, token) = (Arc::clone(&app), token.clone());
            let request = if i == ROLES.len() {
                (Method::DELETE, identity_uri("conc-orphan", &name), None)
            } else {
                let uri = assignment_uri(&scope, &uuid::Uuid::new_v4().to_string());
                (Method::PUT, uri, Some(assignment_body(ROLES[i], &principal)))
            };
            async move { app.send(request.0, &request.1, Some(&token), request.2).await }
        })
        .await;
        for (i, (status, _, body)) in answers.iter().enumerate() {
            match i {
                i if i == ROLES.len() => assert_eq!(*status, StatusCode::OK, "delete: {body}"),
                _ if *status == StatusCode::CREATED => {}
                _ => {
                    assert_arm_error(*status, body, StatusCode::BAD_REQUEST, "PrincipalNotFound");
                }
            }
        }
        let left: Vec<Value> = all_assignments(&app, &token)
            .await
            .into_iter()
            .filter(|a| a["properties"]["principalId"].as_str() == Some(principal.as_str()))
            .collect();
        assert!(left.is_empty(), "attempt {attempt}: assignments for a deleted principal: {left:?}");
        let (status, body) = app.get(&format!("/v1.0/servicePrincipals/{principal}"), &token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn role_assignments_racing_the_deletion_of_their_principal_leave_none_behind() {
    assignments_never_outlive_their_principal(Arc::new(TestApp::new().await)).await;
}

// ---- (c) ETags: one writer per version ----

async fn create_cluster(app: &TestApp, token: &str, group: &str, name: &str) -> Value {
    new_group(app, token, group).await;
    let body = json!({
        "location": "westus2",
        "identity": { "type": "SystemAssigned" },
        "properties": {
            "dnsPrefix": name,
            "agentPoolProfiles": [{ "name": "nodepool1", "count": 2, "mode": "System", "osType": "Linux" }],
        },
    });
    let (status, headers, created) =
        app.send(Method::PUT, &cluster_uri(group, name, ""), Some(token), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    wait_for(app, token, header_str(&headers, "azure-asyncoperation").expect("Azure-AsyncOperation")).await;
    let (status, cluster) = app.get(&cluster_uri(group, name, ""), token).await;
    assert_eq!(status, StatusCode::OK, "{cluster}");
    assert_eq!(cluster["properties"]["provisioningState"], "Succeeded", "{cluster}");
    cluster
}

/// Polls an `Azure-AsyncOperation` URL (each poll settles what is due) until it succeeds.
async fn wait_for(app: &TestApp, token: &str, url: &str) {
    for _ in 0..20 {
        let (status, body) = app.get(&path_of(url), token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        match body["status"].as_str() {
            Some("Succeeded") => return,
            Some("InProgress") => continue,
            _ => panic!("operation ended badly: {body}"),
        }
    }
    panic!("operation {url} never finished");
}

async fn send_if_match(
    app: &TestApp,
    method: Method,
    uri: &str,
    token: &str,
    etag: &str,
    body: &Value,
) -> (StatusCode, HeaderMap, Value) {
    app.send_raw(
        method,
        uri,
        Some(token),
        &[("content-type", "application/json"), ("if-match", etag)],
        serde_json::to_vec(body).expect("body"),
    )
    .await
}

/// Of `answers`, the index of the one success; every other is 412 PreconditionFailed.
fn one_winner(what: &str, answers: &[(StatusCode, HeaderMap, Value)]) -> usize {
    let winners: Vec<usize> = (0..answers.len()).filter(|i| answers[*i].0.is_success()).collect();
    assert_eq!(
        winners.len(),
        1,
        "{what}: exactly one writer wins: {:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    for (i, (status, _, body)) in answers.iter().enumerate() {
        if i != winners[0] {
            assert_arm_error(*status, body, StatusCode::PRECONDITION_FAILED, "PreconditionFailed");
        }
    }
    winners[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_with_the_same_if_match_have_exactly_one_winner() {
    let app = Arc::new(TestApp::new().await);
    let token = app.token().await;
    create_cluster(&app, &token, "conc-etag", "c1").await;
    let writers = 12;

    // Agent pool: PUTs scaling to different counts.
    let pool_uri = cluster_uri("conc-etag", "c1", "/agentPools/nodepool1");
    let (status, pool) = app.get(&pool_uri, &token).await;
    assert_eq!(status, StatusCode::OK, "{pool}");
    let etag = format!("\"{}\"", pool["properties"]["eTag"].as_str().expect("pool eTag"));
    let answers = together(writers, |i| {
        let (app, token, uri, etag) = (Arc::clone(&app), token.clone(), pool_uri.clone(), etag.clone());
        let body = json!({ "properties": { "count": 3 + i, "mode": "System" } });
        async move { send_if_match(&app, Method::PUT, &uri, &token, &etag, &body).await }
    })
    .await;
    let winner = one_winner("agent pool PUT", &answers);
    assert_eq!(answers[winner].0, StatusCode::OK);
    assert_eq!(answers[winner].2["properties"]["count"], 3 + winner);
    assert_ne!(answers[winner].2["properties"]["eTag"], pool["properties"]["eTag"], "a write makes a new ETag");
    let status_url = header_str(&answers[winner].1, "azure-asyncoperation").expect("Azure-AsyncOperation");
    wait_for(&app, &token, status_url).await;
    let (status, pool_done) = app.get(&pool_uri, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pool_done["properties"]["count"], 3 + winner, "the winner's count: {pool_done}");
    assert_eq!(pool_done["properties"]["provisioningState"], "Succeeded", "{pool_done}");

    // Cluster tags (synchronous PATCH).
    let (_, fresh) = app.get(&cluster_uri("conc-etag", "c1", ""), &token).await;
    let etag = format!("\"{}\"", fresh["eTag"].as_str().expect("cluster eTag"));
    let answers =
        together(writers, |i| {
            let (app, token, etag) = (Arc::clone(&app), token.clone(), etag.clone());
            let body = json!({ "tags": { "writer": format!("{i}") } });
            async move {
                send_if_match(&app, Method::PATCH, &cluster_uri("conc-etag", "c1", ""), &token, &etag, &body).await
            }
        })
        .await;
    let winner = one_winner("cluster tags PATCH", &answers);
    let (_, now) = app.get(&cluster_uri("conc-etag", "c1", ""), &token).await;
    assert_eq!(now["tags"], json!({ "writer": format!("{winner}") }));
    assert_eq!(now["eTag"], answers[winner].2["eTag"], "the stored ETag is the winner's");

    // Cluster PUT: every writer echoes the cluster with its own tag.
    let etag = format!("\"{}\"", now["eTag"].as_str().expect("eTag"));
    let answers = together(writers, |i| {
        let (app, token, etag) = (Arc::clone(&app), token.clone(), etag.clone());
        let mut body = now.clone();
        body["tags"] = json!({ "put-by": format!("{i}") });
        async move { send_if_match(&app, Method::PUT, &cluster_uri("conc-etag", "c1", ""), &token, &etag, &body).await }
    })
    .await;
    let winner = one_winner("cluster PUT", &answers);
    let (_, after) = app.get(&cluster_uri("conc-etag", "c1", ""), &token).await;
    assert_eq!(after["tags"], json!({ "put-by": format!("{winner}") }), "{after}");
    assert_eq!(after["eTag"], answers[winner].2["eTag"]);
}

/// Each writer adds its own tag with a read-modify-write guarded by `If-Match`, retrying on
/// 412: every tag is there at the end (optimistic concurrency loses nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_modify_write_with_if_match_loses_no_tag() {
    let app = Arc::new(TestApp::new().await);
    let token = app.token().await;
    create_cluster(&app, &token, "conc-rmw", "c1").await;
    let writers = 16;
    let retries = together(writers, |i| {
        let (app, token) = (Arc::clone(&app), token.clone());
        async move {
            let uri = cluster_uri("conc-rmw", "c1", "");
            for attempt in 0..500 {
                let (status, current) = app.get(&uri, &token).await;
                assert_eq!(status, StatusCode::OK, "{current}");
                let mut tags = current["tags"].as_object().cloned().unwrap_or_default();
                tags.insert(format!("writer-{i}"), json!("here"));
                let etag = format!("\"{}\"", current["eTag"].as_str().expect("eTag"));
                let (status, _, body) =
                    send_if_match(&app, Method::PATCH, &uri, &token, &etag, &json!({ "tags": tags })).await;
                match status {
                    StatusCode::OK => return attempt,
                    StatusCode::PRECONDITION_FAILED => continue,
                    _ => panic!("writer {i}: {status} {body}"),
                }
            }
            panic!("writer {i} never got its tag in");
        }
    })
    .await;
    let (_, now) = app.get(&cluster_uri("conc-rmw", "c1", ""), &token).await;
    let tags: BTreeSet<String> = tags_of(&now).into_keys().collect();
    let expected: BTreeSet<String> = (0..writers).map(|i| format!("writer-{i}")).collect();
    assert_eq!(tags, expected, "every writer's tag (retries: {retries:?})");
}

// ---- long-running operations complete once ----

/// A resource group deletion polled by many clients at once (each poll settles due
/// operations) while another client re-creates the group as soon as ARM lets it: the
/// deletion completes exactly once, and the re-created group, acknowledged after it, stays.
async fn deletion_completes_once(app: Arc<TestApp>) {
    let token = app.token().await;
    for attempt in 0..20 {
        let name = format!("conc-lro-{attempt}");
        new_group(&app, &token, &name).await;
        new_identity(&app, &token, &name, "inside").await;
        let (status, headers, body) = app.send(Method::DELETE, &group_uri(&name), Some(&token), None).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let location = path_of(header_str(&headers, "location").expect("Location"));
        let pollers = 12;
        let answers = together(pollers + 1, |i| {
            let (app, token, location, name) = (Arc::clone(&app), token.clone(), location.clone(), name.clone());
            async move {
                if i < pollers {
                    let (status, body) = app.get(&location, &token).await;
                    assert!(status == StatusCode::OK || status == StatusCode::ACCEPTED, "poll: {status} {body}");
                    return None;
                }
                // The re-creator: 409 ResourceGroupBeingDeleted until the deletion is done.
                for _ in 0..1000 {
                    let (status, body) = app.put_group(&token, &name, "westus2").await;
                    match status {
                        StatusCode::CREATED => return Some(body),
                        StatusCode::CONFLICT => {
                            assert_eq!(body["error"]["code"], "ResourceGroupBeingDeleted", "{body}");
                            let _ = app.get(&location, &token).await;
                        }
                        _ => panic!("re-create: {status} {body}"),
                    }
                }
                panic!("the group was never deleted");
            }
        })
        .await;
        assert!(answers[pollers].is_some());
        // Whatever else is still due settles now; the re-created group must not go with it.
        let (status, _) = app.get(&location, &token).await;
        assert_eq!(status, StatusCode::OK);
        let (status, group) = app.get(&group_uri(&name), &token).await;
        assert_eq!(status, StatusCode::OK, "attempt {attempt}: the re-created group was deleted: {group}");
        assert_eq!(group["properties"]["provisioningState"], "Succeeded");
        let fired = app
            .state
            .events
            .recent(1000)
            .into_iter()
            .filter(|e| {
                e["kind"] == "Microsoft.Resources/resourceGroups/delete"
                    && e["subject"].as_str().is_some_and(|s| s.eq_ignore_ascii_case(&group_id(&name)))
            })
            .count();
        assert_eq!(fired, 1, "attempt {attempt}: the deletion completes exactly once");
        // The identity inside went with the first group, its principal too.
        let (status, body) = app.get(&identity_uri(&name, "inside"), &token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let uai = format!("{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/inside", group_id(&name));
        assert!(principals_for(&app, &token, &uai).await.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_pollers_complete_a_deletion_exactly_once() {
    deletion_completes_once(Arc::new(TestApp::new().await)).await;
}

/// Identities and role assignments written into a resource group while it is deleted: each
/// lands before the deletion (which takes it along) or is refused; nothing outlives the group
/// (no identity, principal or assignment left under a group that is gone).
async fn nothing_outlives_a_deleted_group(app: Arc<TestApp>) {
    let token = app.token().await;
    new_group(&app, &token, "conc-anchor").await;
    let anchor = new_identity(&app, &token, "conc-anchor", "anchor").await;
    let anchor = anchor["properties"]["principalId"].as_str().expect("principalId").to_owned();
    let writers = 10;
    for attempt in 0..12 {
        let name = format!("conc-doomed-{attempt}");
        new_group(&app, &token, &name).await;
        let answers = together(writers + 2, |i| {
            let (app, token, name, anchor) = (Arc::clone(&app), token.clone(), name.clone(), anchor.clone());
            async move {
                if i == writers {
                    // The deletion, polled to its end (a poll settles what is due).
                    let (status, headers, body) = app.send(Method::DELETE, &group_uri(&name), Some(&token), None).await;
                    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
                    let location = path_of(header_str(&headers, "location").expect("Location"));
                    for _ in 0..100 {
                        if app.get(&location, &token).await.0 == StatusCode::OK {
                            return (status, body);
                        }
                    }
                    panic!("the deletion of {name} never finished");
                }
                let (method, uri, body) = if i == writers + 1 || i % 2 == 1 {
                    let uri = assignment_uri(&group_id(&name), &uuid::Uuid::new_v4().to_string());
                    (Method::PUT, uri, Some(assignment_body(ROLES[i / 2], &anchor)))
                } else {
                    (Method::PUT, identity_uri(&name, &format!("late-{i}")), Some(json!({ "location": "westus2" })))
                };
                let (status, _, body) = app.send(method, &uri, Some(&token), body).await;
                (status, body)
            }
        })
        .await;
        for (i, (status, body)) in answers.iter().enumerate() {
            let refused = body["error"]["code"] == "ResourceGroupNotFound";
            assert!(status.is_success() || refused, "attempt {attempt}, writer {i}: {status} {body}");
        }
        let (status, body) = app.get(&group_uri(&name), &token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let prefix = group_id(&name).to_lowercase();
        let (status, list) = app
            .get(
                &format!(
                    "/subscriptions/{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version={MI_API}",
                    sub_id()
                ),
                &token,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let left: Vec<&Value> = list["value"]
            .as_array()
            .expect("value")
            .iter()
            .filter(|r| r["id"].as_str().is_some_and(|id| id.to_lowercase().starts_with(&format!("{prefix}/"))))
            .collect();
        assert!(left.is_empty(), "attempt {attempt}: identities outlived their group: {left:?}");
        let (status, sps) = app.get("/v1.0/servicePrincipals?$top=999", &token).await;
        assert_eq!(status, StatusCode::OK, "{sps}");
        let orphans: Vec<&Value> = sps["value"]
            .as_array()
            .expect("value")
            .iter()
            .filter(|sp| {
                sp["alternativeNames"].as_array().is_some_and(|names| {
                    names
                        .iter()
                        .any(|n| n.as_str().is_some_and(|n| n.to_lowercase().starts_with(&format!("{prefix}/"))))
                })
            })
            .collect();
        assert!(orphans.is_empty(), "attempt {attempt}: principals outlived their group: {orphans:?}");
        let stale: Vec<Value> = all_assignments(&app, &token)
            .await
            .into_iter()
            .filter(|a| a["properties"]["scope"].as_str().is_some_and(|s| s.to_lowercase().starts_with(&prefix)))
            .collect();
        assert!(stale.is_empty(), "attempt {attempt}: assignments outlived their group: {stale:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_racing_the_deletion_of_their_group_do_not_outlive_it() {
    nothing_outlives_a_deleted_group(Arc::new(TestApp::new().await)).await;
}

// ---- the same races on a real sled store ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_races_hold_on_a_sled_store_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Arc::new(TestApp::on_sled(&dir.path().join("db")).await);
    identity_puts_never_mix(Arc::clone(&app)).await;
    role_assignment_races(Arc::clone(&app)).await;
    identity_patches_lose_nothing(Arc::clone(&app)).await;
    deletion_completes_once(Arc::clone(&app)).await;
    nothing_outlives_a_deleted_group(Arc::clone(&app)).await;
}
