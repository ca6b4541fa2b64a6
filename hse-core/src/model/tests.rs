//! Unit tests of the model's validation.

use chrono::Utc;

use super::*;
use crate::error::CoreError;
use crate::id::EstablishmentId;
use crate::value::Metadata;

#[test]
fn a_bad_patch_leaves_the_entity_untouched() {
    let now = Utc::now();
    let mut org = NewOrganization {
        name: "Acme".into(),
        ..Default::default()
    }
    .build(now)
    .unwrap();
    let before = org.clone();
    let patch = OrganizationPatch {
        name: Some("New".into()),
        industry: Some("x".repeat(101)),
        ..Default::default()
    };
    assert!(patch.apply(&mut org, now).is_err());
    assert_eq!(org, before);
}

#[test]
fn an_area_cannot_be_its_own_parent() {
    let now = Utc::now();
    let new = NewArea {
        establishment_id: EstablishmentId::new(),
        parent_area_id: None,
        name: "Room 1".into(),
        kind: "room".into(),
        floor: Some(1),
        metadata: Metadata::default(),
    };
    let mut area = new.build(now).unwrap();
    let patch = AreaPatch {
        parent_area_id: Some(Some(area.id)),
        ..Default::default()
    };
    assert!(matches!(
        patch.apply(&mut area, now),
        Err(CoreError::Invalid {
            field: "parent_area_id",
            ..
        })
    ));
}

#[test]
fn area_patches_tell_absent_parent_from_null_parent() {
    let absent: AreaPatch = serde_json::from_str("{}").unwrap();
    assert_eq!(absent.parent_area_id, None);
    let null: AreaPatch = serde_json::from_str(r#"{"parent_area_id":null}"#).unwrap();
    assert_eq!(null.parent_area_id, Some(None));
}

#[test]
fn a_serialized_area_patch_without_a_parent_does_not_detach() {
    let patch = AreaPatch {
        name: Some("Room 2".into()),
        ..Default::default()
    };
    let text = serde_json::to_string(&patch).unwrap();
    assert!(!text.contains("parent_area_id"), "{text}");
    assert_eq!(serde_json::from_str::<AreaPatch>(&text).unwrap(), patch);
}

#[test]
fn unknown_fields_in_inputs_are_refused() {
    assert!(serde_json::from_str::<NewPartnerCompany>(r#"{"name":"x","is_root":true}"#).is_err());
}

#[test]
fn device_status_round_trips() {
    for s in [
        DeviceStatus::Online,
        DeviceStatus::Offline,
        DeviceStatus::Error,
        DeviceStatus::Maintenance,
    ] {
        assert_eq!(DeviceStatus::parse(s.as_str()).unwrap(), s);
    }
    assert!(DeviceStatus::parse("exploded").is_err());
}
