//! The authorisation matrix: every dashboard action × every kind of person × their own team
//! and another team. Allowed actions must take effect; denied ones must change nothing.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use reqwest::StatusCode;
use tessera_core::{profile::Profile, Email, Role};
use tessera_server::crypto::{hash_password, token_digest, Purpose};
use tessera_store::{
    AuditAction, ClaimProblem, DeliveryKind, NewAuditEvent, NewDelivery, NewInvitation, NewMail,
    NewUser, Queue,
};

use crate::{backend_test, helpers::*};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    Admin,
    Manager,
    Member,
    Labeler,
    Teamless,
    Staff,
    /// A platform workforce labeler (in no team).
    Workforce,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    ViewProfile,
    ViewTeam,
    ViewDetails,
    EditDetails,
    ViewAudit,
    Invite,
    Resend,
    Revoke,
    ChangeRole,
    /// Change the role a pending invitation grants.
    ChangeInvitationRole,
    ConfirmRemove,
    Remove,
    /// Offer the Admin role to a Manager, withdraw the offer, accept an offer made to the
    /// team's Manager (only that Manager may).
    OfferHandover,
    CancelHandover,
    AcceptHandover,
    StaffConsole,
    StaffMoveUser,
    StaffSetAdmin,
    StaffReadMail,
    /// The staff billing page (price book, team list) and one team's billing page.
    StaffBilling,
    StaffBillingTeam,
    /// Staff billing changes: a book price, a team's plan, price and credit, its close now.
    StaffBookPrice,
    StaffSetPlan,
    StaffTeamPrice,
    StaffGrantCredit,
    StaffClosePeriod,
    ViewKeys,
    CreateKey,
    RevealKey,
    DeleteKey,
    /// The Roll form of a key, and rolling it (another team's key is not found).
    RollKeyForm,
    RollKey,
    RevealCallbackKey,
    RotateCallbackKey,
    ViewProjects,
    CreateProject,
    ViewTasks,
    ViewTask,
    AuditTask,
    SwitchMode,
    RevealSigningSecret,
    RotateSigningSecret,
    ViewCallbacks,
    ViewCallback,
    Redeliver,
    /// Cancel retries of a pending delivery.
    CancelRetries,
    SendTestCallback,
    ViewLabelQueue,
    LabelNext,
    ViewLabelTask,
    SubmitLabel,
    ReleaseLabel,
    /// The labeler's history of completed tasks, and one of them read-only.
    ViewLabelHistory,
    ViewLabeledTask,
    ViewBilling,
    SetSpendLimit,
    /// The card page and its form (no provider here: the Admin is sent back to Billing).
    OpenCardPage,
    SaveCard,
    /// The Integrations page, connecting storage, Verify, the removal page and removal, and
    /// the proxy-mode switch.
    ViewIntegrations,
    AddIntegration,
    VerifyIntegration,
    ConfirmRemoveIntegration,
    RemoveIntegration,
    SetAttachmentProxy,
    /// The team setting "Require two-factor authentication for every member".
    RequireTwoFactor,
}

impl Act {
    /// Whether the action targets a resource that belongs to a team (so "another team's"
    /// variant exists).
    fn has_target(self) -> bool {
        matches!(
            self,
            Act::Resend
                | Act::RollKeyForm
                | Act::RollKey
                | Act::Revoke
                | Act::ChangeRole
                | Act::ChangeInvitationRole
                | Act::OfferHandover
                | Act::ConfirmRemove
                | Act::Remove
                | Act::ViewCallback
                | Act::Redeliver
                | Act::CancelRetries
                | Act::ViewLabelTask
                | Act::SubmitLabel
                | Act::ReleaseLabel
                | Act::ViewLabeledTask
                | Act::VerifyIntegration
                | Act::ConfirmRemoveIntegration
                | Act::RemoveIntegration
        )
    }

    /// Acts on a task in the labeling queue: the other team's variant is a task another
    /// team's labeler holds, which a labeler asking for it is told is not theirs (409, or for
    /// Release "you were not holding that task").
    fn is_labeling(self) -> bool {
        matches!(
            self,
            Act::ViewLabelTask | Act::SubmitLabel | Act::ReleaseLabel | Act::ViewLabeledTask
        )
    }
}

/// The expected matrix, written independently of the policy code.
fn allowed(who: Who, act: Act) -> bool {
    use Act::*;
    match act {
        ViewProfile => who != Who::Anonymous,
        ViewTeam => matches!(who, Who::Admin | Who::Manager | Who::Member),
        ViewDetails | EditDetails | ViewAudit | Invite | Resend | Revoke | ChangeRole
        | ChangeInvitationRole | ConfirmRemove | Remove => {
            matches!(who, Who::Admin | Who::Manager)
        }
        OfferHandover | CancelHandover => who == Who::Admin,
        AcceptHandover => who == Who::Manager,
        StaffConsole | StaffMoveUser | StaffSetAdmin | StaffReadMail | StaffBilling
        | StaffBillingTeam | StaffBookPrice | StaffSetPlan | StaffTeamPrice | StaffGrantCredit
        | StaffClosePeriod => who == Who::Staff,
        ViewKeys | CreateKey | RevealKey | DeleteKey | RollKeyForm | RollKey
        | RevealCallbackKey | RotateCallbackKey | RevealSigningSecret | RotateSigningSecret => {
            matches!(who, Who::Admin | Who::Manager)
        }
        ViewProjects | CreateProject | ViewTasks | ViewTask | AuditTask | SwitchMode
        | ViewCallbacks | ViewCallback | Redeliver | CancelRetries | SendTestCallback => {
            matches!(who, Who::Admin | Who::Manager | Who::Member)
        }
        ViewLabelQueue | LabelNext | ViewLabelTask | SubmitLabel | ReleaseLabel
        | ViewLabelHistory | ViewLabeledTask => {
            matches!(who, Who::Labeler | Who::Workforce)
        }
        ViewBilling => matches!(who, Who::Admin | Who::Manager),
        SetSpendLimit | OpenCardPage | SaveCard | RequireTwoFactor => who == Who::Admin,
        ViewIntegrations
        | AddIntegration
        | VerifyIntegration
        | ConfirmRemoveIntegration
        | RemoveIntegration
        | SetAttachmentProxy => matches!(who, Who::Admin | Who::Manager),
    }
}

struct TeamCtx {
    id: String,
    name: String,
    admin_id: String,
}

/// The team's live world, for reading and writing its tasks straight through the store.
fn live_scope(team: &TeamCtx) -> tessera_core::Scope {
    tessera_core::Scope::operator(
        tessera_core::ids::TeamId::from_stored(team.id.clone()),
        tessera_core::Mode::Live,
    )
}

