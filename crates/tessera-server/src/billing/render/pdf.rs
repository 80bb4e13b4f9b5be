//! The invoice as a PDF: A4 pages in the base-14 Helvetica fonts (no font files to embed),
//! WinAnsi-encoded text, uncompressed content streams (a PDF reader or a `grep` finds the
//! number and the amounts), lines continued on further pages as needed.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};

use crate::billing::pages::InvoiceView;

const PAGE_WIDTH: f32 = 595.0;
const PAGE_HEIGHT: f32 = 842.0;
const MARGIN: f32 = 50.0;
const LEADING: f32 = 15.0;
/// Columns of the lines table: project, task type, quantity, unit price, amount.
const COLUMNS: [f32; 5] = [MARGIN, 230.0, 340.0, 400.0, 480.0];
/// Characters a cell keeps (Helvetica at 10 pt fits about this many in its column).
const CELL_CHARS: [usize; 5] = [34, 20, 10, 14, 16];

const REGULAR: Name<'static> = Name(b"F1");
const BOLD: Name<'static> = Name(b"F2");

/// `text` in WinAnsiEncoding: Latin-1 as is, a few typographic marks mapped, anything else `?`.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            ' '..='~' => c as u8,
            '\u{a0}'..='\u{ff}' => c as u32 as u8,
            '–' => 0x96,
            '—' => 0x97,
            '−' => b'-',
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '€' => 0x80,
            _ => b'?',
        })
        .collect()
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let kept: String = text.chars().take(max.saturating_sub(3)).collect();
        format!("{kept}...")
    }
}

/// Writes text on pages, starting a new page when one is full.
struct Writer {
    pages: Vec<Content>,
    y: f32,
}

impl Writer {
    fn new() -> Self {
        let mut writer = Self {
            pages: Vec::new(),
            y: 0.0,
        };
        writer.new_page();
        writer
    }

    fn new_page(&mut self) {
        self.pages.push(Content::new());
        self.y = PAGE_HEIGHT - MARGIN;
    }

    /// Makes room for `lines` more lines, on a new page if needed; whether it started one.
    fn room(&mut self, lines: f32) -> bool {
        if self.y - lines * LEADING < MARGIN {
            self.new_page();
            true
        } else {
            false
        }
    }

    fn text(&mut self, x: f32, font: Name<'static>, size: f32, text: &str) {
        let bytes = win_ansi(text);
        let page = self.pages.last_mut().expect("a page");
        page.begin_text();
        page.set_font(font, size);
        page.next_line(x, self.y);
        page.show(Str(&bytes));
        page.end_text();
    }

    fn line(&mut self, font: Name<'static>, size: f32, text: &str) {
        self.room(1.0);
        self.text(MARGIN, font, size, text);
        self.y -= LEADING;
    }

    fn row(&mut self, font: Name<'static>, cells: [&str; 5]) {
        for ((x, max), cell) in COLUMNS.iter().zip(CELL_CHARS).zip(cells) {
            self.text(*x, font, 10.0, &fit(cell, max));
        }
        self.y -= LEADING;
    }

    fn gap(&mut self) {
        self.y -= LEADING / 2.0;
    }
}

const TABLE_HEAD: [&str; 5] = ["Project", "Task type", "Quantity", "Unit price", "Amount"];

/// The PDF file of an invoice.
pub fn invoice_pdf(v: &InvoiceView) -> Vec<u8> {
    let mut w = Writer::new();
    w.line(BOLD, 20.0, "Tessera");
    w.gap();
    w.line(BOLD, 14.0, &format!("Invoice {}", v.number));
    w.gap();
    for (label, value) in [
        ("Team", v.team.as_str()),
        ("Period", v.period.as_str()),
        ("Issued", v.issued.as_str()),
        ("Status", v.status.as_str()),
        ("Payment", v.payment.as_str()),
    ] {
        w.line(REGULAR, 10.0, &format!("{label}: {}", fit(value, 90)));
    }
    w.gap();
    w.room(2.0);
    w.row(BOLD, TABLE_HEAD);
    for line in &v.lines {
        if w.room(1.0) {
            w.line(REGULAR, 9.0, &format!("Invoice {} (continued)", v.number));
            w.row(BOLD, TABLE_HEAD);
        }
        let quantity = line.quantity.to_string();
        w.row(
            REGULAR,
            [
                &line.project,
                &line.task_type,
                &quantity,
                &line.unit_price,
                &line.amount,
            ],
        );
    }
    w.gap();
    w.room(4.0);
    for (label, value, font) in [
        ("Subtotal", v.subtotal.as_str(), REGULAR),
        ("Credits applied", v.credits.as_str(), REGULAR),
        ("Total", v.total.as_str(), BOLD),
        ("Amount due", v.amount_due.as_str(), BOLD),
    ] {
        w.text(COLUMNS[2], font, 10.0, label);
        w.text(COLUMNS[4], font, 10.0, value);
        w.y -= LEADING;
    }
    if !v.attempts.is_empty() {
        w.gap();
        w.line(BOLD, 11.0, "Payment attempts");
        for attempt in &v.attempts {
            w.line(
                REGULAR,
                9.0,
                &fit(
                    &format!("{}  {}  {}", attempt.when, attempt.amount, attempt.outcome),
                    110,
                ),
            );
        }
    }
    w.gap();
    w.line(
        REGULAR,
        8.0,
        "Every line is traceable to its tasks: download this invoice's CSV from the Billing page.",
    );
    assemble(w.pages, &v.number)
}

