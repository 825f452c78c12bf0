//! The real `armlet serve` binary on a data directory, for tests that kill it (durability,
//! crash safety), a small HTTP/1.1 client that keeps response headers, and an in-process
//! armlet on a real sled store.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use armlet::clock::Clock;
use armlet::store::{Db, SledStore, Store};
use armlet::{AppState, Settings};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{TestApp, client_id, client_secret, key, tenant_id};

/// A running `armlet serve`; killed (SIGKILL) and reaped when dropped.
pub struct Server {
    child: Child,
    pub https: String,
    pub http: String,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts armlet on `data_dir` with random ports and waits until it is ready.
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    /// Like [`Server::start`], with extra `armlet serve` arguments.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Self {
        let dir = data_dir.to_str().expect("a UTF-8 data directory");
        let mut args = vec!["--data-dir", dir, "--bind", "127.0.0.1"];
        args.extend_from_slice(extra);
        let server = Self::serve(&args);
        assert!(
            server.https.starts_with("https://127.0.0.1:") && server.http.starts_with("http://127.0.0.1:"),
            "ready at {} and {}",
            server.https,
            server.http
        );
        server
    }

    /// `armlet serve --in-memory` with `args`, on random ports.
    pub fn in_memory(args: &[&str]) -> Self {
        let mut all = vec!["--in-memory"];
        all.extend_from_slice(args);
        Self::serve(&all)
    }

    /// `armlet serve` with `args` on random ports, none of the caller's `ARMLET_*` settings,
    /// once it says it is ready.
    fn serve(args: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_armlet"));
        command
            .args(["serve", "--https-port", "0", "--http-port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (var, _) in std::env::vars_os() {
            if var.to_string_lossy().starts_with("ARMLET_") {
                command.env_remove(var);
            }
        }
        let mut child = command.spawn().expect("start armlet");
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr_pipe = child.stderr.take().expect("stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let stderr = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = stderr_pipe.read(&mut buf) {
                    stderr
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let (tx, rx) = mpsc::channel();
        // Keep draining stdout after the ready line so the server never writes to a full or
        // closed pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("armlet ready: ") {
                    let _ = tx.send(rest.to_owned());
                }
            }
        });
        let mut server = Self { child, https: String::new(), http: String::new(), stderr };
        let ready = match rx.recv_timeout(StdDuration::from_secs(120)) {
            Ok(line) => line,
            Err(e) => panic!(
                "armlet did not get ready ({e}); exit: {:?}; stderr:\n{}",
                server.child.try_wait(),
                server.stderr_text()
            ),
        };
        for part in ready.split_whitespace() {
            if let Some(url) = part.strip_prefix("https=") {
                server.https = url.to_owned();
            } else if let Some(url) = part.strip_prefix("http=") {
                server.http = url.to_owned();
            }
        }
        server
    }

    /// The plain-HTTP listener as `host:port`.
    pub fn http_addr(&self) -> String {
        self.http.trim_start_matches("http://").to_owned()
    }

    /// The HTTPS listener as `host:port`.
    pub fn https_addr(&self) -> String {
        self.https.trim_start_matches("https://").to_owned()
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// `kill -9` and reap.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL armlet");
        let status = self.child.wait().expect("reap armlet");
        assert!(!status.success(), "armlet was killed, not stopped: {status}");
    }
}

/// One complete HTTP response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    /// `Null` when empty, a JSON string holding the text when it is not JSON.
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Sends one request to an `http://host:port/path` URL over a fresh connection and reads
/// the whole response. A response cut short (the server died while answering) is an error,
/// so `Ok` means the server finished answering.
pub async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Result<Reply, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("'{url}' is not an http:// URL"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let exchange = async {
        let mut stream = TcpStream::connect(authority).await.map_err(|e| format!("connect {authority}: {e}"))?;
        let body = body.unwrap_or("");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nAccept: application/json\r\n"
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || method != "GET" {
            let has_type = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
            if !has_type {
                head.push_str("Content-Type: application/json\r\n");
            }
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
        stream.write_all(body.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.map_err(|e| format!("read: {e}"))?;
        parse_reply(&raw)
    };
    tokio::time::timeout(StdDuration::from_secs(60), exchange)
        .await
        .map_err(|_| format!("{method} {url} timed out"))?
        .map_err(|e| format!("{method} {url}: {e}"))
}

fn parse_reply(raw: &[u8]) -> Result<Reply, String> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("incomplete response head")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("malformed status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let find = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let body: Vec<u8> = if find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        let mut out = Vec::new();
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").ok_or("truncated chunk size")?;
            let size_text = String::from_utf8_lossy(&rest[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| format!("bad chunk size '{size_text}'"))?;
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            if rest.len() < size + 2 {
                return Err("truncated chunk".into());
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        out
    } else if let Some(length) = find("content-length") {
        let length: usize = length.parse().map_err(|_| format!("bad content-length '{length}'"))?;
        if rest.len() < length {
            return Err(format!("truncated body: {} of {length} bytes", rest.len()));
        }
        rest[..length].to_vec()
    } else {
        rest.to_vec()
    };
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    Ok(Reply { status, headers, body })
}

/// Sends `body` with a bearer `token` (if any); returns status and JSON body.
pub async fn call(method: &str, url: &str, token: Option<&str>, body: Option<&str>) -> Result<(u16, Value), String> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.as_deref().map(|a| vec![("Authorization", a)]).unwrap_or_default();
    let reply = send(method, url, &headers, body).await?;
    Ok((reply.status, reply.body))
}

/// A token from the server's own v2 endpoint (over plain HTTP) for `audience`.
pub async fn token(server: &Server, audience: &str) -> String {
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "client_credentials"),
            ("client_id", client_id()),
            ("client_secret", client_secret()),
            ("scope", &format!("{audience}/.default")),
        ])
        .finish();
    let url = format!("{}/{}/oauth2/v2.0/token", server.http, tenant_id());
    let reply = send("POST", &url, &[("Content-Type", "application/x-www-form-urlencoded")], Some(&form))
        .await
        .expect("token request");
    assert_eq!(reply.status, 200, "token endpoint: {}", reply.body);
    reply.body["access_token"].as_str().unwrap_or_else(|| panic!("no access_token: {}", reply.body)).to_owned()
}

impl TestApp {
    /// An in-process armlet on a durable sled store in `dir` (flushes before every
    /// acknowledgement, as `armlet serve` does), with a frozen clock and default settings.
    pub async fn on_sled(dir: &Path) -> Self {
        Self::on_store(Arc::new(SledStore::open(dir).expect("open a sled store"))).await
    }

    /// An in-process armlet on `store`, treated as durable (every acknowledgement waits for
    /// a flush), with a frozen clock and default settings.
    pub async fn on_store(store: Arc<dyn Store>) -> Self {
        let state = AppState::new(Db::new(store, true), Clock::frozen_at(super::FROZEN_AT), key(), Settings::default());
        state.bootstrap().await.expect("bootstrap");
        let router = armlet::app(state.clone());
        Self { state, router }
    }
}
