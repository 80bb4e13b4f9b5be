//! The staff console: find users, move them between teams, change a team's Admin, read the
//! mail outbox, and billing (in [`billing`]).

pub mod billing;
pub mod support;

use crate::web::PageTime;
use askama::Template;
use axum::{
    extract::State,
    http::StatusCode,
    response::Response,
    routing::{get, post},
    Router,
};

use crate::web::{Form, Path, Query};
use serde::Deserialize;
use tessera_core::Action;

use crate::{
    mail::MailBody,
    state::AppState,
    web::{page, redirect_with_flash, render, ClientIp, Layout, SignedIn, WebError, WebResult},
};
use support::{Operator, SupportError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/staff", get(console))
        .route("/staff/move-user", post(move_user))
        .route("/staff/set-admin", post(set_admin))
        .route("/staff/mail/{id}", get(show_mail))
        .merge(billing::router())
}

const OUTBOX_PAGE: i64 = 50;

struct UserRow {
    email: String,
    name: String,
    team: String,
    role: String,
}

struct TeamRow {
    name: String,
    /// Names are not unique; the id is what the forms above accept unambiguously.
    id: String,
    admin_email: String,
    members: i64,
    created: PageTime,
}

struct MailRow {
    id: String,
    to: String,
    subject: String,
    status: String,
    attempts: i64,
    created: PageTime,
    last_error: String,
}

#[derive(Template)]
#[template(path = "staff.html")]
struct ConsolePage {
    layout: Layout,
    query: String,
    users: Vec<UserRow>,
    searched: bool,
    teams: Vec<TeamRow>,
    mail: Vec<MailRow>,
    smtp_configured: bool,
    error: Option<String>,
    mail_offset: i64,
    next_mail_offset: Option<i64>,
}

#[derive(Deserialize, Default)]
struct ConsoleQuery {
    q: Option<String>,
    mail_offset: Option<i64>,
}

/// One page of the mail outbox from `offset`, and the offset of the next page if any.
async fn outbox_page(state: &AppState, offset: i64) -> WebResult<(Vec<MailRow>, Option<i64>)> {
    let mut rows = state
        .store
        .cross_tenant()
        .list_mail(OUTBOX_PAGE + 1, offset)
        .await?;
    let more = rows.len() as i64 > OUTBOX_PAGE;
    rows.truncate(OUTBOX_PAGE as usize);
    let rows = rows
        .into_iter()
        .map(|m| MailRow {
            id: m.id.into_string(),
            to: m.to,
            subject: m.subject,
            status: m.status.as_str().to_owned(),
            attempts: m.attempts,
            created: PageTime::at(m.created_at),
            last_error: m.last_error.unwrap_or_default(),
        })
        .collect();
    Ok((rows, more.then_some(offset + OUTBOX_PAGE)))
}

async fn console_page(
    state: &AppState,
    who: &SignedIn,
    q: ConsoleQuery,
    error: Option<String>,
) -> WebResult<ConsolePage> {
    who.authorize_platform(Action::StaffConsole)?;
    let query: String = q.q.unwrap_or_default().chars().take(200).collect();
    let users = if query.trim().is_empty() {
        Vec::new()
    } else {
        state
            .store
            .cross_tenant()
            .search_users(&query, 50)
            .await?
            .into_iter()
            .map(|(u, team)| UserRow {
                role: if u.is_staff {
                    "Staff".into()
                } else if u.is_workforce {
                    "Workforce labeler".into()
                } else {
                    u.role.map(|r| r.label().to_owned()).unwrap_or_default()
                },
                team: team.unwrap_or_else(|| "—".into()),
                email: u.email,
                name: u.name,
            })
            .collect()
    };
    let teams = state
        .store
        .cross_tenant()
        .list_teams()
        .await?
        .into_iter()
        .map(|t| TeamRow {
            created: PageTime::at(t.team.created_at),
            id: t.team.id,
            name: t.team.name,
            admin_email: t.admin_email,
            members: t.members,
        })
        .collect();
    let mail_offset = q.mail_offset.unwrap_or(0).clamp(0, 1_000_000);
    let (mail, next_mail_offset) = if who.authorize_platform(Action::ReadMailOutbox).is_ok() {
        outbox_page(state, mail_offset).await?
    } else {
        (Vec::new(), None)
    };
    Ok(ConsolePage {
        layout: Layout::signed_in("Staff console", who, "/staff"),
        searched: !query.trim().is_empty(),
        query,
        users,
        teams,
        mail,
        smtp_configured: state.config.smtp_url.is_some(),
        error,
        mail_offset,
        next_mail_offset,
    })
}

