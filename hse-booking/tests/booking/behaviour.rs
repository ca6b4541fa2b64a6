//! The booking rules through the service, on both adapters.

use chrono::{Duration, NaiveDate, Utc};
use hse_booking::model::{BookingPatch, GuestPatch, NewGuest, Stay};
use hse_booking::notification::NotificationKind;
use hse_booking::status::BookingAction;
use hse_booking::{BookingError, BookingStatus, BookingWindow, IllegalTransition};
use hse_core::value::Metadata;
use hse_core::{OrganizationId, Page, Scope};

use crate::support::{World, admin, at, both};

both!(back_to_back_bookings_at_exactly_the_gap_are_accepted);
async fn back_to_back_bookings_at_exactly_the_gap_are_accepted(w: World) {
    let now = Utc::now();
    let room = w.rooms[0];
    let first = w.book(room, 0, 24).await;
    // Default gap: max(60, 30) minutes after check-out at hour 24.
    let mut at_gap = w.request(room, 25, 48);
    let _ = &mut at_gap;
    w.service
        .create_booking(&w.admin, at_gap, now)
        .await
        .unwrap();
    let mut too_soon = w.request(room, 0, 0);
    too_soon.stay = Stay::Instants {
        check_in: at(24) + Duration::minutes(59),
        check_out: at(30),
    };
    let err = w
        .service
        .create_booking(&w.admin, too_soon, now)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BookingError::Overlap { with } if with == first.id),
        "{err:?}"
    );
    // Ending a minute into the gap before the first booking is refused too.
    let mut before = w.request(room, 0, 0);
    before.stay = Stay::Instants {
        check_in: at(-10),
        check_out: at(-1) + Duration::minutes(1),
    };
    let err = w
        .service
        .create_booking(&w.admin, before, now)
        .await
        .unwrap_err();
    assert!(matches!(err, BookingError::Overlap { with } if with == first.id));
    // Other rooms are independent.
    w.book(w.rooms[1], 0, 24).await;
}

both!(cancelled_bookings_free_their_area);
async fn cancelled_bookings_free_their_area(w: World) {
    let now = Utc::now();
    let room = w.rooms[0];
    let first = w.book(room, 0, 24).await;
    assert!(
        w.service
            .create_booking(&w.admin, w.request(room, 10, 30), now)
            .await
            .is_err()
    );
    let cancelled = w
        .service
        .cancel(&w.admin, first.id, "plans changed", now)
        .await
        .unwrap();
    assert_eq!(cancelled.status, BookingStatus::Cancelled);
    let c = cancelled.cancellation.unwrap();
    assert_eq!(
        (c.by, c.at, c.reason.as_str()),
        (w.admin.user_id, now, "plans changed")
    );
    w.book(room, 10, 30).await;
    let stored = w.service.booking(&w.admin, first.id).await.unwrap();
    assert_eq!(
        stored.cancellation.map(|c| c.reason),
        Some("plans changed".into())
    );
}

both!(modifications_go_through_the_same_overlap_rule);
async fn modifications_go_through_the_same_overlap_rule(w: World) {
    let now = Utc::now();
    let room = w.rooms[0];
    let a = w.book(room, 0, 24).await;
    let b = w.book(room, 48, 72).await;
    let into_b = BookingPatch {
        stay: Some(Stay::Instants {
            check_in: at(0),
            check_out: at(48),
        }),
        ..Default::default()
    };
    let err = w
        .service
        .modify(&w.admin, a.id, into_b, now)
        .await
        .unwrap_err();
    assert!(matches!(err, BookingError::Overlap { with } if with == b.id));
    // Moving within its own range never conflicts with itself.
    let longer = BookingPatch {
        stay: Some(Stay::Instants {
            check_in: at(0),
            check_out: at(47),
        }),
        total_guests: Some(3),
        ..Default::default()
    };
    let a2 = w.service.modify(&w.admin, a.id, longer, now).await.unwrap();
    assert_eq!((a2.window.check_out(), a2.total_guests), (at(47), 3));
    // Moving to another room of the same establishment frees the first.
    let moved = BookingPatch {
        area_id: Some(w.rooms[1]),
        ..Default::default()
    };
    w.service.modify(&w.admin, b.id, moved, now).await.unwrap();
    w.book(room, 48, 72).await;
}

