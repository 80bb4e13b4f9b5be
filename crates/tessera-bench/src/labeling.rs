//! `tessera-bench labeling`: live task creation and completion through the store, the two
//! transactions billing touches (completion prices the task and accrues it). Creates a team,
//! inserts TASKS pending live categorization tasks from CONCURRENCY writers, then completes
//! them (claim + submit, as a labeler does) one after another, and prints both rates.

use std::time::Instant;

use tessera_core::{ids::TeamId, Mode, Scope};
use tessera_store::{LabelerScope, NewTask, Queue, Store};

pub async fn bench_labeling(store: &Store, tasks: usize, concurrency: usize) -> anyhow::Result<()> {
    let concurrency = concurrency.max(1);
    let email = tessera_core::Email::parse(&format!(
        "labeling-bench-{}@bench.test",
        tessera_store::now_ms()
    ))
    .map_err(|e| anyhow::anyhow!(e.0))?;
    let admin = tessera_store::NewUser {
        email,
        password_hash: "bench-no-login".into(),
        profile: Default::default(),
    };
    let event = tessera_store::NewAuditEvent::new(tessera_core::AuditAction::TeamSignedUp, "bench");
    let (team, user) = store
        .create_team_with_admin(
            &format!("Labeling bench {}", tessera_store::now_ms()),
            &admin,
            event,
        )
        .await?;
    let scope = Scope::operator(TeamId::from_stored(team.id.clone()), Mode::Live);
    let per_worker = tasks / concurrency;
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (store, scope) = (store.clone(), scope.clone());
        workers.push(tokio::spawn(async move {
            for _ in 0..per_worker {
                let new = NewTask {
                    task_type: "categorization".parse().map_err(|e| anyhow::anyhow!("{e:?}"))?,
                    status: "pending".parse().map_err(|e| anyhow::anyhow!("{e:?}"))?,
                    project: None,
                    batch: None,
                    unique_id: None,
                    callback_url: None,
                    instruction: Some("Pick one.".into()),
                    params: serde_json::json!({"attachment": "https://example.com/a.jpg", "attachment_type": "image", "categories": ["a", "b"]}),
                    metadata: serde_json::json!({}),
                    tags: None,
                    response: None,
                    extra: serde_json::json!({}),
                };
                store.insert_task(&scope, &new).await?;
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for w in workers {
        w.await??;
    }
    let created = per_worker * concurrency;
    let create_rate = created as f64 / started.elapsed().as_secs_f64();
    let labeler = LabelerScope::operator(&user.id, Queue::Team(TeamId::from_stored(team.id)));
    // One labeler holds one task at a time, so completions run one after another.
    let started = Instant::now();
    let mut completed = 0_usize;
    while let Some(claim) = store.claim_next_task(&labeler, 60_000).await? {
        store
            .submit_task(
                &labeler,
                "bench",
                &claim.task.id,
                &serde_json::json!({"category": "a"}),
            )
            .await?
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        completed += 1;
    }
    let complete_rate = completed as f64 / started.elapsed().as_secs_f64();
    println!("created={created} create_per_second={create_rate:.0} completed={completed} complete_per_second={complete_rate:.0}");
    Ok(())
}
