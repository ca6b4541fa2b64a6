//! The tenancy service: the one entry point that applies the rules.
//!
//! Every method takes the acting [`Principal`], checks it with
//! [`authorize`] and the creation rules of [`crate::rules`], and only then
//! calls the [`TenancyStore`] with the principal's [`Scope`](crate::Scope). A target in
//! another tenant is reported as `NotFound`, exactly like a missing one.
//! Servers and embedding services call this; they never need to call the
//! store directly for tenant data.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::action::{Action, ActionName, catalogue};
use crate::cache::{Revision, RevisionCache};
use crate::clock::{Clock, SystemClock};
use crate::error::{CoreError, Result};
use crate::id::{OrganizationId, PartnerCompanyId, UserId};
use crate::model::{
    NewOrganization, NewPartnerCompany, Organization, OrganizationPatch, PartnerCompany,
    PartnerCompanyPatch,
};
use crate::principal::{Principal, Resource};
use crate::rules::{Denied, authorize, may_change_suspension};
use crate::store::{Listing, Page, Target, TenancyStore};

mod onboarding;
mod places;
mod suspension;
mod users;

pub use suspension::Suspended;
pub use users::{UserCreation, creates_accounts_at_once, password_refused};

/// The tenancy service. Cheap to clone; clones share the write
/// [`Revision`] and the placement cache.
///
/// It runs over a [`TenancyStore`]: [`crate::MemoryTenancyStore`] to try it or in
/// tests, `hse_core::postgres::PgTenancyStore` (feature `postgres`) in
/// production. Every call takes the caller's [`Principal`], which
/// [`Tenancy::principal`] loads for a user. The first one, the platform's
/// root, is a user inserted once at [`Scope::Platform`](crate::Scope::Platform) (`hse-server
/// bootstrap-root` does the same), then loaded like any other:
///
/// ```
/// use std::sync::Arc;
///
/// use hse_core::value::Email;
/// use hse_core::{MemoryTenancyStore, NewOrganization, NewUser, Scope, SystemRole, Tenancy};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> hse_core::Result<()> {
/// let tenancy = Tenancy::new(Arc::new(MemoryTenancyStore::new()));
/// let root = NewUser {
///     email: Email::parse("root@partner.example")?,
///     first_name: "Root".into(),
///     last_name: String::new(),
///     role_id: SystemRole::Root.id(),
///     partner_company_id: None,
///     organization_id: None,
/// }
/// .build(None, true, chrono::Utc::now())?;
/// tenancy.store().insert_user(&Scope::Platform, &root, None).await?;
/// let root = tenancy.principal(root.id).await?;
///
/// let org = NewOrganization { name: "Hoteles del Sol".into(), ..Default::default() };
/// let org = tenancy.create_organization(&root, org).await?;
/// assert_eq!(org.name, "Hoteles del Sol");
/// # Ok(())
/// # }
/// ```
///
/// `examples/embed_sdk.rs` goes on from there: an admin, a hotel, a room
/// and its door lock, then bookings over the same store.
#[derive(Clone, Debug)]
pub struct Tenancy {
    store: Arc<dyn TenancyStore>,
    clock: Arc<dyn Clock>,
    revision: Revision,
    placements: Arc<RevisionCache<Target, Resource>>,
}

/// How many placements one process keeps.
const PLACEMENTS: usize = 65_536;

/// Turns a refusal into the error a caller sees: out of scope is "not found".
fn refused(entity: &'static str) -> impl FnOnce(Denied) -> CoreError {
    move |denied| match denied {
        Denied::OutOfScope => CoreError::not_found(entity),
        other => CoreError::Denied(other),
    }
}

impl Tenancy {
    /// A service over `store`, on the system clock.
    #[must_use]
    pub fn new(store: Arc<dyn TenancyStore>) -> Self {
        Self::with_clock(store, Arc::new(SystemClock))
    }

