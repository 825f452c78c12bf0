//! The real binary on a real data directory: every write armlet acknowledged survives
//! `kill -9`, and so does the simulated clock.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use armlet::cli::http::request_with_headers;
use armlet::clock::{Clock, parse_rfc3339};
use serde_json::Value;
use time::Duration;

use crate::common::{RG_API, client_id, client_secret, sub_id, tenant_id};

/// A running `armlet serve`; killed (SIGKILL) and reaped when dropped.
struct Server {
    child: Child,
    https: String,
    http: String,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(data_dir: &Path) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_armlet"));
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--https-port", "0", "--http-port", "0", "--bind", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in [
            "ARMLET_IN_MEMORY",
            "ARMLET_TLS_CERT",
            "ARMLET_TLS_KEY",
            "ARMLET_SKIP_API_VERSION_CHECK",
            "ARMLET_MAX_BODY_BYTES",
        ] {
            command.env_remove(var);
        }
        let mut child = command.spawn().expect("start armlet");
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr_pipe = child.stderr.take().expect("stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let stderr = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stderr_pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
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
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
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
        assert!(
            server.https.starts_with("https://127.0.0.1:") && server.http.starts_with("http://127.0.0.1:"),
            "ready line: {ready}"
        );
        server
    }

    fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// `kill -9` and reap.
    fn kill9(mut self) {
        self.child.kill().expect("SIGKILL armlet");
        let status = self.child.wait().expect("reap armlet");
        assert!(!status.success(), "armlet was killed, not stopped: {status}");
    }
}

async fn call(method: &str, url: &str, token: Option<&str>, body: Option<&str>) -> Result<(u16, Value), String> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.as_deref().map(|a| vec![("Authorization", a)]).unwrap_or_default();
    let (status, text) =
        tokio::time::timeout(StdDuration::from_secs(60), request_with_headers(method, url, &headers, body))
            .await
            .map_err(|_| format!("{method} {url} timed out"))??;
    let value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).map_err(|e| format!("{method} {url}: {e}: {text}"))?
    };
    Ok((status, value))
}

/// A token from the server's own v2 endpoint (over plain HTTP) for `audience`.
async fn token(server: &Server, audience: &str) -> String {
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "client_credentials"),
            ("client_id", client_id()),
            ("client_secret", client_secret()),
            ("scope", &format!("{audience}/.default")),
        ])
        .finish();
    let url = format!("{}/{}/oauth2/v2.0/token", server.http, tenant_id());
    let (status, body) = call("POST", &url, None, Some(&form)).await.expect("token request");
    assert_eq!(status, 200, "token endpoint: {body}");
    body["access_token"].as_str().unwrap_or_else(|| panic!("no access_token: {body}")).to_owned()
}

fn group_url(server: &Server, name: &str) -> String {
    format!("{}/subscriptions/{}/resourcegroups/{name}?api-version={RG_API}", server.http, sub_id())
}

