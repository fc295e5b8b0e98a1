//! The `prompt-two-users` scenario: what a user prompting one prompt at a
//! time sees while another floods the same models. The development model
//! answers at most 4 prompts' models at once, so the flood waits for slots;
//! fair sharing should keep the second user's time to first delta near
//! what it is alone, and the per-user limits refuse most of the flood.

use std::time::Duration;

use practice_service::store::StoreOptions;

use super::{Args, Seeded, prompt, seeded_database, server, server_settings};

/// Answers the development model gives at once in this scenario.
const SLOTS: &str = "4";

pub async fn scenario(args: &Args, server_bin: &std::path::Path) -> anyhow::Result<()> {
    println!(
        "| db | user | prompts at once | prompts answered | refused (429) | first delta p50 ms | p99 ms |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for db in &args.db {
        let Seeded { url, .. } = &seeded_database(args, db, &StoreOptions::default()).await?;
        let mut settings = server_settings(args);
        settings.push(("PRACTICE_DEV_MODEL_MAX_CONCURRENCY", SLOTS.into()));
        // The flood may start as many prompts a minute as it likes: the
        // limits under test are the ones on prompts at once and fairness.
        settings.push(("PRACTICE_USER_PROMPTS_PER_MINUTE", "1000000".into()));
        let server = server::Server::start(server_bin, url, &settings).await?;
        let duration = Duration::from_secs(args.duration);
        // The baseline of the same run: the normal user with nobody else.
        let [_, alone] = prompt::run_two_users(&server.url(), 0, duration).await?;
        let [flooding, normal] =
            prompt::run_two_users(&server.url(), args.concurrency, duration).await?;
        let ms = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        for (name, at_once, s) in [
            ("normal, alone", 1, &alone),
            ("flooding", args.concurrency, &flooding),
            ("normal, beside the flood", 1, &normal),
        ] {
            println!(
                "| {db} | {name} | {at_once} | {} | {} | {:.1} | {:.1} |",
                s.prompts,
                s.refused,
                ms(&s.first_delta, 0.5),
                ms(&s.first_delta, 0.99),
            );
        }
        server.stop().await;
    }
    Ok(())
}
