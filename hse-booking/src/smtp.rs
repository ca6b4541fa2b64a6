//! An email [`NotificationChannel`]: a minimal SMTP client (RFC 5321:
//! `EHLO`, `MAIL FROM`, `RCPT TO`, `DATA`, `QUIT`) over plain TCP.
//!
//! Meant for a local relay (a sidecar MTA or the provider's agent) that
//! handles TLS and authentication; no `STARTTLS`/`AUTH` here. Header values
//! are stripped of line breaks, and body lines starting with `.` are
//! dot-stuffed.

use std::time::Duration;

use async_trait::async_trait;
use hse_core::value::Email;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::dispatcher::NotificationChannel;
use crate::notification::Notification;

/// Where to relay mail, and as whom.
#[derive(Clone, Debug)]
pub struct SmtpChannel {
    host: String,
    port: u16,
    from: Email,
    helo: String,
    timeout: Duration,
}

impl SmtpChannel {
    /// A channel relaying through `host:port`, sending as `from`.
    #[must_use]
    pub fn new(host: &str, port: u16, from: Email) -> Self {
        Self {
            host: host.to_owned(),
            port,
            from,
            helo: "hse.localhost".to_owned(),
            timeout: Duration::from_secs(20),
        }
    }

    async fn deliver(&self, n: &Notification) -> Result<(), String> {
        let recipient = Email::parse(&n.recipient).map_err(|e| e.to_string())?;
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut conn = BufReader::new(stream);
        expect(&mut conn, 220).await?;
        command(&mut conn, &format!("EHLO {}", self.helo), 250).await?;
        command(&mut conn, &format!("MAIL FROM:<{}>", self.from), 250).await?;
        command(&mut conn, &format!("RCPT TO:<{recipient}>"), 250).await?;
        command(&mut conn, "DATA", 354).await?;
        let message = render(&self.from, &recipient, n);
        conn.get_mut()
            .write_all(message.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        expect(&mut conn, 250).await?;
        command(&mut conn, "QUIT", 221).await
    }
}

type Conn = BufReader<TcpStream>;

/// The longest reply line read (RFC 5321 allows 512 octets).
const MAX_REPLY_LINE: u64 = 4096;

async fn command(conn: &mut Conn, line: &str, want: u16) -> Result<(), String> {
    conn.get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    expect(conn, want).await
}

/// Reads a (possibly multi-line) reply and checks its code's class.
async fn expect(conn: &mut Conn, want: u16) -> Result<(), String> {
    loop {
        let mut line = String::new();
        let n = (&mut *conn)
            .take(MAX_REPLY_LINE)
            .read_line(&mut line)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 || line.len() < 4 {
            return Err("connection closed".into());
        }
        let code: u16 = line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| "malformed reply".to_owned())?;
        if line.as_bytes()[3] == b'-' {
            continue;
        }
        return if code / 100 == want / 100 {
            Ok(())
        } else {
            Err(format!("server answered {}", line.trim_end()))
        };
    }
}

fn header_value(v: &str) -> String {
    v.chars().filter(|c| !c.is_control()).collect()
}

fn render(from: &Email, to: &Email, n: &Notification) -> String {
    let mut out = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {}\r\nMessage-ID: <{}@hse>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
        header_value(&n.subject),
        n.id
    );
    for line in n.message.lines() {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(".\r\n");
    out
}

#[async_trait]
impl NotificationChannel for SmtpChannel {
    async fn send(&self, n: &Notification) -> Result<(), String> {
        tokio::time::timeout(self.timeout, self.deliver(n))
            .await
            .map_err(|_| "timed out".to_owned())?
    }
}
