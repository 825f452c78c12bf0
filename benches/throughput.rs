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
async fn load<F>(addr: SocketAddr, token: &str, request: F) -> (f64, Duration, Duration)
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

fn sample_json(name: &str) -> Value {
    json!({
        "id": format!("/subscriptions/{SUB}/resourceGroups/bench/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"),
        "name": name,
        "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
        "location": "westus2",
        "tags": {},
        "properties": {
            "tenantId": "a1e70000-0000-4000-8000-000000000001",
            "principalId": "0b4f8a2c-2f43-4c9d-9a52-1b2b1f7a6f11",
            "clientId": "6d7f0e1c-9f3b-4d0e-8c41-7a3e2b9c5d22",
            "isolationScope": "None",
            "clientSecretUrl": "https://127.0.0.1:8443/msi/credentials?tid=a1e70000-0000-4000-8000-000000000001&oid=0b4f8a2c&aid=6d7f0e1c",
        },
        "systemData": { "createdAt": "2026-11-29T06:00:00.0000000Z", "createdBy": "a1e70000-0000-4000-8000-000000000003" },
    })
}

#[derive(Clone)]
struct Bare {
    sled: Option<sled::Db>,
}

async fn bare_get(Path(name): Path<String>) -> axum::Json<Value> {
    axum::Json(sample_json(&name))
}

async fn bare_put(State(bare): State<Bare>, Path(name): Path<String>, body: axum::body::Bytes) -> axum::Json<Value> {
    let value = sample_json(&name);
    if let Some(db) = &bare.sled {
        let db = db.clone();
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        let _ = body;
        tokio::task::spawn_blocking(move || {
            db.insert(name.as_bytes(), bytes).expect("sled insert");
            db.flush().expect("sled flush");
        })
        .await
        .expect("blocking task");
    }
    axum::Json(value)
}

async fn start_bare(sled: Option<sled::Db>) -> SocketAddr {
    let app = Router::new().route("/bare/{name}", get(bare_get).put(bare_put)).with_state(Bare { sled });
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

fn identity_path(name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/bench/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}?api-version=2024-11-30"
    )
}

/// Creates `count` identities (`id0`, `id1`, …) through armlet's API.
async fn populate(http: SocketAddr, token: &str, count: usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (next, token) = (next.clone(), token.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(http).await;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let (status, _) =
                    conn.send("PUT", &identity_path(&format!("pop-{i}")), &token, r#"{"location":"westus2"}"#).await;
                assert!(status < 300, "populate answered {status}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("populate");
    }
}

fn row(name: &str, (rps, p50, p99): (f64, Duration, Duration), baseline: Option<f64>) -> String {
    let ratio = baseline.map_or("".to_owned(), |b| format!("{:.2}×", rps / b));
    format!("| {name} | {rps:.0} | {:.2} | {:.2} | {ratio} |\n", p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`: nothing to do then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let mut out =
        String::from("| scenario | req/s | p50 ms | p99 ms | ratio to the bare server |\n|---|---|---|---|---|\n");

    let bare = start_bare(None).await;
    let bare_get_r = load(bare, "", |_| ("GET", "/bare/x".to_owned(), String::new())).await;
    let bare_put_r = load(bare, "", |i| ("PUT", format!("/bare/n{i}"), r#"{"location":"westus2"}"#.to_owned())).await;
    let sled_dir = tempfile::tempdir().expect("tempdir");
    let bare_sled = start_bare(Some(sled::open(sled_dir.path()).expect("sled"))).await;
    let bare_sled_put =
        load(bare_sled, "", |i| ("PUT", format!("/bare/n{i}"), r#"{"location":"westus2"}"#.to_owned())).await;
    out += &row("bare axum GET (in memory)", bare_get_r, None);
    out += &row("bare axum PUT (in memory)", bare_put_r, None);
    out += &row("bare axum PUT (sled insert + flush)", bare_sled_put, None);

    // armlet in memory.
    let armlet = start_armlet(None);
    let http = armlet.http;
    let token = token(http).await;
    let mut conn = Conn::open(http).await;
    let (status, _) = conn
        .send(
            "PUT",
            &format!("/subscriptions/{SUB}/resourcegroups/bench?api-version=2024-11-01"),
            &token,
            r#"{"location":"westus2"}"#,
        )
        .await;
    assert!(status < 300);
    populate(http, &token, 100).await;
    let get_r = load(http, &token, |i| ("GET", identity_path(&format!("pop-{}", i % 100)), String::new())).await;
    let list_r = load(http, &token, |_| {
        (
            "GET",
            format!("/subscriptions/{SUB}/resourceGroups/bench/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version=2024-11-30"),
            String::new(),
        )
    })
    .await;
    let put_r =
        load(http, &token, |i| ("PUT", identity_path(&format!("put-{i}")), r#"{"location":"westus2"}"#.to_owned()))
            .await;
    out += &row("armlet GET identity (bearer + RBAC, in memory)", get_r, Some(bare_get_r.0));
    out += &row("armlet LIST 100 identities (in memory)", list_r, Some(bare_get_r.0));
    out += &row("armlet PUT identity (in memory)", put_r, Some(bare_put_r.0));
    let startup_memory = armlet.startup;
    drop(armlet);

    // armlet durable: every acknowledged PUT flushed (group commit).
    let dir = tempfile::tempdir().expect("tempdir");
    let durable = start_armlet(Some(dir.path()));
    let token = self::token(durable.http).await;
    let mut conn = Conn::open(durable.http).await;
    conn.send(
        "PUT",
        &format!("/subscriptions/{SUB}/resourcegroups/bench?api-version=2024-11-01"),
        &token,
        r#"{"location":"westus2"}"#,
    )
    .await;
    let durable_put = load(durable.http, &token, |i| {
        ("PUT", identity_path(&format!("dur-{i}")), r#"{"location":"westus2"}"#.to_owned())
    })
    .await;
    out += &row("armlet PUT identity (sled, flushed)", durable_put, Some(bare_sled_put.0));
    let startup_durable_empty = durable.startup;
    drop(durable);

    // Memory and startup with 10k resources.
    let armlet = start_armlet(Some(dir.path()));
    let token = self::token(armlet.http).await;
    populate(armlet.http, &token, 10_000).await;
    let rss_10k = rss_kb(armlet.child.id());
    drop(armlet);
    let restarted = start_armlet(Some(dir.path()));
    let startup_10k = restarted.startup;
    let rss_10k_after_restart = rss_kb(restarted.child.id());
    drop(restarted);

    out += &format!(
        "\n| measure | value |\n|---|---|\n| startup to ready, in memory | {:.0} ms |\n| startup to ready, empty data dir | {:.0} ms |\n| startup to ready, data dir with 10k+ resources | {:.0} ms |\n| RSS with 10k+ identities (after creating them) | {} MB |\n| RSS after a restart on them | {} MB |\n",
        startup_memory.as_secs_f64() * 1e3,
        startup_durable_empty.as_secs_f64() * 1e3,
        startup_10k.as_secs_f64() * 1e3,
        rss_10k / 1024,
        rss_10k_after_restart / 1024,
    );
    print!("{out}");
}
