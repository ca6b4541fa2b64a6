//! Invitations: stored by token hash, answered once under a row lock.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use super::scoped::{Lock, fetch, stored};
use super::tenants::{OrganizationRow, PartnerCompanyRow};
use super::tx::{scoped_tx, system_tx};
use super::users::{check_role, insert_unchecked, reread};
use super::violation::on_write;
use crate::error::{CoreError, Result};
use crate::invitation::{Invitation, InvitationStatus, InvitationTarget};
use crate::model::User;
use crate::principal::Scope;
use crate::secret::SecretHash;
use crate::value::Email;

const SELECT: &str = "SELECT id, email, role_id, partner_company_id, organization_id, \
                      invited_by, token_hash, status, expires_at, created_at, responded_at \
                      FROM invitations WHERE token_hash = $1";

/// A stored invitation.
#[derive(Debug, FromRow)]
struct InvitationRow {
    id: Uuid,
    email: String,
    role_id: Uuid,
    partner_company_id: Option<Uuid>,
    organization_id: Option<Uuid>,
    invited_by: Uuid,
    token_hash: Vec<u8>,
    status: String,
    expires_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    responded_at: Option<DateTime<Utc>>,
}

impl InvitationRow {
    fn into_model(self) -> Result<Invitation> {
        let target = match (self.organization_id, self.partner_company_id) {
            (Some(org), _) => InvitationTarget::Organization(org.into()),
            (None, Some(partner)) => InvitationTarget::PartnerCompany(partner.into()),
            (None, None) => {
                return Err(CoreError::Storage("stored invitation has no target".into()));
            }
        };
        Ok(Invitation {
            id: self.id.into(),
            email: stored(Email::parse(&self.email))?,
            role_id: self.role_id.into(),
            target,
            invited_by: self.invited_by.into(),
            token_hash: Some(SecretHash::from_slice(&self.token_hash)?),
            status: InvitationStatus::parse(&self.status)?,
            expires_at: self.expires_at,
            created_at: self.created_at,
            responded_at: self.responded_at,
        })
    }
}

/// Stores an invitation to a target in scope, offering a role that fits it.
pub(super) async fn insert(pool: &PgPool, scope: &Scope, inv: &Invitation) -> Result<()> {
    let token = inv
        .token_hash
        .ok_or_else(|| CoreError::invalid("token", "an invitation needs its token's hash"))?;
    let mut tx = scoped_tx(pool, scope).await?;
    let (partner, org) = match inv.target {
        InvitationTarget::PartnerCompany(p) => {
            fetch::<PartnerCompanyRow>(&mut *tx, scope, p.0, Lock::None).await?;
            (Some(p), None)
        }
        InvitationTarget::Organization(o) => {
            fetch::<OrganizationRow>(&mut *tx, scope, o.0, Lock::None).await?;
            (None, Some(o))
        }
    };
    check_role(&mut tx, inv.role_id, org).await?;
    sqlx::query(
        "INSERT INTO invitations (id, email, role_id, partner_company_id, organization_id, \
         invited_by, token_hash, status, expires_at, created_at, responded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(inv.id.0)
    .bind(inv.email.as_str())
    .bind(inv.role_id.0)
    .bind(partner.map(|p| p.0))
    .bind(org.map(|o| o.0))
    .bind(inv.invited_by.0)
    .bind(&token.0[..])
    .bind(inv.status.as_str())
    .bind(inv.expires_at)
    .bind(inv.created_at)
    .bind(inv.responded_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| on_write(e, "invitation"))?;
    tx.commit().await?;
    Ok(())
}

/// An invitation by its token's hash (system path).
pub(super) async fn by_token(pool: &PgPool, token: SecretHash) -> Result<Option<Invitation>> {
    let mut tx = system_tx(pool).await?;
    let row: Option<InvitationRow> = sqlx::query_as(SELECT)
        .bind(&token.0[..])
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    row.map(InvitationRow::into_model).transpose()
}

/// Locks an open invitation for answering.
async fn lock_open(
    tx: &mut PgConnection,
    token: SecretHash,
    now: DateTime<Utc>,
) -> Result<Invitation> {
    let row: Option<InvitationRow> = sqlx::query_as(&format!("{SELECT} FOR UPDATE"))
        .bind(&token.0[..])
        .fetch_optional(tx)
        .await?;
    let inv = row
        .ok_or(CoreError::not_found("invitation"))?
        .into_model()?;
    inv.check_open(now)?;
    Ok(inv)
}

async fn close(
    tx: &mut PgConnection,
    inv: &mut Invitation,
    status: InvitationStatus,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query("UPDATE invitations SET status = $2, responded_at = $3 WHERE id = $1")
        .bind(inv.id.0)
        .bind(status.as_str())
        .bind(now)
        .execute(tx)
        .await?;
    inv.status = status;
    inv.responded_at = Some(now);
    Ok(())
}

/// Accepts an open invitation: stores `user` and closes the invitation in
/// one transaction, under the invitation's row lock (system path).
#[tracing::instrument(skip_all, fields(user.id = %user.id))]
pub(super) async fn accept(
    pool: &PgPool,
    token: SecretHash,
    user: &User,
    password_hash: &str,
    now: DateTime<Utc>,
) -> Result<User> {
    let mut tx = system_tx(pool).await?;
    let mut inv = lock_open(&mut tx, token, now).await?;
    inv.check_fits(user)?;
    insert_unchecked(&mut tx, user, Some(password_hash)).await?;
    close(&mut tx, &mut inv, InvitationStatus::Accepted, now).await?;
    let user = reread(&mut tx, user.id).await?;
    tx.commit().await?;
    Ok(user)
}

/// Declines an open invitation (system path).
#[tracing::instrument(skip_all)]
pub(super) async fn decline(
    pool: &PgPool,
    token: SecretHash,
    now: DateTime<Utc>,
) -> Result<Invitation> {
    let mut tx = system_tx(pool).await?;
    let mut inv = lock_open(&mut tx, token, now).await?;
    close(&mut tx, &mut inv, InvitationStatus::Declined, now).await?;
    tx.commit().await?;
    Ok(inv)
}