async fn console(
    State(state): State<AppState>,
    who: SignedIn,
    Query(q): Query<ConsoleQuery>,
) -> WebResult<Response> {
    Ok(page(&console_page(&state, &who, q, None).await?))
}

fn operator(who: &SignedIn, ip: &ClientIp) -> Operator {
    Operator {
        user_id: Some(who.user.id.clone()),
        label: format!("{} (staff)", who.user.email),
        ip: ip.0.clone(),
    }
}

async fn support_failed(
    state: &AppState,
    who: &SignedIn,
    err: SupportError,
) -> WebResult<Response> {
    match err {
        SupportError::Invalid(message) => Ok(render(
            StatusCode::BAD_REQUEST,
            &console_page(state, who, ConsoleQuery::default(), Some(message)).await?,
        )),
        SupportError::Internal(err) => Err(WebError::Internal(err)),
    }
}

#[derive(Deserialize)]
struct MoveInput {
    #[serde(default)]
    email: String,
    #[serde(default)]
    team: String,
    #[serde(default)]
    role: String,
}

async fn move_user(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Form(input): Form<MoveInput>,
) -> WebResult<Response> {
    who.authorize_platform(Action::MoveUser)?;
    match support::move_user(
        &state.store,
        &input.email,
        &input.team,
        Some(&input.role),
        &operator(&who, &ip),
    )
    .await
    {
        Ok((user, team)) => Ok(redirect_with_flash(
            "/staff",
            &format!(
                "{} moved to {} as {}.",
                user.email,
                team.name,
                user.role.map(|r| r.label()).unwrap_or("")
            ),
        )),
        Err(err) => support_failed(&state, &who, err).await,
    }
}

#[derive(Deserialize)]
struct SetAdminInput {
    #[serde(default)]
    team: String,
    #[serde(default)]
    email: String,
}

async fn set_admin(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Form(input): Form<SetAdminInput>,
) -> WebResult<Response> {
    who.authorize_platform(Action::SetTeamAdmin)?;
    match support::set_admin(
        &state.store,
        &input.team,
        &input.email,
        &operator(&who, &ip),
    )
    .await
    {
        Ok(team) => Ok(redirect_with_flash(
            "/staff",
            &format!("{} is now the Admin of {}.", input.email.trim(), team.name),
        )),
        Err(err) => support_failed(&state, &who, err).await,
    }
}

#[derive(Template)]
#[template(path = "staff_mail.html")]
struct MailPage {
    layout: Layout,
    to: String,
    subject: String,
    status: String,
    created: PageTime,
    text: String,
}

async fn show_mail(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
) -> WebResult<Response> {
    who.authorize_platform(Action::ReadMailOutbox)?;
    let mail = state
        .store
        .cross_tenant()
        .get_mail(&id)
        .await?
        .ok_or(WebError::NotFound)?;
    let body: MailBody = state
        .config
        .master_key
        .open(
            &crate::crypto::Purpose::mail_body(&mail.to),
            &mail.body_sealed,
        )
        .and_then(|b| Ok(serde_json::from_slice(&b)?))
        .map_err(WebError::Internal)?;
    Ok(page(&MailPage {
        layout: Layout::signed_in("Mail", &who, "/staff"),
        to: mail.to,
        subject: mail.subject,
        status: mail.status.as_str().to_owned(),
        created: PageTime::at(mail.created_at),
        text: redact_links(&body.text),
    }))
}

/// Link paths whose last segment is a credential (invitations, callback-address
/// confirmations): staff read the mail, not the keys in it.
const SECRET_LINK_PATHS: [&str; 2] = ["/invite/", "/callbacks/emails/verify/"];

/// `text` with the token of every secret link replaced by `[redacted]`.
fn redact_links(text: &str) -> String {
    let mut out = text.to_owned();
    for prefix in SECRET_LINK_PATHS {
        let mut result = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(at) = rest.find(prefix) {
            let (before, after) = rest.split_at(at + prefix.len());
            result.push_str(before);
            let token_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                .unwrap_or(after.len());
            if token_len > 0 {
                result.push_str("[redacted]");
            }
            rest = &after[token_len..];
        }
        result.push_str(rest);
        out = result;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact_links;

    #[test]
    fn links_in_mail_are_redacted_for_staff() {
        let text = "Accept here:\nhttp://h/invite/AbC-_123xyz\n\nor http://h/callbacks/emails/verify/Zz9 now";
        let shown = redact_links(text);
        assert!(
            !shown.contains("AbC-_123xyz") && !shown.contains("Zz9"),
            "{shown}"
        );
        assert!(shown.contains("http://h/invite/[redacted]\n"), "{shown}");
        assert!(
            shown.contains("/callbacks/emails/verify/[redacted] now"),
            "{shown}"
        );
        assert_eq!(redact_links("no links"), "no links");
    }
}
