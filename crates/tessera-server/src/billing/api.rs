//! `/v1/billing`: the team's plan and this period's usage, usage by day, task type or
//! project, and invoices with their lines (an extension: Scale's API has no billing). Amounts
//! are integers in minor units of `currency`; billing belongs to the team, so a test key
//! reads the live world's billing.

use axum::{
    extract::{Path, RawQuery, State},
    Json,
};
use serde::Serialize;
use tessera_core::billing::DAY_MS;
use tessera_store::{Invoice, InvoiceDetail, UsageGroup};
use utoipa::ToSchema;

use super::service::{self, MAX_USAGE_DAYS};
use crate::api::{
    wire::{iso, ApiError, ApiResult, QueryPairs},
    ErrorBody,
};
use crate::authz::{perm, Authorized};
use crate::state::AppState;

/// The team's billing now.
#[derive(Serialize, ToSchema)]
pub struct BillingBody {
    /// `on_demand` or `enterprise`.
    plan: &'static str,
    /// ISO 4217, lower case (`usd`).
    currency: String,
    period_start: String,
    /// Exclusive.
    period_end: String,
    /// Completed live tasks this period.
    completed_tasks: i64,
    /// Their amount, not yet invoiced (minor units).
    accrued_amount: i64,
    credit_balance: i64,
    /// The monthly cap, or null for none.
    spend_limit: Option<i64>,
}

#[utoipa::path(
    get, path = "/v1/billing", tag = "billing",
    responses((status = 200, body = BillingBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
)]
pub async fn billing(
    State(state): State<AppState>,
    Authorized { scope, .. }: Authorized<perm::ViewBilling>,
) -> ApiResult<Json<BillingBody>> {
    let overview = service::overview(&state.store, &scope, tessera_store::now_ms()).await?;
    Ok(Json(BillingBody {
        plan: overview.account.plan.as_str(),
        currency: overview.account.currency.as_str().to_owned(),
        period_start: iso(overview.period.start),
        period_end: iso(overview.period.end),
        completed_tasks: overview.totals.completed_tasks,
        accrued_amount: overview.totals.amount,
        credit_balance: overview.account.credit_balance,
        spend_limit: overview.account.spend_limit,
    }))
}

/// One group of usage.
#[derive(Serialize, ToSchema)]
pub struct UsageRowBody {
    /// `group_by=day`: the UTC day (`2026-11-30`).
    #[serde(skip_serializing_if = "Option::is_none")]
    day: Option<String>,
    /// `group_by=task_type`.
    #[serde(skip_serializing_if = "Option::is_none")]
    task_type: Option<String>,
    /// `group_by=project`: the project's name (null for tasks in no project).
    #[serde(skip_serializing_if = "Option::is_none")]
    project: Option<Option<String>>,
    completed_tasks: i64,
    amount: i64,
}

/// Usage over a range.
#[derive(Serialize, ToSchema)]
pub struct UsageBody {
    start: String,
    end: String,
    group_by: &'static str,
    currency: String,
    docs: Vec<UsageRowBody>,
    completed_tasks: i64,
    amount: i64,
}

fn group_of(raw: Option<&str>) -> ApiResult<(UsageGroup, &'static str)> {
    match raw.map(str::trim) {
        None | Some("day") => Ok((UsageGroup::Day, "day")),
        Some("task_type") => Ok((UsageGroup::TaskType, "task_type")),
        Some("project") => Ok((UsageGroup::Project, "project")),
        Some(other) => Err(ApiError::bad_request(format!(
            "group_by must be day, task_type or project (got \"{}\").",
            other.chars().take(40).collect::<String>()
        ))),
    }
}

