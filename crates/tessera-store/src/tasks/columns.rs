//! The one description of the `tasks` table: every task read selects its columns from
//! [`COLUMNS`] (and the joined names), SQLite's page query projects the same list into JSON,
//! the cache sizes a task by its long columns, and the insert writes the columns a new row
//! sets. A new column is added here and in [`Task`](super::Task) / [`TaskRow`].
//!
//! [`TaskRow`]: crate::task_insert::TaskRow

use std::sync::LazyLock;

/// How a column's value is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A short word or identifier.
    Word,
    /// Free text: counts towards a task's cached size.
    Text,
    /// JSON text, parsed when read: counts towards the size.
    Json,
    /// An integer (a time or a 0/1 flag).
    Integer,
}

/// One column of `tasks`.
#[derive(Debug)]
pub(crate) struct Column {
    /// The name in `tasks`, which is also the key of SQLite's page objects and of [`Task`]'s
    /// serde fields.
    ///
    /// [`Task`]: super::Task
    pub name: &'static str,
    pub kind: Kind,
    /// Read back into a task; false for the ids that reads replace by a joined name, and for
    /// the creating key (only the task page asks for it).
    pub read: bool,
    /// The field of the queued insert row the insert writes it from; `None`: the schema's
    /// default applies to a new task.
    pub insert_from: Option<&'static str>,
}

const fn column(
    name: &'static str,
    kind: Kind,
    read: bool,
    insert_from: Option<&'static str>,
) -> Column {
    Column {
        name,
        kind,
        read,
        insert_from,
    }
}

use Kind::{Integer, Json, Text, Word};

/// The columns of `tasks`, in schema order.
pub(crate) const COLUMNS: [Column; 22] = [
    column("id", Word, true, Some("id")),
    column("team_id", Word, true, Some("team_id")),
    column("mode", Word, true, Some("mode")),
    column("type", Word, true, Some("type")),
    column("status", Word, true, Some("status")),
    column("project_id", Word, false, Some("project_id")),
    column("batch_id", Word, false, Some("batch_id")),
    column("unique_id", Word, true, Some("unique_id")),
    column("callback_url", Text, true, Some("callback_url")),
    column("instruction", Text, true, Some("instruction")),
    column("params", Json, true, Some("params")),
    column("metadata", Json, true, Some("metadata")),
    column("tags", Json, true, Some("tags")),
    column("response", Json, true, Some("response")),
    column("extra", Json, true, Some("extra")),
    column("callback_succeeded", Integer, true, None),
    column("customer_review_status", Word, true, None),
    column("audits", Json, true, None),
    column("created_at", Integer, true, Some("at")),
    column("updated_at", Integer, true, Some("at")),
    column("completed_at", Integer, true, Some("completed_at")),
    // Written at creation, read only by the task page (`Store::task_creator_key`): task reads
    // and pages stay as they were.
    column("created_by_key", Word, false, Some("created_by_key")),
];

/// The names a task shows instead of its project and batch ids: (alias, joined expression).
const JOINED: [(&str, &str); 2] = [("project_name", "p.name"), ("batch_name", "b.name")];

const TASK_FROM: &str =
    " FROM tasks t LEFT JOIN projects p ON p.id = t.project_id LEFT JOIN batches b ON b.id = t.batch_id";

fn read_columns() -> impl Iterator<Item = &'static Column> {
    COLUMNS.iter().filter(|c| c.read)
}

/// `SELECT t.id, …, p.name AS project_name, … FROM tasks t LEFT JOIN …`: the start of every
/// task read (the caller adds `WHERE`).
pub(crate) static TASK_SELECT: LazyLock<String> = LazyLock::new(|| {
    let columns = read_columns().map(|c| format!("t.{}", c.name)).chain(
        JOINED
            .iter()
            .map(|(alias, expr)| format!("{expr} AS {alias}")),
    );
    format!(
        "SELECT {}{TASK_FROM}",
        columns.collect::<Vec<_>>().join(", ")
    )
});