both!(state_changes_follow_the_state_machine);
async fn state_changes_follow_the_state_machine(w: World) {
    let now = Utc::now();
    let b = w.book(w.rooms[0], 0, 24).await;
    assert_eq!(b.status, BookingStatus::Pending);
    let b = w.service.confirm(&w.admin, b.id, now).await.unwrap();
    assert_eq!(b.status, BookingStatus::Confirmed);
    let err = w.service.confirm(&w.admin, b.id, now).await.unwrap_err();
    assert!(matches!(
        err,
        BookingError::IllegalTransition(IllegalTransition {
            from: BookingStatus::Confirmed,
            action: BookingAction::Confirm
        })
    ));
    w.service.cancel(&w.admin, b.id, "", now).await.unwrap();
    for err in [
        w.service.cancel(&w.admin, b.id, "", now).await.unwrap_err(),
        w.service
            .modify(&w.admin, b.id, BookingPatch::default(), now)
            .await
            .unwrap_err(),
        w.service.delete(&w.admin, b.id, now).await.unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                BookingError::IllegalTransition(IllegalTransition {
                    from: BookingStatus::Cancelled,
                    ..
                })
            ),
            "{err:?}"
        );
    }
    // A pending booking can be deleted for good.
    let p = w.book(w.rooms[0], 0, 24).await;
    w.service.delete(&w.admin, p.id, now).await.unwrap();
    assert!(matches!(
        w.service.booking(&w.admin, p.id).await,
        Err(BookingError::NotFound { .. })
    ));
}

both!(other_tenants_see_nothing);
async fn other_tenants_see_nothing(w: World) {
    let now = Utc::now();
    let b = w.book(w.rooms[0], 0, 24).await;
    let stranger = admin(OrganizationId::new(), w.est.id);
    for err in [
        w.service.booking(&stranger, b.id).await.unwrap_err(),
        w.service
            .cancel(&stranger, b.id, "", now)
            .await
            .unwrap_err(),
        w.service.guest(&stranger, w.guest.id).await.unwrap_err(),
        w.service
            .create_booking(&stranger, w.request(w.rooms[1], 0, 24), now)
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, BookingError::NotFound { .. }), "{err:?}");
    }
}

both!(companions_are_visible_from_both_sides);
async fn companions_are_visible_from_both_sides(w: World) {
    let now = Utc::now();
    let luis = w.new_guest("Luis", None).await;
    w.service
        .add_companion(&w.admin, w.guest.id, luis.id, "spouse", now)
        .await
        .unwrap();
    let from_ana = w.service.companions(&w.admin, w.guest.id).await.unwrap();
    let from_luis = w.service.companions(&w.admin, luis.id).await.unwrap();
    assert_eq!(
        from_ana.iter().map(|c| c.companion_id).collect::<Vec<_>>(),
        [luis.id]
    );
    assert_eq!(
        from_luis.iter().map(|c| c.companion_id).collect::<Vec<_>>(),
        [w.guest.id]
    );
    assert_eq!(from_luis[0].relationship, "spouse");
    let again = w
        .service
        .add_companion(&w.admin, luis.id, w.guest.id, "friend", now)
        .await;
    assert!(
        matches!(again, Err(BookingError::AlreadyExists { .. })),
        "{again:?}"
    );
}

both!(availability_lists_the_free_intervals_with_the_gap);
async fn availability_lists_the_free_intervals_with_the_gap(w: World) {
    let room = w.rooms[0];
    w.book(room, 24, 48).await;
    let within = BookingWindow::new(at(0), at(96)).unwrap();
    let free = w
        .service
        .availability(&w.admin, room, within)
        .await
        .unwrap();
    assert_eq!(
        free,
        vec![
            BookingWindow::new(at(0), at(23)).unwrap(),
            BookingWindow::new(at(49), at(96)).unwrap()
        ]
    );
}

