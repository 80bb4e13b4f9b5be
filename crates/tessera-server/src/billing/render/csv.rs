//! The billed-task detail of an invoice as CSV, for spreadsheets.

use tessera_core::money::Currency;

use super::{rfc3339, BilledTask};

/// One row per billed task (RFC 4180, CRLF line ends). Project and task ids/types are user
/// controlled, so a field a spreadsheet would run as a formula gets a leading `'` (OWASP).
pub fn invoice_csv(rows: impl IntoIterator<Item = BilledTask>, currency: Currency) -> String {
    let code = currency.as_str().to_ascii_uppercase();
    let mut out = String::from("task_id,project,task_type,completed_at,unit_amount,currency\r\n");
    for row in rows {
        let fields = [
            safe(&row.task_id),
            safe(row.project.as_deref().unwrap_or("")),
            safe(&row.task_type),
            rfc3339(row.completed_at),
            row.unit_amount.to_string(),
            code.clone(),
        ];
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

/// A user-supplied field, defused against formula injection, then quoted if needed.
fn safe(raw: &str) -> String {
    let defused = if raw.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{raw}")
    } else {
        raw.to_owned()
    };
    if defused.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, project: Option<&str>) -> BilledTask {
        BilledTask {
            task_id: id.into(),
            project: project.map(Into::into),
            task_type: "bbox".into(),
            completed_at: 0,
            unit_amount: 12,
        }
    }

    #[test]
    fn rows_are_quoted_and_defused() {
        let csv = invoice_csv(
            [
                task("t1", Some("a,b")),
                task("t2", Some("say \"hi\"")),
                task("=cmd", Some("+1")),
                task("t4", Some("@x\nline")),
                task("t5", None),
            ],
            Currency::USD,
        );
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "task_id,project,task_type,completed_at,unit_amount,currency"
        );
        assert_eq!(lines[1], "t1,\"a,b\",bbox,1970-01-01T00:00:00.000Z,12,USD");
        assert_eq!(
            lines[2],
            "t2,\"say \"\"hi\"\"\",bbox,1970-01-01T00:00:00.000Z,12,USD"
        );
        assert_eq!(lines[3], "'=cmd,'+1,bbox,1970-01-01T00:00:00.000Z,12,USD");
        assert!(lines[4].starts_with("t4,\"'@x\nline\","));
        assert_eq!(lines[5], "t5,,bbox,1970-01-01T00:00:00.000Z,12,USD");
        assert_eq!(csv.matches("USD\r\n").count(), 5);
        assert_eq!(safe("-1"), "'-1");
        assert_eq!(safe("\tx"), "'\tx");
    }
}
