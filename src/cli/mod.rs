//! The client side of the command line: `armlet env`, `armlet clock`, `armlet health`, which
//! talk to a running armlet over its plain-HTTP listener.

pub mod http;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

/// Single-quotes a value for POSIX shells.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\"'\"'"))
}

async fn get_json(url: &str) -> Result<Value, String> {
    let (status, body) = http::request("GET", url, None).await?;
    let value: Value = serde_json::from_str(&body).map_err(|_| format!("{url} answered {status}: {body}"))?;
    if status >= 400 {
        return Err(format!("{url} answered {status}: {}", value["error"]["message"].as_str().unwrap_or(&body)));
    }
    Ok(value)
}

fn home_dir() -> PathBuf {
    std::env::var_os("ARMLET_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".armlet")))
        .unwrap_or_else(|| PathBuf::from(".armlet"))
}

/// `armlet env`: asks the running armlet who it is, saves its CA beside an isolated az
/// config dir, and prints the exports that point az (and SDKs) at it.
pub async fn env(url: &str, dir: Option<&Path>) -> Result<String, String> {
    let url = url.trim_end_matches('/');
    let info = get_json(&format!("{url}/_armlet/info")).await?;
    let field = |name: &str| info[name].as_str().unwrap_or_default().to_owned();
    let https_url = field("httpsUrl");
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => home_dir().join(https_url.trim_start_matches("https://").replace([':', '[', ']'], "-")),
    };
    let config_dir = dir.join("azure");
    std::fs::create_dir_all(&config_dir).map_err(|e| format!("cannot create {}: {e}", config_dir.display()))?;
    let config_dir = config_dir.canonicalize().unwrap_or(config_dir);
    let ca_path = config_dir.parent().unwrap_or(&config_dir).join("ca.pem");
    std::fs::write(&ca_path, field("caCertificate")).map_err(|e| format!("cannot write {}: {e}", ca_path.display()))?;
    let exports = [
        ("AZURE_CONFIG_DIR", config_dir.display().to_string()),
        ("ARM_CLOUD_METADATA_URL", format!("{url}/metadata/endpoints?api-version=2019-05-01")),
        ("REQUESTS_CA_BUNDLE", ca_path.display().to_string()),
        ("AZURE_CORE_INSTANCE_DISCOVERY", "false".into()),
        ("AZURE_CORE_COLLECT_TELEMETRY", "false".into()),
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", url.to_owned()),
        ("ARMLET_URL", url.to_owned()),
        ("ARMLET_HTTPS_URL", https_url.clone()),
        ("ARMLET_CLIENT_ID", field("clientId")),
        ("ARMLET_CLIENT_SECRET", field("clientSecret")),
        ("ARMLET_TENANT_ID", field("tenantId")),
        ("ARMLET_SUBSCRIPTION_ID", field("subscriptionId")),
    ];
    let mut out = format!(
        "# armlet at {https_url}: az now uses the isolated config dir below, not ~/.azure.\n# Log in with: az login --service-principal -u \"$ARMLET_CLIENT_ID\" -p \"$ARMLET_CLIENT_SECRET\" --tenant \"$ARMLET_TENANT_ID\"\n"
    );
    for (name, value) in exports {
        out.push_str(&format!("export {name}={}\n", shell_quote(&value)));
    }
    Ok(out)
}

/// `armlet clock show|advance|set|freeze|resume`.
pub async fn clock(url: &str, action: &str, arg: Option<&str>) -> Result<String, String> {
    let url = url.trim_end_matches('/');
    let (method, path, body) = match (action, arg) {
        ("show", _) => ("GET", "/_armlet/clock", None),
        ("advance", Some(by)) => ("POST", "/_armlet/clock/advance", Some(json!({ "by": by }))),
        ("set", Some(to)) => ("POST", "/_armlet/clock/advance", Some(json!({ "to": to }))),
        ("freeze", _) => ("POST", "/_armlet/clock/freeze", None),
        ("resume", _) => ("POST", "/_armlet/clock/resume", None),
        ("advance", None) => return Err("armlet clock advance needs a duration, e.g. 46d".into()),
        ("set", None) => return Err("armlet clock set needs an RFC 3339 time".into()),
        (other, _) => {
            return Err(format!("unknown clock action '{other}' (show, advance, set, freeze, resume)"));
        }
    };
    let body = body.map(|b| b.to_string());
    let (status, text) = http::request(method, &format!("{url}{path}"), body.as_deref()).await?;
    let value: Value = serde_json::from_str(&text).map_err(|_| format!("armlet answered {status}: {text}"))?;
    if status >= 400 {
        return Err(value["error"]["message"].as_str().unwrap_or(&text).to_owned());
    }
    let mut out =
        format!("{} ({})\n", value["now"].as_str().unwrap_or_default(), value["mode"].as_str().unwrap_or_default());
    for fired in value["fired"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  fired {} {}\n",
            fired["kind"].as_str().unwrap_or_default(),
            fired["subject"].as_str().unwrap_or_default()
        ));
    }
    Ok(out)
}

