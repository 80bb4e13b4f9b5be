//! The Billing pages (Managers and the Admin): plan, this period's usage and accrued balance,
//! credits, the spend limit, a usage chart, the last invoices and the card; an invoice with
//! its CSV download (one row per billed task).

use askama::Template;
use axum::{
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use tessera_core::{
    billing::Plan,
    money::{Currency, Money},
    Action, AuditAction, Invalid,
};
use tessera_store::{InvoiceDetail, UsageGroup};

use super::{render, service};
use crate::web::{Form, Path, Query};
use crate::{
    audit,
    authz::{perm, Authorized},
    state::AppState,
    web::{
        format_time, page, redirect_with_flash, render as render_page, ClientIp, Layout, SignedIn,
        WebError, WebResult,
    },
};

/// A UTC date, as the billing pages print days.
pub(crate) fn format_day(ms: i64) -> String {
    format_time(ms).chars().take(10).collect()
}

pub(super) struct UsageLine {
    pub label: String,
    pub completed_tasks: i64,
    pub amount: String,
}

pub(super) struct InvoiceRow {
    pub id: String,
    pub number: String,
    pub period: String,
    pub status: String,
    pub payment: String,
    pub total: String,
}

pub(super) struct CardView {
    pub brand: String,
    pub last4: String,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "billing.html")]
struct BillingPage {
    layout: Layout,
    enterprise: bool,
    plan: String,
    period: String,
    completed_tasks: i64,
    accrued: String,
    credit_balance: String,
    spend_limit: Option<String>,
    spend_limit_input: String,
    limit_error: Option<String>,
    by_type: Vec<UsageLine>,
    by_project: Vec<UsageLine>,
    /// Tasks of this month that an earlier close this month already invoiced: the breakdown
    /// covers the month, the count and accrued balance what the next close invoices.
    invoiced_this_month: i64,
    chart: String,
    chart_days: i64,
    invoices: Vec<InvoiceRow>,
    card: Option<CardView>,
    can_edit_payment: bool,
    payments_configured: bool,
}

#[derive(Deserialize, Default)]
pub(super) struct BillingQuery {
    #[serde(default)]
    days: Option<String>,
}

fn money(amount: i64, currency: Currency) -> String {
    Money::new(amount, currency).to_string()
}

/// The plan as the page names it.
fn plan_label(plan: Plan) -> &'static str {
    match plan {
        Plan::OnDemand => "On-demand",
        Plan::Enterprise => "Enterprise",
    }
}

async fn billing_page(
    state: &AppState,
    who: &SignedIn,
    days: i64,
    limit_error: Option<String>,
    limit_input: Option<String>,
) -> WebResult<BillingPage> {
    let scope = who.authorize(Action::ViewBilling)?;
    let now = tessera_store::now_ms();
    let overview = service::overview(&state.store, &scope, now).await?;
    let currency = overview.account.currency;
    let period = overview.period;
    let lines = |rows: Vec<tessera_store::UsageRow>, by_type: bool| -> Vec<UsageLine> {
        rows.into_iter()
            .map(|r| UsageLine {
                label: if by_type {
                    r.task_type.unwrap_or_default()
                } else {
                    r.project_name.unwrap_or_else(|| "(no project)".into())
                },
                completed_tasks: r.totals.completed_tasks,
                amount: money(r.totals.amount, currency),
            })
            .collect()
    };
    let by_type = lines(
        state
            .store
            .usage_breakdown(&scope, period.start, period.end, UsageGroup::TaskType)
            .await?,
        true,
    );
    let by_project = lines(
        state
            .store
            .usage_breakdown(&scope, period.start, period.end, UsageGroup::Project)
            .await?,
        false,
    );
    let chart_rows = service::chart_days(&state.store, &scope, now, days).await?;
    let chart_input: Vec<render::DayUsage> = chart_rows
        .iter()
        .map(|d| render::DayUsage {
            day_start: d.day_start,
            completed_tasks: d.completed_tasks,
            amount: d.amount,
        })
        .collect();
    let chart = render::usage_chart_svg(&chart_input, currency);
    let invoices = state
        .store
        .list_invoices(&scope, service::RECENT_INVOICES, None)
        .await?
        .into_iter()
        .map(|i| InvoiceRow {
            period: format!(
                "{} – {}",
                format_day(i.period_start),
                format_day(i.period_end - 1)
            ),
            status: i.status.as_str().to_owned(),
            payment: payment_label(i.payment_status).to_owned(),
            total: money(i.total, i.currency),
            number: i.number,
            id: i.id,
        })
        .collect();
    let card = overview.account.card.as_ref().map(|c| CardView {
        brand: c.brand.clone(),
        last4: c.last4.clone(),
        expires: format!("{:02}/{}", c.exp_month, c.exp_year),
    });
    let spend_limit = overview.account.spend_limit.map(|l| money(l, currency));
    let spend_limit_input = limit_input.unwrap_or_else(|| {
        overview
            .account
            .spend_limit
            .map(|l| Money::new(l, currency).amount_string())
            .unwrap_or_default()
    });
    let month_tasks: i64 = by_type.iter().map(|u| u.completed_tasks).sum();
    Ok(BillingPage {
        invoiced_this_month: (month_tasks - overview.totals.completed_tasks).max(0),
        layout: Layout::signed_in("Billing", who, "/billing"),
        enterprise: overview.account.plan == Plan::Enterprise,
        plan: plan_label(overview.account.plan).to_owned(),
        period: format!(
            "{} – {}",
            format_day(period.start),
            format_day(period.end - 1)
        ),
        completed_tasks: overview.totals.completed_tasks,
        accrued: money(overview.totals.amount, currency),
        credit_balance: money(overview.account.credit_balance, currency),
        spend_limit,
        spend_limit_input,
        limit_error,
        by_type,
        by_project,
        chart,
        chart_days: days,
        invoices,
        card,
        can_edit_payment: who.may(Action::EditPaymentInfo),
        payments_configured: service::payments_configured(state),
    })
}

