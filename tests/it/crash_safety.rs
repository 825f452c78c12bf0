//! `kill -9` at random moments while clients write concurrently, then a restart on the same
//! data directory, many times over. After every restart: the store opens; every write
//! armlet acknowledged is there (and every acknowledged delete is gone) unless a later
//! acknowledged write superseded it, while a write cut short by the kill is either wholly
//! there or wholly absent; nothing is half-written (an identity without its service
//! principal, a principal without its identity, an assignment that GETs but does not LIST,
//! a resource in a group that is gone); long-running operations in flight resume and finish.
//!
//! The schedule (which writes, which keys, when to kill) comes from a seeded RNG, printed at
//! the start; `ARMLET_CRASH_SEED=<seed>` replays it (thread timing still varies).
//!
//! A second test holds flushes back to show that no answer (not even that of a repeated
//! write that finds its work already done) leaves before what it reports is on disk.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration as StdDuration, Instant};

use armlet::store::{Batch, MemStore, Store, StoreError};
use axum::http::{Method, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::common::server::{Reply, Server, send, token};
use crate::common::{RG_API, TestApp, path_of, sub_id};

/// Kill-and-restart cycles (each well under a second in a debug build).
const ROUNDS: usize = 30;
/// Concurrent clients, each owning its own share of the keys below.
const WORKERS: usize = 4;
const IDENTITIES: usize = 12;
const ASSIGNMENTS: usize = 12;
const GROUPS: usize = 8;
const ANCHORS: usize = 3;

const MI_API: &str = "2024-11-30";
const RA_API: &str = "2022-04-01";
const AKS_API: &str = "2026-06-01";
/// Holds the churned identities, the anchors and the role assignments; never deleted.
const STABLE: &str = "crash-stable";
/// Holds the clusters; never deleted.
const AKS_GROUP: &str = "crash-aks";
/// Reader, Contributor, Managed Identity Operator, AcrPull.
const ROLES: [&str; 4] = [
    "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "f1a07417-d97a-45cb-824c-7a7467783830",
    "7f951dda-4ed3-4680-a7ca-43fe172d538d",
];
/// Cluster operations take 30 simulated seconds, so the one started each round is still
/// running when the kill comes; the test finishes them by advancing the clock.
const SERVE_ARGS: [&str; 2] = ["--operation-timing", "Microsoft.ContainerService/*=30s"];

// ---- talking to one server ----

#[derive(Clone)]
struct Ctx {
    base: String,
    arm: String,
    graph: String,
}

impl Ctx {
    async fn new(server: &Server) -> Self {
        Self {
            base: server.http.clone(),
            arm: token(server, &server.https).await,
            graph: token(server, "https://graph.microsoft.com").await,
        }
    }

    async fn with_token(&self, token: &str, method: &str, path: &str, body: Option<&Value>) -> Result<Reply, String> {
        let auth = format!("Bearer {token}");
        let text = body.map(Value::to_string);
        send(method, &format!("{}{path}", self.base), &[("Authorization", &auth)], text.as_deref()).await
    }

    async fn arm(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Reply, String> {
        self.with_token(&self.arm, method, path, body).await
    }

    /// A request that must be answered (the server is not being killed).
    async fn must(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        self.arm(method, path, body).await.unwrap_or_else(|e| panic!("{e}"))
    }

    async fn graph(&self, path: &str) -> Reply {
        self.with_token(&self.graph, "GET", path, None).await.unwrap_or_else(|e| panic!("{e}"))
    }

    async fn control(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        let text = body.map(Value::to_string);
        send(method, &format!("{}{path}", self.base), &[], text.as_deref()).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every item of an ARM list, following `nextLink`.
    async fn arm_list(&self, path: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut next = Some(path.to_owned());
        while let Some(path) = next.take() {
            let reply = self.must("GET", &path, None).await;
            assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
            items.extend(reply.body["value"].as_array().unwrap_or_else(|| panic!("{}", reply.body)).iter().cloned());
            next = reply.body["nextLink"].as_str().map(path_of);
        }
        items
    }

    /// Every item of a Graph list, following `@odata.nextLink`.
    async fn graph_list(&self, path: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut next = Some(path.to_owned());
        while let Some(path) = next.take() {
            let reply = self.graph(&path).await;
            assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
            items.extend(reply.body["value"].as_array().unwrap_or_else(|| panic!("{}", reply.body)).iter().cloned());
            next = reply.body["@odata.nextLink"].as_str().map(path_of);
        }
        items
    }
}

fn group_id(name: &str) -> String {
    format!("/subscriptions/{}/resourceGroups/{name}", sub_id())
}

fn group_path(name: &str) -> String {
    format!("{}?api-version={RG_API}", group_id(name))
}

fn churn_group(i: usize) -> String {
    format!("crash-g{i}")
}

fn identity_path(group: &str, name: &str) -> String {
    format!(
        "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}?api-version={MI_API}",
        group_id(group)
    )
}

fn churn_identity(i: usize) -> String {
    format!("crash-id{i}")
}

fn assignment_name(i: usize) -> String {
    format!("c7a50000-0000-4000-8000-{i:012}")
}

fn assignment_path(i: usize) -> String {
    format!(
        "{}/providers/Microsoft.Authorization/roleAssignments/{}?api-version={RA_API}",
        group_id(STABLE),
        assignment_name(i)
    )
}

/// Assignment `i` gives anchor `i % ANCHORS` the role `i / ANCHORS`: no two share a
/// principal and role, so they never conflict with one another.
fn assignment_body(i: usize, anchors: &[String]) -> Value {
    json!({ "properties": {
        "roleDefinitionId": format!(
            "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{}",
            sub_id(),
            ROLES[i / ANCHORS]
        ),
        "principalId": anchors[i % ANCHORS],
        "principalType": "ServicePrincipal",
    }})
}

fn cluster_path(name: &str) -> String {
    format!("{}/providers/Microsoft.ContainerService/managedClusters/{name}?api-version={AKS_API}", group_id(AKS_GROUP))
}

fn with_api(id: &str, api: &str) -> String {
    format!("{id}?api-version={api}")
}

// ---- what the clients know ----

/// What a key holds: nothing, or the generation its last PUT wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Absent,
    Present(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Identity(usize),
    Assignment(usize),
    Group(usize),
}

#[derive(Debug)]
struct Slot {
    /// The state after the last acknowledged write (or as last observed).
    confirmed: St,
    /// The state the write the kill cut short would leave, if one was.
    maybe: Option<St>,
}

/// A cluster operation started this round.
#[derive(Debug)]
struct Lro {
    create: bool,
    name: String,
    /// The `Azure-AsyncOperation` path, once the request was acknowledged.
    status_path: Option<String>,
}

#[derive(Default)]
struct Model {
    slots: BTreeMap<Key, Slot>,
    generation: u64,
    /// Acknowledged group deletions not yet seen finished: their `Location` paths.
    deletions: BTreeMap<usize, String>,
    /// Answers no correct armlet gives to these requests.
    anomalies: Vec<String>,
    anchors: Vec<String>,
    clusters: Vec<String>,
    lro: Option<Lro>,
    acknowledged: usize,
    cut_short: usize,
    operations_seen_running: usize,
}

fn lock(model: &Mutex<Model>) -> MutexGuard<'_, Model> {
    model.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The outcome of a request sent once, or twice at the same moment.
enum Outcome {
    /// A complete answer (with two copies: a success if either succeeded).
    Answered(Reply),
    /// No complete answer from at least one copy: the server died; it may or may not have
    /// applied the write.
    Lost,
}

async fn attempt(ctx: &Ctx, method: &str, path: &str, body: Option<&Value>, twice: bool) -> Outcome {
    if !twice {
        return match ctx.arm(method, path, body).await {
            Ok(reply) => Outcome::Answered(reply),
            Err(_) => Outcome::Lost,
        };
    }
    let (a, b) = tokio::join!(ctx.arm(method, path, body), ctx.arm(method, path, body));
    match (a, b) {
        (Ok(a), _) if a.is_success() => Outcome::Answered(a),
        (_, Ok(b)) if b.is_success() => Outcome::Answered(b),
        (Ok(a), Ok(_)) => Outcome::Answered(a),
        _ => Outcome::Lost,
    }
}

/// Records what `outcome` means for `key`; false when the server is gone.
fn record(model: &Mutex<Model>, key: Key, what: &str, outcome: &Outcome, after: St) -> bool {
    let mut m = lock(model);
    match outcome {
        Outcome::Answered(reply) if reply.is_success() => {
            let slot = m.slots.get_mut(&key).expect("slot");
            slot.confirmed = after;
            slot.maybe = None;
            m.acknowledged += 1;
            true
        }
        Outcome::Answered(reply) => {
            m.anomalies.push(format!("{what}: {} {}", reply.status, reply.body));
            true
        }
        Outcome::Lost => {
            m.slots.get_mut(&key).expect("slot").maybe = Some(after);
            m.cut_short += 1;
            false
        }
    }
}

// ---- the clients ----

async fn worker(ctx: Ctx, model: Arc<Mutex<Model>>, stop: Arc<AtomicBool>, keys: Vec<Key>, mut rng: StdRng) {
    while !stop.load(Ordering::SeqCst) {
        let key = keys[rng.gen_range(0..keys.len())];
        let (current, generation, anchors) = {
            let mut m = lock(&model);
            m.generation += 1;
            (m.slots[&key].confirmed, m.generation, m.anchors.clone())
        };
        let twice = rng.gen_bool(0.25);
        let alive = match key {
            Key::Identity(i) => {
                let path = identity_path(STABLE, &churn_identity(i));
                if current != St::Absent && rng.gen_bool(0.4) {
                    let outcome = attempt(&ctx, "DELETE", &path, None, twice).await;
                    record(&model, key, &format!("DELETE identity {i}"), &outcome, St::Absent)
                } else {
                    let body = json!({ "location": "westus2", "tags": { "gen": generation.to_string() } });
                    let outcome = attempt(&ctx, "PUT", &path, Some(&body), twice).await;
                    record(&model, key, &format!("PUT identity {i}"), &outcome, St::Present(generation))
                }
            }
            Key::Assignment(i) => {
                if current != St::Absent && rng.gen_bool(0.6) {
                    let outcome = attempt(&ctx, "DELETE", &assignment_path(i), None, twice).await;
                    record(&model, key, &format!("DELETE assignment {i}"), &outcome, St::Absent)
                } else {
                    let body = assignment_body(i, &anchors);
                    let outcome = attempt(&ctx, "PUT", &assignment_path(i), Some(&body), twice).await;
                    record(&model, key, &format!("PUT assignment {i}"), &outcome, St::Present(0))
                }
            }
            Key::Group(i) => group_op(&ctx, &model, i, current, generation, rng.gen_bool(0.4), twice).await,
        };
        if !alive {
            break;
        }
    }
}

/// A group PUT followed by an identity inside it, or a group DELETE (a long-running
/// operation) followed by polls of its `Location` until it is done.
async fn group_op(
    ctx: &Ctx,
    model: &Mutex<Model>,
    i: usize,
    current: St,
    generation: u64,
    delete: bool,
    twice: bool,
) -> bool {
    let key = Key::Group(i);
    if current != St::Absent && delete {
        let outcome = attempt(ctx, "DELETE", &group_path(&churn_group(i)), None, false).await;
        let location = match &outcome {
            Outcome::Answered(reply) if reply.is_success() => {
                Some(path_of(reply.header("location").expect("a group deletion answers with Location")))
            }
            _ => None,
        };
        if !record(model, key, &format!("DELETE group {i}"), &outcome, St::Absent) {
            return false;
        }
        let Some(location) = location else { return true };
        lock(model).deletions.insert(i, location.clone());
        for _ in 0..500 {
            match ctx.arm("GET", &location, None).await {
                Ok(reply) if reply.status == 200 => {
                    lock(model).deletions.remove(&i);
                    return true;
                }
                Ok(reply) if reply.status == 202 => tokio::time::sleep(StdDuration::from_millis(5)).await,
                Ok(reply) => {
                    lock(model).anomalies.push(format!("poll group {i} deletion: {} {}", reply.status, reply.body));
                    return true;
                }
                Err(_) => return false,
            }
        }
        lock(model).anomalies.push(format!("group {i} deletion never finished"));
        return true;
    }
    let body = json!({ "location": "westus2", "tags": { "gen": generation.to_string() } });
    let outcome = attempt(ctx, "PUT", &group_path(&churn_group(i)), Some(&body), twice).await;
    if !record(model, key, &format!("PUT group {i}"), &outcome, St::Present(generation)) {
        return false;
    }
    if !matches!(&outcome, Outcome::Answered(r) if r.is_success()) {
        return true;
    }
    let inner = json!({ "location": "westus2" });
    match ctx.arm("PUT", &identity_path(&churn_group(i), "inner"), Some(&inner)).await {
        Ok(reply) if reply.is_success() => true,
        Ok(reply) => {
            lock(model).anomalies.push(format!("PUT identity in group {i}: {} {}", reply.status, reply.body));
            true
        }
        Err(_) => false,
    }
}

/// Starts this round's cluster operation: a create while there are fewer than two
/// clusters, otherwise the deletion of the oldest.
async fn cluster_op(ctx: Ctx, model: Arc<Mutex<Model>>, round: usize) {
    let (create, name) = {
        let m = lock(&model);
        if m.clusters.len() < 2 { (true, format!("aks{round}")) } else { (false, m.clusters[0].clone()) }
    };
    lock(&model).lro = Some(Lro { create, name: name.clone(), status_path: None });
    let result = if create {
        let body = json!({
            "location": "westus2",
            "identity": { "type": "SystemAssigned" },
            "properties": {
                "dnsPrefix": name,
                "agentPoolProfiles": [{ "name": "nodepool1", "count": 1, "mode": "System", "osType": "Linux" }],
            },
        });
        ctx.arm("PUT", &cluster_path(&name), Some(&body)).await
    } else {
        ctx.arm("DELETE", &cluster_path(&name), None).await
    };
    let mut m = lock(&model);
    match result {
        Ok(reply) if reply.status == if create { 201 } else { 202 } => {
            let url = reply.header("azure-asyncoperation").expect("Azure-AsyncOperation");
            m.lro.as_mut().expect("lro").status_path = Some(path_of(url));
        }
        Ok(reply) => m.anomalies.push(format!("cluster {name} (create: {create}): {} {}", reply.status, reply.body)),
        Err(_) => {}
    }
}

/// One round of load, cut short by `kill -9` at a random moment.
async fn load_and_kill(server: Server, ctx: &Ctx, model: &Arc<Mutex<Model>>, rng: &mut StdRng, round: usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let keys: Vec<Key> = (0..IDENTITIES)
            .map(Key::Identity)
            .chain((0..ASSIGNMENTS).map(Key::Assignment))
            .chain((0..GROUPS).map(Key::Group))
            .filter(|k| match k {
                Key::Identity(i) | Key::Assignment(i) | Key::Group(i) => i % WORKERS == w,
            })
            .collect();
        let worker_rng = StdRng::seed_from_u64(rng.r#gen());
        tasks.push(tokio::spawn(worker(ctx.clone(), Arc::clone(model), Arc::clone(&stop), keys, worker_rng)));
    }
    let cluster_delay = StdDuration::from_millis(rng.gen_range(0..250));
    {
        let (ctx, model) = (ctx.clone(), Arc::clone(model));
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(cluster_delay).await;
            cluster_op(ctx, model, round).await;
        }));
    }
    tokio::time::sleep(StdDuration::from_millis(rng.gen_range(100..700))).await;
    server.kill9();
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.expect("a client panicked");
    }
}

