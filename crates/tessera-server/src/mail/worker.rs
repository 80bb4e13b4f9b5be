//! Delivers the mail outbox: claims due messages, sends them over SMTP, retries failures on
//! the configured schedule. Without an SMTP server, messages are kept ("held") for the staff
//! console and printed to the log, which is how a local installation reads its invitations.

use std::time::Duration;

use anyhow::Context;
use lettre::{
    message::{Mailbox, MultiPart},
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use tessera_store::{now_ms, CrossTenant, MailMessage, MailStatus};

use super::MailBody;
use crate::{
    crypto::Purpose,
    jobs::{self, BatchWork},
    state::AppState,
};

/// How long a claimed message is reserved for one attempt before another worker may retry it.
const LEASE_MS: i64 = 120_000;
const BATCH: usize = 20;
/// Idle poll interval; queued mail also wakes the worker at once.
const POLL: Duration = Duration::from_secs(2);

/// The mail outbox as [`BatchWork`]: a pass claims a batch of due messages and sends them one
/// by one, recording each attempt as it ends.
pub struct MailWorker {
    state: AppState,
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
}

impl MailWorker {
    pub fn new(state: AppState) -> anyhow::Result<Self> {
        let transport = match state.config.smtp_url.as_deref() {
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .context("invalid --smtp-url")?
                    .timeout(Some(Duration::from_secs(20)))
                    .build(),
            ),
            None => None,
        };
        let from = state
            .config
            .mail_from
            .parse()
            .context("invalid mail sender address (--mail-from)")?;
        Ok(Self {
            state,
            transport,
            from,
        })
    }

    /// The outbox serves every team (and mail of none).
    fn outbox(&self) -> CrossTenant {
        self.state.store.cross_tenant()
    }

    async fn deliver(&self, mail: &MailMessage) -> anyhow::Result<()> {
        let store = self.outbox();
        let body: MailBody = match self
            .state
            .config
            .master_key
            .open(&Purpose::mail_body(&mail.to), &mail.body_sealed)
            .and_then(|b| Ok(serde_json::from_slice(&b)?))
        {
            Ok(body) => body,
            Err(err) => {
                tracing::error!(mail_id = %mail.id, error = %err, "mail body cannot be opened; giving up on it");
                store
                    .finish_mail_attempt(
                        &mail.id,
                        MailStatus::Failed,
                        Some("body cannot be decrypted with this master key"),
                        now_ms(),
                    )
                    .await?;
                return Ok(());
            }
        };
        let Some(transport) = &self.transport else {
            if self.state.config.log_mail_bodies {
                tracing::info!(
                    mail_id = %mail.id,
                    to = %mail.to,
                    subject = %mail.subject,
                    "no SMTP server configured (--smtp-url): mail kept in the outbox; body (--log-mail-bodies):\n{}",
                    body.text
                );
            } else {
                tracing::info!(
                    mail_id = %mail.id,
                    to = %mail.to,
                    subject = %mail.subject,
                    "no SMTP server configured (--smtp-url): mail kept in the outbox"
                );
            }
            store
                .finish_mail_attempt(&mail.id, MailStatus::Held, None, now_ms())
                .await?;
            return Ok(());
        };
        match self.send(transport, mail, body).await {
            Ok(()) => {
                tracing::info!(mail_id = %mail.id, to = %mail.to, "mail sent");
                store
                    .finish_mail_attempt(&mail.id, MailStatus::Sent, None, now_ms())
                    .await?;
            }
            Err(err) => {
                let failures = u32::try_from(mail.attempts).unwrap_or(u32::MAX);
                let error = format!("{err:#}");
                match jobs::retry_at(&self.state.config.mail_retry, failures, None, None) {
                    Some(next) => {
                        tracing::warn!(mail_id = %mail.id, attempt = failures, error = %error, "mail delivery failed; will retry");
                        store
                            .finish_mail_attempt(&mail.id, MailStatus::Queued, Some(&error), next)
                            .await?;
                    }
                    None => {
                        tracing::error!(mail_id = %mail.id, attempts = failures, error = %error, "mail delivery failed; giving up");
                        store
                            .finish_mail_attempt(
                                &mail.id,
                                MailStatus::Failed,
                                Some(&error),
                                now_ms(),
                            )
                            .await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn send(
        &self,
        transport: &AsyncSmtpTransport<Tokio1Executor>,
        mail: &MailMessage,
        body: MailBody,
    ) -> anyhow::Result<()> {
        let message = Message::builder()
            .from(self.from.clone())
            .to(mail.to.parse().context("recipient address")?)
            .subject(&mail.subject)
            .multipart(MultiPart::alternative_plain_html(body.text, body.html))?;
        transport.send(message).await?;
        Ok(())
    }
}

impl BatchWork for MailWorker {
    type Item = MailMessage;
    const BATCH: usize = BATCH;
    const POLL: Duration = POLL;
    const FAILED: &'static str = "mail worker pass failed";

    async fn claim(&self) -> anyhow::Result<Vec<MailMessage>> {
        Ok(self.outbox().claim_due_mail(LEASE_MS, BATCH as i64).await?)
    }

    async fn run(&self, mail: &MailMessage) -> anyhow::Result<()> {
        self.deliver(mail).await
    }

    async fn woken(&self) {
        self.state.mail_queued.notified().await;
    }
}
