//! Invitations in memory; accepting one creates its user in the same
//! step.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryTenancyStore;
use super::state::fresh;
use crate::error::{CoreError, Result};
use crate::invitation::{Invitation, InvitationStatus, InvitationTarget};
use crate::model::User;
use crate::principal::Scope;
use crate::secret::SecretHash;
use crate::store::{InvitationStore, Target};

#[async_trait]
impl InvitationStore for MemoryTenancyStore {
    async fn insert_invitation(&self, scope: &Scope, invitation: &Invitation) -> Result<()> {
        let Some(token) = invitation.token_hash else {
            return Err(CoreError::invalid(
                "token",
                "an invitation needs its token's hash",
            ));
        };
        let mut st = self.state()?;
        let org = match invitation.target {
            InvitationTarget::PartnerCompany(p) => {
                st.require(scope, Target::PartnerCompany(p), "partner company")?;
                None
            }
            InvitationTarget::Organization(o) => {
                st.require(scope, Target::Organization(o), "organization")?;
                Some(o)
            }
        };
        st.check_role(invitation.role_id, org)?;
        fresh(&st.invitations, &invitation.id, "invitation")?;
        if st.invitation_by_token(token).is_some() {
            return Err(CoreError::AlreadyExists {
                entity: "invitation",
                detail: "a unique value is already in use".to_owned(),
            });
        }
        st.invitations.insert(invitation.id, invitation.clone());
        Ok(())
    }

    async fn invitation_by_token(&self, token: SecretHash) -> Result<Option<Invitation>> {
        Ok(self.state()?.invitation_by_token(token).map(|i| i.clone()))
    }

    async fn accept_invitation(
        &self,
        token: SecretHash,
        user: &User,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<User> {
        let mut st = self.state()?;
        let invitation = st
            .invitation_by_token(token)
            .ok_or(CoreError::not_found("invitation"))?;
        invitation.check_open(now)?;
        invitation.check_fits(user)?;
        st.insert_user(user, Some(password_hash))?;
        if let Some(inv) = st.invitation_by_token(token) {
            inv.status = InvitationStatus::Accepted;
            inv.responded_at = Some(now);
        }
        st.users
            .get(&user.id)
            .map(|(u, _)| u.clone())
            .ok_or(CoreError::not_found("user"))
    }

    async fn decline_invitation(
        &self,
        token: SecretHash,
        now: DateTime<Utc>,
    ) -> Result<Invitation> {
        let mut st = self.state()?;
        let invitation = st
            .invitation_by_token(token)
            .ok_or(CoreError::not_found("invitation"))?;
        invitation.check_open(now)?;
        invitation.status = InvitationStatus::Declined;
        invitation.responded_at = Some(now);
        Ok(invitation.clone())
    }
}