// ---- after a restart ----

/// What a key holds now.
async fn observe(ctx: &Ctx, key: Key, anchors: &[String]) -> St {
    let (path, what) = match key {
        Key::Identity(i) => (identity_path(STABLE, &churn_identity(i)), format!("identity {i}")),
        Key::Assignment(i) => (assignment_path(i), format!("assignment {i}")),
        Key::Group(i) => (group_path(&churn_group(i)), format!("group {i}")),
    };
    let reply = ctx.must("GET", &path, None).await;
    match reply.status {
        404 => St::Absent,
        200 => match key {
            Key::Assignment(i) => {
                let want = assignment_body(i, anchors);
                let props = &reply.body["properties"];
                assert_eq!(props["principalId"], want["properties"]["principalId"], "{what}: {}", reply.body);
                assert!(
                    props["roleDefinitionId"].as_str().is_some_and(|r| r.ends_with(ROLES[i / ANCHORS])),
                    "{what}: {}",
                    reply.body
                );
                St::Present(0)
            }
            _ => {
                let generation = reply.body["tags"]["gen"].as_str().and_then(|g| g.parse().ok());
                St::Present(generation.unwrap_or_else(|| panic!("{what} has no generation: {}", reply.body)))
            }
        },
        _ => panic!("GET {what}: {} {}", reply.status, reply.body),
    }
}

