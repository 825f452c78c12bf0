//! `armlet serve`: opens the store, loads or makes keys and certificates, binds the HTTPS and
//! HTTP listeners (the same routes on both), settles due operations in the background, and
//! shuts down gracefully on SIGINT/SIGTERM.
//!
//! Both listeners bound what a client can hold: a TLS handshake and a request's headers must
//! arrive within `--header-read-timeout` (an idle keep-alive connection is closed after as
//! long), headers larger than `--max-header-bytes` get 431, and a request body must arrive
//! within `--request-timeout` of its headers (then 408 `RequestTimeout` and the connection
//! closes).

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Version, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use http_body_util::BodyExt;
use tower_http::timeout::{DeadlineBody, TimeoutError};

use crate::admin::CLOCK_KEY;
use crate::arm::request::Scheme;
use crate::auth::keys::SigningKey;
use crate::clock::{Clock, ClockState};
use crate::state::{AppState, RbacMode, Settings};
use crate::store::{Db, SledStore};
use crate::{app, tls};

/// What `armlet serve` was asked for.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub bind: String,
    pub https_port: u16,
    pub http_port: u16,
    pub data_dir: PathBuf,
    pub in_memory: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub skip_api_version_check: bool,
    pub max_body_bytes: usize,
    pub rbac: RbacMode,
    pub propagation_delay: time::Duration,
    pub replication_lag: time::Duration,
    /// Makes generated ids reproducible.
    pub seed: Option<u64>,
    /// On first start, freeze the clock at this instant.
    pub freeze_at: Option<time::OffsetDateTime>,
    pub clock_step: time::Duration,
    /// Operation timing rules to apply at start (`--operation-timing`).
    pub operation_timing: Vec<crate::arm::lro::TimingRule>,
    pub control_token: Option<String>,
    /// How long a TLS handshake, or a request's headers, may take to arrive (zero: no limit).
    pub header_read_timeout: Duration,
    /// How long a request's body may take to arrive after its headers (zero: no limit).
    pub request_timeout: Duration,
    /// The largest request line and headers accepted (at least [`MIN_HEADER_BYTES`]).
    pub max_header_bytes: usize,
}

/// Default `--max-header-bytes`.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// The smallest header limit hyper takes (its minimum read buffer).
pub const MIN_HEADER_BYTES: usize = 8192;

/// How URLs name the bind address (a wildcard bind is reached through loopback).
fn url_host(bind: &str) -> String {
    match bind {
        "0.0.0.0" | "" => "127.0.0.1".to_owned(),
        "::" | "[::]" => "[::1]".to_owned(),
        b if b.contains(':') && !b.starts_with('[') => format!("[{b}]"),
        b => b.to_owned(),
    }
}

fn bind(host: &str, port: u16) -> Result<TcpListener, String> {
    let host = host.trim_matches(|c| c == '[' || c == ']');
    let listener = TcpListener::bind((host, port)).map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(listener)
}

/// The control API's token: the one given, or (when armlet listens beyond loopback) a new one,
/// so that nobody else on the network can move the clock or read the default credentials.
/// A made token comes from the operating system's randomness, never from `--seed` (which
/// would make it as predictable as the seed).
fn control_token(opts: &ServeOptions) -> Option<String> {
    use rand::RngCore;
    if let Some(token) = opts.control_token.clone().filter(|t| !t.is_empty()) {
        return Some(token);
    }
    let loopback = match opts.bind.trim_matches(|c| c == '[' || c == ']') {
        "localhost" => true,
        host => host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()),
    };
    (!loopback).then(|| {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    })
}

/// Everything `serve` prepares before it listens; also used by tests.
pub struct Prepared {
    pub state: AppState,
    pub https: TcpListener,
    pub http: TcpListener,
    pub tls: Arc<rustls::ServerConfig>,
}

