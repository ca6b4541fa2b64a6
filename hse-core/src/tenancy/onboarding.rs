//! Onboarding through the service: invitations, their acceptance and
//! refusal.

use super::{Tenancy, refused};
use crate::error::{CoreError, Result};
use crate::id::{InvitationId, UserId};
use crate::invitation::{
    Acceptance, DEFAULT_INVITATION_TTL, Invitation, InvitationStatus, InvitationTarget,
    NewInvitation, PasswordHasher,
};
use crate::model::{NewUser, User};
use crate::principal::Principal;
use crate::rules::may_create_user;
use crate::secret::Secret;
use crate::store::Target;
use crate::value::Email;

impl Tenancy {
    // ----- onboarding --------------------------------------------------

    /// Invites someone to an existing partner company or organization.
    /// Returns the invitation and its token, which is shown
    /// only now (to be mailed); only its hash is stored.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for a target that does not exist (or is out
    /// of scope), [`CoreError::Denied`] as for creating that user,
    /// [`CoreError::AlreadyExists`] when the email belongs to an account
    /// the inviter can see. An account outside the inviter's scope is not
    /// revealed: the invitation is issued exactly as for a fresh email, and
    /// the clash is answered only to whoever accepts it.
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
        self.issue_invitation(who, new).await
    }

    /// Issues an invitation whose target and role were authorized: a clear
    /// [`CoreError::AlreadyExists`] when the email belongs to an account
    /// `who` can see, and otherwise the same work and the same answer
    /// whether the email is fresh or taken outside `who`'s scope.
    pub(super) async fn issue_invitation(
        &self,
        who: &Principal,
        new: NewInvitation,
    ) -> Result<(Invitation, Secret)> {
        if self.visible_account(who, &new.email).await? {
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
    /// password is refused, [`CoreError::AlreadyExists`] when the email has
    /// an account by now (the invitation stays open; the answer names no
    /// tenant).
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
        let accepted = self
            .store
            .accept_invitation(token.hash(), &user, &hash, self.now())
            .await;
        self.wrote(accepted.map_err(|e| match e {
            CoreError::AlreadyExists { entity: "user", .. } => CoreError::AlreadyExists {
                entity: "user",
                detail: "this email already has an account: sign in with it instead".into(),
            },
            other => other,
        }))
    }

    /// Whether `email` belongs to an account `who` can see. The same two
    /// reads run whether the email is taken or not (a fresh id is looked
    /// up when it is not), so neither the answer nor its cost tells about
    /// accounts outside `who`'s scope.
    pub(super) async fn visible_account(&self, who: &Principal, email: &Email) -> Result<bool> {
        let id = self
            .store
            .credentials(email)
            .await?
            .map_or_else(UserId::new, |c| c.user.id);
        match self.store.user(&who.scope(), id).await {
            Ok(_) => Ok(true),
            Err(CoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
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
