//! Shared set-up: stores, principals and a stand-in password hasher.

use std::sync::Arc;

use async_trait::async_trait;
use hse_core::invitation::PasswordHasher;
use hse_core::memory::MemoryTenancyStore;
use hse_core::model::{NewEstablishment, NewOrganization, NewPartnerCompany, NewUser};
use hse_core::value::{Email, Metadata, Timezone};
use hse_core::{
    CoreError, OrganizationId, PartnerCompanyId, Principal, Scope, SystemRole, Tenancy,
    TenancyStore, User,
};

/// A fresh in-memory store.
pub(crate) fn memory() -> Arc<dyn TenancyStore> {
    Arc::new(MemoryTenancyStore::new())
}

/// A PostgreSQL store on a migrated test database.
pub(crate) async fn postgres(pool: sqlx::PgPool) -> Arc<dyn TenancyStore> {
    hse_core::postgres::migrate(&pool)
        .await
        .expect("migrations apply");
    // As the application role, so row-level security is exercised too.
    let app = hse_core::postgres::app_pool(&pool, 4)
        .await
        .expect("the application role connects");
    Arc::new(hse_core::postgres::PgTenancyStore::new(app))
}

/// Inserts a user directly (system set-up) and returns its principal.
pub(crate) async fn user(
    store: &Arc<dyn TenancyStore>,
    role: SystemRole,
    partner: Option<PartnerCompanyId>,
    org: Option<OrganizationId>,
) -> (User, Principal) {
    let new = NewUser {
        email: Email::parse(&format!("{}@example.com", uuid::Uuid::new_v4())).unwrap(),
        first_name: role.name().into(),
        last_name: String::new(),
        role_id: role.id(),
        partner_company_id: if org.is_some() { None } else { partner },
        organization_id: org,
    };
    let user = new.build(partner, true, chrono::Utc::now()).unwrap();
    store
        .insert_user(&Scope::Platform, &user, None)
        .await
        .unwrap();
    let principal = store.principal(user.id).await.unwrap();
    (user, principal)
}

/// The root principal and a service.
pub(crate) async fn root(store: &Arc<dyn TenancyStore>) -> (Tenancy, Principal) {
    let (_, root) = user(store, SystemRole::Root, None, None).await;
    (Tenancy::new(store.clone()), root)
}

/// Stands in for hse-auth's Argon2id hasher: refuses short passwords and
/// marks the "hash" so tests can tell it was applied.
#[derive(Debug)]
pub(crate) struct FakeHasher;

#[async_trait]
impl PasswordHasher for FakeHasher {
    async fn hash_password(&self, password: &str) -> Result<String, CoreError> {
        if password.chars().count() < 8 {
            return Err(CoreError::Password("at least 8 characters".into()));
        }
        Ok(format!("fake${}", password.len()))
    }
}

/// A partner company created by root.
pub(crate) async fn partner_company(t: &Tenancy, root: &Principal) -> PartnerCompanyId {
    let new = NewPartnerCompany {
        name: "Resells Ltd".into(),
        ..Default::default()
    };
    t.create_partner_company(root, new).await.unwrap().id
}

/// An organization created by `who`, under `partner` if given.
pub(crate) async fn organization(
    t: &Tenancy,
    who: &Principal,
    partner: Option<PartnerCompanyId>,
) -> OrganizationId {
    let new = NewOrganization {
        partner_company_id: partner,
        name: "Hotels SA".into(),
        ..Default::default()
    };
    t.create_organization(who, new).await.unwrap().id
}

/// The input of a hotel in `org`.
pub(crate) fn new_establishment(org: OrganizationId) -> NewEstablishment {
    NewEstablishment {
        organization_id: org,
        name: "Hotel Sol".into(),
        address: String::new(),
        location: None,
        timezone: Timezone::parse("Europe/Madrid").unwrap(),
        metadata: Metadata::default(),
    }
}
