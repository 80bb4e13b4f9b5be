//! The names of audit-log entries: one enum instead of string literals spread over the
//! features, so the log's vocabulary is listed in one place and a typo cannot invent an event.

use crate::{status::word_enum, Invalid};

word_enum!(
    /// What an audit entry records. The spelling (`noun.verb`) is what the audit page shows and
    /// what existing rows hold: never rename a variant's word.
    AuditAction {
        TeamSignedUp = "team.signed_up",
        TeamCreated = "team.created",
        TeamDetailsChanged = "team.details_changed",
        TeamAdminChanged = "team.admin_changed",
        TeamAdminHandoverOffered = "team.admin_handover_offered",
        TeamAdminHandoverCancelled = "team.admin_handover_cancelled",
        TeamAdminHandoverAccepted = "team.admin_handover_accepted",
        TeamTwoFactorRequirementChanged = "team.two_factor_requirement_changed",
        UserMoved = "user.moved",
        UserPasswordChanged = "user.password_changed",
        UserPasswordReset = "user.password_reset",
        UserEmailVerified = "user.email_verified",
        UserSignupSuperseded = "user.signup_superseded",
        TeamClosed = "team.closed",
        UserTwoFactorEnabled = "user.two_factor_enabled",
        UserTwoFactorDisabled = "user.two_factor_disabled",
        UserRecoveryCodesRegenerated = "user.recovery_codes_regenerated",
        UserRecoveryCodeUsed = "user.recovery_code_used",
        MemberRoleChanged = "member.role_changed",
        MemberRemoved = "member.removed",
        InvitationSent = "invitation.sent",
        InvitationResent = "invitation.resent",
        InvitationRoleChanged = "invitation.role_changed",
        InvitationRevoked = "invitation.revoked",
        InvitationAccepted = "invitation.accepted",
        ApiKeyCreated = "api_key.created",
        ApiKeyRevealed = "api_key.revealed",
        ApiKeyDeleted = "api_key.deleted",
        ApiKeyRolled = "api_key.rolled",
        CallbackAuthKeyRevealed = "callback_auth_key.revealed",
        CallbackAuthKeyRotated = "callback_auth_key.rotated",
        CallbackSigningSecretRevealed = "callback_signing_secret.revealed",
        CallbackSigningSecretRotated = "callback_signing_secret.rotated",
        CallbackRedelivered = "callback.redelivered",
        CallbackRetriesCanceled = "callback.retries_canceled",
        CallbackTestSent = "callback.test_sent",
        CallbackEmailAdded = "callback_email.added",
        CallbackEmailVerified = "callback_email.verified",
        CallbackEmailRemoved = "callback_email.removed",
        BillingPlanChanged = "billing.plan_changed",
        PriceSet = "price.set",
        CreditGranted = "credit.granted",
        InvoiceIssued = "invoice.issued",
        InvoicePaid = "invoice.paid",
        InvoicePaymentFailed = "invoice.payment_failed",
        SpendLimitChanged = "spend_limit.changed",
        PaymentMethodUpdated = "payment_method.updated",
        IntegrationAdded = "integration.added",
        IntegrationVerified = "integration.verified",
        IntegrationRemoved = "integration.removed",
        AttachmentProxyChanged = "attachment_proxy.changed",
        AttachmentReported = "attachment.reported",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_unique_and_dotted() {
        let mut seen = std::collections::HashSet::new();
        for action in AuditAction::ALL {
            assert!(seen.insert(action.as_str()), "{action} twice");
            assert_eq!(action.as_str().matches('.').count(), 1, "{action}");
            assert_eq!(action.as_str().parse::<AuditAction>().unwrap(), *action);
        }
        let _: Invalid = "team.exploded".parse::<AuditAction>().unwrap_err();
    }
}
