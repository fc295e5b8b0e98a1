//! Where the bench's databases come from: a SQLite file, a throwaway
//! PostgreSQL cluster or a given server, and `--pg-set`'s settings.

use anyhow::bail;

use super::pg;

/// A throwaway PostgreSQL cluster, started once and stopped when the bench
/// exits; by default with the server's default durability (fsync and
/// synchronous commit on), unlike the test suite's cluster.
fn throwaway_cluster(no_fsync: bool) -> anyhow::Result<String> {
    static CLUSTER: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            let cluster = if no_fsync {
                pg::Cluster::start()
            } else {
                pg::Cluster::start_durable()
            };
            cluster.map(|c| c.url("postgres"))
        })
        .clone()
        .map_err(|e| anyhow::anyhow!("no PostgreSQL ({e}): install it, or pass --pg-url"))
}

pub async fn database_url(
    db: &str,
    dir: &tempfile::TempDir,
    pg_url: &Option<String>,
    pg_no_fsync: bool,
) -> anyhow::Result<String> {
    match db {
        "sqlite" => Ok(format!("sqlite:{}", dir.path().join("bench.db").display())),
        "postgres" => {
            let server = match pg_url {
                Some(url) => url.clone(),
                None => throwaway_cluster(pg_no_fsync)?,
            };
            pg::try_create_database(&server)
                .await
                .map_err(|e| anyhow::anyhow!(e))
        }
        other => bail!("unknown database {other:?}"),
    }
}

/// `--pg-set`: each `name=value` with ALTER SYSTEM, then a reload; every
/// setting measured here takes effect on reload.
pub async fn apply_pg_settings(url: &str, settings: &[String]) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    for setting in settings {
        let Some((name, value)) = setting.split_once('=') else {
            bail!("--pg-set takes name=value, got {setting:?}");
        };
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            bail!("not a setting name: {name:?}");
        }
        let value = value.replace('\'', "''");
        // The name is checked above and the value quoted: a bench flag,
        // written by whoever runs the bench.
        let statement = format!("ALTER SYSTEM SET {name} = '{value}'");
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await?;
        println!("PostgreSQL: {name} = {value}");
    }
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&mut conn)
        .await?;
    Ok(())
}
