//! Users and roles through the service.

use std::collections::BTreeSet;

use super::{Tenancy, refused};
use crate::error::{CoreError, Result};
use crate::id::{EstablishmentId, OrganizationId, PartnerCompanyId, RoleId, UserId};
use crate::invitation::{Invitation, InvitationTarget, NewInvitation};
use crate::model::{NewUser, User, UserPatch};
use crate::principal::{Principal, Resource, Scope};
use crate::role::{NewRole, PermissionGrant, Role};
use crate::rules::{may_create_role, may_create_user, may_manage_user};
use crate::secret::Secret;
use crate::store::{Listing, Page, Target};

/// What [`Tenancy::create_user`] came to.
#[derive(Debug)]
pub enum UserCreation {
    /// The account exists now: its creator's scope is the whole platform.
    Created(User),
    /// An invitation to the same role and place, issued to a caller scoped
    /// below the platform whatever the email, so that the answer tells
    /// nothing about accounts outside its scope.
    Invited {
        /// The invitation, pending.
        invitation: Invitation,
        /// Its token, shown only now, for the caller to deliver.
        token: Secret,
    },
}

impl UserCreation {
    /// The user, when the account was created at once.
    #[must_use]
    pub fn into_user(self) -> Option<User> {
        match self {
            Self::Created(user) => Some(user),
            Self::Invited { .. } => None,
        }
    }
}

/// Whether [`Tenancy::create_user`] creates `who`'s users at once (its
/// scope is the whole platform, so no account is hidden from it) rather
/// than inviting them.
#[must_use]
pub fn creates_accounts_at_once(who: &Principal) -> bool {
    who.scope() == Scope::Platform
}

/// The refusal of an initial password from a caller who invites.
#[must_use]
pub fn password_refused() -> CoreError {
    CoreError::invalid(
        "password",
        "only a platform-wide caller sets an initial password: below the platform the user is invited and chooses their own",
    )
}

impl Tenancy {
    // ----- users -------------------------------------------------------

    /// Where a new user with this tenancy would be placed.
    pub(super) async fn placement(
        &self,
        partner: Option<PartnerCompanyId>,
        org: Option<OrganizationId>,
    ) -> Result<Resource> {
        match (partner, org) {
            (_, Some(o)) => self
                .locate(Target::Organization(o))
                .await?
                .ok_or(CoreError::not_found("organization")),
            (Some(p), None) => self
                .locate(Target::PartnerCompany(p))
                .await?
                .ok_or(CoreError::not_found("partner company")),
            (None, None) => Ok(Resource::platform()),
        }
    }

    /// Creates a user (only root, partner and admin, with roles at or
    /// below their own, inside their scope).
    ///
    /// A caller whose scope is the whole platform (root) creates the
    /// account at once, with `password_hash` from a
    /// [`PasswordHasher`](crate::invitation::PasswordHasher) if given.
    /// Every other caller is answered with an invitation to the same role
    /// and place instead, whatever the email: emails are unique across the
    /// platform, so an account created at once would tell the caller that
    /// an email is taken in a tenant it cannot see. The invitee chooses a
    /// password at acceptance, where a clash is told to the token holder
    /// only, naming no tenant (see [`Tenancy::invite`]).
    ///
    /// # Errors
    /// [`CoreError::Denied`] naming the rule, [`CoreError::NotFound`],
    /// [`CoreError::AlreadyExists`] for an email whose account the caller
    /// can see, [`CoreError::Invalid`] for bad names, or for a password
    /// from a caller who does not create accounts at once.
    pub async fn create_user(
        &self,
        who: &Principal,
        new: NewUser,
        password_hash: Option<&str>,
    ) -> Result<UserCreation> {
        let placement = self
            .placement(new.partner_company_id, new.organization_id)
            .await?;
        let role = self.store.role(&who.scope(), new.role_id).await?;
        may_create_user(who, &role, &placement).map_err(refused("organization"))?;
        let user = new.build(placement.partner_company_id, false, self.now())?;
        if !creates_accounts_at_once(who) {
            if password_hash.is_some() {
                return Err(password_refused());
            }
            return self.invite_instead(who, user).await;
        }
        self.wrote(
            self.store
                .insert_user(&who.scope(), &user, password_hash)
                .await,
        )?;
        Ok(UserCreation::Created(user))
    }

    /// The invitation [`Tenancy::create_user`] answers a scoped caller with.
    async fn invite_instead(&self, who: &Principal, user: User) -> Result<UserCreation> {
        let target = match (user.organization_id, user.partner_company_id) {
            (Some(o), _) => InvitationTarget::Organization(o),
            (None, Some(p)) => InvitationTarget::PartnerCompany(p),
            (None, None) => return Err(CoreError::not_found("organization")),
        };
        let new = NewInvitation {
            email: user.email,
            role_id: user.role_id,
            target,
        };
        let (invitation, token) = self.issue_invitation(who, new).await?;
        Ok(UserCreation::Invited { invitation, token })
    }

    /// One user.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] (also outside the scope) or [`CoreError::Denied`].
    pub async fn user(&self, who: &Principal, id: UserId) -> Result<User> {
        self.check(who, "read_user", Target::User(id), "user")
            .await?;
        self.store.user(&who.scope(), id).await
    }

