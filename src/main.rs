//! The `armlet` command: `serve` (also what a bare `armlet` does), `env`, `clock`, `health`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use armlet::server::{ServeOptions, serve};

/// A local Azure Resource Manager emulator for AKS and managed identities.
#[derive(Parser)]
#[command(name = "armlet", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the emulator (the default).
    Serve(ServeArgs),
    /// Print shell exports that point az and the Azure SDKs at a running armlet.
    Env {
        /// armlet's plain-HTTP URL.
        #[arg(long, env = "ARMLET_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Where to keep the isolated az config dir and the CA (default ~/.armlet/<host>-<port>).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Show or move the simulated clock: show | advance 46d | set 2027-01-01T00:00:00Z | freeze | resume.
    Clock {
        #[arg(long, env = "ARMLET_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(default_value = "show")]
        action: String,
        /// A duration (advance) or an RFC 3339 time (set).
        value: Option<String>,
    },
    /// Export, import or reset armlet's state: export [FILE] | import FILE [--dry-run] | reset.
    State {
        #[arg(long, env = "ARMLET_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        action: String,
        /// The document to write (export; stdout if absent) or read (import).
        file: Option<PathBuf>,
        /// With import: validate and report, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Create another subscription with an owner service principal of its own (prints its credentials).
    Subscriptions {
        #[arg(long, env = "ARMLET_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Only `create` for now.
        action: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// In a tenant (directory) of its own.
        #[arg(long)]
        new_tenant: bool,
    },
    /// What is due on the simulated clock, soonest first, and what fired lately.
    Events {
        #[arg(long, env = "ARMLET_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
    },
    /// Explain an RBAC decision: may PRINCIPAL do ACTION at SCOPE now, and why (not)?
    Explain {
        #[arg(long, env = "ARMLET_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// The principal's object id.
        #[arg(long)]
        principal: String,
        /// e.g. Microsoft.ManagedIdentity/userAssignedIdentities/write
        #[arg(long)]
        action: String,
        /// e.g. /subscriptions/<id>/resourceGroups/<group>
        #[arg(long)]
        scope: String,
    },
    /// Node image (VHD) releases: list [--location L] | publish [--version V] [--location L ...] [--at T | --rollout-hours H].
    NodeImages {
        #[arg(long, env = "ARMLET_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(default_value = "list")]
        action: String,
        /// publish: the version (YYYYMM.DD.N; default: dated today, newer than any other).
        #[arg(long)]
        version: Option<String>,
        /// list: where to show availability; publish: only these regions (repeatable).
        #[arg(long = "location")]
        locations: Vec<String>,
        /// publish: the release time (RFC 3339; default now).
        #[arg(long)]
        at: Option<String>,
        /// publish: hours from the first region ring to the last (default 0: everywhere at once).
        #[arg(long)]
        rollout_hours: Option<i64>,
    },
    /// A cluster as armlet sees it: health (exits 1 when unhealthy) | nodes, for a cluster resource id.
    Cluster {
        #[arg(long, env = "ARMLET_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// health (what each identity can do, what is pending) or nodes.
        action: String,
        /// The cluster's resource id (/subscriptions/…/managedClusters/NAME).
        id: String,
    },
    /// Show or change how operations are timed: show | set KIND=DURATION[,Npolls] ... | unset KIND.
    Config {
        #[arg(long, env = "ARMLET_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(default_value = "show")]
        action: String,
        /// For set: rules such as 'Microsoft.ContainerService/*=30s' or '…/delete=3polls'; for unset: kinds.
        values: Vec<String>,
    },
    /// Inject faults: list | clear | remove ID | add [matchers] ACTION.
    Faults {
        #[arg(long, env = "ARMLET_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(default_value = "list")]
        action: String,
        /// For remove: the rule id.
        id: Option<String>,
        /// Match: HTTP method.
        #[arg(long)]
        method: Option<String>,
        /// Match: resource type glob, e.g. Microsoft.ContainerService/managedClusters.
        #[arg(long)]
        resource_type: Option<String>,
        /// Match: swagger operationId glob, e.g. ManagedClusters_CreateOrUpdate.
        #[arg(long)]
        operation: Option<String>,
        /// Match: path glob.
        #[arg(long)]
        path: Option<String>,
        /// Fire with this probability (0–1).
        #[arg(long)]
        probability: Option<f64>,
        /// Fire on every Nth matching request.
        #[arg(long)]
        every: Option<u64>,
        /// Fire at most this many times.
        #[arg(long)]
        count: Option<u64>,
        /// Action: 429 TooManyRequests with this Retry-After (seconds).
        #[arg(long, num_args = 0..=1, default_missing_value = "1")]
        throttle: Option<u64>,
        /// Action: this 5xx status.
        #[arg(long)]
        server_error: Option<u16>,
        /// Action: this ARM error code (with --message and --status, default 400).
        #[arg(long)]
        error: Option<String>,
        #[arg(long)]
        message: Option<String>,
        #[arg(long)]
        status: Option<u16>,
        /// Action: answer this many milliseconds late.
        #[arg(long)]
        latency_ms: Option<u64>,
        /// Action: accept, then fail the long-running operation with this code (and --message).
        #[arg(long)]
        fail_operation: Option<String>,
    },
    /// What clients sent lately: method, path, api-version, status, caller, ids, timing.
    Requests {
        #[arg(long, env = "ARMLET_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// How many (the newest).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Keep printing new requests as they arrive.
        #[arg(long)]
        follow: bool,
    },
    /// Report readiness; with --wait, block until ready (for scripts and health checks).
    Health {
        #[arg(long, env = "ARMLET_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Keep polling up to this long (e.g. 30s) until armlet is ready.
        #[arg(long, num_args = 0..=1, default_missing_value = "30s")]
        wait: Option<String>,
    },
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "ARMLET_BIND", default_value = "127.0.0.1")]
    bind: String,
    /// HTTPS port (ARM, Entra ID, Graph); 0 picks a free one.
    #[arg(long, env = "ARMLET_HTTPS_PORT", default_value_t = 8443)]
    https_port: u16,
    /// Plain-HTTP port (the same routes; az needs it for cloud metadata and IMDS); 0 picks a free one.
    #[arg(long, env = "ARMLET_HTTP_PORT", default_value_t = 8080)]
    http_port: u16,
    /// Where state, keys and certificates live.
    #[arg(long, env = "ARMLET_DATA_DIR", default_value = "./armlet-data")]
    data_dir: PathBuf,
    /// Keep nothing on disk: state, signing key and TLS certificates live and die with the process.
    #[arg(long, env = "ARMLET_IN_MEMORY")]
    in_memory: bool,
    /// Serve this certificate chain (PEM) instead of the generated one.
    #[arg(long, env = "ARMLET_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) for --tls-cert.
    #[arg(long, env = "ARMLET_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Accept any api-version.
    #[arg(long, env = "ARMLET_SKIP_API_VERSION_CHECK")]
    skip_api_version_check: bool,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "ARMLET_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Role-based access control: enforce (403 without a grant), soft (log only) or off.
    #[arg(long, env = "ARMLET_RBAC", default_value = "enforce")]
    rbac: armlet::state::RbacMode,
    /// Simulated time before a role assignment takes (or stops taking) effect, e.g. 10s, 5m, 0s.
    #[arg(long, env = "ARMLET_PROPAGATION_DELAY", default_value = "10s", value_parser = duration)]
    propagation_delay: time::Duration,
    /// Log lines (ARMLET_LOG=info logs every request): pretty or json.
    #[arg(long, env = "ARMLET_LOG_FORMAT", default_value = "pretty", value_parser = ["pretty", "json"])]
    log_format: String,
    /// Make generated ids, names and secrets reproducible: the same requests give the same ids.
    #[arg(long, env = "ARMLET_SEED")]
    seed: Option<u64>,
    /// On first start, freeze the clock at this instant (RFC 3339), e.g. for reproducible runs.
    #[arg(long, env = "ARMLET_FREEZE_AT", value_parser = instant)]
    freeze_at: Option<time::OffsetDateTime>,
    /// With a frozen clock, move it forward this much on every ARM request (e.g. 1s), so
    /// operations complete as clients poll.
    #[arg(long, env = "ARMLET_CLOCK_STEP", default_value = "0s", value_parser = duration)]
    clock_step: time::Duration,
    /// Time long-running operations: KIND=DURATION, KIND=Npolls or KIND=DURATION,Npolls, where
    /// KIND is an operation kind or glob (e.g. 'Microsoft.ContainerService/*=30s'). Repeatable.
    #[arg(long = "operation-timing", env = "ARMLET_OPERATION_TIMING", value_delimiter = ';', value_parser = timing_rule)]
    operation_timing: Vec<armlet::arm::lro::TimingRule>,
    /// Token the control API requires (generated when binding beyond loopback if not given).
    #[arg(long, env = "ARMLET_CONTROL_TOKEN")]
    control_token: Option<String>,
    /// Simulated time a new principal stays unknown to role assignments without principalType.
    #[arg(long, env = "ARMLET_PRINCIPAL_REPLICATION_LAG", default_value = "5s", value_parser = duration)]
    principal_replication_lag: time::Duration,
    /// Wall time a TLS handshake or a request's headers may take (also how long an idle
    /// keep-alive connection stays open); 0s: no limit.
    #[arg(long, env = "ARMLET_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = wall_duration)]
    header_read_timeout: std::time::Duration,
    /// Wall time a request's body may take to arrive after its headers (then 408); 0s: no limit.
    #[arg(long, env = "ARMLET_REQUEST_TIMEOUT", default_value = "30s", value_parser = wall_duration)]
    request_timeout: std::time::Duration,
    /// Largest request line plus headers accepted, in bytes (larger gets 431); at least 8192.
    #[arg(long, env = "ARMLET_MAX_HEADER_BYTES", default_value_t = armlet::server::DEFAULT_MAX_HEADER_BYTES, value_parser = header_bytes)]
    max_header_bytes: usize,
}

