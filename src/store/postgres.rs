//! PostgreSQL, for production. A transaction that loses a serialization race
//! or a deadlock (40001, 40P01) is run again, a bounded number of times.

use std::str::FromStr;

use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::StoreOptions;

const BACKEND: &str = "postgres";
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, crate::error::Error> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| {
                crate::error::Error::internal(anyhow::anyhow!("bad PostgreSQL DATABASE_URL: {e}"))
            })?
            .application_name("practice-service")
            .options([(
                "statement_timeout",
                options.statement_timeout.as_millis().to_string(),
            )]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            // No ping before every use (a round trip per transaction): a
            // connection the server dropped fails at BEGIN, which is retried
            // on a fresh connection, and the pool discards the broken one.
            .test_before_acquire(false)
            .connect_with(connect)
            .await?;
        Ok(Self { pool })
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }
}

fn id_list(ids: &[i64]) -> Vec<i64> {
    ids.to_vec()
}

fn is_retryable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c == "40001" || c == "40P01"))
}

super::shared::impl_store!(PgStore, Postgres, ids_in = " = ANY($1)");
