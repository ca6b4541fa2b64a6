//! Onboarding through the service: invitations, their acceptance and
//! refusal (seed 6.2).

use super::{Tenancy, refused};
use crate::error::{CoreError, Result};
use crate::id::InvitationId;
use crate::invitation::{
    Acceptance, DEFAULT_INVITATION_TTL, Invitation, InvitationStatus, InvitationTarget,
    NewInvitation, PasswordHasher,
};
use crate::model::{NewUser, User};
use crate::principal::Principal;
use crate::rules::may_create_user;
use crate::secret::Secret;
use crate::store::Target;

impl Tenancy {
    // ----- onboarding --------------------------------------------------

    /// Invites someone to an existing partner company or organization
    /// (seed 6.2). Returns the invitation and its token, which is shown
    /// only now (to be mailed); only its hash is stored.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for a target that does not exist (or is out
    /// of scope), [`CoreError::Denied`] as for creating that user,
    /// [`CoreError::AlreadyExists`] when the email already has an account.
    pub async fn invite(
        &self,
        who: &Principal,
        new: NewInvitation,
    ) -> Result<(Invitation, Secret)> {
        let (target, entity) = match new.target {
            InvitationTarget::PartnerCompany(p) => (Target::PartnerCompany(p), "partner company"),
            InvitationTarget::Organization(o) => (Target::Organization(o), "organization"),
        };
        let placement = self.check(who, "create_invitation", target, entity).await?;
        let role = self.store.role(&who.scope(), new.role_id).await?;
        may_create_user(who, &role, &placement).map_err(refused(entity))?;
        if self.store.credentials(&new.email).await?.is_some() {
            return Err(CoreError::AlreadyExists {
                entity: "user",
                detail: format!("email {}", new.email),
            });
        }
        let token = Secret::generate()?;
        let now = self.now();
        let invitation = Invitation {
            id: InvitationId::new(),
            email: new.email,
            role_id: new.role_id,
            target: new.target,
            invited_by: who.user_id,
            token_hash: Some(token.hash()),
            status: InvitationStatus::Pending,
            expires_at: now + DEFAULT_INVITATION_TTL,
            created_at: now,
            responded_at: None,
        };
        self.wrote(
            self.store
                .insert_invitation(&who.scope(), &invitation)
                .await,
        )?;
        Ok((invitation, token))
    }

    /// Accepts an invitation: creates the user with the invited role and
    /// the chosen password, and closes the invitation, in one step.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for an unknown token,
    /// [`CoreError::InvitationClosed`], [`CoreError::Password`] when the
    /// password is refused, [`CoreError::AlreadyExists`].
    pub async fn accept_invitation(
        &self,
        token: &Secret,
        answer: Acceptance,
        hasher: &dyn PasswordHasher,
    ) -> Result<User> {
        let invitation = self
            .store
            .invitation_by_token(token.hash())
            .await?
            .ok_or(CoreError::not_found("invitation"))?;
        invitation.check_open(self.now())?;
        let (partner, org) = match invitation.target {
            InvitationTarget::PartnerCompany(p) => (Some(p), None),
            InvitationTarget::Organization(o) => (None, Some(o)),
        };
        let placement = self.placement(partner, org).await?;
        let user = NewUser {
            email: invitation.email.clone(),
            first_name: answer.first_name,
            last_name: answer.last_name,
            role_id: invitation.role_id,
            partner_company_id: partner,
            organization_id: org,
        }
        .build(placement.partner_company_id, true, self.now())?;
        let hash = hasher.hash_password(&answer.password).await?;
        self.wrote(
            self.store
                .accept_invitation(token.hash(), &user, &hash, self.now())
                .await,
        )
    }

    /// Declines an open invitation.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for an unknown token, [`CoreError::InvitationClosed`].
    pub async fn decline_invitation(&self, token: &Secret) -> Result<Invitation> {
        self.wrote(
            self.store
                .decline_invitation(token.hash(), self.now())
                .await,
        )
    }
}
