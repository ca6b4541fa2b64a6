//! Users, their sign-in records and their establishment assignments.
//!
//! `users.partner_company_id` is stored for partner-level users only; a
//! user of an organization is read with its organization's partner, so
//! the two can never disagree.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::establishments::EstablishmentRow;
use super::scoped::{EstablishmentColumn, Lock, Placement, Record, Table, fetch, stored};
use super::tenants::{OrganizationRow, PartnerCompanyRow, require_platform};
use super::tx::{scoped_tx, system_tx};
use super::violation::on_write;
use crate::error::{CoreError, Result};
use crate::id::{OrganizationId, RoleId, UserId};
use crate::model::{User, UserEstablishment, UserPatch};
use crate::principal::Scope;
use crate::store::Credentials;
use crate::value::Email;

/// The columns of a [`UserRow`], with the partner resolved.
macro_rules! user_columns {
    () => {
        "u.id, u.email, u.first_name, u.last_name, u.role_id, \
         COALESCE(u.partner_company_id, o.partner_company_id) AS partner_company_id, \
         u.organization_id, u.is_active, u.email_verified, u.created_at, u.updated_at"
    };
}

/// `FROM` of user reads: the organization gives org users their partner.
macro_rules! user_from {
    () => {
        " FROM users u LEFT JOIN organizations o ON o.id = u.organization_id"
    };
}

