//! armlet's throughput, latency, startup and memory, beside a bare axum server returning the
//! same JSON (in memory, and with a sled insert and flush per PUT), so the figures read as
//! ratios to what the machine can do at all.
//!
//!     cargo bench --bench throughput            # figures as a Markdown table (docs/performance.md)
//!
//! Load: 16 keep-alive HTTP/1.1 connections for a few seconds per scenario, on armlet's
//! plain-HTTP listener (TLS is left out on both sides). armlet runs as its release binary,
//! with bearer validation and RBAC on, exactly as `armlet serve` does.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 16;
const SCENARIO: Duration = Duration::from_secs(3);
const SUB: &str = "a1e70000-0000-4000-8000-000000000002";

/// A minimal keep-alive HTTP/1.1 client (one request at a time per connection).
struct Conn {
    stream: TcpStream,
    host: String,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).ok();
        Conn { stream, host: addr.to_string(), buf: Vec::with_capacity(64 * 1024) }
    }

    async fn send(&mut self, method: &str, path: &str, token: &str, body: &str) -> (u16, Vec<u8>) {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n", self.host, body.len());
        if !token.is_empty() {
            req.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if !body.is_empty() {
            req.push_str("Content-Type: application/json\r\n");
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.stream.write_all(req.as_bytes()).await.expect("write");
        self.buf.clear();
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
                let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
                let length: usize = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                while self.buf.len() < end + 4 + length {
                    self.read_more().await;
                }
                let body = self.buf[end + 4..end + 4 + length].to_vec();
                return (status, body);
            }
            self.read_more().await;
        }
    }

    async fn read_more(&mut self) {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "connection closed");
        self.buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Requests per second and latency percentiles for `CONNECTIONS` connections running
/// `request(i)` for `SCENARIO`.
async fn load<F>(addr: SocketAddr, token: &str, request: F) -> Figures
where
    F: Fn(usize) -> (&'static str, String, String) + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let counter = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (request, counter, stop, token) = (request.clone(), counter.clone(), stop.clone(), token.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await;
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let (method, path, body) = request(i);
                let t = Instant::now();
                let (status, _) = conn.send(method, &path, &token, &body).await;
                latencies.push(t.elapsed());
                assert!(status < 300, "{method} {path} answered {status}");
            }
            latencies
        }));
    }
    tokio::time::sleep(SCENARIO).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("load task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    (all.len() as f64 / elapsed, pct(0.5), pct(0.99))
}

// ---- the bare servers ----

/// What a bare server answers: the JSON armlet answered for the same request, captured once.
#[derive(Clone)]
struct Bare {
    identity: Arc<Value>,
    identities: Arc<Value>,
    cluster: Arc<Value>,
    clusters: Arc<Value>,
    sled: Option<sled::Db>,
}

fn named(template: &Value, name: &str) -> Value {
    let mut value = template.clone();
    value["name"] = Value::String(name.to_owned());
    value
}

async fn bare_get(State(bare): State<Bare>, Path((kind, name)): Path<(String, String)>) -> axum::Json<Value> {
    axum::Json(named(if kind == "cluster" { &bare.cluster } else { &bare.identity }, &name))
}

async fn bare_list(State(bare): State<Bare>, Path(kind): Path<String>) -> axum::Json<Value> {
    axum::Json(if kind == "cluster" { bare.clusters.as_ref().clone() } else { bare.identities.as_ref().clone() })
}

