//! Tests of the codec: every documented error, and arbitrary input never
//! panics.

use proptest::prelude::*;

use super::*;

const NOW: i64 = 1_764_288_000_000;
const DAY_MS: i64 = 86_400_000;

fn limits() -> Limits {
    Limits {
        now_ms: NOW,
        retention_ms: 730 * DAY_MS,
    }
}

fn decode_str(line: &str) -> Result<Inbound, Rejection> {
    decode(line.as_bytes(), &limits())
}

fn error_code(line: &str) -> ErrorCode {
    match decode_str(line) {
        Err(Rejection::Error { code, .. }) => code,
        other => panic!("expected an error frame, got {other:?}"),
    }
}

fn nack_code(line: &str) -> (u64, ErrorCode) {
    match decode_str(line) {
        Err(Rejection::Nack { seq, code, .. }) => (seq, code),
        other => panic!("expected a nack, got {other:?}"),
    }
}

#[test]
fn a_hello_is_decoded() {
    let id = Uuid::now_v7();
    let line = format!(r#"{{"type":"hello","device_id":"{id}","token":"s3cret","protocol":1}}"#);
    let Ok(Inbound::Hello(hello)) = decode_str(&line) else {
        panic!("not a hello")
    };
    assert_eq!(hello.device_id.as_uuid(), id);
    assert_eq!(hello.token.expose(), "s3cret");
    assert_eq!(hello.protocol, 1);
}

#[test]
fn a_hello_without_a_uuid_or_token_is_invalid() {
    assert_eq!(
        error_code(r#"{"type":"hello","device_id":"x","token":"t"}"#),
        ErrorCode::Invalid
    );
    let id = Uuid::now_v7();
    assert_eq!(
        error_code(&format!(r#"{{"type":"hello","device_id":"{id}"}}"#)),
        ErrorCode::Invalid
    );
}

#[test]
fn a_single_event_is_decoded_with_every_field() {
    let id = Uuid::now_v7();
    let line = format!(
        r#"{{"type":"event","seq":41,"event_id":"{id}","ts_ms":{NOW},"event_type":"temperature","value":21.5,"unit":"C","metadata":{{"fw":"1.2.3"}}}}"#
    );
    let Ok(Inbound::Events { seq, events }) = decode_str(&line) else {
        panic!("not an event")
    };
    assert_eq!(seq, 41);
    let e = &events[0];
    assert_eq!(e.event_id(), Some(id));
    assert_eq!(e.ts_ms(), Some(NOW));
    assert_eq!(e.event_type().as_str(), "temperature");
    assert_eq!(e.value(), Some(21.5));
    assert_eq!(e.unit(), Some("C"));
    assert!(e.metadata().is_some());
}

#[test]
fn an_events_frame_holds_up_to_a_thousand_events() {
    let one = r#"{"event_type":"t","value":1}"#;
    let ok = format!(
        r#"{{"type":"events","seq":1,"events":[{}]}}"#,
        vec![one; 1000].join(",")
    );
    assert!(matches!(decode_str(&ok), Ok(Inbound::Events { events, .. }) if events.len() == 1000));
    let too_many = format!(
        r#"{{"type":"events","seq":2,"events":[{}]}}"#,
        vec![one; 1001].join(",")
    );
    assert_eq!(nack_code(&too_many), (2, ErrorCode::Invalid));
    assert_eq!(
        nack_code(r#"{"type":"events","seq":3,"events":[]}"#),
        (3, ErrorCode::Invalid)
    );
    assert_eq!(
        nack_code(r#"{"type":"events","seq":4,"events":[1]}"#),
        (4, ErrorCode::Invalid)
    );
}

#[test]
fn oversized_frames_are_refused() {
    let big = format!(
        r#"{{"type":"event","seq":1,"event_type":"t","unit":"{}"}}"#,
        "x".repeat(MAX_FRAME_BYTES)
    );
    assert_eq!(error_code(&big), ErrorCode::FrameTooLarge);
}

#[test]
fn non_objects_and_garbage_are_malformed() {
    for line in [
        "",
        "[]",
        "42",
        "\"hello\"",
        "{",
        "not json",
        "{\"type\":\"ping\"} x",
    ] {
        assert_eq!(error_code(line), ErrorCode::Malformed, "{line}");
    }
    assert!(matches!(
        decode(&[0xff, 0xfe, b'{', b'}'], &limits()),
        Err(Rejection::Error {
            code: ErrorCode::Malformed,
            ..
        })
    ));
}

#[test]
fn deep_nesting_is_refused() {
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let line = format!(r#"{{"type":"event","seq":1,"event_type":"t","metadata":{{"a":{deep}}}}}"#);
    assert_eq!(error_code(&line), ErrorCode::Malformed);
    let nine = format!(r#"{}1{}"#, r#"{"a":"#.repeat(9), "}".repeat(9));
    let line = format!(r#"{{"type":"event","seq":1,"event_type":"t","metadata":{nine}}}"#);
    assert_eq!(nack_code(&line), (1, ErrorCode::Invalid));
}

#[test]
fn unknown_or_missing_types_are_refused() {
    assert_eq!(error_code(r#"{"type":"teleport"}"#), ErrorCode::UnknownType);
    assert_eq!(error_code(r#"{"seq":1}"#), ErrorCode::UnknownType);
    assert_eq!(error_code(r#"{"type":7}"#), ErrorCode::UnknownType);
}

#[test]
fn event_frames_without_a_seq_get_an_error_not_a_nack() {
    assert_eq!(
        error_code(r#"{"type":"event","event_type":"t"}"#),
        ErrorCode::Invalid
    );
    assert_eq!(
        error_code(r#"{"type":"event","seq":-1,"event_type":"t"}"#),
        ErrorCode::Invalid
    );
}

#[test]
fn non_finite_and_non_numeric_values_are_nacked_for_their_seq() {
    for (line, field) in [
        (
            r#"{"type":"event","seq":1,"event_type":"t","value":1e309}"#,
            "value",
        ),
        (
            r#"{"type":"event","seq":1,"event_type":"t","value":-1e400}"#,
            "value",
        ),
        (
            r#"{"type":"events","seq":1,"events":[{"event_type":"t","value":1},{"event_type":"t","value":1e309}]}"#,
            "value",
        ),
        (
            r#"{"type":"event","seq":1,"event_type":"t","ts_ms":1e309}"#,
            "ts_ms",
        ),
        (
            r#"{"type":"event","seq":1,"event_type":"t","metadata":{"a":[1,{"b":1e309}]}}"#,
            "metadata",
        ),
    ] {
        let Err(Rejection::Nack { seq, code, message }) = decode_str(line) else {
            panic!("expected a nack: {line}")
        };
        assert_eq!((seq, code), (1, ErrorCode::Invalid), "{line}");
        assert!(message.contains(field), "{line}: {message}");
    }
    assert_eq!(
        nack_code(r#"{"type":"event","seq":5,"event_type":"t","value":"21.5"}"#),
        (5, ErrorCode::Invalid)
    );
    // Without a valid seq there is nothing to nack; NaN is not JSON.
    assert_eq!(
        error_code(r#"{"type":"event","seq":1e309,"event_type":"t"}"#),
        ErrorCode::Invalid
    );
    assert_eq!(
        error_code(r#"{"type":"event","seq":1,"event_type":"t","value":NaN}"#),
        ErrorCode::Malformed
    );
    assert_eq!(
        error_code(r#"{"type":"event","seq":1,"value":1e309"#),
        ErrorCode::Malformed
    );
}

#[test]
fn a_nul_character_is_refused_in_every_stored_text_naming_the_field() {
    let id = Uuid::now_v7();
    for (event, field) in [
        (r#""event_type":"t","unit":"C\u0000""#.to_owned(), "unit"),
        (r#""event_type":"t\u0000""#.to_owned(), "event_type"),
        (
            format!(r#""event_type":"t","event_id":"{id}\u0000""#),
            "event_id",
        ),
        (
            r#""event_type":"t","metadata":{"a\u0000":1}"#.to_owned(),
            "metadata",
        ),
        (
            r#""event_type":"t","metadata":{"a":"x\u0000y"}"#.to_owned(),
            "metadata",
        ),
        (
            r#""event_type":"t","metadata":{"a":[1,{"b":["ok","\u0000"]}]}"#.to_owned(),
            "metadata",
        ),
        (
            r#""event_type":"t","metadata":{"a":{"k\u0000":null}}"#.to_owned(),
            "metadata",
        ),
    ] {
        let line = format!(r#"{{"type":"event","seq":3,{event}}}"#);
        let Err(Rejection::Nack { seq, code, message }) = decode_str(&line) else {
            panic!("expected a nack: {line}")
        };
        assert_eq!((seq, code), (3, ErrorCode::Invalid), "{line}");
        assert!(message.contains(field), "{line}: {message}");
    }
    // Other control characters are storable and accepted.
    let line = r#"{"type":"event","seq":4,"event_type":"t","unit":"\u0001","metadata":{"a":"\t"}}"#;
    assert!(decode_str(line).is_ok());
}

#[test]
fn times_postgresql_cannot_store_are_out_of_range_whatever_the_retention() {
    let limits = Limits {
        now_ms: NOW,
        retention_ms: i64::MAX,
    };
    let line = format!(
        r#"{{"type":"event","seq":2,"event_type":"t","ts_ms":{}}}"#,
        EARLIEST_STORABLE_MS - 1
    );
    assert!(matches!(
        decode(line.as_bytes(), &limits),
        Err(Rejection::Nack {
            seq: 2,
            code: ErrorCode::OutOfRange,
            ..
        })
    ));
    let line =
        format!(r#"{{"type":"event","seq":2,"event_type":"t","ts_ms":{EARLIEST_STORABLE_MS}}}"#);
    assert!(decode(line.as_bytes(), &limits).is_ok());
}

#[test]
fn a_full_frame_of_typical_events_fits_the_frame_limit() {
    let events: Vec<String> = (0..MAX_EVENTS_PER_FRAME)
        .map(|i| {
            format!(
                r#"{{"event_id":"{}","event_type":"temperature","value":{}.25,"unit":"C","ts_ms":{}}}"#,
                Uuid::now_v7(),
                1000 + i,
                NOW - 1_000_000 + i as i64
            )
        })
        .collect();
    let line = format!(
        r#"{{"type":"events","seq":1,"events":[{}]}}"#,
        events.join(",")
    );
    // About 128 KB: twice the old 64 KiB limit, half the new one.
    assert!(
        line.len() > 64 * 1024 && line.len() < MAX_FRAME_BYTES,
        "{}",
        line.len()
    );
    assert!(
        matches!(decode_str(&line), Ok(Inbound::Events { events, .. }) if events.len() == 1000)
    );
}

#[test]
fn the_frame_limit_is_exact() {
    let frame = r#"{"type":"event","seq":1,"event_type":"t"}"#;
    let exact = format!("{frame}{}", " ".repeat(MAX_FRAME_BYTES - frame.len()));
    assert_eq!(exact.len(), 262_144);
    assert!(decode_str(&exact).is_ok());
    let over = format!("{exact} ");
    assert_eq!(error_code(&over), ErrorCode::FrameTooLarge);
}

#[test]
fn timestamps_out_of_range_are_nacked() {
    let future = NOW + FUTURE_TOLERANCE_MS + 1;
    let line = format!(r#"{{"type":"event","seq":7,"event_type":"t","ts_ms":{future}}}"#);
    assert_eq!(nack_code(&line), (7, ErrorCode::OutOfRange));
    let ancient = NOW - 731 * DAY_MS;
    let line = format!(r#"{{"type":"event","seq":8,"event_type":"t","ts_ms":{ancient}}}"#);
    assert_eq!(nack_code(&line), (8, ErrorCode::OutOfRange));
    let line = format!(
        r#"{{"type":"event","seq":9,"event_type":"t","ts_ms":{}}}"#,
        i64::MIN
    );
    assert_eq!(nack_code(&line), (9, ErrorCode::OutOfRange));
    let line = r#"{"type":"event","seq":10,"event_type":"t","ts_ms":1.5}"#;
    assert_eq!(nack_code(line), (10, ErrorCode::Invalid));
}

#[test]
fn fields_are_validated() {
    for line in [
        r#"{"type":"event","seq":1,"event_type":"Bad Type"}"#,
        r#"{"type":"event","seq":1}"#,
        r#"{"type":"event","seq":1,"event_type":"t","unit":"abcdefghijklmnopqrstu"}"#,
        r#"{"type":"event","seq":1,"event_type":"t","unit":5}"#,
        r#"{"type":"event","seq":1,"event_type":"t","event_id":"nope"}"#,
        r#"{"type":"event","seq":1,"event_type":"t","metadata":[1]}"#,
    ] {
        assert_eq!(nack_code(line), (1, ErrorCode::Invalid), "{line}");
    }
    let big = format!(
        r#"{{"type":"event","seq":1,"event_type":"t","metadata":{{"a":"{}"}}}}"#,
        "x".repeat(MAX_METADATA_BYTES)
    );
    assert_eq!(nack_code(&big), (1, ErrorCode::Invalid));
}

#[test]
fn messages_never_echo_the_offending_value() {
    let line = r#"{"type":"event","seq":1,"event_type":"t","event_id":"topsecret"}"#;
    let Err(Rejection::Nack { message, .. }) = decode_str(line) else {
        panic!("expected nack")
    };
    assert!(!message.contains("topsecret"));
}

#[test]
fn ping_and_command_results_are_decoded() {
    assert!(matches!(
        decode_str(r#"{"type":"ping"}"#),
        Ok(Inbound::Ping)
    ));
    let id = Uuid::now_v7();
    let line =
        format!(r#"{{"type":"command_result","request_id":"{id}","success":true,"message":"ok"}}"#);
    let Ok(Inbound::CommandResult(r)) = decode_str(&line) else {
        panic!("not a result")
    };
    assert_eq!(
        (r.request_id, r.success, r.message.as_str()),
        (id, true, "ok")
    );
    let line = format!(r#"{{"type":"command_result","request_id":"{id}"}}"#);
    assert_eq!(error_code(&line), ErrorCode::Invalid);
}

#[test]
fn drafts_complete_into_events_with_derived_ids_and_server_time() {
    let fields = EventFields {
        event_type: "t",
        ..EventFields::default()
    };
    let draft = EventDraft::new(fields, &limits()).unwrap();
    let origin = Origin {
        device_id: DeviceId::new(),
        session_id: Uuid::now_v7(),
        seq: 3,
        now_ms: NOW,
        source: "tcp",
    };
    let a = draft.clone().into_event(origin, 0);
    let b = draft.into_event(origin, 0);
    assert_eq!(a.event_id, b.event_id);
    assert_eq!(a.ts_ms, NOW);
    assert_eq!(a.source.as_deref(), Some("tcp"));
}

#[test]
fn outbound_frames_match_the_protocol() {
    assert_eq!(
        encode(&Outbound::Ack {
            seq: 41,
            upto: false
        }),
        r#"{"type":"ack","seq":41}"#
    );
    assert_eq!(
        encode(&Outbound::Ack {
            seq: 42,
            upto: true
        }),
        r#"{"type":"ack","seq":42,"upto":true}"#
    );
    assert_eq!(
        encode(&Outbound::error(ErrorCode::Replaced, "x")),
        r#"{"type":"error","code":"replaced","message":"x"}"#
    );
    assert_eq!(
        encode(&Outbound::Pong { server_time_ms: 5 }),
        r#"{"type":"pong","server_time_ms":5}"#
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes, &limits());
    }

    #[test]
    fn arbitrary_json_like_text_never_panics(text in r#"[\{\}\[\]":,0-9a-z_. -]{0,200}"#) {
        let _ = decode(text.as_bytes(), &limits());
    }

    #[test]
    fn arbitrary_event_fields_never_panic(
        seq in any::<i64>(),
        ts in any::<i64>(),
        value in any::<f64>(),
        kind in "[a-zA-Z_ .-]{0,60}",
        unit in ".{0,30}",
    ) {
        let frame = serde_json::json!({
            "type": "event", "seq": seq, "ts_ms": ts, "value": value,
            "event_type": kind, "unit": unit,
        });
        if let Ok(Inbound::Events { events, .. }) = decode(frame.to_string().as_bytes(), &limits()) {
            let e = &events[0];
            prop_assert!(e.value().is_none_or(f64::is_finite));
            prop_assert!(e.ts_ms().is_none_or(|t| t <= NOW + FUTURE_TOLERANCE_MS));
        }
    }
}
