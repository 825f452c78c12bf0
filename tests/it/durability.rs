//! The real binary on a real data directory: every write armlet acknowledged survives
//! `kill -9`, and so does the simulated clock.

use armlet::clock::{Clock, parse_rfc3339};
use serde_json::Value;
use time::Duration;

use crate::common::server::{Server, call, token};
use crate::common::{RG_API, sub_id};

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

        // Everything acknowledged before every earlier kill is still there.
        let port_token = token(&server, &server.https).await;
        // The key is generated in the background on a first start; by the time it signed a
        // token it is on disk, so later rounds' tokens stay valid.
        assert!(data_dir.join("keys").join("signing-key.pem").exists());
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