/// PUTs `names` concurrently; returns the names armlet acknowledged (200/201), in the
/// order the acknowledgements came. With `kill_after`, the server is SIGKILLed as soon as
/// that many are acknowledged, with the rest still in flight.
async fn put_groups(
    server: Server,
    token: &str,
    names: Vec<String>,
    kill_after: Option<usize>,
) -> (Vec<String>, Option<Server>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for name in names.iter().cloned() {
        let tx = tx.clone();
        let url = group_url(&server, &name);
        let token = token.to_owned();
        tokio::spawn(async move {
            let result =
                call("PUT", &url, Some(&token), Some(r#"{"location":"westus2","tags":{"durable":"yes"}}"#)).await;
            let _ = tx.send((name, result));
        });
    }
    drop(tx);
    let mut server = Some(server);
    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    while let Some((name, result)) = rx.recv().await {
        match result {
            Ok((200 | 201, body)) => {
                assert_eq!(body["name"], name, "{body}");
                acknowledged.push(name);
                if kill_after == Some(acknowledged.len())
                    && let Some(s) = server.take()
                {
                    s.kill9();
                }
            }
            other => refused.push((name, other)),
        }
    }
    if server.is_some() {
        assert!(refused.is_empty(), "refused while running: {refused:?}");
    }
    (acknowledged, server)
}

async fn clock_ahead(server: &Server) -> (Duration, Value) {
    let (status, clock) = call("GET", &format!("{}/_armlet/clock", server.http), None, None).await.expect("clock");
    assert_eq!(status, 200, "{clock}");
    let now = parse_rfc3339(clock["now"].as_str().expect("now")).expect("RFC 3339");
    (now - Clock::wall_now(), clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_and_the_clock_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let mut survivors: Vec<String> = Vec::new();
    // Obtained once for the public-cloud audience, which does not depend on the port: it
    // must keep working across restarts, since the signing key is kept on disk.
    let mut long_lived: Option<String> = None;

    for round in 1..=3usize {
        let server = Server::start(&data_dir);
        assert!(data_dir.join("db").exists(), "the store is on disk");
        assert!(data_dir.join("keys").join("signing-key.pem").exists());

        // Everything acknowledged before every earlier kill is still there.
        let port_token = token(&server, &server.https).await;
        let token_for_all = match &long_lived {
            Some(t) => t.clone(),
            None => {
                let t = token(&server, "https://management.azure.com").await;
                long_lived = Some(t.clone());
                t
            }
        };
        for name in &survivors {
            let (status, body) = call("GET", &group_url(&server, name), Some(&token_for_all), None)
                .await
                .unwrap_or_else(|e| panic!("round {round}: GET {name}: {e}"));
            assert_eq!(
                status,
                200,
                "round {round}: acknowledged group {name} was lost: {body}\nstderr:\n{}",
                server.stderr_text()
            );
            assert_eq!(body["name"], name.as_str());
            assert_eq!(body["tags"]["durable"], "yes");
        }

        // The clock kept every earlier advance.
        let (ahead, clock) = clock_ahead(&server).await;
        let expected = Duration::days(46 * (round as i64 - 1));
        assert!(
            ahead >= expected - Duration::minutes(1) && ahead < expected + Duration::hours(1),
            "round {round}: clock is {ahead} ahead, expected about {expected}: {clock}"
        );
        assert_eq!(clock["mode"], "real");

        let (status, moved) =
            call("POST", &format!("{}/_armlet/clock/advance", server.http), None, Some(r#"{"by":"46d"}"#))
                .await
                .expect("advance");
        assert_eq!(status, 200, "{moved}");
        let (ahead, _) = clock_ahead(&server).await;
        assert!(ahead >= Duration::days(46 * round as i64) - Duration::minutes(1));

        // 20 concurrent creations, all acknowledged, then kill -9 at once.
        let names: Vec<String> = (0..20).map(|i| format!("dur-r{round}-a{i:02}")).collect();
        let (acked, server) = put_groups(server, &port_token, names, None).await;
        assert_eq!(acked.len(), 20, "round {round}: {acked:?}");
        survivors.extend(acked);
        let server = server.expect("still running");

        // 60 more, killed after the first 10 are acknowledged with the rest in flight.
        let names: Vec<String> = (0..60).map(|i| format!("dur-r{round}-b{i:02}")).collect();
        let (acked, server) = put_groups(server, &port_token, names, Some(10)).await;
        assert!(server.is_none(), "round {round}: the server was killed");
        assert!(acked.len() >= 10, "round {round}: {acked:?}");
        survivors.extend(acked);
    }

    // The final restart sees everything, including the last round's writes.
    let server = Server::start(&data_dir);
    let port_token = token(&server, &server.https).await;
    let (status, list) = call(
        "GET",
        &format!("{}/subscriptions/{}/resourcegroups?api-version={RG_API}&$top=1000", server.http, sub_id()),
        Some(&port_token),
        None,
    )
    .await
    .expect("list groups");
    assert_eq!(status, 200, "{list}");
    let listed: std::collections::BTreeSet<&str> =
        list["value"].as_array().expect("value").iter().filter_map(|g| g["name"].as_str()).collect();
    let missing: Vec<&String> = survivors.iter().filter(|n| !listed.contains(n.as_str())).collect();
    assert!(
        missing.is_empty(),
        "acknowledged groups lost after kill -9: {missing:?}\nstderr:\n{}",
        server.stderr_text()
    );
    for name in &survivors {
        let (status, body) = call("GET", &group_url(&server, name), Some(&port_token), None).await.expect("GET group");
        assert_eq!(status, 200, "{name}: {body}");
    }
    let (ahead, clock) = clock_ahead(&server).await;
    assert!(ahead >= Duration::days(46 * 3) - Duration::minutes(1), "the clock lost advances: {ahead} ahead: {clock}");
    server.kill9();
}
