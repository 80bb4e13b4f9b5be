//! Statements whose shape depends on the request (filters, lists, batches): the text and
//! its bound values are pushed together, so a placeholder can never drift from its value,
//! and the text takes only `&'static str` fragments, so no value can end up spliced into it.
//!
//! Placeholders render as `?` on SQLite and `$n` on PostgreSQL. SQLite finds a numbered
//! parameter's name by a linear scan, which makes binding thousands of them quadratic;
//! anonymous `?` are bound in order of appearance, which is the order they are pushed here.
//! Static statements (no dynamic part) keep their literal `$n` text.

use std::borrow::Cow;

use sqlx::{any::AnyArguments, query::Query, Any};

use crate::Dialect;

/// A value bound into a built statement. Borrowed where the caller holds it, so building a
/// large statement copies no strings.
#[derive(Debug, Clone)]
pub(crate) enum Arg<'a> {
    Text(Option<Cow<'a, str>>),
    Int(Option<i64>),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(Cow::Borrowed(v)))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Some(Cow::Borrowed(v)))
    }
}

impl From<String> for Arg<'_> {
    fn from(v: String) -> Self {
        Arg::Text(Some(Cow::Owned(v)))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v.map(Cow::Borrowed))
    }
}

impl From<Option<String>> for Arg<'_> {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v.map(Cow::Owned))
    }
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

/// A statement being built: SQL text from static fragments, and the values its
/// placeholders stand for, in order.
#[derive(Debug, Clone)]
pub(crate) struct Sql<'a> {
    dialect: Dialect,
    text: String,
    args: Vec<Arg<'a>>,
}

impl<'a> Sql<'a> {
    pub(crate) fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            text: String::with_capacity(256),
            args: Vec::new(),
        }
    }

    /// The database the statement is for, for the rare fragment that differs.
    pub(crate) fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Appends a fragment of SQL text (never a value: those go through [`Sql::bind`]).
    pub(crate) fn push(&mut self, fragment: &'static str) -> &mut Self {
        self.text.push_str(fragment);
        self
    }

    /// Appends a placeholder and the value it stands for.
    pub(crate) fn bind(&mut self, value: impl Into<Arg<'a>>) -> &mut Self {
        self.args.push(value.into());
        match self.dialect {
            Dialect::Sqlite => self.text.push('?'),
            Dialect::Postgres => {
                self.text.push('$');
                self.text.push_str(&self.args.len().to_string());
            }
        }
        self
    }

    /// Appends `p, p, …`, one placeholder per value (an `IN (…)` list without its brackets).
    pub(crate) fn list<V: Into<Arg<'a>>>(
        &mut self,
        values: impl IntoIterator<Item = V>,
    ) -> &mut Self {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(value);
        }
        self
    }

    /// Appends `(p, p, …)`: one row of a `VALUES` list.
    pub(crate) fn tuple<V: Into<Arg<'a>>>(
        &mut self,
        values: impl IntoIterator<Item = V>,
    ) -> &mut Self {
        self.text.push('(');
        self.list(values);
        self.text.push(')');
        self
    }

    /// Starts a list of conditions joined by `AND` (the caller writes the `WHERE`).
    pub(crate) fn conditions(&mut self) -> Conditions<'_, 'a> {
        Conditions {
            sql: self,
            any: false,
        }
    }

    /// The SQL text as rendered.
    #[cfg(test)]
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The statement with every value bound, in order.
    pub(crate) fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        let mut query = sqlx::query(&self.text);
        for arg in &self.args {
            query = match arg {
                Arg::Text(t) => query.bind(t.as_deref()),
                Arg::Int(i) => query.bind(*i),
            };
        }
        query
    }

    /// As [`Sql::query`], decoding each row as `O`.
    pub(crate) fn query_as<O>(&self) -> sqlx::query::QueryAs<'_, Any, O, AnyArguments<'_>>
    where
        O: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        let mut query = sqlx::query_as(&self.text);
        for arg in &self.args {
            query = match arg {
                Arg::Text(t) => query.bind(t.as_deref()),
                Arg::Int(i) => query.bind(*i),
            };
        }
        query
    }
}

/// Conditions joined by `AND`, pushed one at a time (see [`Sql::conditions`]).
pub(crate) struct Conditions<'s, 'a> {
    sql: &'s mut Sql<'a>,
    any: bool,
}

impl<'a> Conditions<'_, 'a> {
    /// Starts the next condition (writing the `AND` before it) and returns the statement to
    /// push it into.
    pub(crate) fn and(&mut self) -> &mut Sql<'a> {
        if self.any {
            self.sql.push(" AND ");
        }
        self.any = true;
        self.sql
    }

    /// `column = p`.
    pub(crate) fn eq(&mut self, column: &'static str, value: impl Into<Arg<'a>>) -> &mut Self {
        self.and().push(column).push(" = ").bind(value);
        self
    }

    /// `column IN (p, …)`; nothing when `values` is empty (no filter).
    pub(crate) fn is_in<V: Into<Arg<'a>>>(
        &mut self,
        column: &'static str,
        values: impl IntoIterator<Item = V>,
    ) -> &mut Self {
        let mut values = values.into_iter().peekable();
        if values.peek().is_some() {
            self.and().push(column).push(" IN (").list(values).push(")");
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dialect: Dialect) -> String {
        let mut q = Sql::new(dialect);
        q.push("SELECT 1 FROM t WHERE ");
        let mut c = q.conditions();
        c.eq("a", "x")
            .is_in("b", ["y", "z"])
            .is_in("c", Vec::<&str>::new());
        c.and().push("d > ").bind(3_i64);
        q.push(" LIMIT ").bind(Some(10_i64));
        q.text().to_owned()
    }

    #[test]
    fn renders_anonymous_placeholders_on_sqlite() {
        assert_eq!(
            sample(Dialect::Sqlite),
            "SELECT 1 FROM t WHERE a = ? AND b IN (?, ?) AND d > ? LIMIT ?"
        );
    }

    #[test]
    fn numbers_placeholders_in_order_on_postgres() {
        assert_eq!(
            sample(Dialect::Postgres),
            "SELECT 1 FROM t WHERE a = $1 AND b IN ($2, $3) AND d > $4 LIMIT $5"
        );
    }

    #[test]
    fn values_rows() {
        let mut q = Sql::new(Dialect::Postgres);
        q.push("VALUES ");
        q.tuple([Arg::from("a"), Arg::from(1_i64)])
            .push(", ")
            .tuple([Arg::from(None::<String>), Arg::from(None::<i64>)]);
        assert_eq!(q.text(), "VALUES ($1, $2), ($3, $4)");
        assert_eq!(q.args.len(), 4);
    }
}
