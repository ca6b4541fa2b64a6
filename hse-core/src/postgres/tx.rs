//! Transactions that carry the caller's scope into PostgreSQL, where the
//! row-level security policies of every tenant table read it.
//!
//! The scope lives in four transaction-local settings (`hse.scope`,
//! `hse.partner`, `hse.organization`, `hse.establishments`), set with
//! `set_config(.., true)` in the same simple-protocol round trip as
//! `BEGIN`: it ends with the transaction, so a pooled connection never
//! carries one caller's scope to the next. A statement outside such a
//! transaction sees no scope, and the policies then show nothing.
//!
//! [`DbScope::System`] is the scope of the server's own tasks, which act
//! for no user: the ingest writer, the booking workers, sign-in by email,
//! token, key and invitation look-ups, building a principal. It sees every
//! tenant row like [`Scope::Platform`], and is the only scope that reaches
//! the tables of hse-auth (which have no tenant columns).

use std::fmt::Write as _;

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::principal::Scope;

/// What a transaction may touch.
#[derive(Clone, Copy, Debug)]
pub enum DbScope<'a> {
    /// What this caller's scope contains.
    Tenant(&'a Scope),
    /// Everything, for the server's own tasks (never a user's request).
    System,
}

impl DbScope<'_> {
    /// `SELECT set_config(..)` of the four settings. Every value is a
    /// fixed word or a formatted UUID, so it is safe as a literal.
    fn set_config_sql(self) -> String {
        let (kind, partner, org, establishments) = match self {
            Self::System => ("system", None, None, Vec::new()),
            Self::Tenant(Scope::Platform) => ("platform", None, None, Vec::new()),
            Self::Tenant(Scope::Partner { partner_company_id }) => {
                ("partner", Some(partner_company_id.0), None, Vec::new())
            }
            Self::Tenant(Scope::Organization {
                organization_id,
                establishments,
            }) => (
                "organization",
                None,
                Some(organization_id.0),
                establishments.iter().map(|e| e.0).collect(),
            ),
            Self::Tenant(Scope::Nothing) => ("nothing", None, None, Vec::new()),
        };
        let text = |id: Option<uuid::Uuid>| id.map(|i| i.to_string()).unwrap_or_default();
        let mut list = String::from("{");
        for (i, e) in establishments.iter().enumerate() {
            let _ = write!(list, "{}{e}", if i > 0 { "," } else { "" });
        }
        list.push('}');
        format!(
            "SELECT set_config('hse.scope', '{kind}', true), \
             set_config('hse.partner', '{}', true), \
             set_config('hse.organization', '{}', true), \
             set_config('hse.establishments', '{list}', true)",
            text(partner),
            text(org),
        )
    }
}

/// Begins a transaction on `pool` whose statements see what `scope`
/// contains (one round trip: `BEGIN` and the settings together).
///
/// # Errors
/// The database error.
pub async fn scoped_tx(
    pool: &PgPool,
    scope: &Scope,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    begin_in(pool, DbScope::Tenant(scope), "BEGIN").await
}

/// Begins a transaction in the [`DbScope::System`] scope.
///
/// # Errors
/// The database error.
pub async fn system_tx(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    begin_in(pool, DbScope::System, "BEGIN").await
}

/// Begins a transaction with `begin` (e.g. `BEGIN ISOLATION LEVEL
/// REPEATABLE READ READ ONLY`) in `scope`.
///
/// # Errors
/// The database error.
pub async fn begin_in(
    pool: &PgPool,
    scope: DbScope<'_>,
    begin: &'static str,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    pool.begin_with(format!("{begin}; {}", scope.set_config_sql()))
        .await
}

/// Replaces the scope of the transaction open on `conn` (e.g. to widen an
/// organization scope by the establishment it just created).
///
/// # Errors
/// The database error.
pub async fn set_scope(conn: &mut PgConnection, scope: DbScope<'_>) -> Result<(), sqlx::Error> {
    let sql = scope.set_config_sql();
    sqlx::query(&sql).execute(conn).await.map(|_| ())
}