/// `json_object('id', id, …)` over the columns of a task page row: SQLite returns a page as
/// one JSON array of these (see `list_tasks`), decoded into tasks by serde.
pub(crate) static SQLITE_TASK_OBJECT: LazyLock<String> = LazyLock::new(|| {
    let fields = read_columns()
        .map(|c| {
            if c.kind == Json {
                format!("'{0}', json({0})", c.name)
            } else {
                format!("'{0}', {0}", c.name)
            }
        })
        .chain(
            JOINED
                .iter()
                .map(|(alias, _)| format!("'{alias}', {alias}")),
        );
    format!("json_object({})", fields.collect::<Vec<_>>().join(", "))
});

/// The read columns whose length makes up most of a task's size (what caching it costs).
pub(crate) fn sized_columns() -> impl Iterator<Item = &'static str> {
    read_columns()
        .filter(|c| matches!(c.kind, Text | Json))
        .map(|c| c.name)
}

/// The fields of a queued insert row (name, SQL type), as the insert reads them from its JSON
/// parameter: every field a column is written from, and the id of the callback delivery a
/// task completed at creation gets.
pub(crate) static INSERT_ROW_FIELDS: LazyLock<Vec<(&'static str, &'static str)>> =
    LazyLock::new(|| {
        let mut fields: Vec<(&str, &str)> = Vec::new();
        for c in &COLUMNS {
            let Some(from) = c.insert_from else { continue };
            if fields.iter().all(|(name, _)| *name != from) {
                let sql_type = if c.kind == Integer { "BIGINT" } else { "TEXT" };
                fields.push((from, sql_type));
            }
        }
        fields.push(("delivery_id", "TEXT"));
        fields
    });

/// `INSERT INTO tasks (…) SELECT r.…, … FROM {source}`, `source` holding the queued rows as
/// `r`.
pub(crate) fn insert_tasks_sql(source: &str) -> String {
    let written: Vec<(&str, &str)> = COLUMNS
        .iter()
        .filter_map(|c| c.insert_from.map(|from| (c.name, from)))
        .collect();
    let names: Vec<&str> = written.iter().map(|(name, _)| *name).collect();
    let values: Vec<String> = written
        .iter()
        .map(|(_, from)| format!("r.{from}"))
        .collect();
    format!(
        "INSERT INTO tasks ({}) SELECT {} FROM {source}",
        names.join(", "),
        values.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_select_every_read_column_and_the_joined_names() {
        assert!(TASK_SELECT
            .starts_with("SELECT t.id, t.team_id, t.mode, t.type, t.status, t.unique_id"));
        assert!(TASK_SELECT
            .contains("t.completed_at, p.name AS project_name, b.name AS batch_name FROM tasks t"));
        assert!(!TASK_SELECT.contains("project_id,"));
        assert!(SQLITE_TASK_OBJECT.contains("'params', json(params)"));
        assert!(SQLITE_TASK_OBJECT.contains("'batch_name', batch_name)"));
        assert_eq!(
            sized_columns().collect::<Vec<_>>(),
            [
                "callback_url",
                "instruction",
                "params",
                "metadata",
                "tags",
                "response",
                "extra",
                "audits"
            ]
        );
    }

    #[test]
    fn the_insert_writes_each_column_from_its_row_field() {
        let sql = insert_tasks_sql("src");
        assert_eq!(
            sql,
            "INSERT INTO tasks (id, team_id, mode, type, status, project_id, batch_id, unique_id, \
             callback_url, instruction, params, metadata, tags, response, extra, created_at, \
             updated_at, completed_at, created_by_key) SELECT r.id, r.team_id, r.mode, r.type, \
             r.status, r.project_id, r.batch_id, r.unique_id, r.callback_url, r.instruction, \
             r.params, r.metadata, r.tags, r.response, r.extra, r.at, r.at, r.completed_at, \
             r.created_by_key FROM src"
        );
        let names: Vec<&str> = INSERT_ROW_FIELDS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names.iter().filter(|n| **n == "at").count(), 1);
        assert_eq!(names.last(), Some(&"delivery_id"));
    }
}