both!(dates_resolve_to_local_check_in_and_check_out_times);
async fn dates_resolve_to_local_check_in_and_check_out_times(w: World) {
    let mut req = w.request(w.rooms[0], 0, 0);
    req.stay = Stay::Dates {
        arrival: NaiveDate::from_ymd_opt(2030, 10, 26).unwrap(),
        departure: NaiveDate::from_ymd_opt(2030, 10, 28).unwrap(),
    };
    let b = w
        .service
        .create_booking(&w.admin, req, Utc::now())
        .await
        .unwrap();
    // Madrid leaves summer time on 2030-10-27: 15:00 CEST, then 11:00 CET.
    assert_eq!(
        b.window.check_in(),
        "2030-10-26T13:00:00Z"
            .parse::<chrono::DateTime<Utc>>()
            .unwrap()
    );
    assert_eq!(
        b.window.check_out(),
        "2030-10-28T10:00:00Z"
            .parse::<chrono::DateTime<Utc>>()
            .unwrap()
    );
}

both!(changes_write_their_notifications_to_the_outbox);
async fn changes_write_their_notifications_to_the_outbox(w: World) {
    let now = Utc::now();
    let b = w.book(w.rooms[0], 0, 24).await;
    w.service.confirm(&w.admin, b.id, now).await.unwrap();
    let patch = BookingPatch {
        special_requests: Some("late arrival".into()),
        ..Default::default()
    };
    w.service.modify(&w.admin, b.id, patch, now).await.unwrap();
    w.service.cancel(&w.admin, b.id, "", now).await.unwrap();
    let mut kinds: Vec<_> = w
        .service
        .notifications(&w.admin, b.id)
        .await
        .unwrap()
        .iter()
        .map(|n| n.kind)
        .collect();
    kinds.sort_by_key(|k| k.as_str());
    assert_eq!(
        kinds,
        [
            NotificationKind::BookingCancelled,
            NotificationKind::BookingConfirmed,
            NotificationKind::BookingModified,
            NotificationKind::CheckInInstructions,
        ]
    );
    let all = w.service.notifications(&w.admin, b.id).await.unwrap();
    let instructions = all
        .iter()
        .find(|n| n.kind == NotificationKind::CheckInInstructions)
        .unwrap();
    let codes = w.service.codes(&w.admin, b.id).await.unwrap();
    assert!(instructions.message.contains(codes[0].code.expose()));
    assert!(!format!("{instructions:?}").contains(codes[0].code.expose()));
    assert!(!format!("{:?}", codes[0]).contains(codes[0].code.expose()));
}

both!(the_turnover_gap_is_configurable_per_establishment);
async fn the_turnover_gap_is_configurable_per_establishment(w: World) {
    let metadata = hse_core::value::Metadata::parse(serde_json::json!({
        "booking": {"after_checkout_buffer_minutes": 15, "before_checkin_buffer_minutes": 120}
    }))
    .unwrap();
    let patch = hse_core::model::EstablishmentPatch {
        metadata: Some(metadata),
        ..Default::default()
    };
    w.tenancy
        .update_establishment(&hse_core::Scope::Platform, w.est.id, patch, Utc::now())
        .await
        .unwrap();
    let now = Utc::now();
    let room = w.rooms[0];
    let first = w.book(room, 0, 24).await;
    let err = w
        .service
        .create_booking(&w.admin, w.request(room, 25, 30), now)
        .await
        .unwrap_err();
    assert!(matches!(err, BookingError::Overlap { with } if with == first.id));
    w.book(room, 26, 30).await;
}