/// Advances the clock past the cluster operations and waits until nothing is pending.
async fn settle(ctx: &Ctx) {
    let reply = ctx.control("POST", "/_armlet/clock/advance", Some(&json!({ "by": "31s" }))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    for _ in 0..400 {
        let health = ctx.control("GET", "/_armlet/health", None).await;
        assert_eq!(health.status, 200, "{}", health.body);
        assert_eq!(health.body["status"], "ready");
        if health.body["pendingOperations"] == 0 {
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(25)).await;
    }
    panic!("operations still pending after the clock passed them");
}

async fn verify(ctx: &Ctx, model: &Arc<Mutex<Model>>, at: &str) {
    let anomalies = std::mem::take(&mut lock(model).anomalies);
    assert!(anomalies.is_empty(), "{at}: answers armlet should not give: {anomalies:#?}");

    // The cluster operation in flight at the kill: still running or done, never lost.
    let lro = lock(model).lro.take();
    if let Some(Lro { status_path: Some(path), .. }) = &lro {
        let reply = ctx.must("GET", path, None).await;
        assert_eq!(reply.status, 200, "{at}: acknowledged operation {path}: {}", reply.body);
        let status = reply.body["status"].as_str().unwrap_or_default();
        assert!(["InProgress", "Succeeded"].contains(&status), "{at}: operation after restart: {}", reply.body);
        if status == "InProgress" {
            lock(model).operations_seen_running += 1;
        }
    }

    settle(ctx).await;

    if let Some(lro) = &lro {
        if let Some(path) = &lro.status_path {
            let reply = ctx.must("GET", path, None).await;
            assert_eq!(reply.body["status"], "Succeeded", "{at}: the operation resumed and finished: {}", reply.body);
        }
        let reply = ctx.must("GET", &cluster_path(&lro.name), None).await;
        let exists = match reply.status {
            200 => {
                assert_eq!(reply.body["properties"]["provisioningState"], "Succeeded", "{at}: {}", reply.body);
                true
            }
            404 => false,
            _ => panic!("{at}: GET cluster {}: {} {}", lro.name, reply.status, reply.body),
        };
        if lro.status_path.is_some() {
            assert_eq!(exists, lro.create, "{at}: acknowledged cluster {} (create: {})", lro.name, lro.create);
        }
        let mut m = lock(model);
        m.clusters.retain(|c| *c != lro.name);
        if exists {
            m.clusters.push(lro.name.clone());
        }
    }

    // Acknowledged group deletions whose end the client never saw have finished.
    let deletions = std::mem::take(&mut lock(model).deletions);
    for (i, location) in deletions {
        let reply = ctx.must("GET", &location, None).await;
        assert_eq!(reply.status, 200, "{at}: deletion of group {i}: {} {}", reply.status, reply.body);
    }

    // Every key holds what its last acknowledged write left, or what the write the kill
    // cut short would have left.
    let (keys, anchors): (Vec<Key>, Vec<String>) = {
        let m = lock(model);
        (m.slots.keys().copied().collect(), m.anchors.clone())
    };
    for key in keys {
        let seen = observe(ctx, key, &anchors).await;
        let mut m = lock(model);
        let slot = m.slots.get_mut(&key).expect("slot");
        assert!(
            seen == slot.confirmed || Some(seen) == slot.maybe,
            "{at}: {key:?} is {seen:?}; acknowledged: {:?}, cut short: {:?}",
            slot.confirmed,
            slot.maybe
        );
        slot.confirmed = seen;
        slot.maybe = None;
    }

    invariants(ctx, model, at).await;
}

fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// The resource group an id lies in, if any.
fn group_of(id: &str) -> Option<String> {
    let parts: Vec<&str> = id.split('/').collect();
    parts.iter().position(|p| p.eq_ignore_ascii_case("resourcegroups")).and_then(|i| parts.get(i + 1)).map(|g| lower(g))
}

/// Nothing half-written, nothing dangling.
async fn invariants(ctx: &Ctx, model: &Arc<Mutex<Model>>, at: &str) {
    let sub = sub_id();
    let groups = ctx.arm_list(&format!("/subscriptions/{sub}/resourcegroups?api-version={RG_API}&$top=1000")).await;
    let group_names: BTreeSet<String> = groups.iter().filter_map(|g| g["name"].as_str()).map(lower).collect();
    for group in &groups {
        let name = group["name"].as_str().expect("name");
        let reply = ctx.must("GET", &group_path(name), None).await;
        assert_eq!(reply.status, 200, "{at}: listed group {name} does not GET: {}", reply.body);
        assert_eq!(reply.body, *group, "{at}: group {name} reads differently from its list entry");
        assert_eq!(group["properties"]["provisioningState"], "Succeeded", "{at}: {group}");
    }

    let identities = ctx
        .arm_list(&format!(
            "/subscriptions/{sub}/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version={MI_API}&$top=1000"
        ))
        .await;
    let mut identity_principals: BTreeMap<String, String> = BTreeMap::new();
    for identity in &identities {
        let id = identity["id"].as_str().expect("id");
        let principal = identity["properties"]["principalId"].as_str().expect("principalId");
        let reply = ctx.must("GET", &with_api(id, MI_API), None).await;
        assert_eq!(reply.status, 200, "{at}: listed identity {id} does not GET: {}", reply.body);
        assert_eq!(reply.body["properties"]["principalId"], principal, "{at}: {id}");
        let sp = ctx.graph(&format!("/v1.0/servicePrincipals/{principal}")).await;
        assert_eq!(sp.status, 200, "{at}: identity {id} has no service principal: {}", sp.body);
        assert_eq!(sp.body["appId"], identity["properties"]["clientId"], "{at}: {id}: {}", sp.body);
        assert!(
            sp.body["alternativeNames"]
                .as_array()
                .is_some_and(|n| n.iter().any(|n| n.as_str().map(lower) == Some(lower(id)))),
            "{at}: the principal of {id} names another resource: {}",
            sp.body
        );
        assert!(group_of(id).is_some_and(|g| group_names.contains(&g)), "{at}: identity {id} outlived its group");
        identity_principals.insert(lower(id), lower(principal));
    }

    let principals = ctx.graph_list("/v1.0/servicePrincipals?$top=999").await;
    let principal_ids: BTreeSet<String> = principals.iter().filter_map(|p| p["id"].as_str()).map(lower).collect();
    for sp in principals.iter().filter(|p| p["servicePrincipalType"] == "ManagedIdentity") {
        let sp_id = lower(sp["id"].as_str().expect("id"));
        let reply = ctx.graph(&format!("/v1.0/servicePrincipals/{sp_id}")).await;
        assert_eq!(reply.status, 200, "{at}: listed principal {sp_id} does not GET: {}", reply.body);
        let resource = sp["alternativeNames"]
            .as_array()
            .and_then(|n| n.iter().filter_map(Value::as_str).find(|n| n.starts_with("/subscriptions/")))
            .unwrap_or_else(|| panic!("{at}: a managed identity principal names no resource: {sp}"));
        if lower(resource).contains("/providers/microsoft.managedidentity/userassignedidentities/") {
            assert_eq!(
                identity_principals.get(&lower(resource)),
                Some(&sp_id),
                "{at}: principal {sp_id} outlived (or never had) its identity {resource}"
            );
        } else {
            let reply = ctx.must("GET", &with_api(resource, AKS_API), None).await;
            assert_eq!(reply.status, 200, "{at}: principal {sp_id} outlived its resource {resource}: {}", reply.body);
            assert_eq!(reply.body["identity"]["principalId"].as_str().map(lower), Some(sp_id), "{at}: {resource}");
        }
    }

    let assignments = ctx
        .arm_list(&format!(
            "/subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments?api-version={RA_API}&$top=1000"
        ))
        .await;
    let assignment_ids: BTreeSet<String> = assignments.iter().filter_map(|a| a["id"].as_str()).map(lower).collect();
    for assignment in &assignments {
        let id = assignment["id"].as_str().expect("id");
        let reply = ctx.must("GET", &with_api(id, RA_API), None).await;
        assert_eq!(reply.status, 200, "{at}: listed assignment {id} does not GET: {}", reply.body);
        assert_eq!(reply.body, *assignment, "{at}: assignment {id} reads differently from its list entry");
        let principal = assignment["properties"]["principalId"].as_str().map(lower).unwrap_or_default();
        assert!(principal_ids.contains(&principal), "{at}: assignment {id} outlived its principal {principal}");
        if let Some(group) = group_of(assignment["properties"]["scope"].as_str().unwrap_or_default()) {
            assert!(group_names.contains(&group), "{at}: assignment {id} outlived its scope's group {group}");
        }
    }

    let resources = ctx.arm_list(&format!("/subscriptions/{sub}/resources?api-version={RG_API}&$top=1000")).await;
    for resource in &resources {
        let id = resource["id"].as_str().expect("id");
        assert!(group_of(id).is_some_and(|g| group_names.contains(&g)), "{at}: resource {id} outlived its group");
        let kind = lower(resource["type"].as_str().unwrap_or_default());
        if kind == "microsoft.managedidentity/userassignedidentities" {
            assert!(identity_principals.contains_key(&lower(id)), "{at}: {id} is a resource but not an identity");
        }
    }

    let clusters = ctx
        .arm_list(&format!(
            "/subscriptions/{sub}/providers/Microsoft.ContainerService/managedClusters?api-version={AKS_API}"
        ))
        .await;
    for cluster in &clusters {
        let id = cluster["id"].as_str().expect("id");
        let reply = ctx.must("GET", &with_api(id, AKS_API), None).await;
        assert_eq!(reply.status, 200, "{at}: listed cluster {id} does not GET: {}", reply.body);
        assert_eq!(reply.body, *cluster, "{at}: cluster {id} reads differently from its list entry");
        assert_eq!(cluster["properties"]["provisioningState"], "Succeeded", "{at}: {cluster}");
        let node_group = lower(cluster["properties"]["nodeResourceGroup"].as_str().expect("nodeResourceGroup"));
        assert!(group_names.contains(&node_group), "{at}: cluster {id} lost its node resource group");
        let kubelet = cluster["properties"]["identityProfile"]["kubeletidentity"]["resourceId"].as_str();
        assert!(
            kubelet.is_some_and(|k| identity_principals.contains_key(&lower(k))),
            "{at}: cluster {id} lost its kubelet identity {kubelet:?}"
        );
    }
    let mut listed_clusters: Vec<String> =
        clusters.iter().filter_map(|c| c["name"].as_str()).map(str::to_owned).collect();
    let mut known = lock(model).clusters.clone();
    listed_clusters.sort();
    known.sort();
    assert_eq!(listed_clusters, known, "{at}: the clusters");

    // What GETs also LISTs.
    let m = lock(model);
    for (key, slot) in &m.slots {
        if slot.confirmed == St::Absent {
            continue;
        }
        let listed = match key {
            Key::Identity(i) => identity_principals.contains_key(&lower(&format!(
                "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{}",
                group_id(STABLE),
                churn_identity(*i)
            ))),
            Key::Assignment(i) => assignment_ids.contains(&lower(&format!(
                "{}/providers/Microsoft.Authorization/roleAssignments/{}",
                group_id(STABLE),
                assignment_name(*i)
            ))),
            Key::Group(i) => group_names.contains(&churn_group(*i)),
        };
        assert!(listed, "{at}: {key:?} GETs but does not LIST");
    }
}

/// The groups, anchors and (absent) keys every round works with.
async fn set_up(ctx: &Ctx, model: &Arc<Mutex<Model>>) {
    for group in [STABLE, AKS_GROUP] {
        let reply = ctx.must("PUT", &group_path(group), Some(&json!({ "location": "westus2" }))).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let mut anchors = Vec::new();
    for a in 0..ANCHORS {
        let path = identity_path(STABLE, &format!("crash-anchor{a}"));
        let reply = ctx.must("PUT", &path, Some(&json!({ "location": "westus2", "tags": { "gen": "0" } }))).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        anchors.push(reply.body["properties"]["principalId"].as_str().expect("principalId").to_owned());
    }
    let mut m = lock(model);
    m.anchors = anchors;
    let keys = (0..IDENTITIES)
        .map(Key::Identity)
        .chain((0..ASSIGNMENTS).map(Key::Assignment))
        .chain((0..GROUPS).map(Key::Group));
    for key in keys {
        m.slots.insert(key, Slot { confirmed: St::Absent, maybe: None });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_at_random_moments_loses_no_acknowledged_write_and_leaves_nothing_half_written() {
    let seed: u64 = match std::env::var("ARMLET_CRASH_SEED") {
        Ok(s) => s.parse().expect("ARMLET_CRASH_SEED is a number"),
        Err(_) => rand::random(),
    };
    println!("crash safety: seed {seed} (replay with ARMLET_CRASH_SEED={seed})");
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let model = Arc::new(Mutex::new(Model::default()));

    for round in 0..=ROUNDS {
        // The store opens and the server gets ready (Server::start panics otherwise).
        let server = Server::start_with(&data_dir, &SERVE_ARGS);
        let ctx = Ctx::new(&server).await;
        let at = format!("seed {seed}, restart after kill {round}");
        if round == 0 {
            set_up(&ctx, &model).await;
        } else {
            let checked = tokio::spawn({
                let (ctx, model, at) = (ctx.clone(), Arc::clone(&model), at.clone());
                async move { verify(&ctx, &model, &at).await }
            })
            .await;
            if let Err(e) = checked {
                panic!("{e}\n--- armlet stderr ---\n{}", server.stderr_text());
            }
        }
        if round == ROUNDS {
            server.kill9();
            break;
        }
        load_and_kill(server, &ctx, &model, &mut rng, round + 1).await;
    }

    let m = lock(&model);
    println!(
        "crash safety: {ROUNDS} kills in {:.1?}; {} writes acknowledged, {} cut short, {} cluster operations resumed after a kill",
        started.elapsed(),
        m.acknowledged,
        m.cut_short,
        m.operations_seen_running
    );
    assert!(m.acknowledged > ROUNDS, "the clients got writes through");
    assert!(m.operations_seen_running > 0, "some cluster operation was in flight at a kill");
}

// ---- acknowledgements wait for the disk ----

/// A store whose flushes block until the test opens its gate, to see which answers wait
/// for the disk.
#[derive(Default)]
struct GatedStore {
    inner: MemStore,
    closed: Mutex<bool>,
    opened: Condvar,
    flushing: AtomicUsize,
}

impl GatedStore {
    fn set_closed(&self, closed: bool) {
        *self.closed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = closed;
        self.opened.notify_all();
    }

    fn is_open(&self) -> bool {
        !*self.closed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Store for GatedStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }

    fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.scan_prefix(prefix)
    }

    fn apply(&self, batch: &Batch) -> Result<(), StoreError> {
        self.inner.apply(batch)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.flushing.fetch_add(1, Ordering::SeqCst);
        let mut closed = self.closed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while *closed {
            closed = self.opened.wait(closed).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        self.flushing.fetch_sub(1, Ordering::SeqCst);
        self.inner.flush()
    }
}

/// Sends the same request twice: the first is held in its flush; the second finds the work
/// done and writes nothing. Its answer reports the first one's write, so it must not come
/// before that write is on disk (a kill in between would lose what it acknowledged).
async fn second_answer_waits_for_the_first_flush(
    app: &Arc<TestApp>,
    store: &Arc<GatedStore>,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> [StatusCode; 2] {
    let token = app.token().await;
    store.set_closed(true);
    let first = tokio::spawn({
        let (app, token, uri, body, method) =
            (Arc::clone(app), token.clone(), uri.to_owned(), body.clone(), method.clone());
        async move { app.send(method, &uri, Some(&token), body).await.0 }
    });
    let mut waited = 0;
    while store.flushing.load(Ordering::SeqCst) == 0 {
        assert!(waited < 5000, "the first {method} {uri} never reached its flush");
        tokio::time::sleep(StdDuration::from_millis(1)).await;
        waited += 1;
    }
    let second = tokio::spawn({
        let (app, store, uri) = (Arc::clone(app), Arc::clone(store), uri.to_owned());
        async move {
            let (status, _, body) = app.send(method, &uri, Some(&token), body).await;
            (status, body, store.is_open())
        }
    });
    // Time for an acknowledgement that does not wait to arrive early.
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    store.set_closed(false);
    let (second_status, second_body, flushed_before) = second.await.expect("second request");
    let first_status = first.await.expect("first request");
    assert!(
        flushed_before,
        "{uri}: the repeat was answered {second_status} ({second_body}) before the write it reports was on disk"
    );
    [first_status, second_status]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_answer_never_runs_ahead_of_the_flush_it_depends_on() {
    let store = Arc::new(GatedStore::default());
    let app = Arc::new(TestApp::on_store(Arc::clone(&store) as Arc<dyn Store>).await);
    let token = app.token().await;
    let (status, body) = app.put_group(&token, STABLE, "westus2").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let uri = identity_path(STABLE, "flushed");
    let (status, _, identity) = app.send(Method::PUT, &uri, Some(&token), Some(json!({ "location": "westus2" }))).await;
    assert_eq!(status, StatusCode::CREATED, "{identity}");
    let anchors = vec![identity["properties"]["principalId"].as_str().expect("principalId").to_owned()];

    // A role assignment created twice: the repeat finds it and answers 201 without writing.
    let statuses = second_answer_waits_for_the_first_flush(
        &app,
        &store,
        Method::PUT,
        &assignment_path(0),
        Some(assignment_body(0, &anchors)),
    )
    .await;
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CREATED]);
    // Deleted twice: the repeat finds nothing and answers 204 without writing.
    let statuses =
        second_answer_waits_for_the_first_flush(&app, &store, Method::DELETE, &assignment_path(0), None).await;
    assert_eq!(statuses, [StatusCode::OK, StatusCode::NO_CONTENT]);
    let statuses = second_answer_waits_for_the_first_flush(&app, &store, Method::DELETE, &uri, None).await;
    assert_eq!(statuses, [StatusCode::OK, StatusCode::NO_CONTENT]);
}
