//! The `practice-service` binary: `serve` (default), `migrate`, `token`.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use practice_service::auth::{dev_secret_path, load_or_create_dev_secret, sign_hs256};
use practice_service::config::{Config, JwtKey};
use practice_service::startup::{Application, open_store};
use practice_service::telemetry;

// glibc malloc's free lists and consolidation cost a visible share of the
// server's CPU under load; mimalloc's thread-local heaps cost less. The
// crate's `override` feature sends the bundled SQLite's malloc and free
// there as well (the README's Performance section, step 10).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Practice chat sessions over gRPC, gRPC-Web and HTTP/JSON"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve gRPC, gRPC-Web and HTTP/JSON on PRACTICE_ADDR (the default).
    Serve,
    /// Bring the database named by DATABASE_URL up to date, then exit.
    Migrate,
    /// Print a token signed with the configured HS256 (or development) secret.
    Token {
        /// The subject: a user id for user RPCs, any name for internal callers.
        #[arg(long)]
        sub: String,
        /// Space-separated scopes, e.g. "practice:admin".
        #[arg(long)]
        scope: Option<String>,
        /// Lifetime, e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: Duration,
    },
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: want a number and a unit, e.g. 1h"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{s:?}: the unit must be s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // A configuration error is one line naming the variable and the fix.
    let config = Config::from_env().map_err(|e| match e {
        practice_service::error::Error::Internal(cause) => cause,
        other => anyhow::anyhow!(other.to_string()),
    })?;
    let telemetry = telemetry::init(config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(config).await?;
            let served = app.run_until_stopped(shutdown_signal()).await;
            telemetry.shutdown().await;
            served
        }
        Command::Migrate => {
            let store = open_store(&config).await?;
            tracing::info!(backend = store.backend(), "migrations applied");
            Ok(())
        }
        Command::Token { sub, scope, ttl } => {
            let secret = match &config.jwt_key {
                JwtKey::Hs256(secret) => secret.expose().as_bytes().to_vec(),
                JwtKey::Development => load_or_create_dev_secret(&dev_secret_path())?,
                _ => anyhow::bail!(
                    "`token` signs with an HS256 secret; this configuration checks tokens with a public key or JWKS"
                ),
            };
            let token =
                sign_hs256(&secret, &sub, scope.as_deref(), ttl).context("signing the token")?;
            println!("{token}");
            Ok(())
        }
    }
}
