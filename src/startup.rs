//! Builds the store, the services and the layer stack, and serves them on
//! one port until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::api::grpc::{CatalogApi, PracticeApi};
use crate::api::layers::auth::AuthLayer;
use crate::api::layers::connect::{ConnectLayer, ConnectProtocol};
use crate::api::layers::grpc_web_json::GrpcWebJsonLayer;
use crate::api::layers::health::{GrpcHealth, HealthLayer};
use crate::api::layers::ingress::{IngressLayer, IngressOptions};
use crate::api::layers::rpc::RpcLayer;
use crate::api::layers::rpcs::Rpcs;
use crate::api::layers::shed::ShedLayer;
use crate::api::layers::transcode::{TranscodeLayer, Transcoder};
use crate::api::layers::validate::ValidateLayer;
use crate::auth::{Authenticator, ClaimRules, Keys, dev_secret_path, load_or_create_dev_secret};
use crate::config::ConversationConfig;
use crate::config::{Config, JwtKey};
use crate::connections::limited;
use crate::llm::Models;
use crate::proto::FILE_DESCRIPTOR_SET;
use crate::proto::practice::v1::catalog_service_server::CatalogServiceServer;
use crate::proto::practice::v1::practice_service_server::PracticeServiceServer;
use crate::service::answers::Answers;
use crate::service::leases;
use crate::service::limits::Limiter;
use crate::service::{
    CatalogService, ConversationService, ExampleService, PracticeService, StatsService,
    UsageService,
};

/// How long interrupted answers get to store their outcome and send their
/// last event once the shutdown grace is over.
const INTERRUPT_WAIT: Duration = Duration::from_secs(2);

use crate::store::{self, Store, StoreOptions};

pub struct Application {
    listener: TcpListener,
    store: Arc<dyn Store>,
    auth: Arc<Authenticator>,
    models: Models,
    /// This replica's answers in flight, under its lease.
    answers: Arc<Answers>,
    config: Config,
}

