//! Data exceptions (SQLSTATE class `22`): PostgreSQL refused a value
//! itself — a NUL character (U+0000) in `text` or `jsonb`, a string too
//! long for its column, a number or date out of range. The input is at
//! fault, not the storage, so every crate maps these to its "invalid
//! input" variant (400) instead of a storage failure (503).

use sqlx::postgres::PgDatabaseError;

/// Why PostgreSQL refused a value, if `e` is a data exception: its
/// message (and detail), naming the column when PostgreSQL reports one.
/// The text is safe to show: PostgreSQL's messages of this class describe
/// the value, never the statement.
#[must_use]
pub fn refused_value(e: &sqlx::Error) -> Option<String> {
    let db = e.as_database_error()?;
    if !db.code()?.starts_with("22") {
        return None;
    }
    let pg = db.try_downcast_ref::<PgDatabaseError>();
    let what = match pg.and_then(PgDatabaseError::column) {
        Some(column) => format!("a value of {column}"),
        None => "a value".to_owned(),
    };
    let why = match pg.and_then(PgDatabaseError::detail) {
        Some(detail) => format!("{} ({detail})", db.message()),
        None => db.message().to_owned(),
    };
    Some(format!("{what} could not be stored: {why}"))
}