struct Ctx {
    app: TestApp,
    hash: String,
    a: TeamCtx,
    b: TeamCtx,
    /// A labeler of team B, who holds the other team's tasks in the labeling acts.
    labeler_b: String,
    /// Team A's Manager in the matrix (the one person an offer in AcceptHandover is for).
    manager_a: String,
    /// Finished callback deliveries (live mode) per team, each redelivered at most once.
    deliveries: Mutex<HashMap<String, Vec<String>>>,
    /// Pending callback deliveries (live mode) per team, held under a long lease so no worker
    /// finishes them: each is canceled at most once.
    pending: Mutex<HashMap<String, Vec<String>>>,
}

impl Ctx {
    fn mail(&self, to: &str) -> NewMail {
        NewMail {
            team_id: None,
            to: to.into(),
            subject: "test".into(),
            body_sealed: self
                .app
                .key
                .seal(&Purpose::mail_body(to), br#"{"text":"t","html":"h"}"#),
        }
    }

    /// An access-key S3 integration of `team` (its endpoint a closed local port: Verify
    /// records a failure without leaving the machine).
    async fn integration(&self, team: &TeamCtx) -> tessera_core::ids::IntegrationId {
        let id = tessera_core::ids::IntegrationId::generate();
        let sealed = self.app.key.seal(
            &Purpose::integration_secret(&team.id, id.as_str()),
            b"matrix-secret",
        );
        let new = tessera_store::NewIntegration {
            id: id.clone(),
            kind: tessera_core::integrations::CredentialKind::AwsAccessKey,
            name: unique("Matrix "),
            settings: serde_json::json!({"access_key_id": "AKIAMATRIXMATRIX0000", "region": "us-east-1",
                "endpoint": format!("http://127.0.0.1:{}", free_port())}),
            secret_sealed: Some(sealed),
            secret_fingerprint: Some("sha256:matrix".into()),
            created_by: "test".into(),
            buckets: vec![unique("matrix-").to_lowercase().replace('_', "-")],
            event: NewAuditEvent::new(AuditAction::IntegrationAdded, "test"),
        };
        self.app
            .store
            .add_integration(&team_scope(&team.id), &new, 1_000)
            .await
            .unwrap()
            .unwrap();
        id
    }

    async fn invitation(&self, team: &TeamCtx, email: &str, role: Role) -> (String, String) {
        let token = unique("tok");
        let outcome = self
            .app
            .store
            .invite(
                &team_scope(&team.id),
                &NewInvitation {
                    email: Email::parse(email).unwrap(),
                    role,
                    invited_by: team.admin_id.clone(),
                    token_hash: token_digest(&token),
                    expires_at: tessera_store::now_ms() + 3_600_000,
                    min_resend_interval_ms: 0,
                    mail: self.mail(email),
                    event: NewAuditEvent::new(AuditAction::InvitationSent, "test"),
                },
            )
            .await
            .unwrap();
        let id = match outcome {
            tessera_store::InviteOutcome::Created(i)
            | tessera_store::InviteOutcome::Refreshed { invitation: i, .. }
            | tessera_store::InviteOutcome::RoleChanged { invitation: i, .. } => i.id.into_string(),
        };
        (id, token)
    }

    async fn member(&self, team: &TeamCtx, role: Role) -> (String, String) {
        let email = format!("{}@matrix.test", unique("m"));
        let (_, token) = self.invitation(team, &email, role).await;
        let user = self
            .app
            .store
            .cross_tenant()
            .accept_invitation(
                &token_digest(&token),
                Some(&NewUser {
                    email: Email::parse(&email).unwrap(),
                    password_hash: self.hash.clone(),
                    profile: Profile::parse("Matrix", "", "", "").unwrap(),
                }),
                None,
                NewAuditEvent::new(AuditAction::InvitationAccepted, email.clone()),
            )
            .await
            .unwrap();
        (user.id, email)
    }

    /// An offer of `team`'s Admin role to `to_user_id`, made straight in the store; its link.
    async fn handover(&self, team: &TeamCtx, to_user_id: &str) -> String {
        let token = unique("handover");
        let to = self.app.store.get_user(to_user_id).await.unwrap().email;
        let now = tessera_store::now_ms();
        self.app
            .store
            .offer_admin_handover(
                &team_scope(&team.id),
                &tessera_store::NewHandover {
                    from_user_id: &team.admin_id,
                    to_user_id,
                    token_hash: &token_digest(&token),
                    expires_at: now + 3_600_000,
                    mail: &self.mail(&to),
                    event: &NewAuditEvent::new(AuditAction::TeamAdminHandoverOffered, "test"),
                },
                now,
            )
            .await
            .unwrap();
        format!("/admin-handover/{token}")
    }

    /// Withdraws `team`'s pending offer, if there is one; whether there was.
    async fn close_handover(&self, team: &TeamCtx) -> bool {
        let scope = team_scope(&team.id);
        let Some(pending) = self.app.store.pending_admin_handover(&scope).await.unwrap() else {
            return false;
        };
        self.app
            .store
            .cancel_admin_handover(
                &scope,
                &pending.id,
                tessera_store::now_ms(),
                &NewAuditEvent::new(AuditAction::TeamAdminHandoverCancelled, "test"),
            )
            .await
            .unwrap();
        true
    }

    async fn key(&self, team: &TeamCtx) -> (String, String) {
        let (record, key) = tessera_server::keys::service::create_api_key(
            &self.app.store,
            &self.app.key,
            &team_scope(&team.id)
                .with_mode(tessera_core::Mode::Test)
                .unwrap(),
            tessera_server::keys::service::KeyRequest {
                label: "matrix",
                created_by: None,
                expiry: tessera_core::keys::KeyExpiry::Never,
                form_nonce: None,
                event: NewAuditEvent::new(AuditAction::ApiKeyCreated, "test"),
            },
        )
        .await
        .unwrap();
        (record.id.into_string(), key)
    }

    async fn task(&self, team: &TeamCtx) -> String {
        let task = self
            .app
            .store
            .insert_task(
                &live_scope(team),
                &tessera_store::NewTask {
                task_type: tessera_core::tasks::TaskType::Categorization,
                status: tessera_core::status::TaskStatus::Completed,
                project: None,
                batch: None,
                unique_id: None,
                callback_url: None,
                instruction: None,
                params: serde_json::json!({"attachment": "a", "attachment_type": "text", "categories": ["x"]}),
                metadata: serde_json::json!({}),
                tags: None,
                response: Some(serde_json::json!({"category": "x"})),
                extra: serde_json::json!({}),
            },
            )
            .await
            .unwrap();
        task.id
    }

    /// Queues `n` callback deliveries (to the Admin's email address, so they succeed at once) in each
    /// team and waits until the worker has finished them.
    async fn finished_deliveries(&self, n: usize) {
        for team in [&self.a, &self.b] {
            let mut ids = Vec::new();
            // The Admin's own address: email callbacks go only to the team's addresses.
            let admin_email = self.app.store.get_user(&team.admin_id).await.unwrap().email;
            for _ in 0..n {
                let delivery = self
                    .app
                    .store
                    .enqueue_delivery(
                        &tessera_core::Scope::operator(
                            tessera_core::ids::TeamId::from_stored(team.id.clone()),
                            tessera_core::Mode::Live,
                        ),
                        &NewDelivery {
                            kind: DeliveryKind::Test,
                            batch_id: None,
                            target: admin_email.clone(),
                            payload: "{}".into(),
                        },
                    )
                    .await
                    .unwrap();
                ids.push(delivery.id.into_string());
            }
            self.deliveries.lock().unwrap().insert(team.id.clone(), ids);
        }
        TestApp::eventually(30, || async {
            let counts = self
                .app
                .store
                .cross_tenant()
                .delivery_counts(None)
                .await
                .unwrap();
            (counts.pending == 0).then_some(())
        })
        .await;
    }

    /// Queues `n` pending deliveries in each team that no worker takes (held under an hour's
    /// lease, as a test send in progress is).
    async fn pending_deliveries(&self, n: usize) {
        for team in [&self.a, &self.b] {
            let mut ids = Vec::new();
            for _ in 0..n {
                let delivery = self
                    .app
                    .store
                    .start_delivery_now(
                        &live_scope(team),
                        &NewDelivery {
                            kind: DeliveryKind::Test,
                            batch_id: None,
                            target: "https://pending.matrix.test/".into(),
                            payload: "{}".into(),
                        },
                        3_600_000,
                    )
                    .await
                    .unwrap();
                ids.push(delivery.id.into_string());
            }
            self.pending.lock().unwrap().insert(team.id.clone(), ids);
        }
    }

    fn pending_delivery(&self, team: &TeamCtx) -> String {
        self.pending
            .lock()
            .unwrap()
            .get_mut(&team.id)
            .unwrap()
            .pop()
            .expect("enough pending deliveries prepared")
    }

    fn delivery(&self, team: &TeamCtx) -> String {
        self.deliveries
            .lock()
            .unwrap()
            .get_mut(&team.id)
            .unwrap()
            .pop()
            .expect("enough deliveries prepared")
    }

    /// A pending live task in `team`'s queue, held by `holder` when given. Team queues are
    /// kept empty between acts, so the claim takes exactly this task.
    async fn queued_task(&self, team: &TeamCtx, holder: Option<&str>) -> (String, String) {
        let marker = unique("INSTRUCTION-");
        let task = self
            .app
            .store
            .insert_task(
                &live_scope(team),
                &tessera_store::NewTask {
                task_type: tessera_core::tasks::TaskType::Categorization,
                status: tessera_core::status::TaskStatus::Pending,
                project: None,
                batch: None,
                unique_id: None,
                callback_url: None,
                instruction: Some(marker.clone()),
                params: serde_json::json!({"attachment": "a", "attachment_type": "text", "categories": ["x"]}),
                metadata: serde_json::json!({}),
                tags: None,
                response: None,
                extra: serde_json::json!({}),
            },
            )
            .await
            .unwrap();
        if let Some(holder) = holder {
            let claim = self
                .app
                .store
                .claim_next_task(
                    &tessera_store::LabelerScope::operator(
                        holder,
                        Queue::Team(tessera_core::ids::TeamId::from_stored(team.id.clone())),
                    ),
                    600_000,
                )
                .await
                .unwrap()
                .expect("the task is claimed");
            assert_eq!(claim.task.id, task.id, "team queue was not empty");
        }
        (task.id, marker)
    }

    /// Takes a labeling act's task out of the queue (and out of anyone's hands).
    async fn dequeue(&self, team: &TeamCtx, task_id: &str) {
        let _ = self
            .app
            .store
            .cancel_task(&live_scope(team), task_id, false, "test")
            .await;
    }

    async fn login(&self, email: &str) -> Browser {
        let mut b = self.app.browser();
        let r = b
            .post_form("/login", &[("email", email), ("password", PASSWORD)])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "login {email}");
        b
    }
}

