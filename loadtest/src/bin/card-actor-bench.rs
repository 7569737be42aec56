//! `card-actor-bench`: the red-packet card actor's in-process grab rate.
//!
//! Starts one [`CardActor`] with a stock large enough for every grab and a ledger actor whose
//! store commits in memory, then sends `--grabs` grabs of distinct users from `--concurrency`
//! tasks and prints the grabs per second. It measures what the actor itself costs per grab
//! (decide, reserve, hand to the ledger, answer) — the part `redis-benchmark` measures for the
//! same grab written as a Lua script — without a database behind it.
//!
//! Usage: `card-actor-bench [--grabs N] [--concurrency C]` (defaults 1,000,000 and 256).

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use anyhow::{bail, Context, Result};
use futures_util::future::BoxFuture;
use points_actors::redpack::{CardActor, CardConfig, CardDay, GrabCard};
use points_actors::{
    Change, LedgerActor, LedgerError, LedgerLimits, LedgerStore, Outcome, StoreError,
};

/// Most grabs one run may send.
const GRABS_MAX: u64 = 100_000_000;
/// Most concurrent senders.
const CONCURRENCY_MAX: u64 = 100_000;

/// A ledger store that accepts every change without touching a disk.
struct MemoryStore {
    next_id: AtomicI64,
}

impl LedgerStore for MemoryStore {
    fn commit_batch(
        &self,
        batch: Arc<[Change]>,
    ) -> BoxFuture<'static, Result<Vec<Result<Outcome, LedgerError>>, StoreError>> {
        let first = self
            .next_id
            .fetch_add(batch.len() as i64, Ordering::Relaxed);
        let outcomes = batch
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Ok(Outcome {
                    entry_id: first + i as i64,
                    balance_after: 0,
                    amount: c.amount,
                    created_at: 0,
                })
            })
            .collect();
        Box::pin(async move { Ok(outcomes) })
    }
}

fn parse_args() -> Result<(u64, u64)> {
    let mut grabs = 1_000_000;
    let mut concurrency = 256;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || -> Result<u64> {
            args.next()
                .with_context(|| format!("{flag} needs a value"))?
                .parse()
                .with_context(|| format!("{flag} needs a number"))
        };
        match flag.as_str() {
            "--grabs" => grabs = value()?,
            "--concurrency" => concurrency = value()?,
            "-h" | "--help" => {
                println!("card-actor-bench [--grabs N] [--concurrency C]");
                std::process::exit(0);
            }
            other => bail!("unknown option {other:?}"),
        }
    }
    if !(1..=GRABS_MAX).contains(&grabs) || !(1..=CONCURRENCY_MAX).contains(&concurrency) {
        bail!("--grabs must be 1..={GRABS_MAX}, --concurrency 1..={CONCURRENCY_MAX}");
    }
    Ok((grabs, concurrency))
}

fn main() -> Result<()> {
    let (grabs, concurrency) = parse_args()?;
    let system = System::new();
    system.block_on(async move {
        let ledger = LedgerActor::new(
            Arc::new(MemoryStore {
                next_id: AtomicI64::new(1),
            }),
            LedgerLimits::default(),
            None,
        )
        .start();
        let config = CardConfig {
            card_id: 1,
            app_id: "bench".into(),
            batch_id: 1,
            reward_type: "积分".into(),
            daily_stock: i64::try_from(grabs)?,
            unit: 1,
            ticket: 1,
            window: (0, 86_400),
            open: true,
            fence: None,
        };
        let day = CardDay {
            day: "2026-01-01".into(),
            taken: 0,
            grabbed: HashSet::new(),
        };
        let card = CardActor::new(config, day, ledger, Arc::new(|_| {})).start();
        let per_task = grabs.div_ceil(concurrency);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for t in 0..concurrency {
            let card = card.clone();
            tasks.push(actix::spawn(async move {
                let mut won = 0u64;
                let first = t * per_task;
                for user in first..(first + per_task).min(grabs) {
                    let grab = GrabCard {
                        user_id: i64::try_from(user).unwrap_or(i64::MAX),
                        uid: String::new(),
                        nick: String::new(),
                        day: "2026-01-01".into(),
                        second_of_day: 43_200,
                        expires_at: None,
                    };
                    if matches!(card.send(grab).await, Ok(Ok(_))) {
                        won += 1;
                    }
                }
                won
            }));
        }
        let mut won = 0;
        for task in tasks {
            won += task.await.context("grab task")?;
        }
        let seconds = started.elapsed().as_secs_f64();
        anyhow::ensure!(won == grabs, "only {won} of {grabs} grabs won");
        println!(
            "card actor: {won} grabs, {concurrency} senders, {seconds:.2} s, {:.0} grabs/s",
            won as f64 / seconds
        );
        anyhow::Ok(())
    })?;
    Ok(())
}
