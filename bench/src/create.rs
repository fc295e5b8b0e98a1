//! The `create` scenario: CreateSession on every protocol and database,
//! closed loop and open loop, beside the naive and raw baselines.

use std::sync::Arc;
use std::time::Duration;

use practice_service::store::StoreOptions;

use super::databases::apply_pg_settings;
use super::load::{self, Mode, Protocol, Stats, Target};
use super::server::{self, Cpu};
use super::{Args, Seeded, seeded_database, server_settings};

struct Row {
    db: String,
    protocol: String,
    mode: String,
    stats: Stats,
    /// CPU per create in µs: service, database, load generator.
    cpu: Option<(f64, f64, f64)>,
    rss_mb: Option<f64>,
    ratio: String,
}

fn print_table(rows: &[Row]) {
    println!(
        "| db | protocol | mode | req/s | p50 ms | p99 ms | p999 ms | CPU µs/req: service | database | load generator | server peak RSS MB | ratio |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in rows {
        let cpu = r.cpu.map_or("- | - | -".into(), |(s, d, l)| {
            let d = if d > 0.0 {
                format!("{d:.0}")
            } else {
                "-".into()
            };
            format!("{s:.0} | {d} | {l:.0}")
        });
        let rss = r.rss_mb.map_or("-".into(), |m| format!("{m:.1}"));
        let ratio = &r.ratio;
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {cpu} | {rss} | {ratio} |",
            r.db,
            r.protocol,
            r.mode,
            r.stats.throughput(),
            r.stats.quantile_ms(0.50),
            r.stats.quantile_ms(0.99),
            r.stats.quantile_ms(0.999),
        );
    }
}

pub async fn scenario(
    args: &Args,
    server_bin: &std::path::Path,
    protocols: &[Protocol],
    options: &StoreOptions,
) -> anyhow::Result<()> {
    let measure = Duration::from_secs(args.duration);
    let warmup = Duration::from_secs(args.warmup);
    let mut rows = Vec::new();
    for db in &args.db {
        let Seeded { url, store, .. } = &seeded_database(args, db, options).await?;
        if db == "postgres" {
            apply_pg_settings(url, &args.pg_set).await?;
        }
        let server = server::Server::start(server_bin, url, &server_settings(args)).await?;

        let mut targets = Vec::new();
        for protocol in protocols {
            targets.push(Arc::new(match protocol {
                Protocol::Naive => Target::naive(url, options).await?,
                Protocol::Raw => Target::raw(store.clone()),
                p => Target::connect(*p, &server.url(), args.connections).await?,
            }));
        }
        let mode = Mode::Closed {
            concurrency: args.concurrency,
        };
        let mut cells: Vec<Option<(Stats, Cpu)>> = protocols.iter().map(|_| None).collect();
        for round in 0..args.rounds.max(1) {
            for (i, protocol) in protocols.iter().enumerate() {
                let run_id = format!("{db}-{}-{}-{round}", protocol.name(), std::process::id());
                load::run(&targets[i], mode, warmup, &format!("{run_id}-w")).await?;
                let before = server.cpu()?;
                let stats = load::run(&targets[i], mode, measure, &run_id).await?;
                let ticks = server.cpu()? - before;
                match &mut cells[i] {
                    Some((total, total_ticks)) => {
                        total.merge(stats);
                        *total_ticks += ticks;
                    }
                    cell => *cell = Some((stats, ticks)),
                }
            }
        }
        let rps = |p: Protocol| {
            protocols
                .iter()
                .position(|x| *x == p)
                .and_then(|i| cells[i].as_ref())
                .map(|(s, _)| s.throughput())
        };
        let (naive_rps, grpc_rps) = (rps(Protocol::Naive), rps(Protocol::Grpc));
        for (protocol, cell) in protocols.iter().zip(cells) {
            let (stats, ticks) = cell.expect("every cell ran");
            let server_side = !matches!(protocol, Protocol::Raw | Protocol::Naive);
            let mut ratio = Vec::new();
            if let Some(naive) = naive_rps.filter(|_| *protocol != Protocol::Naive) {
                ratio.push(format!("{:.2} of naive", stats.throughput() / naive));
            }
            if let Some(grpc) = grpc_rps.filter(|_| server_side && *protocol != Protocol::Grpc) {
                ratio.push(format!("{:.2} of gRPC", stats.throughput() / grpc));
            }
            let per_req = |t: u64| server::ticks_to_us(t) / stats.ok as f64;
            // SQLite runs inside its caller; a PostgreSQL server that
            // happens to run beside a SQLite run is not its database.
            let database = match db.as_str() {
                "postgres" => per_req(ticks.database),
                _ => 0.0,
            };
            rows.push(Row {
                db: db.clone(),
                protocol: protocol.name().into(),
                mode: format!("closed c={}", args.concurrency),
                cpu: Some((per_req(ticks.service), database, per_req(ticks.load))),
                rss_mb: server_side.then(|| server.peak_rss_mb()).flatten(),
                stats,
                ratio: ratio.join(", "),
            });
        }
        if let Some(max) = grpc_rps
            && args.open_fraction > 0.0
        {
            // The same fixed rate for the service and for the raw baseline,
            // so the service's own share of the tail shows.
            let rate = (max * args.open_fraction).max(1.0);
            for (i, protocol) in protocols.iter().enumerate() {
                if !matches!(protocol, Protocol::Grpc | Protocol::Naive) {
                    continue;
                }
                let run_id = format!("{db}-open-{}-{}", protocol.name(), std::process::id());
                let stats = load::run(&targets[i], Mode::Open { rate }, measure, &run_id).await?;
                rows.push(Row {
                    db: db.clone(),
                    protocol: protocol.name().into(),
                    mode: format!(
                        "open {rate:.0}/s ({:.0}% of gRPC max)",
                        args.open_fraction * 100.0
                    ),
                    cpu: None,
                    rss_mb: (*protocol == Protocol::Grpc)
                        .then(|| server.peak_rss_mb())
                        .flatten(),
                    stats,
                    ratio: String::new(),
                });
            }
        }
        server.stop().await;
    }
    print_table(&rows);
    Ok(())
}