async fn authorization_matrix(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            resend_interval: Some(Duration::ZERO),
            ..Options::default()
        },
    )
    .await;
    let hash = hash_password(PASSWORD.into()).await.unwrap();
    let mut admin_a = app.sign_up("admin@a.test", "Team A").await;
    let _admin_b = app.sign_up("admin@b.test", "Team B").await;
    let teams = app.store.cross_tenant().list_teams().await.unwrap();
    let ctx_team = |name: &str| {
        let t = teams.iter().find(|t| t.team.name == name).unwrap();
        TeamCtx {
            id: t.team.id.clone(),
            name: t.team.name.clone(),
            admin_id: t.team.admin_user_id.clone(),
        }
    };
    let mut ctx = Ctx {
        a: ctx_team("Team A"),
        b: ctx_team("Team B"),
        app,
        hash,
        labeler_b: String::new(),
        manager_a: String::new(),
        deliveries: Mutex::new(HashMap::new()),
        pending: Mutex::new(HashMap::new()),
    };
    ctx.labeler_b = ctx.member(&ctx.b, Role::Labeler).await.0;
    // One per person and team for Redeliver, one more for viewing.
    ctx.finished_deliveries(2 * 8).await;
    ctx.pending_deliveries(2 * 8).await;

    // The Admin has two-factor sign-in on (their session predates it): requiring it of
    // the team needs that.
    let secret = [7u8; 20];
    ctx.app
        .store
        .begin_two_factor_setup(
            &ctx.a.admin_id,
            &ctx.app
                .key
                .seal(&Purpose::two_factor_secret(&ctx.a.admin_id), &secret),
            tessera_store::now_ms(),
        )
        .await
        .unwrap();
    let pending = ctx
        .app
        .store
        .two_factor(&ctx.a.admin_id)
        .await
        .unwrap()
        .unwrap();
    assert!(ctx
        .app
        .store
        .enable_two_factor(
            &ctx.a.admin_id,
            &pending.secret_sealed,
            1,
            &[],
            &NewAuditEvent::new(AuditAction::UserTwoFactorEnabled, "test"),
        )
        .await
        .unwrap());

    let mut people: Vec<(Who, Option<Browser>, Option<String>)> =
        vec![(Who::Anonymous, None, None)];
    admin_a.visit("/team").await;
    people.push((Who::Admin, Some(admin_a), Some(ctx.a.admin_id.clone())));
    for (who, role) in [
        (Who::Manager, Role::Manager),
        (Who::Member, Role::Member),
        (Who::Labeler, Role::Labeler),
    ] {
        let (id, email) = ctx.member(&ctx.a, role).await;
        if who == Who::Manager {
            ctx.manager_a = id.clone();
        }
        people.push((who, Some(ctx.login(&email).await), Some(id)));
    }
    let (teamless_id, teamless_email) = ctx.member(&ctx.a, Role::Member).await;
    ctx.app
        .store
        .remove_member(
            &team_scope(&ctx.a.id),
            &teamless_id,
            NewAuditEvent::new(AuditAction::MemberRemoved, "test"),
        )
        .await
        .unwrap();
    people.push((
        Who::Teamless,
        Some(ctx.login(&teamless_email).await),
        Some(teamless_id),
    ));
    let staff = tessera_server::staff::support::create_staff(
        &ctx.app.store,
        "staff@tessera.test",
        PASSWORD,
    )
    .await
    .unwrap();
    people.push((
        Who::Staff,
        Some(ctx.login("staff@tessera.test").await),
        Some(staff.id),
    ));
    let workforce = tessera_server::staff::support::create_labeler(
        &ctx.app.store,
        "crowd@tessera.test",
        PASSWORD,
    )
    .await
    .unwrap();
    people.push((
        Who::Workforce,
        Some(ctx.login("crowd@tessera.test").await),
        Some(workforce.id),
    ));

    let acts = [
        Act::ViewIntegrations,
        Act::AddIntegration,
        Act::VerifyIntegration,
        Act::ConfirmRemoveIntegration,
        Act::RemoveIntegration,
        Act::SetAttachmentProxy,
        Act::RequireTwoFactor,
        Act::ViewBilling,
        Act::SetSpendLimit,
        Act::OpenCardPage,
        Act::SaveCard,
        Act::ViewProfile,
        Act::ViewTeam,
        Act::ViewDetails,
        Act::EditDetails,
        Act::ViewAudit,
        Act::Invite,
        Act::Resend,
        Act::Revoke,
        Act::ChangeRole,
        Act::ChangeInvitationRole,
        Act::ConfirmRemove,
        Act::Remove,
        Act::OfferHandover,
        Act::CancelHandover,
        Act::AcceptHandover,
        Act::StaffConsole,
        Act::StaffMoveUser,
        Act::StaffSetAdmin,
        Act::StaffReadMail,
        Act::StaffBilling,
        Act::StaffBillingTeam,
        Act::StaffBookPrice,
        Act::StaffSetPlan,
        Act::StaffTeamPrice,
        Act::StaffGrantCredit,
        Act::StaffClosePeriod,
        Act::ViewKeys,
        Act::CreateKey,
        Act::RevealKey,
        Act::DeleteKey,
        Act::RollKeyForm,
        Act::RollKey,
        Act::RevealCallbackKey,
        Act::RotateCallbackKey,
        Act::ViewProjects,
        Act::CreateProject,
        Act::ViewTasks,
        Act::ViewTask,
        Act::AuditTask,
        Act::SwitchMode,
        Act::RevealSigningSecret,
        Act::RotateSigningSecret,
        Act::ViewCallbacks,
        Act::ViewCallback,
        Act::Redeliver,
        Act::CancelRetries,
        Act::SendTestCallback,
        Act::ViewLabelQueue,
        Act::LabelNext,
        Act::ViewLabelTask,
        Act::SubmitLabel,
        Act::ReleaseLabel,
        Act::ViewLabelHistory,
        Act::ViewLabeledTask,
    ];
    let mut checked = 0;
    for (who, browser, user_id) in people.iter_mut() {
        let mut anon = ctx.app.browser();
        let b = browser.as_mut().unwrap_or(&mut anon);
        let user_id = user_id.as_deref();
        for act in acts {
            let scopes: &[bool] = if act.has_target() {
                &[true, false]
            } else {
                &[true]
            };
            for &own in scopes {
                let expect = allowed(*who, act) && own;
                let (status, effect) = perform(&ctx, b, user_id, act, own).await;
                let label = format!(
                    "{who:?} {act:?} {}",
                    if own { "own team" } else { "other team" }
                );
                if expect {
                    assert!(
                        status == StatusCode::OK || status == StatusCode::SEE_OTHER,
                        "{label}: allowed but got {status}"
                    );
                    assert!(effect, "{label}: allowed but had no effect");
                } else {
                    assert!(!effect, "{label}: denied but took effect");
                    match who {
                        Who::Anonymous => assert_eq!(
                            status,
                            StatusCode::SEE_OTHER,
                            "{label}: anonymous goes to login"
                        ),
                        _ if own => assert_eq!(status, StatusCode::FORBIDDEN, "{label}"),
                        // A labeler asking for a task someone else in their queue holds is
                        // told so; another team's task does not exist for them.
                        Who::Labeler | Who::Workforce if act.is_labeling() => assert!(
                            status == StatusCode::CONFLICT
                                || status == StatusCode::NOT_FOUND
                                || (act == Act::ReleaseLabel && status == StatusCode::SEE_OTHER),
                            "{label}: got {status}"
                        ),
                        _ => assert!(
                            status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN,
                            "{label}: got {status}"
                        ),
                    }
                }
                checked += 1;
            }
        }
    }
    assert_eq!(
        checked,
        8 * (acts.len() + acts.iter().filter(|a| a.has_target()).count())
    );
    ctx.app.stop().await;
}
backend_test!(authorization_matrix);