/// Parses the body, answers the template; with sled, inserts it and flushes before answering.
async fn bare_put(
    State(bare): State<Bare>,
    Path((kind, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> axum::Json<Value> {
    let _request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let value = named(if kind == "cluster" { &bare.cluster } else { &bare.identity }, &name);
    if let Some(db) = &bare.sled {
        let db = db.clone();
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        tokio::task::spawn_blocking(move || {
            db.insert(name.as_bytes(), bytes).expect("sled insert");
            db.flush().expect("sled flush");
        })
        .await
        .expect("blocking task");
    }
    axum::Json(value)
}

async fn start_bare(bare: Bare) -> SocketAddr {
    let app = Router::new()
        .route("/bare/{kind}", get(bare_list))
        .route("/bare/{kind}/{name}", get(bare_get).put(bare_put))
        .with_state(bare);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("bare server") });
    addr
}

// ---- armlet ----

struct Armlet {
    child: Child,
    http: SocketAddr,
    startup: Duration,
}

impl Drop for Armlet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_armlet(data_dir: Option<&std::path::Path>) -> Armlet {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_armlet"));
    cmd.args(["serve", "--bind", "127.0.0.1", "--https-port", "0", "--http-port", "0"]);
    match data_dir {
        Some(dir) => cmd.arg("--data-dir").arg(dir),
        None => cmd.arg("--in-memory"),
    };
    let started = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("start armlet");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ready = loop {
        let line = lines.next().expect("armlet exited").expect("read");
        if line.starts_with("armlet ready:") {
            break line;
        }
    };
    let startup = started.elapsed();
    std::thread::spawn(move || for _ in lines {});
    let http = ready.split("http=").nth(1).expect("http url").trim().trim_start_matches("http://");
    Armlet { child, http: http.parse().expect("http address"), startup }
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| l.to_owned()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

async fn token(http: SocketAddr) -> String {
    let mut conn = Conn::open(http).await;
    let form = "grant_type=client_credentials&client_id=a1e70000-0000-4000-8000-000000000003&client_secret=armlet-well-known-secret-do-not-use-in-production&scope=https%3A%2F%2Fmanagement.azure.com%2F%2F.default";
    let req = format!(
        "POST /a1e70000-0000-4000-8000-000000000001/oauth2/v2.0/token HTTP/1.1\r\nHost: {http}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    conn.stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    loop {
        conn.read_more().await;
        raw.extend_from_slice(&conn.buf);
        conn.buf.clear();
        if let Some(end) = find(&raw, b"\r\n\r\n")
            && let Ok(v) = serde_json::from_slice::<Value>(&raw[end + 4..])
        {
            return v["access_token"].as_str().expect("token").to_owned();
        }
    }
}

fn group_path() -> String {
    format!("/subscriptions/{SUB}/resourceGroups/bench")
}

fn identity_path(name: &str) -> String {
    format!("{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}?api-version=2024-11-30", group_path())
}

fn identities_path() -> String {
    format!("{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version=2024-11-30", group_path())
}

fn cluster_path(name: &str) -> String {
    format!("{}/providers/Microsoft.ContainerService/managedClusters/{name}?api-version=2026-06-01", group_path())
}

fn clusters_path() -> String {
    format!("{}/providers/Microsoft.ContainerService/managedClusters?api-version=2026-06-01", group_path())
}

const IDENTITY_BODY: &str = r#"{"location":"westus2"}"#;

/// What `az aks create -g bench -n NAME` sends (system-assigned identity, one system pool).
fn cluster_body(name: &str) -> String {
    json!({
        "location": "westus2",
        "identity": { "type": "SystemAssigned" },
        "properties": {
            "dnsPrefix": name,
            "agentPoolProfiles": [{ "name": "nodepool1", "count": 3, "mode": "System", "osType": "Linux" }],
        },
    })
    .to_string()
}

/// Creates `count` resources (`pop-0`, `pop-1`, …) through armlet's API: identities, or
/// clusters when `clusters`.
async fn populate(http: SocketAddr, token: &str, count: usize, clusters: bool) {
    populate_with(http, token, 0..count, clusters).await
}

/// Creates `pop-{i}` for each `i` in `range`: identities, or clusters when `clusters`.
async fn populate_with(http: SocketAddr, token: &str, range: std::ops::Range<usize>, clusters: bool) {
    let next = Arc::new(AtomicUsize::new(range.start));
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (next, token, end) = (next.clone(), token.to_owned(), range.end);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(http).await;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    break;
                }
                let name = format!("pop-{i}");
                let (status, _) = if clusters {
                    conn.send("PUT", &cluster_path(&name), &token, &cluster_body(&name)).await
                } else {
                    conn.send("PUT", &identity_path(&name), &token, IDENTITY_BODY).await
                };
                assert!(status < 300, "populate answered {status}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("populate");
    }
}

type Figures = (f64, Duration, Duration);

fn row(name: &str, (rps, p50, p99): Figures, (bare_rps, bare_p50, bare_p99): Figures) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "| {name} | {rps:.0} | {:.2} | {:.2} | {bare_rps:.0} | {:.2} | {:.2} | {:.2}× |\n",
        ms(p50),
        ms(p99),
        ms(bare_p50),
        ms(bare_p99),
        rps / bare_rps
    )
}
async fn get_json(http: SocketAddr, token: &str, path: &str) -> Value {
    let (status, body) = Conn::open(http).await.send("GET", path, token, "").await;
    assert_eq!(status, 200, "GET {path}");
    serde_json::from_slice(&body).expect("JSON")
}