/// What the page says of an invoice's payment.
pub(crate) fn payment_label(status: tessera_core::billing::PaymentStatus) -> &'static str {
    use tessera_core::billing::PaymentStatus::*;
    match status {
        NotRequired => "nothing to charge",
        NotConfigured => "payment not configured",
        Pending => "charge pending",
        Failed => "charge failed",
        Succeeded => "charged",
    }
}

/// The chart's range: 30 or 90 days (anything else is 30).
fn chart_range(query: &BillingQuery) -> i64 {
    match query.days.as_deref() {
        Some("90") => 90,
        _ => 30,
    }
}

pub(super) async fn show(
    State(state): State<AppState>,
    Authorized { caller: who, .. }: Authorized<perm::ViewBilling, SignedIn>,
    Query(query): Query<BillingQuery>,
) -> WebResult<Response> {
    Ok(page(
        &billing_page(&state, &who, chart_range(&query), None, None).await?,
    ))
}

#[derive(Deserialize, Default)]
pub(super) struct LimitInput {
    #[serde(default)]
    spend_limit: String,
}

pub(super) async fn set_spend_limit(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::EditPaymentInfo, SignedIn>,
    ip: ClientIp,
    Form(input): Form<LimitInput>,
) -> WebResult<Response> {
    let account = state.store.billing_account(&scope).await?;
    let currency = account.currency;
    let limit = match service::parse_amount(&input.spend_limit, currency) {
        Ok(Some(0)) => Err(Invalid(
            "A spend limit must be more than zero; leave it empty for no limit.".into(),
        )),
        other => other,
    };
    let limit = match limit {
        Ok(limit) => limit,
        Err(Invalid(message)) => {
            let page_ =
                billing_page(&state, &who, 30, Some(message), Some(input.spend_limit)).await?;
            return Ok(render_page(StatusCode::BAD_REQUEST, &page_));
        }
    };
    let detail = match (account.spend_limit, limit) {
        (_, None) => "removed".to_owned(),
        (None, Some(new)) => format!("set to {}", money(new, currency)),
        (Some(old), Some(new)) => format!("{} → {}", money(old, currency), money(new, currency)),
    };
    let event = audit::event(&who, &ip, AuditAction::SpendLimitChanged, "billing", detail);
    service::set_spend_limit(&state, &scope, limit, event).await?;
    let message = match limit {
        Some(limit) => format!("The monthly spend limit is now {}.", money(limit, currency)),
        None => "The team has no spend limit now.".to_owned(),
    };
    Ok(redirect_with_flash("/billing", &message))
}

#[derive(Template)]
#[template(path = "invoice.html")]
struct InvoicePage {
    layout: Layout,
    id: String,
    v: InvoiceView,
}

/// An invoice as people read it, on its page and in its PDF.
pub(crate) struct InvoiceView {
    pub number: String,
    pub team: String,
    pub period: String,
    pub issued: String,
    pub status: String,
    pub payment: String,
    pub payment_error: Option<String>,
    pub lines: Vec<LineView>,
    pub attempts: Vec<AttemptView>,
    pub subtotal: String,
    pub credits: String,
    pub total: String,
    pub amount_due: String,
}