/// A stored user.
#[derive(Debug, FromRow)]
pub(super) struct UserRow {
    id: Uuid,
    email: String,
    first_name: String,
    last_name: String,
    role_id: Uuid,
    partner_company_id: Option<Uuid>,
    organization_id: Option<Uuid>,
    is_active: bool,
    email_verified: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Record for UserRow {
    type Model = User;
    const TABLE: Table = Table {
        entity: "user",
        alias: "u",
        select: concat!("SELECT ", user_columns!(), user_from!()),
        always_visible: None,
        placement: Placement {
            partner: &["u.partner_company_id", "o.partner_company_id"],
            organization: Some("u.organization_id"),
            establishment: EstablishmentColumn::None,
        },
        delete: "DELETE FROM users WHERE id = $1",
    };

    fn id(&self) -> Uuid {
        self.id
    }

    fn into_model(self) -> Result<User> {
        Ok(User {
            id: self.id.into(),
            email: stored(Email::parse(&self.email))?,
            first_name: self.first_name,
            last_name: self.last_name,
            role_id: self.role_id.into(),
            partner_company_id: self.partner_company_id.map(Into::into),
            organization_id: self.organization_id.map(Into::into),
            is_active: self.is_active,
            email_verified: self.email_verified,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// A user with its password hash.
#[derive(Debug, FromRow)]
struct CredentialsRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: Option<String>,
}

/// Stores a new user whose placement (organization, partner company, or
/// the platform for root) is in scope, with a role that fits it.
pub(super) async fn insert(
    pool: &PgPool,
    scope: &Scope,
    user: &User,
    password_hash: Option<&str>,
) -> Result<()> {
    let mut tx = scoped_tx(pool, scope).await?;
    check_placement(&mut tx, scope, user).await?;
    insert_unchecked(&mut tx, user, password_hash).await?;
    tx.commit().await?;
    Ok(())
}

/// Refuses a user whose placement is out of scope or whose partner
/// disagrees with its organization's.
async fn check_placement(tx: &mut PgConnection, scope: &Scope, user: &User) -> Result<()> {
    match (user.organization_id, user.partner_company_id) {
        (Some(org), partner) => {
            let org = fetch::<OrganizationRow>(&mut *tx, scope, org.0, Lock::None)
                .await?
                .into_model()?;
            if partner.is_some() && partner != org.partner_company_id {
                return Err(CoreError::invalid(
                    "partner_company_id",
                    "must be the partner company of the user's organization",
                ));
            }
        }
        (None, Some(partner)) => {
            fetch::<PartnerCompanyRow>(&mut *tx, scope, partner.0, Lock::None).await?;
        }
        (None, None) => require_platform(scope, "organization")?,
    }
    Ok(())
}

/// Stores a user whose placement was already checked; its role must be
/// a system role or a custom role of its organization.
pub(super) async fn insert_unchecked(
    tx: &mut PgConnection,
    user: &User,
    password_hash: Option<&str>,
) -> Result<()> {
    check_role(tx, user.role_id, user.organization_id).await?;
    let partner = user
        .partner_company_id
        .filter(|_| user.organization_id.is_none());
    sqlx::query(
        "INSERT INTO users (id, email, password_hash, first_name, last_name, role_id, \
         partner_company_id, organization_id, is_active, email_verified, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(user.id.0)
    .bind(user.email.as_str())
    .bind(password_hash)
    .bind(&user.first_name)
    .bind(&user.last_name)
    .bind(user.role_id.0)
    .bind(partner.map(|p| p.0))
    .bind(user.organization_id.map(|o| o.0))
    .bind(user.is_active)
    .bind(user.email_verified)
    .bind(user.created_at)
    .bind(user.updated_at)
    .execute(tx)
    .await
    .map_err(|e| on_write(e, "user"))?;
    Ok(())
}

/// Refuses, as missing, a role that does not exist or belongs to another
/// organization than `organization` (the trigger of migration 2 says the
/// same).
pub(super) async fn check_role(
    tx: &mut PgConnection,
    role: RoleId,
    organization: Option<OrganizationId>,
) -> Result<()> {
    let owner: Option<Option<Uuid>> =
        sqlx::query_scalar("SELECT organization_id FROM roles WHERE id = $1")
            .bind(role.0)
            .fetch_optional(tx)
            .await?;
    match owner {
        Some(Some(owner)) if Some(owner) != organization.map(|o| o.0) => {
            Err(CoreError::not_found("role"))
        }
        Some(_) => Ok(()),
        None => Err(CoreError::not_found("role")),
    }
}

/// Reads a user back after a write, with its partner resolved.
pub(super) async fn reread(tx: &mut PgConnection, id: UserId) -> Result<User> {
    fetch::<UserRow>(tx, &Scope::Platform, id.0, Lock::None)
        .await?
        .into_model()
}

/// Applies `patch` to a user in scope.
pub(super) async fn update(
    pool: &PgPool,
    scope: &Scope,
    id: UserId,
    patch: UserPatch,
    now: DateTime<Utc>,
) -> Result<User> {
    let mut tx = scoped_tx(pool, scope).await?;
    let mut user = fetch::<UserRow>(&mut *tx, scope, id.0, Lock::Update)
        .await?
        .into_model()?;
    patch.apply(&mut user, now)?;
    sqlx::query(
        "UPDATE users SET first_name = $2, last_name = $3, is_active = $4, updated_at = $5 \
         WHERE id = $1",
    )
    .bind(user.id.0)
    .bind(&user.first_name)
    .bind(&user.last_name)
    .bind(user.is_active)
    .bind(user.updated_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| on_write(e, "user"))?;
    tx.commit().await?;
    Ok(user)
}

/// A user and its password hash by email (system path).
pub(super) async fn credentials(pool: &PgPool, email: &Email) -> Result<Option<Credentials>> {
    let mut tx = system_tx(pool).await?;
    let row: Option<CredentialsRow> = sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        ", u.password_hash",
        user_from!(),
        " WHERE u.email = $1"
    ))
    .bind(email.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    row.map(|r| {
        Ok(Credentials {
            user: r.user.into_model()?,
            password_hash: r.password_hash,
        })
    })
    .transpose()
}

/// Replaces a user's password hash (system path).
pub(super) async fn set_password_hash(
    pool: &PgPool,
    id: UserId,
    password_hash: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut tx = system_tx(pool).await?;
    let done = sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
        .bind(id.0)
        .bind(password_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    if done.rows_affected() == 0 {
        return Err(CoreError::not_found("user"));
    }
    Ok(())
}

/// A stored assignment.
#[derive(Debug, FromRow)]
struct AssignmentRow {
    user_id: Uuid,
    establishment_id: Uuid,
    role_id: Option<Uuid>,
    assigned_at: DateTime<Utc>,
    assigned_by: Option<Uuid>,
}

impl From<AssignmentRow> for UserEstablishment {
    fn from(row: AssignmentRow) -> Self {
        Self {
            user_id: row.user_id.into(),
            establishment_id: row.establishment_id.into(),
            role_id: row.role_id.map(Into::into),
            assigned_at: row.assigned_at,
            assigned_by: row.assigned_by.map(Into::into),
        }
    }
}

/// Assigns a user in scope to an establishment in scope of its own
/// organization, replacing an earlier assignment's role.
pub(super) async fn assign(pool: &PgPool, scope: &Scope, a: &UserEstablishment) -> Result<()> {
    let mut tx = scoped_tx(pool, scope).await?;
    let est = fetch::<EstablishmentRow>(&mut *tx, scope, a.establishment_id.0, Lock::None)
        .await?
        .into_model()?;
    let user = fetch::<UserRow>(&mut *tx, scope, a.user_id.0, Lock::None).await?;
    if user.organization_id != Some(est.organization_id.0) {
        // A user of another organization is, from here, no user at all.
        return Err(CoreError::not_found("user"));
    }
    if let Some(role) = a.role_id {
        super::roles::check_establishment_role(&mut tx, role, &est).await?;
    }
    sqlx::query(
        "INSERT INTO user_establishments (user_id, establishment_id, organization_id, role_id, \
         assigned_at, assigned_by) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (user_id, establishment_id) DO UPDATE SET role_id = EXCLUDED.role_id, \
         assigned_at = EXCLUDED.assigned_at, assigned_by = EXCLUDED.assigned_by",
    )
    .bind(a.user_id.0)
    .bind(a.establishment_id.0)
    .bind(est.organization_id.0)
    .bind(a.role_id.map(|r| r.0))
    .bind(a.assigned_at)
    .bind(a.assigned_by.map(|u| u.0))
    .execute(&mut *tx)
    .await
    .map_err(|e| on_write(e, "assignment"))?;
    tx.commit().await?;
    Ok(())
}

/// A user's assignments to the establishments in scope.
pub(super) async fn assignments(
    pool: &PgPool,
    scope: &Scope,
    user: UserId,
) -> Result<Vec<UserEstablishment>> {
    let mut tx = scoped_tx(pool, scope).await?;
    fetch::<UserRow>(&mut *tx, scope, user.0, Lock::None).await?;
    let mut qb = QueryBuilder::<Postgres>::new(
        "SELECT ue.user_id, ue.establishment_id, ue.role_id, ue.assigned_at, ue.assigned_by \
         FROM user_establishments ue JOIN organizations o ON o.id = ue.organization_id \
         WHERE ue.user_id = ",
    );
    qb.push_bind(user.0).push(" AND ");
    ASSIGNMENT.push_filter(&mut qb, scope);
    qb.push(" ORDER BY ue.establishment_id");
    let rows: Vec<AssignmentRow> = qb.build_query_as().fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Where an assignment lives: in its establishment.
const ASSIGNMENT: Placement = Placement {
    partner: &["o.partner_company_id"],
    organization: Some("ue.organization_id"),
    establishment: EstablishmentColumn::Required("ue.establishment_id"),
};