pub async fn prepare(opts: &ServeOptions) -> Result<Prepared, String> {
    let (db, data_dir) = if opts.in_memory {
        (Db::memory(), None)
    } else {
        std::fs::create_dir_all(&opts.data_dir)
            .map_err(|e| format!("cannot create {}: {e}", opts.data_dir.display()))?;
        let store = SledStore::open(&opts.data_dir.join("db")).map_err(|e| e.to_string())?;
        (Db::new(Arc::new(store), true), Some(opts.data_dir.clone()))
    };
    let clock = match (db.get::<ClockState>(CLOCK_KEY).map_err(|e| e.to_string())?, opts.freeze_at) {
        (Some(saved), _) => Clock::from_state(saved),
        (None, Some(at)) => Clock::frozen_at(at),
        (None, None) => Clock::real(),
    };
    crate::ids::seed(opts.seed);
    let key = match &data_dir {
        Some(dir) => SigningKey::load_or_create(&dir.join("keys").join("signing-key.pem"))?,
        None => SigningKey::generate()?,
    };
    let material = match (&opts.tls_cert, &opts.tls_key, &data_dir) {
        (Some(cert), Some(key), _) => tls::load_user(cert, key)?,
        (Some(_), None, _) | (None, Some(_), _) => {
            return Err("--tls-cert and --tls-key go together".into());
        }
        (None, None, Some(dir)) => tls::load_or_create(&dir.join("tls"), &opts.bind)?,
        (None, None, None) => tls::generate(&opts.bind)?,
    };
    let tls = tls::server_config(&material)?;
    let https = bind(&opts.bind, opts.https_port)?;
    let http = bind(&opts.bind, opts.http_port)?;
    let port = |l: &TcpListener| l.local_addr().map(|a: SocketAddr| a.port()).unwrap_or(0);
    let host = url_host(&opts.bind);
    let settings = Settings {
        https_url: format!("https://{host}:{}", port(&https)),
        http_url: format!("http://{host}:{}", port(&http)),
        data_dir,
        skip_api_version_check: opts.skip_api_version_check,
        max_body_bytes: opts.max_body_bytes,
        ca_pem: material.ca_pem,
        rbac: opts.rbac,
        propagation_delay: opts.propagation_delay,
        replication_lag: opts.replication_lag,
        clock_step: opts.clock_step,
        control_token: control_token(opts),
    };
    let state = AppState::new(db, clock, Arc::new(key), settings);
    state.bootstrap().await.map_err(|e| e.to_string())?;
    if !opts.operation_timing.is_empty() {
        let rules = opts.operation_timing.clone();
        state
            .db
            .transact(|tx| {
                let mut timing = crate::arm::lro::OperationTiming::load(tx)?;
                for rule in rules {
                    timing.set(rule);
                }
                timing.save(tx)
            })
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(Prepared { state, https, http, tls })
}

/// Settles due long-running operations every 200 ms of wall time.
fn spawn_ticker(state: AppState) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(200));
        loop {
            interval.tick().await;
            if let Err(e) = crate::providers::settle_operations(&state).await {
                tracing::error!(error = %e, "settling operations failed");
            }
        }
    });
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// A zero duration means "no limit".
fn nonzero(d: Duration) -> Option<Duration> {
    Some(d).filter(|d| !d.is_zero())
}

/// The connection limits of `opts` on one listener: the header read timeout (hyper's, which
/// also closes idle keep-alive connections), the header size (431 beyond it) and the same cap
/// on HTTP/2 header lists.
fn limit_connections<A: axum_server::Address, Acc>(server: &mut axum_server::Server<A, Acc>, opts: &ServeOptions) {
    let max_header_bytes = opts.max_header_bytes.max(MIN_HEADER_BYTES);
    let builder = server.http_builder();
    builder.http1().header_read_timeout(nonzero(opts.header_read_timeout)).max_buf_size(max_header_bytes);
    builder.http2().max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX));
}

/// Gives each request body `limit` to arrive after the headers. A body still arriving then
/// fails the read, and whatever the handler made of that becomes ARM's 408 `RequestTimeout`;
/// on HTTP/1 the connection closes, so the client cannot keep trickling.
async fn body_deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    use axum::body::HttpBody as _;
    if limit.is_zero() || request.body().is_end_stream() {
        return next.run(request).await;
    }
    let expired = Arc::new(AtomicBool::new(false));
    let http1 = request.version() < Version::HTTP_2;
    let flag = Arc::clone(&expired);
    let request = request.map(|body| {
        Body::new(DeadlineBody::new(limit, body).map_err(move |e| {
            if e.is::<TimeoutError>() {
                flag.store(true, Ordering::Relaxed);
            }
            e
        }))
    });
    let response = next.run(request).await;
    if !expired.load(Ordering::Relaxed) {
        return response;
    }
    let mut timeout = crate::arm_error!(
        RequestTimeout,
        "The request content did not arrive within {} seconds of the request headers.",
        limit.as_secs_f64()
    )
    .into_response();
    // Keep the request and correlation ids the router gave the request.
    for (name, value) in response.headers() {
        if name.as_str().starts_with("x-ms-") && !timeout.headers().contains_key(name) {
            timeout.headers_mut().insert(name.clone(), value.clone());
        }
    }
    if http1 {
        timeout.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    timeout
}