fn wall_duration(s: &str) -> Result<std::time::Duration, String> {
    std::time::Duration::try_from(armlet::clock::parse_duration(s)?).map_err(|_| format!("'{s}' is negative"))
}

fn header_bytes(s: &str) -> Result<usize, String> {
    let n: usize = s.trim().parse().map_err(|_| format!("'{s}' is not a number of bytes"))?;
    if n < armlet::server::MIN_HEADER_BYTES {
        return Err(format!("'{s}' is below the minimum of {} bytes", armlet::server::MIN_HEADER_BYTES));
    }
    Ok(n)
}

fn duration(s: &str) -> Result<time::Duration, String> {
    armlet::clock::parse_duration(s)
}

fn instant(s: &str) -> Result<time::OffsetDateTime, String> {
    armlet::clock::parse_rfc3339(s)
}

fn timing_rule(s: &str) -> Result<armlet::arm::lro::TimingRule, String> {
    armlet::arm::lro::TimingRule::parse(s)
}

impl From<ServeArgs> for ServeOptions {
    fn from(a: ServeArgs) -> Self {
        ServeOptions {
            bind: a.bind,
            https_port: a.https_port,
            http_port: a.http_port,
            data_dir: a.data_dir,
            in_memory: a.in_memory,
            tls_cert: a.tls_cert,
            tls_key: a.tls_key,
            skip_api_version_check: a.skip_api_version_check,
            max_body_bytes: a.max_body_bytes,
            rbac: a.rbac,
            propagation_delay: a.propagation_delay,
            replication_lag: a.principal_replication_lag,
            seed: a.seed,
            freeze_at: a.freeze_at,
            clock_step: a.clock_step,
            operation_timing: a.operation_timing,
            control_token: a.control_token,
            header_read_timeout: a.header_read_timeout,
            request_timeout: a.request_timeout,
            max_header_bytes: a.max_header_bytes,
        }
    }
}

