//! Two tenants, set up over the API before the faults start: a partner
//! company with organizations A and B, each with its admin, a hotel whose
//! rooms sit in a building with a door lock at the entrance (every
//! confirmed booking gets a code on it), room sensors, and guests.

use anyhow::Context;
use hyper::StatusCode;
use serde_json::{Value, json};

use crate::http::{Api, id};

/// The root account the soak's server bootstraps.
pub(crate) const ROOT: &str = "root@soak.example";
/// Its password.
pub(crate) const ROOT_PASSWORD: &str = "a soak root passphrase";
const ADMIN_PASSWORD: &str = "a soak admin passphrase";

/// Rooms per tenant (few, so bookings collide).
const ROOMS: usize = 4;
/// Guests per tenant.
const GUESTS: usize = 4;

/// A device the load generator connects as.
#[derive(Clone, Debug)]
pub(crate) struct DeviceLogin {
    /// Its id.
    pub(crate) id: String,
    /// Its secret.
    pub(crate) secret: String,
}

/// One tenant as its admin sees it.
#[derive(Clone, Debug)]
pub(crate) struct Tenant {
    /// `A` or `B`.
    pub(crate) name: &'static str,
    /// Its organization.
    pub(crate) organization: String,
    /// Its admin's email.
    pub(crate) email: String,
    /// Its admin, signed in (on the node its traffic goes through).
    pub(crate) admin: Api,
    /// The admin's access token (valid on every node: they share the
    /// signing key and the issuer).
    pub(crate) token: String,
    /// Bookable rooms.
    pub(crate) rooms: Vec<String>,
    /// Guests.
    pub(crate) guests: Vec<String>,
    /// The entrance lock and the room sensors.
    pub(crate) devices: Vec<DeviceLogin>,
}

/// Creates both tenants.
pub(crate) async fn set_up(api: &Api) -> anyhow::Result<[Tenant; 2]> {
    let root = api.login(ROOT, ROOT_PASSWORD).await?;
    let company = create(
        &root,
        "/v1/partner-companies",
        json!({"name": "Soak Partners"}),
    )
    .await?;
    let a = tenant(api, &root, &company, "A").await?;
    let b = tenant(api, &root, &company, "B").await?;
    Ok([a, b])
}

async fn tenant(
    api: &Api,
    root: &Api,
    company: &str,
    name: &'static str,
) -> anyhow::Result<Tenant> {
    let organization = create(
        root,
        "/v1/organizations",
        json!({"partner_company_id": company, "name": format!("Soak {name}")}),
    )
    .await?;
    let email = format!("admin@{}.soak.example", name.to_lowercase());
    let (admin, token) = onboard(api, root, &email, &organization).await?;
    let est = create(
        &admin,
        "/v1/establishments",
        json!({"organization_id": organization, "name": format!("Hotel {name}"), "timezone": "UTC"}),
    )
    .await?;
    let building = create(
        &admin,
        "/v1/areas",
        json!({"establishment_id": est, "name": "Building", "type": "building"}),
    )
    .await?;
    let mut devices = vec![
        device(
            &admin,
            &building,
            "doorlock",
            json!({"code_length": 4, "max_active_codes": 1000}),
        )
        .await?,
    ];
    let mut rooms = Vec::new();
    for room in 1..=ROOMS {
        let area = create(
            &admin,
            "/v1/areas",
            json!({"establishment_id": est, "parent_area_id": building, "name": format!("Room {room}"), "type": "room"}),
        )
        .await?;
        devices.push(device(&admin, &area, "sensor", json!({})).await?);
        rooms.push(area);
    }
    let mut guests = Vec::new();
    for g in 1..=GUESTS {
        guests.push(
            create(
                &admin,
                "/v1/guests",
                json!({"organization_id": organization, "first_name": format!("Guest{g}"), "email": format!("guest{g}@{}.soak.example", name.to_lowercase())}),
            )
            .await?,
        );
    }
    Ok(Tenant {
        name,
        organization,
        email,
        admin,
        token,
        rooms,
        guests,
        devices,
    })
}

impl Tenant {
    /// Signs the admin in again on `api` (access tokens expire during a
    /// long run).
    pub(crate) async fn sign_in_again(&mut self, api: &Api) -> anyhow::Result<()> {
        (self.admin, self.token) = sign_in(api, &self.email, ADMIN_PASSWORD).await?;
        Ok(())
    }

    /// The tenant acting through another node's `api`, with the token the
    /// first node issued.
    pub(crate) fn through(&self, api: &Api) -> Self {
        Self {
            admin: api.with_token(&self.token),
            ..self.clone()
        }
    }

    /// A fresh admin client on `api` (signed in there).
    pub(crate) async fn admin_on(&self, api: &Api) -> anyhow::Result<Api> {
        Ok(sign_in(api, &self.email, ADMIN_PASSWORD).await?.0)
    }
}

/// Signs in on `api`: the client acting as that user, and its token.
async fn sign_in(api: &Api, email: &str, password: &str) -> anyhow::Result<(Api, String)> {
    let body = json!({"email": email, "password": password});
    let answer = api.post("/v1/auth/login", body, StatusCode::OK).await?;
    let token = answer["access_token"]
        .as_str()
        .context("no access_token")?
        .to_owned();
    Ok((api.with_token(&token), token))
}

/// Invites `email` as the organization's admin, accepts, signs in.
async fn onboard(
    api: &Api,
    root: &Api,
    email: &str,
    organization: &str,
) -> anyhow::Result<(Api, String)> {
    let role = hse_core::SystemRole::Admin.id().to_string();
    let invitation = json!({"email": email, "role_id": role, "target": {"kind": "organization", "id": organization}});
    let invited = root
        .post("/v1/invitations", invitation, StatusCode::CREATED)
        .await?;
    let token = invited["token"].as_str().unwrap_or_default();
    let accept = json!({"first_name": "Admin", "password": ADMIN_PASSWORD});
    api.post(
        &format!("/v1/invitations/{token}/accept"),
        accept,
        StatusCode::CREATED,
    )
    .await
    .context("accepting the invitation")?;
    sign_in(api, email, ADMIN_PASSWORD).await
}

/// POSTs and returns the new id; fails on anything but 201.
async fn create(api: &Api, path: &str, body: Value) -> anyhow::Result<String> {
    id(&api.post(path, body, StatusCode::CREATED).await?)
}

async fn device(
    admin: &Api,
    area: &str,
    kind: &str,
    metadata: serde_json::Value,
) -> anyhow::Result<DeviceLogin> {
    let body =
        json!({"area_id": area, "device_type": kind, "protocol": "hse-tcp", "metadata": metadata});
    let answer = admin.post("/v1/devices", body, StatusCode::CREATED).await?;
    let field = |k: &str| answer[k].as_str().map(str::to_owned);
    Ok(DeviceLogin {
        id: field("id").unwrap_or_default(),
        secret: field("secret").unwrap_or_default(),
    })
}
