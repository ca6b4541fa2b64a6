//! The onboarding story of seed section 6.2 over HTTP (shared by the
//! `onboarding` example and the end-to-end test): root creates a partner
//! company and invites its first user, who accepts and signs in, creates
//! an organization and invites its admin; the admin builds an
//! establishment with a floor, two rooms and a door lock in each.

use anyhow::Context;
use hse_core::SystemRole;
use hyper::StatusCode;
use serde_json::{Value, json};

use crate::http::{Api, id};

/// A room the admin built, with its door lock.
#[derive(Debug)]
pub(crate) struct Room {
    /// The room's area id.
    pub(crate) area: String,
    /// Its door lock's device id.
    pub(crate) lock: String,
    /// The lock's secret (shown once, at registration).
    pub(crate) secret: String,
}

/// Who and what the story created.
#[derive(Debug)]
pub(crate) struct Onboarded {
    /// The partner user, signed in.
    pub(crate) partner: Api,
    /// The organization's admin, signed in.
    pub(crate) admin: Api,
    /// The organization.
    pub(crate) organization: String,
    /// The establishment (a hotel).
    pub(crate) establishment: String,
    /// Its rooms, each with a door lock.
    pub(crate) rooms: Vec<Room>,
}

/// Runs the story against the server at `url`, signing in as root with
/// `root_email` / `root_password`; prints each step. A non-empty `tag`
/// goes into every email and name, so the story can run again on the same
/// server (emails are unique).
pub(crate) async fn onboard(
    url: &str,
    root_email: &str,
    root_password: &str,
    tag: &str,
) -> anyhow::Result<Onboarded> {
    let name = |base: &str| tagged_name(base, tag);
    let email = |base: &str| tagged_email(base, tag);
    let anonymous = Api::new(url);
    let root = anonymous.login(root_email, root_password).await?;
    println!("root signed in");
    let company = root
        .post(
            "/v1/partner-companies",
            json!({"name": name("Costa Resellers")}),
            StatusCode::CREATED,
        )
        .await?;
    let company = id(&company)?;
    println!("root created partner company {company}");
    let partner = invite_and_accept(
        &root,
        &anonymous,
        &email("lucia@costa.example"),
        SystemRole::Partner,
        json!({"kind": "partner_company", "id": company}),
    )
    .await?;
    let org = partner
        .post("/v1/organizations", json!({"partner_company_id": company, "name": name("Hoteles del Sol"), "industry": "hospitality"}), StatusCode::CREATED)
        .await?;
    let organization = id(&org)?;
    println!("partner created organization {organization}");
    let admin = invite_and_accept(
        &partner,
        &anonymous,
        &email("marta@hotelesdelsol.example"),
        SystemRole::Admin,
        json!({"kind": "organization", "id": organization}),
    )
    .await?;
    let hotel = admin
        .post("/v1/establishments", json!({"organization_id": organization, "name": name("Hotel Sol Málaga"), "timezone": "Europe/Madrid", "location": {"lat": 36.72, "lon": -4.42}}), StatusCode::CREATED)
        .await?;
    let establishment = id(&hotel)?;
    println!("admin created establishment {establishment}");
    let rooms = build_rooms(&admin, &establishment).await?;
    Ok(Onboarded {
        partner,
        admin,
        organization,
        establishment,
        rooms,
    })
}

/// `base`, then `tag` when there is one.
fn tagged_name(base: &str, tag: &str) -> String {
    if tag.is_empty() {
        base.to_owned()
    } else {
        format!("{base} {tag}")
    }
}

/// `user@domain` as `user.tag@domain` when there is a tag.
fn tagged_email(base: &str, tag: &str) -> String {
    match base.split_once('@') {
        Some((user, domain)) if !tag.is_empty() => format!("{user}.{tag}@{domain}"),
        _ => base.to_owned(),
    }
}

/// A floor with rooms 101 and 102, each with a door lock.
async fn build_rooms(admin: &Api, establishment: &str) -> anyhow::Result<Vec<Room>> {
    let floor = admin
        .post(
            "/v1/areas",
            json!({"establishment_id": establishment, "name": "Floor 1", "type": "floor", "floor": 1}),
            StatusCode::CREATED,
        )
        .await?;
    let mut rooms = Vec::new();
    for number in ["101", "102"] {
        let area = admin
            .post("/v1/areas", json!({"establishment_id": establishment, "parent_area_id": id(&floor)?, "name": format!("Room {number}"), "type": "room", "floor": 1}), StatusCode::CREATED)
            .await?;
        let lock = admin
            .post("/v1/devices", json!({"area_id": id(&area)?, "device_type": "doorlock", "manufacturer": "Acme", "model": "L6", "protocol": "hse-tcp"}), StatusCode::CREATED)
            .await?;
        let secret = lock["secret"]
            .as_str()
            .context("the lock's secret is shown at registration")?
            .to_owned();
        rooms.push(Room {
            area: id(&area)?,
            lock: id(&lock)?,
            secret,
        });
    }
    Ok(rooms)
}

/// Invites `email` with `role` to `target`, accepts as the invitee, signs in.
async fn invite_and_accept(
    inviter: &Api,
    anonymous: &Api,
    email: &str,
    role: SystemRole,
    target: Value,
) -> anyhow::Result<Api> {
    let invited = inviter
        .post(
            "/v1/invitations",
            json!({"email": email, "role_id": role.id(), "target": target}),
            StatusCode::CREATED,
        )
        .await?;
    let token = invited["token"].as_str().context("no invitation token")?;
    println!("invited {email} as {}", role.name());
    let password = "a long and private passphrase";
    anonymous
        .post(
            &format!("/v1/invitations/{token}/accept"),
            json!({"first_name": email.split('@').next(), "password": password}),
            StatusCode::CREATED,
        )
        .await?;
    println!("{email} accepted and set a password");
    anonymous.login(email, password).await
}
