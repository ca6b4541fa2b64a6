//! Run with: `cargo run --example onboarding`
//!
//! The onboarding story of seed section 6.2, entirely over HTTP: root
//! creates a partner company and invites its first user, who accepts and
//! signs in, creates an organization and invites its admin; the admin
//! builds an establishment with areas and devices.
//!
//! With `HSE_URL` (and `HSE_ROOT_EMAIL` / `HSE_ROOT_PASSWORD`) it talks to
//! that server; without, it starts an embedded in-memory server first.

#[path = "support/http.rs"]
mod http;

use anyhow::Context;
use hse_core::SystemRole;
use hyper::StatusCode;
use serde_json::json;

use http::{Api, id};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (url, root_email, root_password, _server) = match std::env::var("HSE_URL") {
        Ok(url) => (
            url,
            std::env::var("HSE_ROOT_EMAIL").unwrap_or_else(|_| "root@hse.local".into()),
            std::env::var("HSE_ROOT_PASSWORD")
                .context("HSE_ROOT_PASSWORD is needed with HSE_URL")?,
            None,
        ),
        Err(_) => {
            let (url, password, server) = embedded_server().await?;
            (url, "root@hse.local".to_owned(), password, Some(server))
        }
    };
    run(&url, &root_email, &root_password).await
}

/// The whole story against the server at `url`.
async fn run(url: &str, root_email: &str, root_password: &str) -> anyhow::Result<()> {
    let anonymous = Api::new(url);
    let root = anonymous.login(root_email, root_password).await?;
    println!("root signed in");

    let partner_company = root
        .post(
            "/v1/partner-companies",
            json!({"name": "Costa Resellers"}),
            StatusCode::CREATED,
        )
        .await?;
    let partner_company_id = id(&partner_company)?;
    println!("root created partner company {partner_company_id}");
    let partner = invite_and_accept(
        &root,
        &anonymous,
        "lucia@costa.example",
        SystemRole::Partner,
        json!({"kind": "partner_company", "id": partner_company_id}),
    )
    .await?;

    let org = partner
        .post("/v1/organizations", json!({"partner_company_id": partner_company_id, "name": "Hoteles del Sol", "industry": "hospitality"}), StatusCode::CREATED)
        .await?;
    let org_id = id(&org)?;
    println!("partner created organization {org_id}");
    let admin = invite_and_accept(
        &partner,
        &anonymous,
        "marta@hotelesdelsol.example",
        SystemRole::Admin,
        json!({"kind": "organization", "id": org_id}),
    )
    .await?;

    let hotel = admin
        .post("/v1/establishments", json!({"organization_id": org_id, "name": "Hotel Sol Málaga", "timezone": "Europe/Madrid", "location": {"lat": 36.72, "lon": -4.42}}), StatusCode::CREATED)
        .await?;
    let hotel_id = id(&hotel)?;
    println!("admin created establishment {hotel_id}");
    let floor = admin
        .post(
            "/v1/areas",
            json!({"establishment_id": hotel_id, "name": "Floor 1", "type": "floor", "floor": 1}),
            StatusCode::CREATED,
        )
        .await?;
    for room in ["101", "102"] {
        let area = admin
            .post("/v1/areas", json!({"establishment_id": hotel_id, "parent_area_id": id(&floor)?, "name": format!("Room {room}"), "type": "room", "floor": 1}), StatusCode::CREATED)
            .await?;
        let lock = admin
            .post("/v1/devices", json!({"area_id": id(&area)?, "device_type": "doorlock", "manufacturer": "Acme", "model": "L6", "protocol": "hse-tcp"}), StatusCode::CREATED)
            .await?;
        println!(
            "room {room}: door lock {} (its secret is shown once: {} chars)",
            id(&lock)?,
            lock["secret"].as_str().map_or(0, str::len)
        );
    }
    let devices = admin.get("/v1/devices").await?;
    println!(
        "admin sees {} devices",
        devices["items"].as_array().map_or(0, Vec::len)
    );
    let (status, _) = partner
        .send(
            hyper::Method::GET,
            &format!("/v1/establishments/{hotel_id}"),
            None,
        )
        .await?;
    println!("partner reads the establishment: {status}");
    Ok(())
}

/// Invites `email` with `role` to `target`, accepts as the invitee, signs in.
async fn invite_and_accept(
    inviter: &Api,
    anonymous: &Api,
    email: &str,
    role: SystemRole,
    target: serde_json::Value,
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

/// Starts an in-memory server on a free port with a known root password.
async fn embedded_server()
-> anyhow::Result<(String, String, tokio::task::JoinHandle<anyhow::Result<()>>)> {
    let password = "example root passphrase".to_owned();
    let lookup = |name: &str| match name {
        "HSE_HTTP_ADDR" => Some("127.0.0.1:0".to_owned()),
        "HSE_ROLES" => Some("api".to_owned()),
        _ => None,
    };
    let config = hse_server::Config::from_lookup(lookup)?;
    let server = hse_server::build(&config).await?;
    hse_server::bootstrap::bootstrap_root(server.state(), "root@hse.local", Some(password.clone()))
        .await?;
    let url = format!("http://{}", server.local_addr()?);
    let handle = tokio::spawn(server.run_until_stopped(std::future::pending()));
    println!("started an embedded server at {url}");
    Ok((url, password, handle))
}
