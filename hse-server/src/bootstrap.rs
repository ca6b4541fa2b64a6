//! The first root account: without it nobody can sign in to create the
//! rest of the tenant tree.
//!
//! Idempotent by email: when the account exists nothing changes. The
//! password is either given (`HSE_ROOT_PASSWORD`) or generated, and a
//! generated one is returned so the caller can print it — once.

use anyhow::Context;
use chrono::Utc;
use hse_core::model::NewUser;
use hse_core::store::Page;
use hse_core::value::Email;
use hse_core::{Scope, Secret, SystemRole};

use crate::state::AppState;

/// The email of the root account when none is configured.
pub const DEFAULT_ROOT_EMAIL: &str = "root@hse.local";

/// What bootstrapping did.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// The account already existed; nothing changed.
    AlreadyThere,
    /// The account was created with the given password.
    Created,
    /// The account was created with this generated password.
    CreatedWithPassword(String),
}

/// Whether the tenancy store holds any account at all (an empty database
/// has none, so nobody can sign in until [`bootstrap_root`]).
///
/// # Errors
/// When storage fails.
pub async fn has_accounts(state: &AppState) -> anyhow::Result<bool> {
    let page = Page::new(Some(1), None)?;
    let users = state
        .tenancy
        .store()
        .list_users(&Scope::Platform, page)
        .await?;
    Ok(!users.items.is_empty())
}

/// Creates the root account `email` unless it exists.
///
/// # Errors
/// When the password is refused by the policy, or storage fails.
pub async fn bootstrap_root(
    state: &AppState,
    email: &str,
    password: Option<String>,
) -> anyhow::Result<Bootstrap> {
    let email = Email::parse(email).context("HSE_ROOT_EMAIL")?;
    let store = state.tenancy.store();
    if store.credentials(&email).await?.is_some() {
        return Ok(Bootstrap::AlreadyThere);
    }
    let generated = password.is_none();
    let password = match password {
        Some(p) => p,
        None => Secret::generate()?.expose()[..24].to_owned(),
    };
    let hash = state
        .auth
        .passwords()
        .hash(&password)
        .await
        .context("HSE_ROOT_PASSWORD")?;
    let user = NewUser {
        email,
        first_name: "Root".into(),
        last_name: String::new(),
        role_id: SystemRole::Root.id(),
        partner_company_id: None,
        organization_id: None,
    }
    .build(None, true, Utc::now())?;
    store
        .insert_user(&Scope::Platform, &user, Some(&hash))
        .await?;
    Ok(if generated {
        Bootstrap::CreatedWithPassword(password)
    } else {
        Bootstrap::Created
    })
}