    /// A service over `store` on `clock` (tests).
    #[must_use]
    pub fn with_clock(store: Arc<dyn TenancyStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            revision: Revision::new(),
            placements: Arc::new(RevisionCache::new(PLACEMENTS, Duration::zero())),
        }
    }

    /// Keeps where things live in the tenant tree for up to `ttl` (zero,
    /// the default, reads it for every check). Writes through this service
    /// (and its clones) retire the cache at once; `ttl` bounds how late a
    /// change made elsewhere (another process, the store directly) is seen.
    #[must_use]
    pub fn with_placement_cache(mut self, ttl: Duration) -> Self {
        self.placements = Arc::new(RevisionCache::new(PLACEMENTS, ttl));
        self
    }

    /// The count of writes made through this service, for caches of
    /// answers those writes may change (e.g. principals in hse-auth).
    #[must_use]
    pub fn revision(&self) -> Revision {
        self.revision.clone()
    }

    /// The underlying store, for system paths (sign-in, device hello).
    #[must_use]
    pub fn store(&self) -> &Arc<dyn TenancyStore> {
        &self.store
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Counts a write (whatever its outcome: a failed one changed nothing,
    /// and counting it only retires cached answers early) and passes its
    /// result on.
    fn wrote<T>(&self, result: Result<T>) -> Result<T> {
        self.revision.bump();
        result
    }

    /// Where `target` lives in the tenant tree, or `None` if it does not
    /// exist. *System path*: answers are cached as
    /// [`Tenancy::with_placement_cache`] says.
    ///
    /// # Errors
    /// [`CoreError::Storage`] when the store fails.
    pub async fn locate(&self, target: Target) -> Result<Option<Resource>> {
        let now = self.now();
        let revision = self.revision.current();
        if let Some(resource) = self.placements.get(&target, now, revision) {
            return Ok(Some(resource));
        }
        let found = self.store.locate(target).await?;
        if let Some(resource) = &found {
            self.placements.insert(target, *resource, now, revision);
        }
        Ok(found)
    }

    /// Authorizes `name` on `target`, returning where it lives.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] naming `entity` when the target is absent or
    /// outside the principal's scope; [`CoreError::Denied`] without the
    /// permission there.
    pub async fn authorize(
        &self,
        who: &Principal,
        action: &ActionName,
        target: Target,
        entity: &'static str,
    ) -> Result<Resource> {
        let resource = self
            .locate(target)
            .await?
            .ok_or(CoreError::not_found(entity))?;
        authorize(who, action, &resource).map_err(refused(entity))?;
        Ok(resource)
    }

    /// [`Tenancy::authorize`] for an action named in this file.
    async fn check(
        &self,
        who: &Principal,
        name: &str,
        target: Target,
        entity: &'static str,
    ) -> Result<Resource> {
        self.authorize(who, &ActionName::known(name), target, entity)
            .await
    }

    /// Lists need the read permission somewhere (role-wide or in an
    /// assigned establishment); the store then filters by scope.
    fn check_list(who: &Principal, name: &str) -> Result<()> {
        let act = ActionName::known(name);
        let anywhere = who.permissions.contains(&act)
            || who
                .establishments
                .values()
                .any(|extra| extra.contains(&act));
        if anywhere {
            Ok(())
        } else {
            Err(Denied::MissingPermission { action: act }.into())
        }
    }

    /// The principal of an active user. *System path.*
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for an absent or inactive user.
    pub async fn principal(&self, user: UserId) -> Result<Principal> {
        self.store.principal(user).await
    }

    /// The permission catalogue.
    #[must_use]
    pub fn actions(&self) -> &'static [Action] {
        catalogue()
    }

    // ----- partner companies -------------------------------------------

    /// Creates a partner company (root only: `create_partner_company` is
    /// root-exclusive).
    ///
    /// # Errors
    /// [`CoreError::Denied`] or [`CoreError::Invalid`].
    pub async fn create_partner_company(
        &self,
        who: &Principal,
        new: NewPartnerCompany,
    ) -> Result<PartnerCompany> {
        authorize(
            who,
            &ActionName::known("create_partner_company"),
            &Resource::platform(),
        )
        .map_err(refused("partner company"))?;
        let company = new.build(self.now())?;
        self.wrote(
            self.store
                .insert_partner_company(&who.scope(), &company)
                .await,
        )?;
        Ok(company)
    }

    /// One partner company.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] (also outside the scope) or [`CoreError::Denied`].
    pub async fn partner_company(
        &self,
        who: &Principal,
        id: PartnerCompanyId,
    ) -> Result<PartnerCompany> {
        self.check(
            who,
            "read_partner_company",
            Target::PartnerCompany(id),
            "partner company",
        )
        .await?;
        self.store.partner_company(&who.scope(), id).await
    }

    /// Partner companies the principal can see.
    ///
    /// # Errors
    /// [`CoreError::Denied`] without `read_partner_company`.
    pub async fn partner_companies(
        &self,
        who: &Principal,
        page: Page,
    ) -> Result<Listing<PartnerCompany>> {
        Self::check_list(who, "read_partner_company")?;
        self.store.list_partner_companies(&who.scope(), page).await
    }

    /// Updates a partner company. Its `is_active` (suspension) is root's
    /// alone to change.
    ///
    /// # Errors
    /// As [`Tenancy::partner_company`], plus [`CoreError::Invalid`], and
    /// [`Denied::SuspensionFromAbove`] when a partner touches its own
    /// company's `is_active`.
    pub async fn update_partner_company(
        &self,
        who: &Principal,
        id: PartnerCompanyId,
        patch: PartnerCompanyPatch,
    ) -> Result<PartnerCompany> {
        let resource = self
            .check(
                who,
                "update_partner_company",
                Target::PartnerCompany(id),
                "partner company",
            )
            .await?;
        if patch.is_active.is_some() {
            may_change_suspension(who, &resource)?;
        }
        self.wrote(
            self.store
                .update_partner_company(&who.scope(), id, patch, self.now())
                .await,
        )
    }

    /// Deletes a partner company that nothing refers to any more.
    ///
    /// # Errors
    /// As [`Tenancy::partner_company`], plus [`CoreError::InUse`].
    pub async fn delete_partner_company(
        &self,
        who: &Principal,
        id: PartnerCompanyId,
    ) -> Result<()> {
        self.check(
            who,
            "delete_partner_company",
            Target::PartnerCompany(id),
            "partner company",
        )
        .await?;
        self.wrote(self.store.delete_partner_company(&who.scope(), id).await)
    }

    // ----- organizations -----------------------------------------------

    /// Creates an organization, under a partner company or (root only)
    /// directly under the platform.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for a partner company out of scope,
    /// [`CoreError::Denied`], [`CoreError::Invalid`].
    pub async fn create_organization(
        &self,
        who: &Principal,
        new: NewOrganization,
    ) -> Result<Organization> {
        match new.partner_company_id {
            Some(p) => {
                let parent = Target::PartnerCompany(p);
                self.check(who, "create_organization", parent, "partner company")
                    .await?;
            }
            None => authorize(
                who,
                &ActionName::known("create_organization"),
                &Resource::platform(),
            )
            .map_err(refused("partner company"))?,
        }
        let org = new.build(self.now())?;
        self.wrote(self.store.insert_organization(&who.scope(), &org).await)?;
        Ok(org)
    }

    /// One organization.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] (also outside the scope) or [`CoreError::Denied`].
    pub async fn organization(&self, who: &Principal, id: OrganizationId) -> Result<Organization> {
        self.check(
            who,
            "read_organization",
            Target::Organization(id),
            "organization",
        )
        .await?;
        self.store.organization(&who.scope(), id).await
    }

    /// Organizations the principal can see.
    ///
    /// # Errors
    /// [`CoreError::Denied`] without `read_organization`.
    pub async fn organizations(
        &self,
        who: &Principal,
        page: Page,
    ) -> Result<Listing<Organization>> {
        Self::check_list(who, "read_organization")?;
        self.store.list_organizations(&who.scope(), page).await
    }

    /// Updates an organization. Its `is_active` (suspension) is changed
    /// only from above: by root, or by the partner that runs it.
    ///
    /// # Errors
    /// As [`Tenancy::organization`], plus [`CoreError::Invalid`], and
    /// [`Denied::SuspensionFromAbove`] when the organization's own users
    /// touch its `is_active`.
    pub async fn update_organization(
        &self,
        who: &Principal,
        id: OrganizationId,
        patch: OrganizationPatch,
    ) -> Result<Organization> {
        let resource = self
            .check(
                who,
                "update_organization",
                Target::Organization(id),
                "organization",
            )
            .await?;
        if patch.is_active.is_some() {
            may_change_suspension(who, &resource)?;
        }
        self.wrote(
            self.store
                .update_organization(&who.scope(), id, patch, self.now())
                .await,
        )
    }

    /// Deletes an organization that nothing refers to any more.
    ///
    /// # Errors
    /// As [`Tenancy::organization`], plus [`CoreError::InUse`].
    pub async fn delete_organization(&self, who: &Principal, id: OrganizationId) -> Result<()> {
        self.check(
            who,
            "delete_organization",
            Target::Organization(id),
            "organization",
        )
        .await?;
        self.wrote(self.store.delete_organization(&who.scope(), id).await)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_action_the_service_names_is_in_the_catalogue() {
        let source = [
            include_str!("mod.rs"),
            include_str!("places.rs"),
            include_str!("users.rs"),
            include_str!("onboarding.rs"),
        ]
        .concat();
        let mut checked = 0;
        // Every piece between two quotes, whichever side of a literal it is
        // on: a doc example's strings must not shift which pieces are read.
        for piece in source.split('"') {
            let looks_like_action = piece.contains('_')
                && !piece.ends_with('_')
                && piece.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                && ["create_", "read_", "update_", "delete_", "assign_"]
                    .iter()
                    .any(|p| piece.starts_with(p));
            if looks_like_action {
                assert!(crate::action::find(piece).is_some(), "{piece}");
                checked += 1;
            }
        }
        assert!(checked > 20);
    }
}
