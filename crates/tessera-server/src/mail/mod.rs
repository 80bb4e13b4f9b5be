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

/// A message to `to` about `team_id`'s billing, framed as every Tessera mail is.
fn team_message(
    state: &AppState,
    team_id: &str,
    to: &Email,
    subject: String,
    text: String,
    body: &str,
) -> NewMail {
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif;line-height:1.5\">{body}</body></html>"
    );
    sealed(state, Some(team_id), to, subject, &MailBody { text, html })
}

/// What a failed charge mail says: which invoice, how much, why, and what happens next.
pub struct PaymentFailure<'a> {
    pub team_id: &'a str,
    pub team_name: &'a str,
    pub invoice_number: &'a str,
    pub invoice_id: &'a str,
    /// The amount, formatted with its currency.
    pub amount: &'a str,
    pub reason: &'a str,
    /// When the card is tried again; `None`: no more tries.
    pub retry_at: Option<i64>,
}

/// To the team's Admin: charging the card for an invoice failed.
pub fn payment_failed(state: &AppState, to: &Email, failure: &PaymentFailure<'_>) -> NewMail {
    let link = state
        .config
        .link(&format!("/billing/invoices/{}", failure.invoice_id));
    let card = state.config.link("/billing/card");
    let next = match failure.retry_at {
        Some(at) => format!("We will try the card again on {}.", format_time(at)),
        None => "We will not try the card again: add a new card to pay the invoice.".into(),
    };
    let text = format!(
        "Hello,\n\nWe could not charge the card of the team \"{team}\" for invoice {number} ({amount}): {reason}\n\n\
         {next} Adding or replacing the card charges the invoice at once:\n{card}\n\n\
         The invoice:\n{link}\n\n-- Tessera\n",
        team = failure.team_name,
        number = failure.invoice_number,
        amount = failure.amount,
        reason = failure.reason,
    );
    let html = format!(
        "<p>Hello,</p><p>We could not charge the card of the team <strong>{team}</strong> for invoice \
         <strong>{number}</strong> ({amount}): {reason}</p><p>{next} Adding or replacing the card charges the invoice at once.</p>\
         <p><a href=\"{card}\">Update the card</a> · <a href=\"{link}\">See the invoice</a></p>",
        team = escape(failure.team_name),
        number = escape(failure.invoice_number),
        amount = escape(failure.amount),
        reason = escape(failure.reason),
        next = escape(&next),
        card = escape(&card),
        link = escape(&link),
    );
    team_message(
        state,
        failure.team_id,
        to,
        format!("Payment failed for {} on Tessera", failure.invoice_number),
        text,
        &html,
    )
}

/// What a spend-limit alert says.
pub struct SpendAlert<'a> {
    pub team_id: &'a str,
    pub team_name: &'a str,
    /// 80 or 100 (percent of the limit).
    pub level: i64,
    /// Formatted with the currency.
    pub accrued: &'a str,
    pub limit: &'a str,
}

/// To the team's Managers and Admin: this month's accrued amount reached 80% or 100% of the
/// spend limit.
pub fn spend_alert(state: &AppState, to: &Email, alert: &SpendAlert<'_>) -> NewMail {
    let link = state.config.link("/billing");
    let consequence = if alert.level >= 100 {
        "New live tasks are refused (HTTP 402) until the month ends or the Admin raises the limit. Test tasks are unaffected."
    } else {
        "At 100% new live tasks are refused until the month ends or the Admin raises the limit."
    };
    let text = format!(
        "Hello,\n\nThe team \"{team}\" has accrued {accrued} this month: {level}% of its spend limit of {limit}.\n\n\
         {consequence}\n\nBilling:\n{link}\n\n-- Tessera\n",
        team = alert.team_name,
        accrued = alert.accrued,
        level = alert.level,
        limit = alert.limit,
    );
    let html = format!(
        "<p>Hello,</p><p>The team <strong>{team}</strong> has accrued <strong>{accrued}</strong> this month: \
         {level}% of its spend limit of {limit}.</p><p>{consequence}</p><p><a href=\"{link}\">Open Billing</a></p>",
        team = escape(alert.team_name),
        accrued = escape(alert.accrued),
        level = alert.level,
        limit = escape(alert.limit),
        link = escape(&link),
    );
    team_message(
        state,
        alert.team_id,
        to,
        format!(
            "{}: {}% of the spend limit reached",
            alert.team_name, alert.level
        ),
        text,
        &html,
    )
}

/// The link that sets a new password (asked for on the sign-in page).
pub fn password_reset(state: &AppState, to: &Email, link: &str, expires_at: i64) -> NewMail {
    let expires = format_time(expires_at);
    let text = format!(
        "Hello,\n\nSomeone (perhaps you) asked to reset the password of your Tessera account.\n\n\
         Choose a new password here:\n{link}\n\n\
         The link works once and expires at {expires}. Using it signs out every session of your account.\n\
         If it was not you, ignore this email: your password stays as it is.\n\n-- Tessera\n"
    );
    let html = format!(
        "<p>Hello,</p><p>Someone (perhaps you) asked to reset the password of your Tessera account.</p>\
         <p><a href=\"{link}\">Choose a new password</a></p>\
         <p style=\"color:#666\">The link works once and expires at {expires}. Using it signs out every session of your account. \
         If it was not you, ignore this email: your password stays as it is.</p>",
        link = escape(link),
    );
    message(state, to, "Reset your Tessera password".into(), text, &html)
}