pub async fn serve(opts: ServeOptions) -> Result<(), String> {
    let Prepared { state, https, http, tls } = prepare(&opts).await?;
    spawn_ticker(state.clone());
    let https_handle: Handle<SocketAddr> = Handle::new();
    let http_handle: Handle<SocketAddr> = Handle::with_control(https_handle.control());

    let with_limits = |scheme: Scheme| {
        app(state.clone())
            .layer(Extension(scheme))
            .layer(middleware::from_fn_with_state(opts.request_timeout, body_deadline))
    };
    let https_app = with_limits(Scheme::Https);
    let http_app = with_limits(Scheme::Http);
    let header_timeout = nonzero(opts.header_read_timeout);
    let mut https_server = axum_server::from_tcp_rustls(https, RustlsConfig::from_config(tls))
        .map_err(|e| e.to_string())?
        .handle(https_handle.clone())
        .first_request_timeout(header_timeout);
    if let Some(timeout) = header_timeout {
        https_server = https_server.map(|acceptor| acceptor.handshake_timeout(timeout));
    }
    limit_connections(&mut https_server, &opts);
    let mut http_server = axum_server::from_tcp(http)
        .map_err(|e| e.to_string())?
        .handle(http_handle)
        .first_request_timeout(header_timeout);
    limit_connections(&mut http_server, &opts);
    let https_server = https_server.serve(https_app.into_make_service());
    let http_server = http_server.serve(http_app.into_make_service());

    let settings = &state.settings;
    let env_hint = if settings.http_url == "http://127.0.0.1:8080" {
        "eval \"$(armlet env)\"".to_owned()
    } else {
        format!("eval \"$(armlet env --url {})\"", settings.http_url)
    };
    let data = settings
        .data_dir
        .as_ref()
        .map_or_else(|| "in memory (nothing is kept)".to_owned(), |d| d.display().to_string());
    println!("armlet {} — a local Azure Resource Manager", env!("CARGO_PKG_VERSION"));
    println!("  ARM, Entra ID        {}", settings.https_url);
    println!("  metadata, /_armlet   {}", settings.http_url);
    println!("  data                 {data}");
    println!("  point az at it       {env_hint}");
    if let Some(token) = &settings.control_token {
        eprintln!(
            "  control API token   {token}  (send it as: Authorization: Bearer <token>, or ARMLET_CONTROL_TOKEN for the CLI)"
        );
    }
    println!("armlet ready: https={} http={}", settings.https_url, settings.http_url);

    let control = https_handle.control();
    tokio::spawn(async move {
        shutdown_signal().await;
        control.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    let (a, b) = tokio::join!(https_server, http_server);
    a.and(b).map_err(|e| e.to_string())?;
    state.db.flush_blocking().map_err(|e| e.to_string())?;
    println!("armlet stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(bind: &str, token: Option<&str>) -> ServeOptions {
        ServeOptions {
            bind: bind.into(),
            https_port: 0,
            http_port: 0,
            data_dir: PathBuf::new(),
            in_memory: true,
            tls_cert: None,
            tls_key: None,
            skip_api_version_check: false,
            max_body_bytes: 0,
            rbac: RbacMode::Enforce,
            propagation_delay: time::Duration::ZERO,
            replication_lag: time::Duration::ZERO,
            seed: None,
            freeze_at: None,
            clock_step: time::Duration::ZERO,
            operation_timing: Vec::new(),
            control_token: token.map(str::to_owned),
            header_read_timeout: Duration::ZERO,
            request_timeout: Duration::ZERO,
            max_header_bytes: 0,
        }
    }

    #[test]
    fn a_control_token_is_made_whenever_armlet_listens_beyond_loopback() {
        for bind in ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost"] {
            assert_eq!(control_token(&options(bind, None)), None, "{bind}");
        }
        for bind in
            ["0.0.0.0", "::", "[::]", "", "192.168.1.10", "fe80::1", "armlet.example.com", "localhost.example.com"]
        {
            let token = control_token(&options(bind, None)).unwrap_or_else(|| panic!("no token for {bind}"));
            assert_eq!(token.len(), 64, "{bind}: {token}");
            assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
        }
        assert_ne!(control_token(&options("0.0.0.0", None)), control_token(&options("0.0.0.0", None)));
        // A given token applies on loopback too; an empty one counts as none.
        assert_eq!(control_token(&options("127.0.0.1", Some("s3cret"))).as_deref(), Some("s3cret"));
        assert!(control_token(&options("0.0.0.0", Some(""))).is_some_and(|t| t.len() == 64));
        assert_eq!(control_token(&options("127.0.0.1", Some(""))), None);
    }
}