/// `armlet state export [FILE] | import FILE [--dry-run] | reset`.
pub async fn state(url: &str, action: &str, file: Option<&Path>, dry_run: bool) -> Result<String, String> {
    let url = url.trim_end_matches('/');
    let (method, path, body) = match (action, file) {
        ("export", _) => ("GET", "/_armlet/state".to_owned(), None),
        ("import", Some(file)) => {
            let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            ("PUT", format!("/_armlet/state?dryRun={dry_run}"), Some(text))
        }
        ("import", None) => return Err("armlet state import needs a FILE".into()),
        ("reset", _) => ("POST", "/_armlet/reset".to_owned(), None),
        (other, _) => return Err(format!("unknown state action '{other}' (export, import, reset)")),
    };
    let (status, text) = http::request(method, &format!("{url}{path}"), body.as_deref()).await?;
    if status >= 400 {
        let value: Value = serde_json::from_str(&text).unwrap_or_default();
        return Err(value["error"]["message"].as_str().unwrap_or(&text).to_owned());
    }
    match (action, file) {
        ("export", Some(file)) => {
            std::fs::write(file, &text).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            Ok(format!("wrote {}\n", file.display()))
        }
        _ => Ok(text),
    }
}

/// `armlet subscriptions create [--name N] [--new-tenant]`.
pub async fn subscriptions(url: &str, action: &str, name: Option<&str>, new_tenant: bool) -> Result<String, String> {
    if action != "create" {
        return Err(format!("unknown subscriptions action '{action}' (create)"));
    }
    let mut body = json!({ "newTenant": new_tenant });
    if let Some(name) = name {
        body["displayName"] = json!(name);
    }
    let url = format!("{}/_armlet/subscriptions", url.trim_end_matches('/'));
    let (status, text) = http::request("POST", &url, Some(&body.to_string())).await?;
    let value: Value = serde_json::from_str(&text).map_err(|_| format!("armlet answered {status}: {text}"))?;
    if status >= 400 {
        return Err(value["error"]["message"].as_str().unwrap_or(&text).to_owned());
    }
    serde_json::to_string_pretty(&value).map_err(|e| e.to_string())
}

/// `armlet events`: pending and fired events, one per line.
pub async fn events(url: &str) -> Result<String, String> {
    let value = get_json(&format!("{}/_armlet/events", url.trim_end_matches('/'))).await?;
    let mut out = format!("now {}\npending:\n", value["time"].as_str().unwrap_or_default());
    let line = |e: &Value| {
        format!(
            "  {}  {}  {}\n",
            e["due"].as_str().unwrap_or_default(),
            e["kind"].as_str().unwrap_or_default(),
            e["subject"].as_str().unwrap_or_default()
        )
    };
    for event in value["pending"].as_array().into_iter().flatten() {
        out.push_str(&line(event));
    }
    out.push_str("fired:\n");
    for event in value["fired"].as_array().into_iter().flatten() {
        out.push_str(&line(event));
    }
    Ok(out)
}

/// `armlet explain`: the control API's RBAC explanation, pretty-printed.
pub async fn explain(url: &str, principal: &str, action: &str, scope: &str) -> Result<String, String> {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("principal", principal)
        .append_pair("action", action)
        .append_pair("scope", scope)
        .finish();
    let value = get_json(&format!("{}/_armlet/explain?{query}", url.trim_end_matches('/'))).await?;
    serde_json::to_string_pretty(&value).map_err(|e| e.to_string())
}