/// The models that answer prompts: the models file's, or the development
/// model when there is none (said at start-up, like development keys).
pub fn load_models(config: &ConversationConfig) -> anyhow::Result<Models> {
    let Some(path) = &config.models_file else {
        tracing::warn!(
            "DEVELOPMENT MODEL: PRACTICE_MODELS_FILE is not set; every model name is answered \
             by a built-in model that repeats the prompt. Configure real models in production."
        );
        let limit = Some(config.dev_max_concurrency).filter(|n| *n > 0);
        return Ok(Models::development(config.dev_word_delay, limit));
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading PRACTICE_MODELS_FILE {}", path.display()))?;
    Models::from_file_text(&text, |var| std::env::var(var).ok())
        .map_err(|e| anyhow::anyhow!("PRACTICE_MODELS_FILE {}: {e}", path.display()))
}

/// The keys tokens are checked with, as configured.
pub async fn load_keys(key: &JwtKey, jwks_min_refresh: Duration) -> anyhow::Result<Keys> {
    Ok(match key {
        JwtKey::Hs256(secret) => Keys::hs256(secret.expose().as_bytes().to_vec()),
        JwtKey::PublicKeyFile(path) => {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Keys::from_pem(&pem)?
        }
        JwtKey::Jwks(source) => Keys::from_jwks(source.clone(), jwks_min_refresh).await?,
        JwtKey::Development => {
            let path = dev_secret_path();
            let secret = load_or_create_dev_secret(&path)?;
            tracing::warn!(
                secret_file = %path.display(),
                "DEVELOPMENT MODE: no JWT key configured; tokens are signed with a random local secret \
                 (mint one with `practice-service token --sub <user id>`). Set PRACTICE_JWT_SECRET, \
                 PRACTICE_JWT_PUBLIC_KEY_FILE or PRACTICE_JWKS in production."
            );
            Keys::hs256(secret)
        }
    })
}

/// Opens the database and brings its schema up to date.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let options = StoreOptions {
        max_connections: config.db_max_connections,
        acquire_timeout: config.limits.db_acquire_timeout,
        statement_timeout: config.limits.db_statement_timeout,
        sync_every_commit: config.sqlite_sync_every_commit,
        group_commit: config.group_commit,
        pg_write_lanes: config.pg_write_lanes,
    };
    let store = store::connect(&config.database_url, &options)
        .await
        .context("cannot open the database named by DATABASE_URL")?;
    store.migrate().await?;
    Ok(store)
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let store = open_store(&config).await?;
        let keys = load_keys(&config.jwt_key, config.jwks_min_refresh).await?;
        let auth = Arc::new(Authenticator::new(
            keys,
            ClaimRules {
                issuer: config.jwt_issuer.clone(),
                audience: config.jwt_audience.clone(),
                leeway: config.jwt_leeway,
            },
        ));
        let models = load_models(&config.conversation)?;
        // The lease before the first prompt: answers carry its id.
        let answers = Answers::new(leases::new_replica_id());
        leases::take(&*store, answers.replica_id(), config.conversation.lease)
            .await
            .context("taking this replica's lease")?;
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.addr))?;
        Ok(Self {
            listener,
            store,
            auth,
            models,
            answers,
            config,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Serves until `shutdown` resolves, then drains: health goes
    /// NOT_SERVING, the listener closes, and requests in flight get up to
    /// the grace period to finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let limits = self.config.limits.clone();
        let lease = self.config.conversation.lease;
        let answers = self.answers.clone();
        let lease_renewal = leases::spawn(self.store.clone(), answers.replica_id().into(), lease);
        let practice = PracticeApi::new(
            PracticeService::new(
                self.store.clone(),
                self.config.default_models.clone(),
                limits.max_response_bytes,
                answers.clone(),
                self.models.clone(),
            ),
            ExampleService::new(self.store.clone()),
            ConversationService::new(
                self.store.clone(),
                self.models.clone(),
                self.config.conversation.history_chars,
                answers.clone(),
                Limiter::new(self.config.conversation.usage),
            ),
            UsageService::new(self.store.clone(), self.config.conversation.usage),
            StatsService::new(self.store.clone()),
            self.config.conversation.prompt_timeout,
        );
        let catalog = CatalogApi::new(
            CatalogService::new(self.store.clone()),
            UsageService::new(self.store.clone(), self.config.conversation.usage),
            StatsService::new(self.store.clone()),
        );
        let key_expiry = crate::service::spawn_key_expiry(self.store.clone());
        let rpcs = Rpcs::new(
            FILE_DESCRIPTOR_SET,
            &[
                tonic_health::pb::FILE_DESCRIPTOR_SET,
                tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            ],
        )
        .map_err(|e| anyhow::anyhow!("reading the RPCs: {e}"))?;
        let (health, health_service, readiness) =
            GrpcHealth::start(self.store.clone(), rpcs.guarded_services()).await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .build_v1()
            .context("building the reflection service")?;
        let transcoder = Arc::new(
            Transcoder::new(&rpcs, self.config.max_body_bytes)
                .map_err(|e| anyhow::anyhow!("reading the HTTP rules: {e}"))?,
        );

        let connect = ConnectProtocol::new(rpcs.clone(), self.config.max_body_bytes);
        let ingress = IngressLayer::new(
            self.auth.clone(),
            rpcs.clone(),
            transcoder.clone(),
            IngressOptions {
                timeout: limits.request_timeout,
                body_limit: self.config.max_body_bytes,
                max_buffered_bytes: limits.max_buffered_bytes,
            },
        );
        let grpc_web_json = GrpcWebJsonLayer::new(rpcs.clone(), self.config.max_body_bytes);

        let validate = ValidateLayer::new(rpcs.clone(), self.config.max_body_bytes);

        let (draining_tx, draining_rx) = tokio::sync::oneshot::channel::<()>();
        let closing = answers.clone();
        let drain = async move {
            shutdown.await;
            tracing::info!("shutting down: draining requests in flight");
            // No new prompts; the answers running may finish in the grace.
            closing.close();
            health.draining().await;
            let _ = draining_tx.send(());
        };

        tracing::info!(addr = %self.local_addr(), backend = self.store.backend(), "serving");
        let server = Server::builder()
            .accept_http1(true)
            .max_concurrent_streams(limits.max_concurrent_streams)
            .http2_max_header_list_size(limits.max_header_list_bytes)
            .http2_keepalive_interval(Some(limits.keepalive))
            .http2_keepalive_timeout(Some(limits.keepalive.min(Duration::from_secs(20))))
            .tcp_keepalive(Some(limits.keepalive))
            .max_connection_age(limits.max_connection_age)
            .concurrency_limit_per_connection(limits.max_per_connection)
            // Outermost first. Request ids and CORS before anything else
            // (preflights never reach authentication); probes before
            // shedding (a busy server must not look dead); bodies arrive
            // before a request counts as in flight; shedding before any work; Connect and the JSON transcoder outside gRPC-Web
            // (which answers any plain HTTP/1 request with 400); then, for
            // every protocol alike, the RPC span and deadline,
            // authentication, the request's rules, the routes.
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(cors_layer(&self.config.cors_origins))
            .layer(HealthLayer::new(readiness))
            .layer(ingress)
            .layer(ShedLayer::new(limits.max_in_flight))
            .layer(ConnectLayer::new(connect))
            .layer(TranscodeLayer::new(transcoder))
            .layer(grpc_web_json)
            .layer(tonic_web::GrpcWebLayer::new())
            .layer(RpcLayer::new(
                rpcs.clone(),
                limits.request_timeout,
                self.config.conversation.prompt_timeout,
            ))
            .layer(AuthLayer::default())
            .layer(validate)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(
                PracticeServiceServer::new(practice)
                    .max_decoding_message_size(self.config.max_body_bytes)
                    .max_encoding_message_size(limits.max_response_bytes),
            )
            .add_service(
                CatalogServiceServer::new(catalog)
                    .max_decoding_message_size(self.config.max_body_bytes)
                    .max_encoding_message_size(limits.max_response_bytes),
            );
        type Serving =
            std::pin::Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>>;
        let mut server: Serving = match &self.config.tls {
            Some((cert, key)) => {
                let tls = crate::tls::server_config(cert, key)?;
                tracing::info!("TLS on (ALPN h2 and http/1.1)");
                Box::pin(server.serve_with_incoming_shutdown(
                    limited(
                        Box::pin(crate::tls::incoming(self.listener, tls)),
                        limits.max_connections,
                    ),
                    drain,
                ))
            }
            None => Box::pin(server.serve_with_incoming_shutdown(
                limited(
                    TcpIncoming::from(self.listener).with_nodelay(Some(true)),
                    limits.max_connections,
                ),
                drain,
            )),
        };
        let served = tokio::select! {
            served = &mut server => Some(served),
            () = async {
                let _ = draining_rx.await;
                tokio::time::sleep(limits.shutdown_grace).await;
            } => None,
        };
        if served.is_none() {
            // Answers still running end as failed "interrupted", and their
            // streams get that event before the connections close.
            let interrupted = answers.interrupt_all();
            tracing::warn!(
                grace = ?limits.shutdown_grace,
                interrupted,
                "grace period over; interrupting answers and closing the remaining connections"
            );
            let _ = tokio::time::timeout(INTERRUPT_WAIT, answers.idle()).await;
            let _ = tokio::time::timeout(INTERRUPT_WAIT, &mut server).await;
        }
        lease_renewal.abort();
        match self.store.release_lease(answers.replica_id()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(answers = n, "answers stored as interrupted"),
            Err(e) => tracing::error!(error = %e, "could not release this replica's lease"),
        }
        if let Some(served) = served {
            served.context("server error")?;
        }
        key_expiry.abort();
        tracing::info!("stopped");
        Ok(())
    }
}

/// CORS for `PRACTICE_CORS_ORIGINS`: browsers on those origins may call
/// the JSON routes and gRPC-Web, and read the gRPC status headers; any other
/// origin is allowed nothing.
fn cors_layer(origins: &[String]) -> tower_http::cors::CorsLayer {
    use http::{HeaderName, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    // `*` allows any origin (without credentials, which the service never
    // asks browsers for: the token travels in Authorization).
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok()))
    };
    let allow_headers = [
        "authorization",
        "content-type",
        "idempotency-key",
        "x-grpc-web",
        "connect-protocol-version",
        "connect-timeout-ms",
        "connect-content-encoding",
        "connect-accept-encoding",
        "content-encoding",
        "x-user-agent",
        "grpc-timeout",
        "traceparent",
        "tracestate",
        "x-request-id",
    ];
    let expose_headers = [
        "grpc-status",
        "grpc-message",
        "grpc-status-details-bin",
        "content-encoding",
        "connect-content-encoding",
        "www-authenticate",
        "x-request-id",
    ];
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers(allow_headers.map(HeaderName::from_static))
        .expose_headers(expose_headers.map(HeaderName::from_static))
        .max_age(std::time::Duration::from_secs(600))
}