pub(crate) struct LineView {
    pub project: String,
    pub task_type: String,
    pub quantity: i64,
    pub unit_price: String,
    pub amount: String,
}

pub(crate) struct AttemptView {
    pub when: String,
    pub outcome: String,
    pub amount: String,
}

impl InvoiceView {
    fn new(detail: InvoiceDetail) -> Self {
        let invoice = detail.invoice;
        let currency = invoice.currency;
        Self {
            period: format!(
                "{} – {}",
                format_day(invoice.period_start),
                format_day(invoice.period_end - 1)
            ),
            issued: invoice.opened_at.map(format_time).unwrap_or_default(),
            status: invoice.status.as_str().to_owned(),
            payment: payment_label(invoice.payment_status).to_owned(),
            payment_error: invoice.payment_error,
            lines: detail
                .lines
                .into_iter()
                .map(|l| LineView {
                    project: l.project_name.unwrap_or_else(|| "(no project)".into()),
                    task_type: l.task_type,
                    quantity: l.quantity,
                    unit_price: money(l.unit_amount, currency),
                    amount: money(l.amount, currency),
                })
                .collect(),
            attempts: detail
                .attempts
                .into_iter()
                .map(|a| AttemptView {
                    when: format_time(a.created_at),
                    outcome: match (&a.error_code, &a.error_message) {
                        (_, Some(message)) => format!("{}: {message}", a.status),
                        (Some(code), None) => format!("{}: {code}", a.status),
                        (None, None) => a.status.as_str().to_owned(),
                    },
                    amount: money(a.amount, currency),
                })
                .collect(),
            subtotal: money(invoice.subtotal, currency),
            credits: money(invoice.credits_applied, currency),
            total: money(invoice.total, currency),
            amount_due: money(invoice.amount_due, currency),
            number: invoice.number,
            team: invoice.team_name,
        }
    }
}

async fn invoice_of(state: &AppState, who: &SignedIn, id: &str) -> WebResult<InvoiceDetail> {
    let scope = who.authorize(Action::ViewBilling)?;
    state
        .store
        .get_invoice(&scope, id)
        .await?
        .ok_or(WebError::NotFound)
}

pub(super) async fn show_invoice(
    State(state): State<AppState>,
    Authorized { caller: who, .. }: Authorized<perm::ViewBilling, SignedIn>,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let detail = invoice_of(&state, &who, &id).await?;
    let id = detail.invoice.id.clone();
    let v = InvoiceView::new(detail);
    Ok(page(&InvoicePage {
        layout: Layout::signed_in(format!("Invoice {}", v.number), &who, "/billing"),
        id,
        v,
    }))
}

/// The invoice as a PDF file, written off the async runtime.
pub(super) async fn invoice_pdf(
    State(state): State<AppState>,
    Authorized { caller: who, .. }: Authorized<perm::ViewBilling, SignedIn>,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let detail = invoice_of(&state, &who, &id).await?;
    let v = InvoiceView::new(detail);
    let file_name = format!("{}.pdf", v.number);
    let pdf = tokio::task::spawn_blocking(move || render::invoice_pdf(&v))
        .await
        .map_err(|e| WebError::Internal(anyhow::anyhow!("writing the PDF: {e}")))?;
    Ok(download("application/pdf", &file_name, pdf))
}

/// The attachment headers of a download (`number.ext`; numbers are `INV-000001`, safe in a
/// header).
fn download(content_type: &'static str, file_name: &str, body: Vec<u8>) -> Response {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            ),
        ],
        body,
    )
        .into_response()
}

/// Rows read per query while writing an invoice's CSV.
const CSV_PAGE: i64 = 5_000;

pub(super) async fn invoice_csv(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::ViewBilling, SignedIn>,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let detail = invoice_of(&state, &who, &id).await?;
    let mut tasks = Vec::new();
    let mut after = None;
    loop {
        let page_ = state
            .store
            .invoice_billed_tasks(&scope, &detail.invoice.id, after.clone(), CSV_PAGE)
            .await?;
        let full = i64::try_from(page_.len()).unwrap_or(0) == CSV_PAGE;
        after = page_.last().map(|t| (t.completed_at, t.task_id.clone()));
        tasks.extend(page_.into_iter().map(|t| render::BilledTask {
            task_id: t.task_id,
            project: t.project_name,
            task_type: t.task_type,
            completed_at: t.completed_at,
            unit_amount: t.unit_amount,
        }));
        if !full {
            break;
        }
    }
    let csv = render::invoice_csv(tasks, detail.invoice.currency);
    Ok(download(
        "text/csv; charset=utf-8",
        &format!("{}.csv", detail.invoice.number),
        csv.into_bytes(),
    ))
}
