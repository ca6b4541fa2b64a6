//! The application's database role: the login role the server connects
//! as, which owns nothing, is no superuser and cannot bypass row-level
//! security, and gets its privileges from the group the migrations grant
//! to (`hse_app_group`).
//!
//! `scripts/services` creates [`APP_LOGIN_ROLE`] for development; tests
//! call [`app_pool`] to reach a freshly migrated test database as it.

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// The login role `scripts/services` creates and tests connect as.
pub const APP_LOGIN_ROLE: &str = "hse_app";

/// The NOLOGIN group the migrations grant the tenant tables to.
pub const APP_GROUP_ROLE: &str = "hse_app_group";

/// Creates [`APP_LOGIN_ROLE`] (LOGIN NOSUPERUSER NOBYPASSRLS) and
/// [`APP_GROUP_ROLE`] if missing and makes the login role a member of the
/// group; idempotent, safe concurrently. Needs a role allowed to create
/// roles (the owner of a development or test cluster).
///
/// # Errors
/// The database error.
pub async fn ensure_app_login_role(owner: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(
        "DO $$
         BEGIN
             IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'hse_app_group') THEN
                 CREATE ROLE hse_app_group NOLOGIN NOSUPERUSER NOBYPASSRLS;
             END IF;
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
         END $$;
         DO $$
         BEGIN
             IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'hse_app') THEN
                 CREATE ROLE hse_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
             END IF;
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
         END $$;
         DO $$
         BEGIN
             IF NOT pg_has_role('hse_app', 'hse_app_group', 'MEMBER') THEN
                 GRANT hse_app_group TO hse_app;
             END IF;
         EXCEPTION WHEN unique_violation THEN NULL;
         END $$;",
    )
    .execute(owner)
    .await
    .map(|_| ())
}

/// A pool of at most `max_connections` on the database of `owner`,
/// connected as [`APP_LOGIN_ROLE`] (created first if missing; the
/// database must be migrated). For tests and tools that hold the owner's
/// pool.
///
/// # Errors
/// The database error.
pub async fn app_pool(owner: &PgPool, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    ensure_app_login_role(owner).await?;
    let options = owner
        .connect_options()
        .as_ref()
        .clone()
        .username(APP_LOGIN_ROLE)
        .password("");
    PgPoolOptions::new()
        .max_connections(max_connections)
        .connect_with(options)
        .await
}

/// Tables of the schema that hold no tenant data and may go without
/// row-level security: the permission catalogue and sqlx's bookkeeping.
pub const TABLES_WITHOUT_TENANT_DATA: &[&str] = &["actions", "_sqlx_migrations"];

/// What makes the role of `pool` unfit to serve requests, one sentence
/// each (empty: fit): a superuser or `BYPASSRLS` role, a role that owns
/// (or may act as the owner of) a table, a schema not migrated, or a table
/// outside [`TABLES_WITHOUT_TENANT_DATA`] without forced row-level
/// security.
///
/// # Errors
/// The database error.
pub async fn app_role_problems(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    let mut problems = Vec::new();
    let (role, superuser, bypass): (String, bool, bool) = sqlx::query_as(
        "SELECT rolname::text, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(pool)
    .await?;
    if superuser {
        problems.push(format!(
            "the role {role} is a superuser, which bypasses row-level security"
        ));
    }
    if bypass {
        problems.push(format!(
            "the role {role} has BYPASSRLS, which bypasses row-level security"
        ));
    }
    let owned = owned_tables(pool).await?;
    if !owned.is_empty() {
        problems.push(format!(
            "the role {role} owns (or is a member of the owner of) {}; table owners can \
             disable row-level security",
            owned.join(", ")
        ));
    }
    let migrated: bool = sqlx::query_scalar("SELECT to_regclass('partner_companies') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !migrated {
        problems.push("the database is not migrated (no table partner_companies)".to_owned());
    }
    let unprotected = unprotected_tables(pool).await?;
    if !unprotected.is_empty() {
        problems.push(format!(
            "tenant tables without forced row-level security: {}",
            unprotected.join(", ")
        ));
    }
    Ok(problems)
}

/// Tables of the search path the current role owns or may act as owner of.
async fn owned_tables(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c \
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
           AND c.relnamespace = ANY(SELECT oid FROM pg_namespace \
                                    WHERE nspname = ANY(current_schemas(false))) \
           AND pg_has_role(current_user, c.relowner, 'MEMBER') \
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await
}

/// Tables of the search path, other than the allowed ones, whose
/// row-level security is off or not forced.
async fn unprotected_tables(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    let allowed: Vec<String> = TABLES_WITHOUT_TENANT_DATA
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c \
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
           AND c.relnamespace = ANY(SELECT oid FROM pg_namespace \
                                    WHERE nspname = ANY(current_schemas(false))) \
           AND NOT (c.relrowsecurity AND c.relforcerowsecurity) \
           AND c.relname <> ALL($1) \
         ORDER BY 1",
    )
    .bind(&allowed)
    .fetch_all(pool)
    .await
}

/// `owner_url` with its user (and password) replaced by
/// [`APP_LOGIN_ROLE`]: `postgres://postgres@h:5432/db` →
/// `postgres://hse_app@h:5432/db`. For development and tests, where the
/// login role needs no password.
#[must_use]
pub fn app_role_url(owner_url: &str) -> String {
    let (scheme, rest) = owner_url
        .split_once("://")
        .unwrap_or(("postgres", owner_url));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    format!("{scheme}://{APP_LOGIN_ROLE}@{host}")
}

#[cfg(test)]
mod tests {
    use super::app_role_url;

    #[test]
    fn the_app_url_swaps_only_the_user() {
        assert_eq!(
            app_role_url("postgres://postgres:pw@127.0.0.1:5432/hse?sslmode=disable"),
            "postgres://hse_app@127.0.0.1:5432/hse?sslmode=disable"
        );
        assert_eq!(
            app_role_url("postgresql://h/db"),
            "postgresql://hse_app@h/db"
        );
        assert_eq!(app_role_url("postgres://a@b@h"), "postgres://hse_app@h");
    }
}
