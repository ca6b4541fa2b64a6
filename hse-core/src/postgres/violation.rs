//! SQLSTATEs of integrity violations, mapped to [`CoreError`] where the
//! query is made: `23505` → already exists, `23503` → the referenced entity
//! is missing (or, on delete, the entity is still in use), `23514` → invalid.

use crate::error::CoreError;

/// Tables of the schema, longest first so that `users` never matches a
/// `user_establishments_*` constraint.
const TABLES: [&str; 10] = [
    "user_establishments",
    "partner_companies",
    "establishments",
    "organizations",
    "invitations",
    "permissions",
    "devices",
    "areas",
    "roles",
    "users",
];

/// Referencing columns and the entity each one points at.
const REFERENCES: [(&str, &str); 11] = [
    ("parent_area_id", "parent area"),
    ("area_id", "area"),
    ("establishment_id", "establishment"),
    ("organization_id", "organization"),
    ("partner_company_id", "partner company"),
    ("role_id", "role"),
    ("user_id", "user"),
    ("invited_by", "user"),
    ("created_by", "user"),
    ("assigned_by", "user"),
    ("granted_by", "user"),
];

/// Checked columns and the field each one is reported as.
const CHECKED: [(&str, &str); 11] = [
    ("parent_area_id", "parent_area_id"),
    ("location", "location"),
    ("metadata", "metadata"),
    ("hierarchy", "hierarchy"),
    ("email", "email"),
    ("status", "status"),
    ("device_type", "device_type"),
    ("protocol", "protocol"),
    ("type", "type"),
    ("name", "name"),
    ("hash", "secret"),
];

/// The integrity rules a statement can break.
enum Violation {
    Unique,
    ForeignKey,
    Check,
}

/// The violated rule and constraint name, if `e` is an integrity violation.
fn violation(e: &sqlx::Error) -> Option<(Violation, String)> {
    let db = e.as_database_error()?;
    let kind = match db.code()?.as_ref() {
        "23505" => Violation::Unique,
        "23503" => Violation::ForeignKey,
        "23514" => Violation::Check,
        _ => return None,
    };
    Some((kind, db.constraint().unwrap_or_default().to_owned()))
}

/// Maps the failure of an insert or update of `entity`.
pub(super) fn on_write(e: sqlx::Error, entity: &'static str) -> CoreError {
    match violation(&e) {
        Some((Violation::Unique, constraint)) => CoreError::AlreadyExists {
            entity,
            detail: unique_detail(&constraint),
        },
        Some((Violation::ForeignKey, constraint)) => {
            CoreError::not_found(earliest(columns(&constraint), &REFERENCES).unwrap_or(entity))
        }
        Some((Violation::Check, constraint)) => CoreError::invalid(
            earliest(columns(&constraint), &CHECKED).unwrap_or(entity),
            "refused by a database constraint",
        ),
        None => e.into(),
    }
}

/// Maps the failure of a delete of `entity`: a foreign key means something
/// still refers to it.
pub(super) fn on_delete(e: sqlx::Error, entity: &'static str) -> CoreError {
    match violation(&e) {
        Some((Violation::ForeignKey, constraint)) => CoreError::InUse {
            entity,
            detail: format!(
                "{} still refer to it",
                table_of(&constraint).unwrap_or("rows")
            ),
        },
        _ => on_write(e, entity),
    }
}

fn unique_detail(constraint: &str) -> String {
    if constraint.ends_with("_pkey") {
        "an entity with this id exists".to_owned()
    } else if constraint == "users_email_key" {
        "the email is already in use".to_owned()
    } else {
        "a unique value is already in use".to_owned()
    }
}

/// The table a (generated or trigger-given) constraint name starts with.
fn table_of(constraint: &str) -> Option<&'static str> {
    TABLES.into_iter().find(|t| {
        constraint
            .strip_prefix(t)
            .is_some_and(|rest| rest.starts_with('_'))
    })
}

/// The column part of a constraint name (`devices_area_id_..._fkey`
/// → `area_id_..._fkey`).
fn columns(constraint: &str) -> &str {
    table_of(constraint)
        .and_then(|t| constraint.get(t.len() + 1..))
        .unwrap_or(constraint)
}

/// The value of the entry of `table` whose key occurs first in `columns`.
fn earliest(columns: &str, table: &[(&str, &'static str)]) -> Option<&'static str> {
    table
        .iter()
        .filter_map(|(key, value)| columns.find(key).map(|at| (at, *value)))
        .min_by_key(|(at, _)| *at)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_names_tell_which_entity_is_referenced() {
        let refs = |c: &str| earliest(columns(c), &REFERENCES);
        assert_eq!(refs("devices_area_id_establishment_id_fkey"), Some("area"));
        assert_eq!(
            refs("areas_parent_area_id_establishment_id_fkey"),
            Some("parent area")
        );
        assert_eq!(
            refs("user_establishments_user_id_organization_id_fkey"),
            Some("user")
        );
        assert_eq!(
            refs("user_establishments_establishment_id_organization_id_fkey"),
            Some("establishment")
        );
        assert_eq!(refs("users_role_id_fkey"), Some("role"));
        assert_eq!(refs("users_role_id_organization_fkey"), Some("role"));
    }

    #[test]
    fn constraint_names_tell_the_referencing_table_and_checked_field() {
        assert_eq!(
            table_of("user_establishments_user_id_fkey"),
            Some("user_establishments")
        );
        assert_eq!(table_of("users_role_id_fkey"), Some("users"));
        assert_eq!(
            earliest(columns("areas_parent_area_id_check"), &CHECKED),
            Some("parent_area_id")
        );
        assert_eq!(earliest(columns("areas_check"), &CHECKED), None);
    }
}
