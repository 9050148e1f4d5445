//! Tutti's HTTP server.
//!
//! - [`api`]: the JSON API under `/api/v1`, bearer tokens, cursor paging.
//! - [`web`]: the server-rendered worker page (cookie sign-in with the same
//!   tokens, CSRF-checked forms).
//! - [`web_results`]: the requester's jobs and results browser.
//! - [`import`]: streaming item imports (CSV, JSON Lines, Label Studio JSON).
//! - [`monitor`]: the lease monitor that reopens abandoned tasks.
//! - [`mturk_local`]: a local server speaking Mechanical Turk's protocol.
//! - [`simulate`]: synthetic workers that answer through the public API.
//! - [`openapi`]: the OpenAPI document generated from the handlers, and the
//!   interactive page at `/docs` (assets embedded, works offline).
//!
//! [`Application::build`] binds the listener (port 0 in tests) and exposes
//! the bound address, so tests run the real server.
#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod cache;
pub mod error;
pub mod html;
pub mod import;
pub mod monitor;
pub mod mturk_local;
pub mod openapi;
pub mod quality;
pub mod serve;
pub mod simulate;
pub mod tasks;
pub mod web;
pub mod web_account;
pub mod web_admin;
pub mod web_jobs;
pub mod web_results;
pub mod web_runs;

use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tutti_store::Store;

/// Settings of a running server.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest accepted upload, in bytes.
    pub max_upload_bytes: u64,
    /// How often the lease monitor runs; `None` runs no monitor.
    pub monitor_interval: Option<Duration>,
    /// Where runs keep their tables (one SQLite file per run).
    pub runs_dir: std::path::PathBuf,
    /// Whether this process runs workflows in the background.
    pub run_workflows: bool,
    /// Outside databases workflows may read and write, by name.
    pub databases: std::collections::BTreeMap<String, String>,
    /// This server's address as model services reach it, for callbacks
    /// (default: the bound address).
    pub public_url: Option<String>,
    /// Bulk labeling's databases and pattern files (the task API is off
    /// without them).
    pub labeling: Option<tasks::LabelingSettings>,
    /// Mechanical Turk, for `3a_amt` steps (they fail without it).
    pub mturk: Option<tutti_engine::mturk::Settings>,
    /// Where model calls and webhooks may go: by default not to internal
    /// addresses.
    pub outbound: tutti_engine::outbound::Outbound,
    /// How long a client has to send a request's head
    /// ([`serve::HEADER_TIMEOUT`] by default).
    pub header_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_upload_bytes: 1 << 30,
            monitor_interval: Some(Duration::from_secs(5)),
            runs_dir: std::path::PathBuf::from("tutti-runs"),
            run_workflows: true,
            databases: std::collections::BTreeMap::new(),
            public_url: None,
            labeling: None,
            mturk: None,
            outbound: tutti_engine::outbound::Outbound::default(),
            header_timeout: serve::HEADER_TIMEOUT,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The settings.
    pub settings: Arc<Settings>,
    /// Short-lived caches of tokens, jobs and roles.
    pub caches: Arc<cache::Caches>,
    /// The workflow runner (its files are read here too).
    pub runner: Arc<tutti_engine::runner::Runner>,
    /// This server's own address, for simulated workers.
    pub base_url: String,
    /// Simulations started through the API, by run.
    pub simulations: Arc<std::sync::Mutex<std::collections::HashMap<i64, api::runs::Simulation>>>,
    /// Bulk labeling tasks waiting to run.
    pub label_tasks: Arc<tasks::TaskQueue>,
}

/// The whole router: API, docs, web pages, health.
pub fn router(state: AppState) -> Router {
    let max_upload = usize::try_from(state.settings.max_upload_bytes).unwrap_or(usize::MAX);
    Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .merge(api::routes(max_upload))
        .merge(web::routes())
        .merge(openapi::routes())
        .fallback(|uri: axum::http::Uri| async move {
            // API callers get JSON; people get a page that says where to go.
            let e = error::ApiError::not_found("page");
            if uri.path().starts_with("/api/") {
                axum::response::IntoResponse::into_response(e)
            } else {
                web::with_security_headers(web::error_page(e))
            }
        })
        .layer(axum::middleware::from_fn(web::security_headers))
        .with_state(state)
}

/// A bound, not yet serving, server.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Binds `addr` (use port 0 for any free port).
    pub async fn build(
        store: Arc<dyn Store>,
        settings: Settings,
        addr: &str,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
        let local = listener
            .local_addr()
            .map_err(|e| anyhow::anyhow!("reading the bound address: {e}"))?;
        let host = if local.ip().is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            local.ip()
        };
        let base_url = format!("http://{}", SocketAddr::new(host, local.port()));
        let mut runner_settings =
            tutti_engine::runner::RunnerSettings::new(settings.runs_dir.clone());
        runner_settings.databases = settings.databases.clone();
        runner_settings.public_url = settings
            .public_url
            .clone()
            .unwrap_or_else(|| base_url.clone())
            .trim_end_matches('/')
            .to_owned();
        runner_settings.mturk = settings.mturk.clone();
        runner_settings.outbound = settings.outbound.clone();
        let runner = tutti_engine::runner::Runner::new(store.clone(), runner_settings);
        Ok(Self {
            listener,
            state: AppState {
                store,
                settings: Arc::new(settings),
                caches: Arc::default(),
                runner,
                base_url,
                simulations: Arc::default(),
                label_tasks: Arc::default(),
            },
        })
    }

    /// The shared state (the store, the runner).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, running the lease monitor beside.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let monitor = self
            .state
            .settings
            .monitor_interval
            .map(|every| tokio::spawn(monitor::run(self.state.store.clone(), every)));
        let runner = self
            .state
            .settings
            .run_workflows
            .then(|| tokio::spawn(self.state.runner.clone().run()));
        let mturk = match (
            &self.state.settings.mturk,
            self.state.settings.run_workflows,
        ) {
            (Some(m), true) => {
                let connector = tutti_engine::mturk::connector::Connector::new(
                    self.state.store.clone(),
                    m.clone(),
                )
                .map_err(|e| anyhow::anyhow!(e))?;
                Some(tokio::spawn(Arc::new(connector).run()))
            }
            _ => None,
        };
        let labeling = self.state.settings.labeling.clone().map(|l| {
            tokio::spawn(
                self.state
                    .label_tasks
                    .clone()
                    .run(self.state.store.clone(), Arc::new(l)),
            )
        });
        let header_timeout = self.state.settings.header_timeout;
        let app = router(self.state);
        let served = serve::serve(self.listener, app, header_timeout, shutdown).await;
        if let Some(m) = monitor {
            m.abort();
        }
        if let Some(r) = runner {
            r.abort();
        }
        if let Some(l) = labeling {
            l.abort();
        }
        if let Some(m) = mturk {
            m.abort();
        }
        served.map_err(Into::into)
    }
}
