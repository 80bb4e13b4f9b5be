//! Outgoing mail: composing messages, and the worker that delivers the durable outbox.

pub mod worker;

use serde::{Deserialize, Serialize};
use tessera_core::{Email, Role};
use tessera_store::NewMail;

use crate::{crypto::Purpose, state::AppState, web::format_time};

/// The plain-text and HTML bodies of a message, sealed together in the outbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MailBody {
    pub text: String,
    pub html: String,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Seals `body` under the master key into a message ready to queue.
pub fn sealed(
    state: &AppState,
    team_id: Option<&str>,
    to: &Email,
    subject: String,
    body: &MailBody,
) -> NewMail {
    let json = serde_json::to_vec(body).expect("mail bodies serialise");
    NewMail {
        team_id: team_id.map(str::to_owned),
        to: to.to_string(),
        subject,
        body_sealed: state
            .config
            .master_key
            .seal(&Purpose::mail_body(&to.to_string()), &json),
    }
}

/// A message to `to` outside any team, its HTML `body` framed as every Tessera mail is.
fn message(state: &AppState, to: &Email, subject: String, text: String, body: &str) -> NewMail {
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif;line-height:1.5\">{body}</body></html>"
    );
    sealed(state, None, to, subject, &MailBody { text, html })
}

/// The invitation email: who invited whom to which team with which role, and the link.
pub fn invitation(
    state: &AppState,
    team_name: &str,
    inviter: &str,
    to: &Email,
    role: Role,
    link: &str,
    expires_at: i64,
) -> NewMail {
    let expires = format_time(expires_at);
    let role = role.label();
    let text = format!(
        "Hello,\n\n{inviter} invited you to join the team \"{team_name}\" on Tessera as a {role}.\n\n\
         Accept the invitation here:\n{link}\n\n\
         The link works once and expires on {expires}. If you were not expecting this, ignore this email.\n\n-- Tessera\n"
    );
    let html = format!(
        "<p>Hello,</p><p>{inviter} invited you to join the team <strong>{team}</strong> on Tessera as a <strong>{role}</strong>.</p>\
         <p><a href=\"{link}\" style=\"display:inline-block;padding:10px 16px;background:#3b5bdb;color:#fff;border-radius:6px;text-decoration:none\">Accept the invitation</a></p>\
         <p>Or open this link: <a href=\"{link}\">{link}</a></p>\
         <p style=\"color:#666\">The link works once and expires on {expires}. If you were not expecting this, ignore this email.</p>",
        inviter = escape(inviter),
        team = escape(team_name),
        link = escape(link),
    );
    message(
        state,
        to,
        format!("You're invited to join {team_name} on Tessera"),
        text,
        &html,
    )
}

/// To the owner of an address someone tried to sign up with: it already has an account.
pub fn signup_attempt(state: &AppState, to: &Email) -> NewMail {
    let login = state.config.link("/login");
    let text = format!(
        "Hello,\n\nSomeone (perhaps you) tried to create a new Tessera team with this address, which already has an account.\n\n\
         To sign in, go to:\n{login}\n\n\
         If it was not you, you can ignore this email; nothing was changed.\n\n-- Tessera\n"
    );
    let html = format!(
        "<p>Hello,</p><p>Someone (perhaps you) tried to create a new Tessera team with this address, which already has an account.</p>\
         <p><a href=\"{login}\">Sign in to Tessera</a></p>\
         <p style=\"color:#666\">If it was not you, you can ignore this email; nothing was changed.</p>",
        login = escape(&login),
    );
    message(
        state,
        to,
        "Your Tessera account already exists".into(),
        text,
        &html,
    )
}

/// The link that confirms an address as a team's callback address.
pub fn callback_email_verification(
    state: &AppState,
    team_name: &str,
    to: &Email,
    link: &str,
    expires_at: i64,
) -> NewMail {
    let expires = format_time(expires_at);
    let text = format!(
        "Hello,\n\nThe team \"{team_name}\" on Tessera asks to send task results (callbacks) to this address.\n\n\
         If you expect them, confirm here:\n{link}\n\n\
         The link expires on {expires}. If you did not expect this, ignore this email: nothing will be sent to you.\n\n-- Tessera\n"
    );
    let html = format!(
        "<p>Hello,</p><p>The team <strong>{team}</strong> on Tessera asks to send task results (callbacks) to this address.</p>\
         <p><a href=\"{link}\">Confirm this address</a></p>\
         <p style=\"color:#666\">The link expires on {expires}. If you did not expect this, ignore this email: nothing will be sent to you.</p>",
        team = escape(team_name),
        link = escape(link),
    );
    message(
        state,
        to,
        format!("Confirm callback emails from {team_name} on Tessera"),
        text,
        &html,
    )
}