/// `armlet node-images list [--location L]` and `armlet node-images publish [--version V]
/// [--location L ...] [--at T | --rollout-hours H]`.
pub async fn node_images(
    url: &str,
    action: &str,
    version: Option<&str>,
    locations: &[String],
    at: Option<&str>,
    rollout_hours: Option<i64>,
) -> Result<String, String> {
    let base = format!("{}/_armlet/node-images", url.trim_end_matches('/'));
    match action {
        "list" => {
            let url = match locations.first() {
                Some(l) => {
                    format!("{base}?location={}", form_urlencoded::byte_serialize(l.as_bytes()).collect::<String>())
                }
                None => base,
            };
            let value = get_json(&url).await?;
            let mut out = format!("now {}\n", value["time"].as_str().unwrap_or_default());
            if let Some(latest) = value["latest"].as_object() {
                out.push_str(&format!("latest in {}:\n", value["location"].as_str().unwrap_or_default()));
                for (sku, image) in latest {
                    out.push_str(&format!("  {sku:<12} {}\n", image.as_str().unwrap_or_default()));
                }
            }
            out.push_str("releases:\n");
            for r in value["releases"].as_array().into_iter().flatten() {
                let reach = match r.get("availableAt") {
                    Some(Value::String(at)) => format!("  reaches it {at}"),
                    Some(_) => "  never reaches it".into(),
                    None => String::new(),
                };
                out.push_str(&format!(
                    "  {}  released {}{}{}\n",
                    r["version"].as_str().unwrap_or_default(),
                    r["released"].as_str().unwrap_or_default(),
                    if r["published"] == true { " (published)" } else { "" },
                    reach
                ));
            }
            Ok(out)
        }
        "publish" => {
            let mut body = json!({});
            if let Some(v) = version {
                body["version"] = json!(v);
            }
            if !locations.is_empty() {
                body["locations"] = json!(locations);
            }
            if let Some(at) = at {
                body["at"] = json!(at);
            }
            if let Some(h) = rollout_hours {
                body["rolloutHours"] = json!(h);
            }
            let (status, text) = http::request("POST", &base, Some(&body.to_string())).await?;
            let value: Value = serde_json::from_str(&text).map_err(|_| format!("armlet answered {status}: {text}"))?;
            if status >= 400 {
                return Err(value["error"]["message"].as_str().unwrap_or(&text).to_owned());
            }
            serde_json::to_string_pretty(&value).map_err(|e| e.to_string())
        }
        other => Err(format!("unknown node-images action '{other}' (list, publish)")),
    }
}

/// `armlet cluster health|nodes <cluster resource id>`: the text and whether the cluster is
/// healthy (the command exits non-zero when it is not, for scripts).
pub async fn cluster(url: &str, action: &str, id: &str) -> Result<(String, bool), String> {
    if action != "health" && action != "nodes" {
        return Err(format!("unknown cluster action '{action}' (health, nodes)"));
    }
    let id = id.trim().trim_start_matches('/');
    let value = get_json(&format!("{}/_armlet/clusters/{id}/{action}", url.trim_end_matches('/'))).await?;
    if action == "nodes" {
        return serde_json::to_string_pretty(&value).map(|text| (text, true)).map_err(|e| e.to_string());
    }
    let mut out = format!(
        "{} at {}: {}\n",
        value["cluster"].as_str().unwrap_or_default(),
        value["time"].as_str().unwrap_or_default(),
        if value["healthy"] == true { "healthy" } else { "UNHEALTHY" }
    );
    for problem in value["problems"].as_array().into_iter().flatten() {
        out.push_str(&format!("  ! {}\n", problem.as_str().unwrap_or_default()));
    }
    let cp = &value["controlPlane"];
    out.push_str(&format!(
        "control plane: {} {}\n",
        cp["type"].as_str().unwrap_or_default(),
        cp["principalId"].as_str().or(cp["clientId"].as_str()).unwrap_or_default()
    ));
    for pool in value["pools"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "pool {}: {} nodes on {} (newest here {})\n",
            pool["name"].as_str().unwrap_or_default(),
            pool["nodes"],
            pool["nodeImageVersion"].as_str().unwrap_or_default(),
            pool["latestNodeImageVersion"].as_str().unwrap_or_default()
        ));
        for k in pool["kubelets"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  kubelet: {} {} on {} node(s)\n",
                k["credential"]["type"].as_str().unwrap_or_default(),
                k["credential"]["clientId"].as_str().unwrap_or_default(),
                k["nodes"]
            ));
        }
    }
    // Registries the cluster was never attached to are not its business.
    for registry in value["registries"].as_array().into_iter().flatten().filter(|r| r["attached"] == true) {
        for pull in registry["pulls"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "pull {} from {}: {}\n",
                pull["pool"].as_str().unwrap_or_default(),
                registry["loginServer"].as_str().unwrap_or_default(),
                if pull["ok"] == true {
                    "ok".to_owned()
                } else {
                    format!("denied ({})", pull["reason"].as_str().unwrap_or_default())
                }
            ));
        }
    }
    out.push_str("pending:\n");
    for event in value["pending"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {}  {}  {}\n",
            event["due"].as_str().unwrap_or_default(),
            event["kind"].as_str().unwrap_or_default(),
            event["subject"].as_str().unwrap_or_default()
        ));
    }
    Ok((out, value["healthy"] == true))
}

async fn send_json(method: &str, url: &str, body: Option<&Value>) -> Result<Value, String> {
    let text_body = body.map(Value::to_string);
    let (status, text) = http::request(method, url, text_body.as_deref()).await?;
    if text.trim().is_empty() && status < 400 {
        return Ok(Value::Null);
    }
    let value: Value = serde_json::from_str(&text).map_err(|_| format!("armlet answered {status}: {text}"))?;
    if status >= 400 {
        return Err(value["error"]["message"].as_str().unwrap_or(&text).to_owned());
    }
    Ok(value)
}

