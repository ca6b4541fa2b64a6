//! The caller's [`Scope`] in SQL: bound as the first four parameters of a
//! query and tested with the same rule as [`Scope::contains`], so a row
//! outside the scope is never returned.

use hse_core::Scope;
use sqlx::Postgres;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use uuid::Uuid;

pub(super) type Q<'q> = Query<'q, Postgres, PgArguments>;

/// A [`Scope`] as the first four query parameters.
struct ScopeArgs {
    kind: &'static str,
    partner: Option<Uuid>,
    org: Option<Uuid>,
    establishments: Vec<Uuid>,
}

fn scope_args(scope: &Scope) -> ScopeArgs {
    let none = |kind| ScopeArgs {
        kind,
        partner: None,
        org: None,
        establishments: Vec::new(),
    };
    match scope {
        Scope::Platform => none("platform"),
        Scope::Partner { partner_company_id } => ScopeArgs {
            partner: Some(partner_company_id.as_uuid()),
            ..none("partner")
        },
        Scope::Organization {
            organization_id,
            establishments,
        } => ScopeArgs {
            org: Some(organization_id.as_uuid()),
            establishments: establishments.iter().map(|e| e.as_uuid()).collect(),
            ..none("organization")
        },
        Scope::Nothing => none("nothing"),
    }
}

pub(super) fn scoped<'q>(sql: &'q str, scope: &Scope) -> Q<'q> {
    let s = scope_args(scope);
    sqlx::query(sql)
        .bind(s.kind)
        .bind(s.partner)
        .bind(s.org)
        .bind(s.establishments)
}

/// `$1..$4` in SQL: the scope test of rows with an establishment (`t`).
macro_rules! in_scope {
    ($t:literal) => {
        concat!(
            "($1::text = 'platform' OR ($1 = 'partner' AND o.partner_company_id = $2::uuid) OR ($1 = 'organization' AND ",
            $t,
            ".organization_id = $3::uuid AND (",
            $t,
            ".establishment_id = ANY($4::uuid[]))))"
        )
    };
}

/// The same for guests, which belong to an organization only (`$4` unused
/// but typed).
pub(super) const GUEST_IN_SCOPE: &str = "($1::text = 'platform' OR ($1 = 'partner' AND o.partner_company_id = $2::uuid) \
    OR ($1 = 'organization' AND g.organization_id = $3::uuid AND cardinality($4::uuid[]) >= 0))";

pub(super) use in_scope;