/// To a Manager offered the Admin role: who offers it, what changes on accepting, the link.
pub fn admin_handover(
    state: &AppState,
    to: &Email,
    team_name: &str,
    from: &str,
    link: &str,
    expires_at: i64,
) -> NewMail {
    let expires = format_time(expires_at);
    let text = format!(
        "Hello,\n\n{from} offers you the Admin role of the team {team_name} on Tessera.\n\n\
         As the Admin you can do everything in the team, including changing its payment information; \
         {from} becomes a Manager.\n\n\
         Sign in as {to} and accept here:\n{link}\n\n\
         The link works once and expires at {expires}. If you do not want the role, ignore this email.\n\n-- Tessera\n"
    );
    let html = format!(
        "<p>Hello,</p><p>{from} offers you the Admin role of the team <strong>{team}</strong> on Tessera.</p>\
         <p>As the Admin you can do everything in the team, including changing its payment information; {from} becomes a Manager.</p>\
         <p><a href=\"{link}\">Review and accept the Admin role</a> (sign in as {to})</p>\
         <p style=\"color:#666\">The link works once and expires at {expires}. If you do not want the role, ignore this email.</p>",
        from = escape(from),
        team = escape(team_name),
        link = escape(link),
        to = escape(to.as_str()),
    );
    message(
        state,
        to,
        format!("{from} offers you the Admin role of {team_name}"),
        text,
        &html,
    )
}

/// The link that verifies the address a team was signed up with (sent at sign-up and by
/// "Resend the link"). It says what verifying unlocks, and warns whoever did not sign up not
/// to open it: verifying hands the address to the account that typed it.
pub fn email_verification(
    state: &AppState,
    to: &Email,
    team_name: &str,
    link: &str,
    expires_at: i64,
) -> NewMail {
    let expires = format_time(expires_at);
    let text = format!(
        "Hello,\n\nThis address was used to sign up the team \"{team_name}\" on Tessera.\n\n\
         Verify the address here:\n{link}\n\n\
         Until it is verified, the team works in test mode only: it cannot create live tasks or invite people.\n\
         The link works once and expires at {expires}.\n\
         If you did not sign up, do not open the link; ignore this email.\n\n-- Tessera\n"
    );
    let html = format!(
        "<p>Hello,</p><p>This address was used to sign up the team <strong>{team}</strong> on Tessera.</p>\
         <p><a href=\"{link}\">Verify the address</a></p>\
         <p>Until it is verified, the team works in test mode only: it cannot create live tasks or invite people.</p>\
         <p style=\"color:#666\">The link works once and expires at {expires}. \
         If you did not sign up, do not open the link; ignore this email.</p>",
        team = escape(team_name),
        link = escape(link),
    );
    message(
        state,
        to,
        "Verify your email address for Tessera".into(),
        text,
        &html,
    )
}

/// To an address someone tried to sign up with while an unverified account holds it: the
/// account's own verification link (a fresh one), for the person who forgot they signed up.
pub fn signup_attempt_unverified(
    state: &AppState,
    to: &Email,
    team_name: &str,
    link: &str,
    expires_at: i64,
) -> NewMail {
    let expires = format_time(expires_at);
    let login = state.config.link("/login");
    let text = format!(
        "Hello,\n\nSomeone (perhaps you) tried to create a new Tessera team with this address. \
         An account of the team \"{team_name}\" signed up with it already, but the address was never verified.\n\n\
         If that account is yours, verify the address here:\n{link}\n\
         and sign in at {login}\n\n\
         The link works once and expires at {expires}.\n\
         If you did not sign up, do not open the link; ignore this email. An unverified account cannot invite people or create live tasks, \
         and an invitation to this address takes the address back from it.\n\n-- Tessera\n"
    );
    let html = format!(
        "<p>Hello,</p><p>Someone (perhaps you) tried to create a new Tessera team with this address. \
         An account of the team <strong>{team}</strong> signed up with it already, but the address was never verified.</p>\
         <p>If that account is yours: <a href=\"{link}\">verify the address</a>, then <a href=\"{login}\">sign in</a>.</p>\
         <p style=\"color:#666\">The link works once and expires at {expires}. \
         If you did not sign up, do not open the link; ignore this email. An unverified account cannot invite people or create live tasks, \
         and an invitation to this address takes the address back from it.</p>",
        team = escape(team_name),
        link = escape(link),
        login = escape(&login),
    );
    message(
        state,
        to,
        "Your Tessera sign-up is waiting for verification".into(),
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