async fn put_group(http: SocketAddr, token: &str) {
    let path = format!("{}?api-version=2024-11-01", group_path());
    let (status, _) = Conn::open(http).await.send("PUT", &path, token, r#"{"location":"westus2"}"#).await;
    assert!(status < 300, "PUT {path} answered {status}");
}

fn mb(kb: u64) -> String {
    format!("{} MB", kb / 1024)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`: nothing to do then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }

    // armlet in memory, with 100 identities and 100 clusters in one group.
    let armlet = start_armlet(None);
    let startup_memory = armlet.startup;
    let http = armlet.http;
    let token = token(http).await;
    put_group(http, &token).await;
    populate(http, &token, 100, false).await;
    populate(http, &token, 100, true).await;
    let bare = Bare {
        identity: Arc::new(get_json(http, &token, &identity_path("pop-0")).await),
        identities: Arc::new(get_json(http, &token, &identities_path()).await),
        cluster: Arc::new(get_json(http, &token, &cluster_path("pop-0")).await),
        clusters: Arc::new(get_json(http, &token, &clusters_path()).await),
        sled: None,
    };
    assert_eq!(bare.identities["value"].as_array().map(Vec::len), Some(100));
    assert_eq!(bare.clusters["value"].as_array().map(Vec::len), Some(100));

    let get_identity = load(http, &token, |i| ("GET", identity_path(&format!("pop-{}", i % 100)), String::new())).await;
    let list_identities = load(http, &token, |_| ("GET", identities_path(), String::new())).await;
    let get_cluster = load(http, &token, |i| ("GET", cluster_path(&format!("pop-{}", i % 100)), String::new())).await;
    let list_clusters = load(http, &token, |_| ("GET", clusters_path(), String::new())).await;
    let put_identity =
        load(http, &token, |i| ("PUT", identity_path(&format!("put-{i}")), IDENTITY_BODY.to_owned())).await;
    let put_cluster = load(http, &token, |i| {
        let name = format!("put-{i}");
        ("PUT", cluster_path(&name), cluster_body(&name))
    })
    .await;
    drop(armlet);

    // The bare servers, answering the JSON armlet answered.
    let bare_memory = start_bare(bare.clone()).await;
    let b_get_identity =
        load(bare_memory, "", |i| ("GET", format!("/bare/identity/pop-{}", i % 100), String::new())).await;
    let b_list_identities = load(bare_memory, "", |_| ("GET", "/bare/identity".to_owned(), String::new())).await;
    let b_get_cluster =
        load(bare_memory, "", |i| ("GET", format!("/bare/cluster/pop-{}", i % 100), String::new())).await;
    let b_list_clusters = load(bare_memory, "", |_| ("GET", "/bare/cluster".to_owned(), String::new())).await;
    let b_put_identity =
        load(bare_memory, "", |i| ("PUT", format!("/bare/identity/put-{i}"), IDENTITY_BODY.to_owned())).await;
    let b_put_cluster = load(bare_memory, "", |i| ("PUT", format!("/bare/cluster/put-{i}"), cluster_body("x"))).await;
    let sled_dir = tempfile::tempdir().expect("tempdir");
    let bare_sled = start_bare(Bare { sled: Some(sled::open(sled_dir.path()).expect("sled")), ..bare }).await;
    let b_durable_identity =
        load(bare_sled, "", |i| ("PUT", format!("/bare/identity/dur-{i}"), IDENTITY_BODY.to_owned())).await;
    let b_durable_cluster = load(bare_sled, "", |i| ("PUT", format!("/bare/cluster/dur-{i}"), cluster_body("x"))).await;

    // armlet on a data directory: every acknowledged PUT flushed (group commit).
    let dir = tempfile::tempdir().expect("tempdir");
    let durable = start_armlet(Some(dir.path()));
    let startup_empty_dir = durable.startup;
    let token = self::token(durable.http).await;
    put_group(durable.http, &token).await;
    let durable_identity =
        load(durable.http, &token, |i| ("PUT", identity_path(&format!("dur-{i}")), IDENTITY_BODY.to_owned())).await;
    let durable_cluster = load(durable.http, &token, |i| {
        let name = format!("dur-{i}");
        ("PUT", cluster_path(&name), cluster_body(&name))
    })
    .await;
    drop(durable);

    let mut out = String::from(
        "| scenario | armlet req/s | p50 ms | p99 ms | bare req/s | p50 ms | p99 ms | ratio |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (name, armlet, bare) in [
        ("GET identity", get_identity, b_get_identity),
        ("LIST 100 identities", list_identities, b_list_identities),
        ("PUT identity (in memory)", put_identity, b_put_identity),
        ("PUT identity (durable: flushed)", durable_identity, b_durable_identity),
        ("GET cluster", get_cluster, b_get_cluster),
        ("LIST 100 clusters", list_clusters, b_list_clusters),
        ("PUT cluster (in memory)", put_cluster, b_put_cluster),
        ("PUT cluster (durable: flushed)", durable_cluster, b_durable_cluster),
    ] {
        out += &row(name, armlet, bare);
    }

    // Startup and memory with 10k and 100k identities on a data directory.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sizes = Vec::new();
    let mut populated = 0;
    for count in [10_000, 100_000] {
        let armlet = start_armlet(Some(dir.path()));
        let token = self::token(armlet.http).await;
        if populated == 0 {
            put_group(armlet.http, &token).await;
        }
        populate_with(armlet.http, &token, populated..count, false).await;
        populated = count;
        let rss_created = rss_kb(armlet.child.id());
        drop(armlet);
        let restarted = start_armlet(Some(dir.path()));
        let startup = restarted.startup;
        let token = self::token(restarted.http).await;
        let (status, _) = Conn::open(restarted.http).await.send("GET", &identity_path("pop-0"), &token, "").await;
        assert_eq!(status, 200);
        let rss_restarted = rss_kb(restarted.child.id());
        drop(restarted);
        sizes.push((count, startup, rss_created, rss_restarted));
    }
    out += &format!(
        "\n| measure | value |\n|---|---|\n| startup to ready, in memory | {:.0} ms |\n| startup to ready, empty data dir | {:.0} ms |\n",
        startup_memory.as_secs_f64() * 1e3,
        startup_empty_dir.as_secs_f64() * 1e3,
    );
    for (count, startup, created, restarted) in sizes {
        out += &format!(
            "| startup to ready, data dir with {count} identities | {:.0} ms |\n| RSS with {count} identities, right after creating them | {} |\n| RSS with {count} identities, after a restart and one GET | {} |\n",
            startup.as_secs_f64() * 1e3,
            mb(created),
            mb(restarted),
        );
    }
    print!("{out}");
}