    /// Users the principal can see.
    ///
    /// # Errors
    /// [`CoreError::Denied`] without `read_user`.
    pub async fn users(&self, who: &Principal, page: Page) -> Result<Listing<User>> {
        Self::check_list(who, "read_user")?;
        self.store.list_users(&who.scope(), page).await
    }

    /// May `who` manage `target`, another user it sees? Its rank must be
    /// at or below `who`'s and its establishments all `who`'s own
    /// ([`may_manage_user`]); the target's rank and assignments are read
    /// whole, not through `who`'s scope, so a hidden establishment counts.
    pub(super) async fn check_manages(&self, who: &Principal, target: &User) -> Result<()> {
        let role = self.store.role(&Scope::Platform, target.role_id).await?;
        let held: BTreeSet<EstablishmentId> = self
            .store
            .assignments(&Scope::Platform, target.id)
            .await?
            .into_iter()
            .map(|a| a.establishment_id)
            .collect();
        may_manage_user(who, role.hierarchy, &held)?;
        Ok(())
    }

    /// Updates a user's names or activity; deactivating needs
    /// `delete_user`. Another user is changed only if `who` may manage
    /// them: rank at or below, establishments within `who`'s own.
    ///
    /// # Errors
    /// As [`Tenancy::user`], plus [`CoreError::Invalid`], and
    /// [`CoreError::Denied`] ([`crate::Denied::RoleAboveCreator`] or
    /// [`crate::Denied::EstablishmentsNotHeld`]) for a user out of reach.
    pub async fn update_user(&self, who: &Principal, id: UserId, patch: UserPatch) -> Result<User> {
        if who.user_id == id && patch.is_active == Some(false) {
            return Err(CoreError::invalid(
                "is_active",
                "you cannot deactivate yourself",
            ));
        }
        let needed = if patch.is_active.is_some() {
            "delete_user"
        } else {
            "update_user"
        };
        self.check(who, needed, Target::User(id), "user").await?;
        let target = self.store.user(&who.scope(), id).await?;
        if who.user_id != id {
            self.check_manages(who, &target).await?;
        }
        self.wrote(
            self.store
                .update_user(&who.scope(), id, patch, self.now())
                .await,
        )
    }

    // ----- roles -------------------------------------------------------

    /// Creates a custom role.
    ///
    /// # Errors
    /// [`CoreError::Denied`] naming the rule broken, [`CoreError::NotFound`],
    /// [`CoreError::Invalid`].
    pub async fn create_role(&self, who: &Principal, new: NewRole) -> Result<Role> {
        let target = match new.establishment_id {
            Some(e) => Target::Establishment(e),
            None => Target::Organization(new.organization_id),
        };
        let placement = self
            .locate(target)
            .await?
            .ok_or(CoreError::not_found("organization"))?;
        if placement.organization_id != Some(new.organization_id) {
            return Err(CoreError::not_found("establishment"));
        }
        may_create_role(who, &new, &placement).map_err(refused("organization"))?;
        let role = Role {
            id: RoleId::new(),
            name: crate::value::text("name", &new.name, 100)?,
            description: crate::value::optional_text("description", &new.description, 500)?,
            hierarchy: new.hierarchy,
            organization_id: Some(new.organization_id),
            establishment_id: new.establishment_id,
            created_by: Some(who.user_id),
            permissions: new.permissions,
            created_at: self.now(),
        };
        self.wrote(self.store.insert_role(&who.scope(), &role).await)?;
        Ok(role)
    }

    /// One role (system roles are visible to everyone).
    ///
    /// # Errors
    /// [`CoreError::NotFound`] (also outside the scope) or [`CoreError::Denied`].
    pub async fn role(&self, who: &Principal, id: RoleId) -> Result<Role> {
        Self::check_list(who, "read_role")?;
        self.store.role(&who.scope(), id).await
    }

    /// System roles and the custom roles the principal can see.
    ///
    /// # Errors
    /// [`CoreError::Denied`] without `read_role`.
    pub async fn roles(&self, who: &Principal, page: Page) -> Result<Listing<Role>> {
        Self::check_list(who, "read_role")?;
        self.store.list_roles(&who.scope(), page).await
    }

    /// Who granted each permission of a role, and when.
    ///
    /// # Errors
    /// As [`Tenancy::role`].
    pub async fn permission_grants(
        &self,
        who: &Principal,
        id: RoleId,
    ) -> Result<Vec<PermissionGrant>> {
        Self::check_list(who, "read_role")?;
        self.store.permission_grants(&who.scope(), id).await
    }

    /// Deletes a custom role nobody holds.
    ///
    /// # Errors
    /// As [`Tenancy::role`], plus [`CoreError::InUse`], and
    /// [`CoreError::Invalid`] for a system role.
    pub async fn delete_role(&self, who: &Principal, id: RoleId) -> Result<()> {
        self.check(who, "delete_role", Target::Role(id), "role")
            .await?;
        self.wrote(self.store.delete_role(&who.scope(), id).await)
    }
}
