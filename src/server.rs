//! `armlet serve`: opens the store, loads or makes keys and certificates, binds the HTTPS and
//! HTTP listeners (the same routes on both), settles due operations in the background, and
//! shuts down gracefully on SIGINT/SIGTERM.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;

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
}

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
fn control_token(opts: &ServeOptions) -> Option<String> {
    if let Some(token) = opts.control_token.clone().filter(|t| !t.is_empty()) {
        return Some(token);
    }
    let loopback = match opts.bind.trim_matches(|c| c == '[' || c == ']') {
        "localhost" => true,
        host => host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()),
    };
    (!loopback).then(|| crate::ids::hex(32))
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

pub async fn serve(opts: ServeOptions) -> Result<(), String> {
    let Prepared { state, https, http, tls } = prepare(&opts).await?;
    spawn_ticker(state.clone());
    let https_handle: Handle<SocketAddr> = Handle::new();
    let http_handle: Handle<SocketAddr> = Handle::with_control(https_handle.control());

    let https_app = app(state.clone()).layer(Extension(Scheme::Https));
    let http_app = app(state.clone()).layer(Extension(Scheme::Http));
    let https_server = axum_server::from_tcp_rustls(https, RustlsConfig::from_config(tls))
        .map_err(|e| e.to_string())?
        .handle(https_handle.clone())
        .serve(https_app.into_make_service());
    let http_server =
        axum_server::from_tcp(http).map_err(|e| e.to_string())?.handle(http_handle).serve(http_app.into_make_service());

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