/// `armlet config show | set KIND=DURATION[,Npolls] ... | unset KIND ...`.
pub async fn config(url: &str, action: &str, values: &[String]) -> Result<String, String> {
    let url = format!("{}/_armlet/config", url.trim_end_matches('/'));
    let value = match action {
        "show" => get_json(&url).await?,
        "set" | "unset" => {
            if values.is_empty() {
                return Err(format!("armlet config {action} needs at least one operation kind"));
            }
            let mut updates = Vec::new();
            for v in values {
                if action == "unset" {
                    updates.push(json!({ "kind": v, "remove": true }));
                    continue;
                }
                let rule = crate::arm::lro::TimingRule::parse(v)?;
                updates.push(json!({
                    "kind": rule.kind,
                    "duration": format!("{}ms", rule.duration.whole_milliseconds()),
                    "polls": rule.polls,
                }));
            }
            send_json("PATCH", &url, Some(&json!({ "operationTiming": updates }))).await?
        }
        other => return Err(format!("unknown config action '{other}' (show, set, unset)")),
    };
    serde_json::to_string_pretty(&value).map_err(|e| e.to_string())
}

/// `armlet faults list | clear | remove ID | add …`.
pub async fn faults(url: &str, action: &str, id: Option<&str>, rule: Value) -> Result<String, String> {
    let base = format!("{}/_armlet/faults", url.trim_end_matches('/'));
    let value = match (action, id) {
        ("list", _) => get_json(&base).await?,
        ("clear", _) => send_json("DELETE", &base, None).await?,
        ("remove", Some(id)) => {
            send_json("DELETE", &format!("{base}/{id}"), None).await?;
            json!({ "removed": id })
        }
        ("remove", None) => return Err("armlet faults remove needs a rule id".into()),
        ("add", _) => {
            if rule.get("action").is_none() {
                return Err("armlet faults add needs an action: --throttle, --server-error, --error, --latency-ms or --fail-operation".into());
            }
            send_json("POST", &base, Some(&rule)).await?
        }
        (other, _) => return Err(format!("unknown faults action '{other}' (list, add, remove, clear)")),
    };
    serde_json::to_string_pretty(&value).map_err(|e| e.to_string())
}

fn request_line(r: &Value) -> String {
    format!(
        "{} {:>3} {:<6} {}{} api-version={} caller={} {}ms {}\n",
        r["time"].as_str().unwrap_or_default(),
        r["status"],
        r["method"].as_str().unwrap_or_default(),
        r["path"].as_str().unwrap_or_default(),
        "",
        r["apiVersion"].as_str().unwrap_or("-"),
        r["caller"].as_str().unwrap_or("-"),
        r["elapsedMs"],
        r["requestId"].as_str().unwrap_or_default(),
    )
}

/// `armlet requests [--limit N] [--follow]`: the request log, one line each; `--follow` keeps
/// polling for new ones.
pub async fn requests(url: &str, limit: usize, follow: bool) -> Result<String, String> {
    let base = format!("{}/_armlet/requests", url.trim_end_matches('/'));
    let value = get_json(&format!("{base}?limit={limit}")).await?;
    let entries = value["value"].as_array().cloned().unwrap_or_default();
    let mut out: String = entries.iter().map(request_line).collect();
    if !follow {
        return Ok(out);
    }
    print!("{out}");
    out.clear();
    let mut seen: std::collections::VecDeque<String> =
        entries.iter().filter_map(|e| e["requestId"].as_str().map(str::to_owned)).collect();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let value = get_json(&format!("{base}?limit=200")).await?;
        for entry in value["value"].as_array().into_iter().flatten() {
            let id = entry["requestId"].as_str().unwrap_or_default().to_owned();
            if !seen.contains(&id) {
                print!("{}", request_line(entry));
                seen.push_back(id);
                if seen.len() > 1000 {
                    seen.pop_front();
                }
            }
        }
    }
}

/// `armlet health [--wait]`: whether armlet is ready; with `wait`, polls until it is.
pub async fn health(url: &str, wait: Option<Duration>) -> Result<String, String> {
    let url = format!("{}/_armlet/health", url.trim_end_matches('/'));
    let deadline = wait.map(|w| tokio::time::Instant::now() + w);
    loop {
        match get_json(&url).await {
            Ok(v) if v["status"] == "ready" => return Ok(v.to_string()),
            result => match deadline {
                Some(d) if tokio::time::Instant::now() < d => tokio::time::sleep(Duration::from_millis(100)).await,
                _ => return Err(result.err().unwrap_or_else(|| "armlet is not ready".into())),
            },
        }
    }
}