#[utoipa::path(
    get, path = "/v1/billing/usage", tag = "billing",
    params(
        ("start" = Option<String>, Query, description = "Inclusive; default the period's start"),
        ("end" = Option<String>, Query, description = "Exclusive; default the period's end"),
        ("group_by" = Option<String>, Query, description = "day (default), task_type or project"),
    ),
    responses((status = 200, body = UsageBody), (status = 400, body = ErrorBody)),
)]
pub async fn usage(
    State(state): State<AppState>,
    Authorized { scope, .. }: Authorized<perm::ViewBilling>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<UsageBody>> {
    let q = QueryPairs::parse(raw.as_deref());
    let period = service::current_period(tessera_store::now_ms());
    let start = q.time("start")?.unwrap_or(period.start);
    let end = q.time("end")?.unwrap_or(period.end);
    if end <= start {
        return Err(ApiError::bad_request("end must be after start."));
    }
    if end - start > MAX_USAGE_DAYS * DAY_MS {
        return Err(ApiError::bad_request(format!(
            "The range may span at most {MAX_USAGE_DAYS} days."
        )));
    }
    let (group, group_word) = group_of(q.get("group_by"))?;
    let account = state.store.billing_account(&scope).await?;
    let rows = state
        .store
        .usage_breakdown(&scope, start, end, group)
        .await?;
    let completed_tasks = rows.iter().map(|r| r.totals.completed_tasks).sum();
    let amount = rows.iter().map(|r| r.totals.amount).sum();
    let docs = rows
        .into_iter()
        .map(|r| UsageRowBody {
            day: r.day.map(|d| iso(d)[..10].to_owned()),
            task_type: r.task_type,
            project: (group == UsageGroup::Project).then_some(r.project_name),
            completed_tasks: r.totals.completed_tasks,
            amount: r.totals.amount,
        })
        .collect();
    Ok(Json(UsageBody {
        start: iso(start),
        end: iso(end),
        group_by: group_word,
        currency: account.currency.as_str().to_owned(),
        docs,
        completed_tasks,
        amount,
    }))
}

/// An invoice's header, as the list shows it.
#[derive(Serialize, ToSchema)]
pub struct InvoiceBody {
    id: String,
    number: String,
    /// `open`, `paid`, `void` or `uncollectible`.
    status: &'static str,
    /// `not_required`, `not_configured`, `pending`, `failed` or `succeeded`.
    payment_status: &'static str,
    plan: &'static str,
    currency: String,
    period_start: String,
    /// Exclusive.
    period_end: String,
    subtotal: i64,
    credits_applied: i64,
    total: i64,
    amount_due: i64,
    created_at: String,
    paid_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lines: Option<Vec<LineBody>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment_attempts: Option<Vec<AttemptBody>>,
}

/// A line: a project × task type × unit price.
#[derive(Serialize, ToSchema)]
pub struct LineBody {
    /// The project's name at the close (null: tasks in no project).
    project: Option<String>,
    task_type: String,
    quantity: i64,
    unit_amount: i64,
    amount: i64,
}

/// One try to charge the invoice.
#[derive(Serialize, ToSchema)]
pub struct AttemptBody {
    attempt: i64,
    status: &'static str,
    amount: i64,
    error_code: Option<String>,
    created_at: String,
}

fn invoice_body(invoice: &Invoice) -> InvoiceBody {
    InvoiceBody {
        id: invoice.id.clone(),
        number: invoice.number.clone(),
        status: invoice.status.as_str(),
        payment_status: invoice.payment_status.as_str(),
        plan: invoice.plan.as_str(),
        currency: invoice.currency.as_str().to_owned(),
        period_start: iso(invoice.period_start),
        period_end: iso(invoice.period_end),
        subtotal: invoice.subtotal,
        credits_applied: invoice.credits_applied,
        total: invoice.total,
        amount_due: invoice.amount_due,
        created_at: iso(invoice.created_at),
        paid_at: invoice.paid_at.map(iso),
        lines: None,
        payment_attempts: None,
    }
}

fn detail_body(detail: InvoiceDetail) -> InvoiceBody {
    let mut body = invoice_body(&detail.invoice);
    body.lines = Some(
        detail
            .lines
            .into_iter()
            .map(|l| LineBody {
                project: l.project_name,
                task_type: l.task_type,
                quantity: l.quantity,
                unit_amount: l.unit_amount,
                amount: l.amount,
            })
            .collect(),
    );
    body.payment_attempts = Some(
        detail
            .attempts
            .into_iter()
            .map(|a| AttemptBody {
                attempt: a.attempt,
                status: a.status.as_str(),
                amount: a.amount,
                error_code: a.error_code,
                created_at: iso(a.created_at),
            })
            .collect(),
    );
    body
}

/// A page of invoices.
#[derive(Serialize, ToSchema)]
pub struct InvoicePage {
    docs: Vec<InvoiceBody>,
    /// Pass as `next_token` for the next page; null on the last.
    next_token: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/billing/invoices", tag = "billing",
    params(("limit" = Option<i64>, Query), ("next_token" = Option<String>, Query)),
    responses((status = 200, body = InvoicePage), (status = 400, body = ErrorBody)),
)]
pub async fn invoices(
    State(state): State<AppState>,
    Authorized { scope, .. }: Authorized<perm::ViewBilling>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<InvoicePage>> {
    let q = QueryPairs::parse(raw.as_deref());
    let limit = q.limit()?;
    let before = match q.get("next_token") {
        None => None,
        Some(token) => Some(
            token
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::bad_request("next_token is not one this API gave."))?,
        ),
    };
    let (page, next) = service::invoice_page(&state.store, &scope, limit, before).await?;
    Ok(Json(InvoicePage {
        docs: page.iter().map(invoice_body).collect(),
        next_token: next.map(|n| n.to_string()),
    }))
}

#[utoipa::path(
    get, path = "/v1/billing/invoices/{id}", tag = "billing",
    params(("id" = String, Path)),
    responses((status = 200, body = InvoiceBody), (status = 404, body = ErrorBody)),
)]
pub async fn invoice(
    State(state): State<AppState>,
    Authorized { scope, .. }: Authorized<perm::ViewBilling>,
    Path(id): Path<String>,
) -> ApiResult<Json<InvoiceBody>> {
    let detail = state
        .store
        .get_invoice(&scope, id.trim())
        .await?
        .ok_or_else(|| ApiError::not_found("No invoice has this id."))?;
    Ok(Json(detail_body(detail)))
}