both!(store_reads_agree_with_scope_contains);
async fn store_reads_agree_with_scope_contains(w: World) {
    use std::collections::BTreeSet;

    use hse_core::{EstablishmentId, Page, PartnerCompanyId, Scope};

    let now = Utc::now();
    let b = w.book(w.rooms[0], 0, 24).await;
    w.service.confirm(&w.admin, b.id, now).await.unwrap();
    let org = w.guest.tenancy.organization_id;
    let in_org = |ests: &[EstablishmentId]| Scope::Organization {
        organization_id: org,
        establishments: ests.iter().copied().collect::<BTreeSet<_>>(),
    };
    let scopes = [
        Scope::Platform,
        Scope::Partner {
            partner_company_id: w.partner,
        },
        Scope::Partner {
            partner_company_id: PartnerCompanyId::new(),
        },
        in_org(&[w.est.id]),
        in_org(&[]),
        in_org(&[EstablishmentId::new()]),
        Scope::Organization {
            organization_id: OrganizationId::new(),
            establishments: BTreeSet::from([w.est.id]),
        },
        Scope::Nothing,
    ];
    let s = &w.store;
    for scope in &scopes {
        let sees_booking = scope.contains(&b.resource());
        let guest_resource = hse_core::Resource::organization(Some(w.partner), org);
        let sees_guest = scope.contains(&guest_resource);
        assert_eq!(
            s.booking(scope, b.id).await.is_ok(),
            sees_booking,
            "{scope:?}"
        );
        assert_eq!(
            s.codes_of_booking(scope, b.id).await.is_ok(),
            sees_booking,
            "{scope:?}"
        );
        assert_eq!(
            s.notifications_of_booking(scope, b.id).await.is_ok(),
            sees_booking,
            "{scope:?}"
        );
        let listed = s
            .list_bookings(scope, Default::default(), Page::first_max())
            .await
            .unwrap();
        assert_eq!(listed.items.len(), usize::from(sees_booking), "{scope:?}");
        let blocked = s.blocked(scope, w.rooms[0], at(0), at(24)).await.unwrap();
        assert_eq!(blocked.len(), usize::from(sees_booking), "{scope:?}");
        assert_eq!(
            s.guest(scope, w.guest.id).await.is_ok(),
            sees_guest,
            "{scope:?}"
        );
        let guests = s.list_guests(scope, Page::first_max()).await.unwrap();
        assert_eq!(guests.items.len(), usize::from(sees_guest), "{scope:?}");
    }
}

/// PostgreSQL refuses U+0000 in `text` and `jsonb` (SQLSTATE class `22`):
/// the caller's input is at fault, so creating or changing a guest, or
/// booking, with one answers `Invalid` (not `Storage`) and writes nothing.
#[sqlx::test(migrations = false)]
async fn a_value_postgres_refuses_is_invalid_input_and_writes_nothing(pool: sqlx::PgPool) {
    let w = World::postgres(pool).await;
    let now = Utc::now();
    let ana = w.service.guest(&w.admin, w.guest.id).await.unwrap();
    let nul = || Metadata::parse(serde_json::json!({"k\u{0}": "a\u{0}b"})).unwrap();
    let new = NewGuest {
        first_name: "Luis".into(),
        metadata: nul(),
        ..Default::default()
    };
    let created = w.service.create_guest(&w.admin, new, now).await;
    assert!(
        matches!(&created, Err(BookingError::Invalid { field: "value", reason })
            if reason.contains("could not be stored")),
        "{created:?}"
    );
    let guests = w.service.list_guests(&w.admin, Page::first_max()).await;
    let ids: Vec<_> = guests.unwrap().items.iter().map(|g| g.id).collect();
    assert_eq!(ids, [ana.id]);
    let patch = GuestPatch {
        metadata: Some(nul()),
        ..Default::default()
    };
    let updated = w
        .service
        .update_guest(&w.admin, w.guest.id, patch, now)
        .await;
    assert!(
        matches!(updated, Err(BookingError::Invalid { .. })),
        "{updated:?}"
    );
    assert_eq!(w.service.guest(&w.admin, w.guest.id).await.unwrap(), ana);
    let mut request = w.request(w.rooms[0], 0, 24);
    request.metadata = nul();
    let booked = w.service.create_booking(&w.admin, request, now).await;
    assert!(
        matches!(booked, Err(BookingError::Invalid { .. })),
        "{booked:?}"
    );
    let all = w
        .store
        .list_bookings(&Scope::Platform, Default::default(), Page::first_max());
    assert!(all.await.unwrap().items.is_empty());
}
