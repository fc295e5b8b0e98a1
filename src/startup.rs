//! Builds the store, the services and the layer stack, and serves them on
//! one port until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::api::auth::AuthLayer;
use crate::api::grpc::PracticeApi;
use crate::auth::{Authenticator, ClaimRules, Keys, dev_secret_path, load_or_create_dev_secret};
use crate::config::{Config, JwtKey};
use crate::proto::practice::v1::practice_service_server::PracticeServiceServer;
use crate::service::PracticeService;
use crate::store::{self, Store, StoreOptions};

pub struct Application {
    listener: TcpListener,
    store: Arc<dyn Store>,
    auth: Arc<Authenticator>,
    config: Config,
}

/// The keys tokens are checked with, as configured.
pub async fn load_keys(key: &JwtKey) -> anyhow::Result<Keys> {
    Ok(match key {
        JwtKey::Hs256(secret) => Keys::hs256(secret.expose().as_bytes().to_vec()),
        JwtKey::PublicKeyFile(path) => {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Keys::from_pem(&pem)?
        }
        JwtKey::Jwks(source) => Keys::from_jwks(source.clone()).await?,
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
        ..StoreOptions::default()
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
        let keys = load_keys(&config.jwt_key).await?;
        let auth = Arc::new(Authenticator::new(
            keys,
            ClaimRules {
                issuer: config.jwt_issuer.clone(),
                audience: config.jwt_audience.clone(),
                leeway: config.jwt_leeway,
            },
        ));
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.addr))?;
        Ok(Self {
            listener,
            store,
            auth,
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

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let practice = PracticeApi::new(PracticeService::new(
            self.store.clone(),
            self.config.default_models.clone(),
        ));
        tracing::info!(addr = %self.local_addr(), backend = self.store.backend(), "serving");
        Server::builder()
            .accept_http1(true)
            .layer(AuthLayer::new(self.auth.clone()))
            .add_service(PracticeServiceServer::new(practice))
            .serve_with_incoming_shutdown(
                TcpIncoming::from(self.listener).with_nodelay(Some(true)),
                shutdown,
            )
            .await
            .context("server error")?;
        Ok(())
    }
}
