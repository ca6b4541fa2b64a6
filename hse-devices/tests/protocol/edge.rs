//! What the edge refuses and accepts, over TCP and WebSocket alike: the
//! frame limits at their boundaries, non-finite values and NUL characters
//! (nacked for their `seq`, never enqueued).

use super::*;

const MAX_FRAME: usize = 262_144;

/// An `events` frame of `n` typical events (UUID `event_id`, type, value,
/// unit, `ts_ms`), padded with spaces to `len` bytes when given.
fn typical_frame(seq: u64, n: usize, len: Option<usize>) -> String {
    let now = chrono::Utc::now().timestamp_millis();
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({"event_id":uuid::Uuid::now_v7(),"event_type":"temperature",
                   "value":20.0 + i as f64 / 8.0,"unit":"C","ts_ms":now - i as i64})
        })
        .collect();
    let mut frame = json!({"type":"events","seq":seq,"events":events}).to_string();
    if let Some(len) = len {
        assert!(frame.len() <= len, "{} > {len}", frame.len());
        frame.push_str(&" ".repeat(len - frame.len()));
    }
    frame
}

async fn enqueued(node: &Node) -> usize {
    let consumer = node.queue.consumer("check");
    let mut n = 0;
    loop {
        let got = consumer.read(10_000, Duration::ZERO).await.unwrap();
        if got.is_empty() {
            return n;
        }
        n += got.len();
    }
}

#[tokio::test]
async fn tcp_a_full_frame_is_acked_and_the_frame_limit_is_exact() {
    let node = node().await;
    let (_, mut d) = node.connected().await;
    d.send_raw(format!("{}\n", typical_frame(1, 1000, None)).as_bytes())
        .await;
    assert_eq!(d.recv().await.unwrap(), json!({"type":"ack","seq":1}));
    d.send_raw(format!("{}\r\n", typical_frame(2, 1000, Some(MAX_FRAME))).as_bytes())
        .await;
    assert_eq!(d.recv().await.unwrap(), json!({"type":"ack","seq":2}));
    d.send_raw(format!("{}\n", typical_frame(3, 1001, None)).as_bytes())
        .await;
    let nack = d.recv().await.unwrap();
    assert_eq!(
        (nack["seq"].as_u64(), nack["code"].as_str()),
        (Some(3), Some("invalid"))
    );
    d.send_raw(format!("{}\n", typical_frame(4, 1000, Some(MAX_FRAME + 1))).as_bytes())
        .await;
    assert_eq!(d.recv().await.unwrap()["code"], "frame_too_large");
    d.expect_closed().await;
    assert_eq!(enqueued(&node).await, 2000);
}

#[tokio::test]
async fn websocket_a_full_frame_is_acked_and_the_frame_limit_is_exact() {
    let node = node().await;
    let mut d = TextDevice::connect(&node).await;
    d.send(typical_frame(1, 1000, None)).await;
    assert_eq!(d.recv().await, json!({"type":"ack","seq":1}));
    d.send(typical_frame(2, 1000, Some(MAX_FRAME))).await;
    assert_eq!(d.recv().await, json!({"type":"ack","seq":2}));
    d.send(typical_frame(3, 1001, None)).await;
    let nack = d.recv().await;
    assert_eq!(
        (nack["seq"].as_u64(), nack["code"].as_str()),
        (Some(3), Some("invalid"))
    );
    d.send(typical_frame(4, 1000, Some(MAX_FRAME + 1))).await;
    assert_eq!(d.recv().await["code"], "frame_too_large");
    d.session.await.unwrap();
    assert_eq!(enqueued(&node).await, 2000);
}

#[tokio::test]
async fn a_value_beyond_f64_is_nacked_for_its_seq_and_the_session_goes_on() {
    let node = node().await;
    let (_, mut d) = node.connected().await;
    d.send_raw(b"{\"type\":\"event\",\"seq\":1,\"event_type\":\"t\",\"value\":1e309}\n")
        .await;
    d.send_raw(b"{\"type\":\"events\",\"seq\":2,\"events\":[{\"event_type\":\"t\",\"value\":1},{\"event_type\":\"t\",\"value\":-1e400}]}\n")
        .await;
    d.send(&event(3, "t")).await;
    for seq in [1, 2] {
        let nack = d.recv().await.unwrap();
        assert_eq!(
            (
                nack["type"].as_str(),
                nack["seq"].as_u64(),
                nack["code"].as_str()
            ),
            (Some("nack"), Some(seq), Some("invalid")),
            "{nack}"
        );
        assert!(
            nack["message"].as_str().unwrap().contains("value"),
            "{nack}"
        );
    }
    assert_eq!(d.recv().await.unwrap(), json!({"type":"ack","seq":3}));
    assert_eq!(enqueued(&node).await, 1);
}

#[tokio::test]
async fn a_nul_character_anywhere_stored_is_nacked_naming_the_field() {
    let node = node().await;
    let (_, mut d) = node.connected().await;
    let id = uuid::Uuid::now_v7();
    let cases = [
        (json!({"event_type":"t","unit":"C\u{0}"}), "unit"),
        (json!({"event_type":"t\u{0}"}), "event_type"),
        (
            json!({"event_type":"t","event_id":format!("{id}\u{0}")}),
            "event_id",
        ),
        (
            json!({"event_type":"t","metadata":{"k\u{0}":1}}),
            "metadata",
        ),
        (
            json!({"event_type":"t","metadata":{"a":[{"b":"x\u{0}"}]}}),
            "metadata",
        ),
    ];
    for (seq, (fields, _)) in (1u64..).zip(&cases) {
        d.send(&json!({"type":"events","seq":seq,"events":[{"event_type":"ok"}, fields]}))
            .await;
    }
    for (seq, (_, field)) in (1u64..).zip(&cases) {
        let nack = d.recv().await.unwrap();
        assert_eq!(
            (nack["seq"].as_u64(), nack["code"].as_str()),
            (Some(seq), Some("invalid")),
            "{nack}"
        );
        assert!(nack["message"].as_str().unwrap().contains(field), "{nack}");
    }
    d.send(&event(9, "t")).await;
    assert_eq!(d.recv().await.unwrap(), json!({"type":"ack","seq":9}));
    assert_eq!(enqueued(&node).await, 1);
}