/// Performs `act` (on a fresh target in team A when `own`, else in team B) as the person
/// `user_id` (none when anonymous) and reports the status and whether the intended change
/// happened.
async fn perform(
    ctx: &Ctx,
    b: &mut Browser,
    user_id: Option<&str>,
    act: Act,
    own: bool,
) -> (StatusCode, bool) {
    let store = &ctx.app.store;
    let team = if own { &ctx.a } else { &ctx.b };
    match act {
        Act::ViewProfile => {
            let p = b.get("/profile").await;
            (p.status, p.body.contains("Your profile"))
        }
        Act::ViewTeam => {
            let p = b.get("/team").await;
            (
                p.status,
                p.status == StatusCode::OK && p.body.contains("admin@a.test"),
            )
        }
        Act::ViewDetails => {
            let p = b.get("/team/details").await;
            (
                p.status,
                p.status == StatusCode::OK && p.body.contains("Default callback URL"),
            )
        }
        Act::EditDetails => {
            let name = unique("Renamed ");
            let p = b
                .post_form(
                    "/team/details",
                    &[("name", &name), ("default_callback_url", "")],
                )
                .await;
            let changed = store.cross_tenant().get_team(&ctx.a.id).await.unwrap().name == name;
            if changed {
                store
                    .update_team_details(
                        &team_scope(&ctx.a.id),
                        &ctx.a.name,
                        None,
                        NewAuditEvent::new(AuditAction::TeamDetailsChanged, "test"),
                    )
                    .await
                    .unwrap();
            }
            (p.status, changed)
        }
        Act::ViewIntegrations => {
            let p = b.get("/integrations").await;
            (
                p.status,
                p.status == StatusCode::OK && p.body.contains("Connected storage"),
            )
        }
        Act::AddIntegration => {
            let name = unique("Added ");
            let bucket = unique("added-").to_lowercase().replace('_', "-");
            let p = b
                .post_form(
                    "/integrations",
                    &[
                        ("provider", "aws_s3"),
                        ("name", &name),
                        ("buckets", &bucket),
                        ("access_key_id", "AKIAMATRIXMATRIX0000"),
                        ("secret_access_key", "matrix-secret"),
                    ],
                )
                .await;
            let mut added = false;
            for t in [&ctx.a, &ctx.b] {
                let scope = team_scope(&t.id);
                for i in store.integrations(&scope).await.unwrap() {
                    if i.name == name {
                        added = true;
                        let event = NewAuditEvent::new(AuditAction::IntegrationRemoved, "test");
                        store
                            .remove_integration(&scope, &i.id, &event)
                            .await
                            .unwrap();
                    }
                }
            }
            (p.status, added)
        }
        Act::VerifyIntegration => {
            let id = ctx.integration(team).await;
            let p = b
                .post_form(&format!("/integrations/{id}/verify"), &[])
                .await;
            let scope = team_scope(&team.id);
            let verified = store
                .integration(&scope, &id)
                .await
                .unwrap()
                .is_some_and(|i| i.verified_at.is_some());
            (p.status, verified)
        }
        Act::ConfirmRemoveIntegration => {
            let id = ctx.integration(team).await;
            let p = b.get(&format!("/integrations/{id}/remove")).await;
            (
                p.status,
                p.status == StatusCode::OK && p.body.contains("Remove integration"),
            )
        }
        Act::RemoveIntegration => {
            let id = ctx.integration(team).await;
            let p = b
                .post_form(&format!("/integrations/{id}/remove"), &[])
                .await;
            let gone = store
                .integration(&team_scope(&team.id), &id)
                .await
                .unwrap()
                .is_none();
            (p.status, gone)
        }
        Act::SetAttachmentProxy => {
            let p = b.post_form("/integrations/proxy", &[("proxy", "on")]).await;
            let mut changed = false;
            for t in [&ctx.a, &ctx.b] {
                let scope = team_scope(&t.id);
                let settings = store
                    .storage_settings(&scope, || unique("external-id-matrix-0000000000000"))
                    .await
                    .unwrap();
                if settings.proxy_attachments {
                    changed = true;
                    let event = NewAuditEvent::new(AuditAction::AttachmentProxyChanged, "test");
                    store
                        .set_proxy_attachments(&scope, false, &event)
                        .await
                        .unwrap();
                }
            }
            (p.status, changed)
        }
        Act::RequireTwoFactor => {
            let p = b.post_form("/team/two-factor", &[("required", "1")]).await;
            let mut changed = false;
            for t in [&ctx.a, &ctx.b] {
                let scope = team_scope(&t.id);
                if store.team_requires_two_factor(&scope).await.unwrap() {
                    changed = true;
                    let event =
                        NewAuditEvent::new(AuditAction::TeamTwoFactorRequirementChanged, "test");
                    store
                        .set_team_two_factor_requirement(&scope, false, &event)
                        .await
                        .unwrap();
                }
            }
            (p.status, changed)
        }
        Act::ViewBilling => {
            let p = b.get("/billing").await;
            (
                p.status,
                p.status == StatusCode::OK && p.body.contains("Accrued balance"),
            )
        }
        Act::SetSpendLimit => {
            let p = b
                .post_form("/billing/spend-limit", &[("spend_limit", "123.45")])
                .await;
            let mut changed = false;
            for t in [&ctx.a, &ctx.b] {
                let scope = team_scope(&t.id);
                if store.billing_account(&scope).await.unwrap().spend_limit == Some(12_345) {
                    changed = true;
                    store.set_spend_limit(&scope, None).await.unwrap();
                }
            }
            (p.status, changed)
        }
        Act::OpenCardPage => {
            let p = b.get("/billing/card").await;
            (p.status, p.location.as_deref() == Some("/billing"))
        }
        Act::SaveCard => {
            let p = b
                .post_form("/billing/card", &[("setup_intent_id", "seti_matrix")])
                .await;
            (p.status, p.location.as_deref() == Some("/billing"))
        }
        Act::ViewAudit => {
            let p = b.get("/team/audit").await;
            // The newest entries of the team's log: its sign-up, or (after the integration
            // acts filled the first page) their entries.
            (
                p.status,
                p.status == StatusCode::OK
                    && (p.body.contains("team.signed_up") || p.body.contains("integration.")),
            )
        }
        Act::Invite => {
            let email = format!("{}@invitee.test", unique("i"));
            let p = b
                .post_form(
                    "/team/invitations",
                    &[("emails", &email), ("role", "member")],
                )
                .await;
            let mut found = false;
            for t in [&ctx.a, &ctx.b] {
                found |= store
                    .list_pending_invitations(&team_scope(&t.id))
                    .await
                    .unwrap()
                    .iter()
                    .any(|i| i.email == email);
            }
            (p.status, found)
        }
        Act::Resend => {
            let (id, _) = ctx
                .invitation(team, &format!("{}@r.test", unique("r")), Role::Member)
                .await;
            let p = b
                .post_form(&format!("/team/invitations/{id}/resend"), &[])
                .await;
            (
                p.status,
                store
                    .get_invitation(
                        &team_scope(&team.id),
                        &tessera_core::ids::InvitationId::from_stored(id.clone()),
                    )
                    .await
                    .unwrap()
                    .send_count
                    == 2,
            )
        }
        Act::Revoke => {
            let (id, _) = ctx
                .invitation(team, &format!("{}@r.test", unique("r")), Role::Member)
                .await;
            let p = b
                .post_form(&format!("/team/invitations/{id}/revoke"), &[])
                .await;
            (
                p.status,
                store
                    .get_invitation(
                        &team_scope(&team.id),
                        &tessera_core::ids::InvitationId::from_stored(id.clone()),
                    )
                    .await
                    .unwrap()
                    .status
                    == tessera_core::status::InvitationStatus::Revoked,
            )
        }
        Act::ChangeRole => {
            let (id, _) = ctx.member(team, Role::Member).await;
            let p = b
                .post_form(&format!("/team/members/{id}/role"), &[("role", "manager")])
                .await;
            (
                p.status,
                store.get_user(&id).await.unwrap().role == Some(Role::Manager),
            )
        }
        Act::ConfirmRemove => {
            let (id, _) = ctx.member(team, Role::Member).await;
            let p = b.get(&format!("/team/members/{id}/remove")).await;
            (
                p.status,
                p.status == StatusCode::OK && p.body.contains("Remove from team"),
            )
        }
        Act::ChangeInvitationRole => {
            let (id, _) = ctx
                .invitation(team, &format!("{}@r.test", unique("r")), Role::Member)
                .await;
            let p = b
                .post_form(
                    &format!("/team/invitations/{id}/role"),
                    &[("role", "manager")],
                )
                .await;
            (
                p.status,
                store
                    .get_invitation(
                        &team_scope(&team.id),
                        &tessera_core::ids::InvitationId::from_stored(id.clone()),
                    )
                    .await
                    .unwrap()
                    .role
                    == Role::Manager,
            )
        }
        Act::OfferHandover => {
            let (id, _) = ctx.member(team, Role::Manager).await;
            let p = b.post_form("/team/handover", &[("to", &id)]).await;
            let offered_a = ctx.close_handover(&ctx.a).await;
            let offered_b = ctx.close_handover(&ctx.b).await;
            (p.status, offered_a || offered_b)
        }
        Act::CancelHandover => {
            ctx.handover(&ctx.a, &ctx.manager_a).await;
            let scope = team_scope(&ctx.a.id);
            let id = store
                .pending_admin_handover(&scope)
                .await
                .unwrap()
                .unwrap()
                .id;
            let p = b.post_form("/team/handover/cancel", &[("id", &id)]).await;
            let withdrawn = !ctx.close_handover(&ctx.a).await;
            // Cancelling says so on the team page; a refusal is a 403 (or the login page).
            let done = withdrawn && p.location.as_deref() == Some("/team");
            (p.status, done)
        }
        Act::AcceptHandover => {
            let link = ctx.handover(&ctx.a, &ctx.manager_a).await;
            let p = b.post_form(&link, &[]).await;
            let accepted = store.get_user(&ctx.manager_a).await.unwrap().role == Some(Role::Admin);
            if accepted {
                store
                    .cross_tenant()
                    .set_admin(
                        &ctx.a.id,
                        &ctx.a.admin_id,
                        NewAuditEvent::new(AuditAction::TeamAdminChanged, "test"),
                    )
                    .await
                    .unwrap();
            } else {
                ctx.close_handover(&ctx.a).await;
            }
            (p.status, accepted)
        }
        Act::Remove => {
            let (id, _) = ctx.member(team, Role::Member).await;
            let p = b
                .post_form(&format!("/team/members/{id}/remove"), &[])
                .await;
            (
                p.status,
                store.get_user(&id).await.unwrap().team_id.is_none(),
            )
        }
        Act::StaffConsole => {
            let p = b.get("/staff").await;
            (
                p.status,
                p.status == StatusCode::OK && p.body.contains("Mail outbox"),
            )
        }
        Act::StaffMoveUser => {
            let (id, email) = ctx.member(&ctx.b, Role::Member).await;
            let p = b
                .post_form(
                    "/staff/move-user",
                    &[("email", &email), ("team", &ctx.a.name), ("role", "member")],
                )
                .await;
            (
                p.status,
                store.get_user(&id).await.unwrap().team_id.as_deref() == Some(ctx.a.id.as_str()),
            )
        }
        Act::StaffSetAdmin => {
            let (id, email) = ctx.member(&ctx.b, Role::Member).await;
            let p = b
                .post_form(
                    "/staff/set-admin",
                    &[("team", &ctx.b.name), ("email", &email)],
                )
                .await;
            (
                p.status,
                store
                    .cross_tenant()
                    .get_team(&ctx.b.id)
                    .await
                    .unwrap()
                    .admin_user_id
                    == id,
            )
        }
        Act::StaffBilling => {
            let p = b.get("/staff/billing").await;
            (
                p.status,
                p.status == StatusCode::OK && p.body.contains("Price book"),
            )
        }
        Act::StaffBillingTeam => {
            let p = b.get(&format!("/staff/billing/teams/{}", ctx.a.id)).await;
            (
                p.status,
                p.status == StatusCode::OK && p.body.contains("Close the period now"),
            )
        }
        Act::StaffBookPrice => {
            let cents = unique_cents();
            let p = b
                .post_form(
                    "/staff/billing/prices",
                    &[("task_type", "comparison"), ("amount", &major(cents))],
                )
                .await;
            let prices = store.book_prices(tessera_store::now_ms()).await.unwrap();
            (
                p.status,
                prices
                    .iter()
                    .any(|p| p.task_type == "comparison" && p.unit_amount == cents),
            )
        }
        Act::StaffSetPlan => {
            let scope = live_scope(&ctx.a);
            let before = store.billing_account(&scope).await.unwrap().plan;
            let other = match before {
                tessera_core::billing::Plan::OnDemand => "enterprise",
                tessera_core::billing::Plan::Enterprise => "on_demand",
            };
            let p = b
                .post_form(
                    &format!("/staff/billing/teams/{}/plan", ctx.a.id),
                    &[("plan", other)],
                )
                .await;
            (
                p.status,
                store.billing_account(&scope).await.unwrap().plan != before,
            )
        }
        Act::StaffTeamPrice => {
            let cents = unique_cents();
            let p = b
                .post_form(
                    &format!("/staff/billing/teams/{}/prices", ctx.a.id),
                    &[("task_type", "comparison"), ("amount", &major(cents))],
                )
                .await;
            let prices = store
                .team_prices(&live_scope(&ctx.a), tessera_store::now_ms())
                .await
                .unwrap();
            (
                p.status,
                prices
                    .iter()
                    .any(|p| p.task_type == "comparison" && p.unit_amount == cents),
            )
        }
        Act::StaffGrantCredit => {
            let scope = live_scope(&ctx.a);
            let before = store.billing_account(&scope).await.unwrap().credit_balance;
            let p = b
                .post_form(
                    &format!("/staff/billing/teams/{}/credits", ctx.a.id),
                    &[("amount", "0.01"), ("reason", "matrix")],
                )
                .await;
            (
                p.status,
                store.billing_account(&scope).await.unwrap().credit_balance == before + 1,
            )
        }
        Act::StaffClosePeriod => {
            // Closing with or without usage moves the team's period start up to now.
            let scope = live_scope(&ctx.a);
            let before = store.billing_account(&scope).await.unwrap().period_start;
            tokio::time::sleep(Duration::from_millis(2)).await;
            let p = b
                .post_form(
                    &format!("/staff/billing/teams/{}/close", ctx.a.id),
                    &[("confirm", "yes")],
                )
                .await;
            (
                p.status,
                store.billing_account(&scope).await.unwrap().period_start > before,
            )
        }
        Act::ViewKeys => {
            let p = b.get("/keys").await;
            (
                p.status,
                p.status == StatusCode::OK && p.body.contains("Callback auth key"),
            )
        }
        Act::CreateKey => {
            let before = store
                .list_api_keys(&team_scope(&ctx.a.id))
                .await
                .unwrap()
                .len();
            let p = b
                .post_form("/keys", &[("mode", "test"), ("label", "matrix")])
                .await;
            let after = store
                .list_api_keys(&team_scope(&ctx.a.id))
                .await
                .unwrap()
                .len();
            (p.status, after == before + 1)
        }
        Act::RevealKey => {
            let (id, key) = ctx.key(team).await;
            let p = b.post_form(&format!("/keys/{id}/reveal"), &[]).await;
            let shown = shown_after_redirect(b, &p).await;
            (p.status, shown.contains(&key))
        }
        Act::DeleteKey => {
            let (id, _) = ctx.key(team).await;
            let p = b.post_form(&format!("/keys/{id}/delete"), &[]).await;
            (
                p.status,
                store.get_api_key(&team_scope(&team.id), &id).await.is_err(),
            )
        }
        Act::RollKeyForm => {
            let (id, _) = ctx.key(team).await;
            let p = b.get(&format!("/keys/{id}/roll")).await;
            (
                p.status,
                p.status == StatusCode::OK && p.body.contains("name=\"grace\""),
            )
        }
        Act::RollKey => {
            let (id, _) = ctx.key(team).await;
            let p = b
                .post_form(
                    &format!("/keys/{id}/roll"),
                    &[("grace", "1h"), ("expires", "never")],
                )
                .await;
            let rolled = store
                .get_api_key(&team_scope(&team.id), &id)
                .await
                .is_ok_and(|key| key.rolled.is_some());
            (p.status, rolled)
        }
        Act::RevealCallbackKey => {
            let p = b.post_form("/keys/callback/test/reveal", &[]).await;
            let shown = shown_after_redirect(b, &p).await;
            (p.status, shown.contains("id=\"secret-value\""))
        }
        Act::RotateCallbackKey => {
            let before = store
                .team_secret(
                    &team_scope(&ctx.a.id)
                        .with_mode(tessera_core::Mode::Test)
                        .unwrap(),
                    tessera_core::status::SecretKind::CallbackAuth,
                )
                .await
                .unwrap()
                .map(|s| s.sealed);
            let p = b.post_form("/keys/callback/test/rotate", &[]).await;
            let after = store
                .team_secret(
                    &team_scope(&ctx.a.id)
                        .with_mode(tessera_core::Mode::Test)
                        .unwrap(),
                    tessera_core::status::SecretKind::CallbackAuth,
                )
                .await
                .unwrap()
                .map(|s| s.sealed);
            (p.status, before != after)
        }
        Act::ViewProjects => {
            let p = b.get("/projects").await;
            (
                p.status,
                p.status == StatusCode::OK && p.body.contains("<h1>Projects</h1>"),
            )
        }
        Act::CreateProject => {
            let name = unique("proj");
            let p = b
                .post_form(
                    "/projects",
                    &[
                        ("name", &name),
                        ("task_type", "categorization"),
                        ("instruction", ""),
                    ],
                )
                .await;
            let mut found = false;
            for t in [&ctx.a, &ctx.b] {
                for mode in tessera_core::Mode::ALL {
                    found |= store
                        .find_project(&team_scope(&t.id).with_mode(mode).unwrap(), &name)
                        .await
                        .unwrap()
                        .is_some();
                }
            }
            (p.status, found)
        }
        Act::ViewTasks => {
            let p = b.get("/tasks").await;
            (
                p.status,
                p.status == StatusCode::OK && p.body.contains("<h1>Tasks"),
            )
        }
        Act::ViewTask => {
            let id = ctx.task(team).await;
            let p = b.get(&format!("/tasks/{id}")).await;
            (p.status, p.status == StatusCode::OK && p.body.contains(&id))
        }
        Act::AuditTask => {
            let id = ctx.task(team).await;
            let p = b
                .post_form(
                    &format!("/tasks/{id}/audit"),
                    &[("result", "accept"), ("comments", "ok")],
                )
                .await;
            let task = store
                .get_task(&live_scope(team), &id)
                .await
                .unwrap()
                .unwrap();
            (
                p.status,
                task.customer_review_status == Some(tessera_core::status::ReviewStatus::Accepted),
            )
        }
        Act::SwitchMode => {
            let p = b
                .post_form("/mode", &[("mode", "live"), ("back", "/tasks")])
                .await;
            (p.status, p.location.as_deref() == Some("/tasks"))
        }
        Act::RevealSigningSecret => {
            let p = b.post_form("/keys/signing/test/reveal", &[]).await;
            let shown = shown_after_redirect(b, &p).await;
            (
                p.status,
                shown.contains("Test callback signing secret") && shown.contains("whsec_"),
            )
        }
        Act::RotateSigningSecret => {
            let read = || async {
                store
                    .team_secret(
                        &team_scope(&ctx.a.id)
                            .with_mode(tessera_core::Mode::Test)
                            .unwrap(),
                        tessera_core::status::SecretKind::CallbackSigning,
                    )
                    .await
                    .unwrap()
                    .map(|s| s.sealed)
            };
            let before = read().await;
            let p = b.post_form("/keys/signing/test/rotate", &[]).await;
            (p.status, before != read().await)
        }
        Act::ViewCallbacks => {
            let p = b.get("/callbacks").await;
            (
                p.status,
                p.status == StatusCode::OK && p.body.contains("<h1>Callbacks"),
            )
        }
        Act::ViewCallback => {
            let id = ctx.delivery(team);
            let p = b.get(&format!("/callbacks/{id}")).await;
            (
                p.status,
                p.status == StatusCode::OK
                    && p.body.contains(&id)
                    && p.body.contains("id=\"delivery-state\""),
            )
        }
        Act::Redeliver => {
            let id = ctx.delivery(team);
            let read = || async {
                store
                    .get_delivery(
                        &tessera_core::Scope::operator(
                            tessera_core::ids::TeamId::from_stored(team.id.clone()),
                            tessera_core::Mode::Live,
                        ),
                        &id,
                    )
                    .await
                    .unwrap()
                    .unwrap()
                    .updated_at
            };
            let before = read().await;
            let p = b
                .post_form(&format!("/callbacks/{id}/redeliver"), &[])
                .await;
            (p.status, read().await > before)
        }
        Act::CancelRetries => {
            let id = ctx.pending_delivery(team);
            let p = b.post_form(&format!("/callbacks/{id}/cancel"), &[]).await;
            let status = store
                .get_delivery(&live_scope(team), &id)
                .await
                .unwrap()
                .unwrap()
                .status;
            (
                p.status,
                status == tessera_core::status::DeliveryStatus::Failed,
            )
        }
        Act::SendTestCallback => {
            let target = format!("https://probe.matrix.test/{}", unique("probe"));
            let p = b.post_form("/callbacks/test", &[("url", &target)]).await;
            let mut found = false;
            for t in [&ctx.a, &ctx.b] {
                for mode in tessera_core::Mode::ALL {
                    found |= store
                        .list_deliveries(
                            &tessera_core::Scope::operator(
                                tessera_core::ids::TeamId::from_stored(t.id.clone()),
                                mode,
                            ),
                            None,
                            None,
                            500,
                        )
                        .await
                        .unwrap()
                        .deliveries
                        .iter()
                        .any(|d| d.target == target);
                }
            }
            (p.status, found)
        }
        Act::ViewLabelQueue => {
            let p = b.get("/label").await;
            (
                p.status,
                p.status == StatusCode::OK && p.body.contains("id=\"queue-length\""),
            )
        }
        Act::LabelNext => {
            let (id, _) = ctx.queued_task(&ctx.a, None).await;
            let p = b.post_form("/label/next", &[]).await;
            let claimed = match user_id {
                Some(user) => store
                    .labeler_claim(&tessera_store::LabelerScope::operator(
                        user,
                        Queue::Everyone,
                    ))
                    .await
                    .unwrap()
                    .is_some_and(|c| c.task.id == id),
                None => false,
            };
            let sent_there = p.location.as_deref() == Some(format!("/label/{id}").as_str());
            ctx.dequeue(&ctx.a, &id).await;
            (p.status, claimed && sent_there)
        }
        Act::ViewLabelHistory => {
            let p = b.get("/label/history").await;
            (
                p.status,
                p.status == StatusCode::OK && p.body.contains("id=\"label-history\""),
            )
        }
        Act::ViewLabeledTask => {
            // Own: a task of team A the person completed (straight through the store, so even
            // people the policy does not let label have one); other: one of team B that team
            // B's labeler completed.
            let labeler = match (own, user_id) {
                (true, Some(user)) => user,
                _ => ctx.labeler_b.as_str(),
            };
            let (id, marker) = ctx.queued_task(team, Some(labeler)).await;
            let scope = tessera_store::LabelerScope::operator(
                labeler,
                Queue::Team(tessera_core::ids::TeamId::from_stored(team.id.clone())),
            );
            store
                .submit_task(&scope, "matrix", &id, &serde_json::json!({"category": "x"}))
                .await
                .unwrap()
                .expect("completed");
            let p = b.get(&format!("/label/history/{id}")).await;
            let shown = p.body.contains(&marker);
            assert!(
                p.status == StatusCode::OK || !shown,
                "the task was shown with {}",
                p.status
            );
            (p.status, p.status == StatusCode::OK && shown)
        }
        Act::ViewLabelTask | Act::SubmitLabel | Act::ReleaseLabel => {
            // Own: a task of team A the person holds; other: one team B's labeler holds.
            let holder = if own {
                user_id
            } else {
                Some(ctx.labeler_b.as_str())
            };
            let (id, marker) = ctx.queued_task(team, holder).await;
            let effect = match act {
                Act::ViewLabelTask => {
                    let p = b.get(&format!("/label/{id}")).await;
                    let shown = p.body.contains(&marker);
                    assert!(
                        p.status == StatusCode::OK || !shown,
                        "the task was shown with {}",
                        p.status
                    );
                    (p.status, p.status == StatusCode::OK && shown)
                }
                Act::SubmitLabel => {
                    let p = b
                        .post_form(
                            &format!("/label/{id}"),
                            &[("response", r#"{"category": "x"}"#)],
                        )
                        .await;
                    let task = store
                        .get_task(&live_scope(team), &id)
                        .await
                        .unwrap()
                        .unwrap();
                    (
                        p.status,
                        task.status == tessera_core::status::TaskStatus::Completed,
                    )
                }
                _ => {
                    let p = b.post_form(&format!("/label/{id}/release"), &[]).await;
                    let released = match holder {
                        Some(h) => matches!(
                            store
                                .claimed_task(
                                    &tessera_store::LabelerScope::operator(
                                        h,
                                        Queue::Team(tessera_core::ids::TeamId::from_stored(
                                            team.id.clone(),
                                        )),
                                    ),
                                    &id,
                                )
                                .await
                                .unwrap(),
                            Err(ClaimProblem::NotYours)
                        ),
                        None => false,
                    };
                    (p.status, released)
                }
            };
            ctx.dequeue(team, &id).await;
            effect
        }
        Act::StaffReadMail => {
            let id = store.cross_tenant().list_mail(1, 0).await.unwrap()[0]
                .id
                .clone();
            let p = b.get(&format!("/staff/mail/{id}")).await;
            (
                p.status,
                p.status == StatusCode::OK && p.body.contains("← Outbox"),
            )
        }
    }
}

/// A price in minor units no other act has used, so a price act's effect is its own.
fn unique_cents() -> i64 {
    static NEXT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1_01);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// `cents` as the staff form takes it, in major units ("1.01").
fn major(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The page a successful reveal redirects to (the secret is shown there once), or nothing.
async fn shown_after_redirect(b: &mut Browser, p: &Page) -> String {
    match (&p.status, &p.location) {
        (&StatusCode::SEE_OTHER, Some(loc)) if loc.starts_with("/keys") => b.visit(loc).await.body,
        _ => String::new(),
    }
}