fn print_result(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(out) => {
            print!("{out}");
            if !out.ends_with('\n') {
                println!();
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("armlet: {e}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = match &cli.command {
        Some(Command::Serve(args)) => args.log_format.clone(),
        _ => cli.serve.log_format.clone(),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ARMLET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if log_format == "json" {
        builder.json().init();
    } else {
        builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init();
    }
    match cli.command {
        None => print_result(serve(cli.serve.into()).await.map(|()| String::new())),
        Some(Command::Serve(args)) => print_result(serve(args.into()).await.map(|()| String::new())),
        Some(Command::Env { url, dir }) => print_result(armlet::cli::env(&url, dir.as_deref()).await),
        Some(Command::Clock { url, action, value }) => {
            print_result(armlet::cli::clock(&url, &action, value.as_deref()).await)
        }
        Some(Command::State { url, action, file, dry_run }) => {
            print_result(armlet::cli::state(&url, &action, file.as_deref(), dry_run).await)
        }
        Some(Command::Subscriptions { url, action, name, new_tenant }) => {
            print_result(armlet::cli::subscriptions(&url, &action, name.as_deref(), new_tenant).await)
        }
        Some(Command::Events { url }) => print_result(armlet::cli::events(&url).await),
        Some(Command::Requests { url, limit, follow }) => {
            print_result(armlet::cli::requests(&url, limit, follow).await)
        }
        Some(Command::Config { url, action, values }) => {
            print_result(armlet::cli::config(&url, &action, &values).await)
        }
        Some(Command::Faults {
            url,
            action,
            id,
            method,
            resource_type,
            operation,
            path,
            probability,
            every,
            count,
            throttle,
            server_error,
            error,
            message,
            status,
            latency_ms,
            fail_operation,
        }) => {
            let fault_action = match (throttle, server_error, error, latency_ms, fail_operation) {
                (Some(retry_after), None, None, None, None) => {
                    Some(serde_json::json!({ "kind": "throttle", "retryAfter": retry_after }))
                }
                (None, Some(status), None, None, None) => {
                    Some(serde_json::json!({ "kind": "serverError", "status": status }))
                }
                (None, None, Some(code), None, None) => Some(serde_json::json!({
                    "kind": "error", "status": status.unwrap_or(400), "code": code,
                    "message": message.clone().unwrap_or_else(|| "Injected by an armlet fault rule.".into()),
                })),
                (None, None, None, Some(ms), None) => Some(serde_json::json!({ "kind": "latency", "ms": ms })),
                (None, None, None, None, Some(code)) => Some(serde_json::json!({
                    "kind": "failOperation", "code": code,
                    "message": message.clone().unwrap_or_else(|| "The operation failed (injected by an armlet fault rule).".into()),
                })),
                (None, None, None, None, None) => None,
                _ => {
                    return print_result(Err(
                        "give one action: --throttle, --server-error, --error, --latency-ms or --fail-operation".into(),
                    ));
                }
            };
            let mut rule = serde_json::json!({});
            for (field, value) in [
                ("method", method.map(serde_json::Value::from)),
                ("resourceType", resource_type.map(serde_json::Value::from)),
                ("operationId", operation.map(serde_json::Value::from)),
                ("path", path.map(serde_json::Value::from)),
                ("probability", probability.map(serde_json::Value::from)),
                ("every", every.map(serde_json::Value::from)),
                ("count", count.map(serde_json::Value::from)),
                ("action", fault_action),
            ] {
                if let Some(value) = value {
                    rule[field] = value;
                }
            }
            print_result(armlet::cli::faults(&url, &action, id.as_deref(), rule).await)
        }
        Some(Command::Cluster { url, action, id }) => match armlet::cli::cluster(&url, &action, &id).await {
            Ok((out, healthy)) => {
                let code = print_result(Ok(out));
                if healthy { code } else { ExitCode::from(1) }
            }
            Err(e) => print_result(Err(e)),
        },
        Some(Command::NodeImages { url, action, version, locations, at, rollout_hours }) => print_result(
            armlet::cli::node_images(&url, &action, version.as_deref(), &locations, at.as_deref(), rollout_hours).await,
        ),
        Some(Command::Explain { url, principal, action, scope }) => {
            print_result(armlet::cli::explain(&url, &principal, &action, &scope).await)
        }
        Some(Command::Health { url, wait }) => {
            let wait = match wait.as_deref().map(armlet::clock::parse_duration).transpose() {
                Ok(w) => {
                    w.map(|d| std::time::Duration::from_millis(u64::try_from(d.whole_milliseconds()).unwrap_or(0)))
                }
                Err(e) => return print_result(Err(e)),
            };
            print_result(armlet::cli::health(&url, wait).await)
        }
    }
}
