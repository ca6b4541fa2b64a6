//! Onboarding by invitation.
//!
//! An invitation can only exist for a partner company or organization that
//! already exists. Its token is a [`Secret`](crate::secret::Secret) mailed to the invitee and kept
//! only as a hash; it expires (7 days by default) and is answered once:
//! accepting creates the user, with the invited role and the password the
//! invitee chose, in the same step that closes the invitation.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::id::{InvitationId, OrganizationId, PartnerCompanyId, RoleId, UserId};
use crate::secret::SecretHash;
use crate::value::Email;

/// How long an invitation stays open by default.
pub const DEFAULT_INVITATION_TTL: Duration = Duration::days(7);

/// What the invitee will belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum InvitationTarget {
    /// Join a partner company (as a partner).
    PartnerCompany(PartnerCompanyId),
    /// Join an organization (as an admin, user or custom role).
    Organization(OrganizationId),
}

/// Where an invitation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum InvitationStatus {
    /// Waiting for an answer.
    Pending,
    /// Accepted: the user exists.
    Accepted,
    /// Declined.
    Declined,
}

impl InvitationStatus {
    /// The status as stored.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Declined => "declined",
        }
    }

    /// Parses a stored status.
    ///
    /// # Errors
    /// [`CoreError::Storage`] for an unknown value.
    pub fn parse(value: &str) -> Result<Self, CoreError> {
        match value {
            "pending" => Ok(Self::Pending),
            "accepted" => Ok(Self::Accepted),
            "declined" => Ok(Self::Declined),
            other => Err(CoreError::Storage(format!(
                "unknown invitation status `{other}`"
            ))),
        }
    }
}

/// An invitation to join the platform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Invitation {
    /// Its id.
    pub id: InvitationId,
    /// Who is invited.
    pub email: Email,
    /// The role the user will get.
    pub role_id: RoleId,
    /// What the user will belong to.
    pub target: InvitationTarget,
    /// Who invited.
    pub invited_by: UserId,
    /// SHA-256 of the token; the token itself is never stored.
    #[serde(skip)]
    pub token_hash: Option<SecretHash>,
    /// Where it stands.
    pub status: InvitationStatus,
    /// After this instant it can no longer be answered.
    pub expires_at: DateTime<Utc>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was answered.
    pub responded_at: Option<DateTime<Utc>>,
}

impl Invitation {
    /// Whether `user` is the account this invitation offers: its email, its
    /// role, and its placement (the partner company or organization).
    ///
    /// # Errors
    /// [`CoreError::Invalid`] naming `user` otherwise.
    pub fn check_fits(&self, user: &crate::model::User) -> Result<(), CoreError> {
        let placed = match self.target {
            InvitationTarget::Organization(o) => user.organization_id == Some(o),
            InvitationTarget::PartnerCompany(p) => {
                user.organization_id.is_none() && user.partner_company_id == Some(p)
            }
        };
        if placed && user.role_id == self.role_id && user.email == self.email {
            return Ok(());
        }
        Err(CoreError::invalid(
            "user",
            "must have the invitation's email, role and placement",
        ))
    }

    /// Whether it can still be answered at `now`.
    ///
    /// # Errors
    /// [`CoreError::InvitationClosed`] naming why not.
    pub fn check_open(&self, now: DateTime<Utc>) -> Result<(), CoreError> {
        match self.status {
            InvitationStatus::Accepted => Err(CoreError::InvitationClosed { state: "accepted" }),
            InvitationStatus::Declined => Err(CoreError::InvitationClosed { state: "declined" }),
            InvitationStatus::Pending if now >= self.expires_at => {
                Err(CoreError::InvitationClosed { state: "expired" })
            }
            InvitationStatus::Pending => Ok(()),
        }
    }
}

/// Input to invite someone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewInvitation {
    /// Who to invite.
    pub email: Email,
    /// The role to give.
    pub role_id: RoleId,
    /// What to join.
    pub target: InvitationTarget,
}

/// The invitee's answer when accepting.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Acceptance {
    /// Given name.
    pub first_name: String,
    /// Family name.
    #[serde(default)]
    pub last_name: String,
    /// The chosen password, handed to the [`PasswordHasher`].
    pub password: String,
}

impl std::fmt::Debug for Acceptance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptance")
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .finish_non_exhaustive()
    }
}

/// The port through which a password becomes a stored hash. hse-auth
/// implements it with Argon2id and its password policy.
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// Checks the password against policy and returns its PHC string.
    ///
    /// # Errors
    /// [`CoreError::Password`] when the password is refused (the text is
    /// shown to the user) or hashing failed.
    async fn hash_password(&self, password: &str) -> Result<String, CoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invitation(status: InvitationStatus, expires_at: DateTime<Utc>) -> Invitation {
        Invitation {
            id: InvitationId::new(),
            email: Email::parse("a@b.co").unwrap(),
            role_id: RoleId::new(),
            target: InvitationTarget::Organization(OrganizationId::new()),
            invited_by: UserId::new(),
            token_hash: None,
            status,
            expires_at,
            created_at: expires_at - DEFAULT_INVITATION_TTL,
            responded_at: None,
        }
    }

    #[test]
    fn a_pending_invitation_is_open_until_it_expires() {
        let now = Utc::now();
        assert!(
            invitation(InvitationStatus::Pending, now + Duration::seconds(1))
                .check_open(now)
                .is_ok()
        );
        assert!(matches!(
            invitation(InvitationStatus::Pending, now).check_open(now),
            Err(CoreError::InvitationClosed { state: "expired" })
        ));
    }

    #[test]
    fn an_answered_invitation_is_closed() {
        let later = Utc::now() + Duration::days(1);
        for (status, state) in [
            (InvitationStatus::Accepted, "accepted"),
            (InvitationStatus::Declined, "declined"),
        ] {
            assert!(matches!(
                invitation(status, later).check_open(Utc::now()),
                Err(CoreError::InvitationClosed { state: s }) if s == state
            ));
        }
    }

    #[test]
    fn acceptance_debug_hides_the_password() {
        let a = Acceptance {
            first_name: "Ana".into(),
            last_name: String::new(),
            password: "hunter2hunter2".into(),
        };
        assert!(!format!("{a:?}").contains("hunter2"));
    }
}
