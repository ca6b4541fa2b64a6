//! The outbox dispatcher with the real webhook and SMTP channels, each
//! talking to a listener started by the test.

use std::sync::Arc;

use chrono::{Duration, Utc};
use hse_booking::clock::ManualClock;
use hse_booking::notification::{ChannelKind, NotificationKind, NotificationStatus};
use hse_booking::smtp::SmtpChannel;
use hse_booking::webhook::{WebhookChannel, sign};
use hse_booking::{BookingsConfig, Dispatcher};
use hse_core::value::Email;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::support::{World, both};

const SECRET: &[u8] = b"a-webhook-secret-of-some-length";

/// An HTTP endpoint that answers `statuses` in turn and reports each
/// request's (signature header, timestamp header, body).
async fn endpoint(
    statuses: Vec<u16>,
) -> (String, mpsc::UnboundedReceiver<(String, String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/hse", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for status in statuses {
            let (stream, _) = listener.accept().await.unwrap();
            let mut reader = BufReader::new(stream);
            let (mut sig, mut ts, mut len) = (String::new(), String::new(), 0usize);
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).await.unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap_or((line, ""));
                match name.to_ascii_lowercase().as_str() {
                    "x-hse-signature" => sig = value.trim().to_owned(),
                    "x-hse-timestamp" => ts = value.trim().to_owned(),
                    "content-length" => len = value.trim().parse().unwrap(),
                    _ => {}
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).await.unwrap();
            let reply =
                format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            reader.get_mut().write_all(reply.as_bytes()).await.unwrap();
            tx.send((sig, ts, String::from_utf8(body).unwrap()))
                .unwrap();
        }
    });
    (url, rx)
}

both!(webhooks_are_signed_and_retried_until_delivered);
async fn webhooks_are_signed_and_retried_until_delivered(w: World) {
    let now = Utc::now();
    let service = w.service_with(BookingsConfig {
        channels: vec![ChannelKind::Webhook],
        ..Default::default()
    });
    let b = service
        .create_booking(&w.admin, w.request(w.rooms[0], 0, 24), now)
        .await
        .unwrap();
    service.cancel(&w.admin, b.id, "", now).await.unwrap();
    let (url, mut requests) = endpoint(vec![500, 200]).await;
    let clock = Arc::new(ManualClock::new(now));
    let dispatcher = Dispatcher::new(w.store.clone(), clock.clone()).with_channel(
        ChannelKind::Webhook,
        Arc::new(WebhookChannel::new(&url, SECRET).unwrap()),
    );
    assert_eq!(dispatcher.run_once().await.unwrap(), 1);
    let n = &service.notifications(&w.admin, b.id).await.unwrap()[0];
    assert_eq!((n.status, n.attempts), (NotificationStatus::Pending, 1));
    assert!(n.last_error.as_deref().unwrap().contains("500"));
    // Not due again until the backoff passes.
    assert_eq!(dispatcher.run_once().await.unwrap(), 0);
    clock.advance(Duration::minutes(5));
    assert_eq!(dispatcher.run_once().await.unwrap(), 1);
    let n = &service.notifications(&w.admin, b.id).await.unwrap()[0];
    assert_eq!(n.status, NotificationStatus::Sent);
    let _first = requests.recv().await.unwrap();
    let (sig, ts, body) = requests.recv().await.unwrap();
    assert_eq!(sig, sign(SECRET, ts.parse().unwrap(), body.as_bytes()));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["type"], NotificationKind::BookingCancelled.as_str());
    assert_eq!(json["booking_id"], b.id.to_string());
}

/// A one-message SMTP server; reports the DATA it received.
async fn smtp_server() -> (u16, mpsc::UnboundedReceiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let mut conn = BufReader::new(stream);
            conn.get_mut()
                .write_all(b"220 test ESMTP\r\n")
                .await
                .unwrap();
            let (mut rcpt, mut data) = (String::new(), String::new());
            loop {
                let mut line = String::new();
                if conn.read_line(&mut line).await.unwrap() == 0 {
                    break;
                }
                let reply: &[u8] = match line.trim_end() {
                    l if l.starts_with("EHLO") => b"250-test\r\n250 8BITMIME\r\n",
                    l if l.starts_with("MAIL FROM") => b"250 ok\r\n",
                    l if l.starts_with("RCPT TO") => {
                        rcpt = l.to_owned();
                        b"250 ok\r\n"
                    }
                    "DATA" => {
                        conn.get_mut().write_all(b"354 go on\r\n").await.unwrap();
                        loop {
                            let mut l = String::new();
                            conn.read_line(&mut l).await.unwrap();
                            if l == ".\r\n" {
                                break;
                            }
                            data.push_str(&l);
                        }
                        b"250 queued\r\n"
                    }
                    "QUIT" => {
                        conn.get_mut().write_all(b"221 bye\r\n").await.unwrap();
                        break;
                    }
                    _ => b"500 what\r\n",
                };
                conn.get_mut().write_all(reply).await.unwrap();
            }
            tx.send((rcpt, data)).unwrap();
        }
    });
    (port, rx)
}

both!(check_in_instructions_with_the_code_go_out_by_email);
async fn check_in_instructions_with_the_code_go_out_by_email(w: World) {
    let now = Utc::now();
    let b = w.book(w.rooms[0], 0, 24).await;
    w.service.confirm(&w.admin, b.id, now).await.unwrap();
    let (port, mut mails) = smtp_server().await;
    let from = Email::parse("frontdesk@hotel.example").unwrap();
    let dispatcher = Dispatcher::new(w.store.clone(), Arc::new(ManualClock::new(now)))
        .with_channel(
            ChannelKind::Email,
            Arc::new(SmtpChannel::new("127.0.0.1", port, from)),
        );
    assert_eq!(dispatcher.run_once().await.unwrap(), 2);
    let sent = w.service.notifications(&w.admin, b.id).await.unwrap();
    assert!(
        sent.iter().all(|n| n.status == NotificationStatus::Sent),
        "{sent:?}"
    );
    let code = w.service.codes(&w.admin, b.id).await.unwrap().remove(0);
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let (rcpt, data) = mails.recv().await.unwrap();
        assert_eq!(rcpt, "RCPT TO:<ana@example.com>");
        bodies.push(data);
    }
    let instructions = bodies
        .iter()
        .find(|d| d.contains("Subject: Check-in instructions"))
        .unwrap();
    assert!(instructions.contains(code.code.expose()));
}