/// The document: catalog, page tree, two fonts, and each page with its content stream.
fn assemble(pages: Vec<Content>, title: &str) -> Vec<u8> {
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let regular = Ref::new(3);
    let bold = Ref::new(4);
    let info = Ref::new(5);
    let first_page = 6;
    let page_ids: Vec<Ref> = (0..pages.len())
        .map(|i| Ref::new(first_page + 2 * i32::try_from(i).unwrap_or(i32::MAX / 4)))
        .collect();
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(i32::try_from(page_ids.len()).unwrap_or(i32::MAX));
    pdf.type1_font(regular)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.document_info(info)
        .title(pdf_writer::TextStr(&format!("Tessera invoice {title}")))
        .producer(pdf_writer::TextStr("Tessera"));
    for (content, id) in pages.into_iter().zip(&page_ids) {
        let content_id = Ref::new(id.get() + 1);
        let mut page = pdf.page(*id);
        page.parent(tree)
            .media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT))
            .contents(content_id);
        let mut resources = page.resources();
        let mut fonts = resources.fonts();
        fonts.pair(REGULAR, regular);
        fonts.pair(BOLD, bold);
        fonts.finish();
        resources.finish();
        page.finish();
        pdf.stream(content_id, &content.finish());
    }
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::pages::{AttemptView, LineView};

    fn view(lines: usize, team: &str) -> InvoiceView {
        InvoiceView {
            number: "INV-000042".into(),
            team: team.into(),
            period: "2026-11-01 – 2026-11-30".into(),
            issued: "2026-12-01 00:05 UTC".into(),
            status: "paid".into(),
            payment: "charged".into(),
            payment_error: None,
            lines: (0..lines)
                .map(|i| LineView {
                    project: format!("project {i} (a) \\ b"),
                    task_type: "categorization".into(),
                    quantity: 3,
                    unit_price: "0.08 USD".into(),
                    amount: "0.24 USD".into(),
                })
                .collect(),
            attempts: vec![AttemptView {
                when: "2026-12-01 00:06 UTC".into(),
                outcome: "succeeded".into(),
                amount: "12.34 USD".into(),
            }],
            subtotal: "12.34 USD".into(),
            credits: "0.00 USD".into(),
            total: "12.34 USD".into(),
            amount_due: "12.34 USD".into(),
        }
    }

    fn page_count(pdf: &[u8]) -> usize {
        String::from_utf8_lossy(pdf)
            .matches("/Type /Page\n")
            .count()
            + String::from_utf8_lossy(pdf).matches("/Type /Page ").count()
    }

    #[test]
    fn an_invoice_is_a_pdf_with_its_number_and_total() {
        let pdf = invoice_pdf(&view(2, "Acme"));
        let text = String::from_utf8_lossy(&pdf);
        assert!(pdf.starts_with(b"%PDF-"), "{}", &text[..20]);
        assert!(text.trim_end().ends_with("%%EOF"));
        assert!(text.contains("(Invoice INV-000042)"), "{text}");
        assert!(text.contains("(12.34 USD)"));
        assert!(text.contains("/BaseFont /Helvetica"));
        assert_eq!(page_count(&pdf), 1, "{text}");
    }

    #[test]
    fn user_text_is_escaped_and_encoded() {
        let team = "Zoë (Ünïcode \\ 数据 – “quoted”";
        let pdf = invoice_pdf(&view(1, team));
        let text = String::from_utf8_lossy(&pdf);
        // Non-ASCII text is a hex string of WinAnsi bytes (CJK becomes '?').
        let encoded = win_ansi(&format!("Team: {team}"));
        assert!(encoded.contains(&0xeb) && encoded.contains(&b'?') && encoded.contains(&0x93));
        let hex: String = encoded.iter().map(|b| format!("{b:02x}")).collect();
        assert!(text.to_lowercase().contains(&format!("<{hex}>")), "{text}");
        // ASCII is a literal string: backslashes and unbalanced parentheses escaped.
        assert!(text.contains(r"(project 0 (a) \\ b)"), "{text}");
        let unbalanced = invoice_pdf(&view(0, "a) b"));
        assert!(String::from_utf8_lossy(&unbalanced).contains(r"(Team: a\) b)"));
    }

    #[test]
    fn many_lines_continue_on_more_pages() {
        let pdf = invoice_pdf(&view(200, "Acme"));
        let text = String::from_utf8_lossy(&pdf);
        assert!(page_count(&pdf) >= 4, "{}", page_count(&pdf));
        assert!(
            text.contains("(Invoice INV-000042 (continued))"),
            "continued header"
        );
        assert!(
            text.contains(r"(project 199 (a) \\ b)"),
            "the last line is there"
        );
    }
}
