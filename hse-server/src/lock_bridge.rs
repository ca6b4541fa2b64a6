//! hse-booking's [`LockProgrammer`] port over hse-devices commands: door
//! codes go to the locks as `program_code` / `remove_code` (`docs/PROTOCOL.md`),
//! and the device's answer becomes the booking crate's [`Attempt`].
//!
//! | device answer | attempt |
//! |---|---|
//! | `success: true` | acknowledged |
//! | `success: false` | refused, with the device's message |
//! | `device_offline`, `timeout` (or a clashing request id) | unreachable: retried with backoff |
//!
//! The PIN travels only inside the command's params; nothing here logs it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hse_booking::DoorCodeId;
use hse_booking::codes::Attempt;
use hse_booking::lock::{LockProgrammer, ProgramCode};
use hse_core::DeviceId;
use hse_devices::codec::CommandResult;
use hse_devices::commands::{Command, CommandError, CommandSender, DEFAULT_COMMAND_TIMEOUT};
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// Sends door-code changes to locks through a [`CommandSender`].
#[derive(Debug, Clone)]
pub struct LockBridge {
    sender: Arc<dyn CommandSender>,
    timeout: Duration,
}

impl LockBridge {
    /// A bridge over `sender`, waiting the protocol's default 10 s per
    /// command.
    #[must_use]
    pub fn new(sender: Arc<dyn CommandSender>) -> Self {
        Self {
            sender,
            timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }

    /// Waits `timeout` for each device answer instead.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn send(&self, device: DeviceId, kind: &str, params: Map<String, Value>) -> Attempt {
        let command = Command {
            request_id: Uuid::now_v7(),
            command_type: kind.to_owned(),
            params,
        };
        let request_id = command.request_id;
        let outcome = self.sender.send(device, command, self.timeout).await;
        let attempt = attempt(outcome);
        if attempt != Attempt::Acknowledged {
            tracing::debug!(device.id = %device, command.id = %request_id, command.kind = kind, ?attempt, "lock did not acknowledge");
        }
        attempt
    }
}

/// The booking crate's reading of a command's outcome.
fn attempt(outcome: Result<CommandResult, CommandError>) -> Attempt {
    match outcome {
        Ok(result) if result.success => Attempt::Acknowledged,
        Ok(result) => Attempt::Refused(refusal(&result.message)),
        Err(_) => Attempt::Unreachable,
    }
}

/// The device's reason, bounded (it is stored with the code).
fn refusal(message: &str) -> String {
    let reason: String = message
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    if reason.trim().is_empty() {
        "refused by the lock".to_owned()
    } else {
        reason
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[async_trait]
impl LockProgrammer for LockBridge {
    async fn program(&self, request: &ProgramCode<'_>) -> Attempt {
        let params = object(json!({
            "code_id": request.slot,
            "code": request.code.expose(),
            "valid_from_ms": request.valid_from.timestamp_millis(),
            "valid_until_ms": request.valid_until.timestamp_millis(),
        }));
        self.send(request.device, "program_code", params).await
    }

    async fn remove(&self, device: DeviceId, slot: DoorCodeId) -> Attempt {
        let params = object(json!({ "code_id": slot }));
        self.send(device, "remove_code", params).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::{TimeZone, Utc};
    use hse_booking::door_code::DoorCode;

    use super::*;

    /// Answers every command with a scripted outcome and remembers it.
    #[derive(Debug)]
    struct FakeLock {
        answer: Result<(bool, &'static str), CommandError>,
        seen: Mutex<Vec<(DeviceId, Command)>>,
    }

    impl FakeLock {
        fn new(answer: Result<(bool, &'static str), CommandError>) -> Arc<Self> {
            Arc::new(Self {
                answer,
                seen: Mutex::new(Vec::new()),
            })
        }
    }

    #[async_trait]
    impl CommandSender for FakeLock {
        async fn send(
            &self,
            device_id: DeviceId,
            command: Command,
            _timeout: Duration,
        ) -> Result<CommandResult, CommandError> {
            let request_id = command.request_id;
            self.seen.lock().unwrap().push((device_id, command));
            self.answer.map(|(success, message)| CommandResult {
                request_id,
                success,
                message: message.into(),
            })
        }
    }

    fn request<'a>(device: DeviceId, slot: DoorCodeId, code: &'a DoorCode) -> ProgramCode<'a> {
        ProgramCode {
            device,
            slot,
            code,
            valid_from: Utc.timestamp_millis_opt(1_764_288_000_000).unwrap(),
            valid_until: Utc.timestamp_millis_opt(1_764_460_800_000).unwrap(),
        }
    }

    #[tokio::test]
    async fn program_code_carries_the_protocol_params_and_an_ack_is_acknowledged() {
        let lock = FakeLock::new(Ok((true, "ok")));
        let bridge = LockBridge::new(lock.clone());
        let (device, slot) = (DeviceId::new(), DoorCodeId::new());
        let code = DoorCode::parse("482913").unwrap();
        let attempt = bridge.program(&request(device, slot, &code)).await;
        assert_eq!(attempt, Attempt::Acknowledged);
        let seen = lock.seen.lock().unwrap();
        let (to, command) = &seen[0];
        assert_eq!(*to, device);
        assert_eq!(command.command_type, "program_code");
        assert_eq!(
            Value::Object(command.params.clone()),
            json!({
                "code_id": slot.to_string(),
                "code": "482913",
                "valid_from_ms": 1_764_288_000_000_i64,
                "valid_until_ms": 1_764_460_800_000_i64,
            })
        );
    }

    #[tokio::test]
    async fn remove_code_names_only_the_slot() {
        let lock = FakeLock::new(Ok((true, "ok")));
        let bridge = LockBridge::new(lock.clone());
        let (device, slot) = (DeviceId::new(), DoorCodeId::new());
        assert_eq!(bridge.remove(device, slot).await, Attempt::Acknowledged);
        let seen = lock.seen.lock().unwrap();
        assert_eq!(seen[0].1.command_type, "remove_code");
        assert_eq!(
            Value::Object(seen[0].1.params.clone()),
            json!({"code_id": slot.to_string()})
        );
    }

    #[tokio::test]
    async fn a_failure_is_refused_with_the_locks_reason() {
        let bridge = LockBridge::new(FakeLock::new(Ok((false, "memory full"))));
        let code = DoorCode::parse("482913").unwrap();
        let attempt = bridge
            .program(&request(DeviceId::new(), DoorCodeId::new(), &code))
            .await;
        assert_eq!(attempt, Attempt::Refused("memory full".into()));
        let silent = LockBridge::new(FakeLock::new(Ok((false, ""))));
        let attempt = silent.remove(DeviceId::new(), DoorCodeId::new()).await;
        assert_eq!(attempt, Attempt::Refused("refused by the lock".into()));
    }

    #[tokio::test]
    async fn offline_and_timeout_are_unreachable_so_they_are_retried() {
        for error in [CommandError::DeviceOffline, CommandError::Timeout] {
            let bridge = LockBridge::new(FakeLock::new(Err(error)));
            let attempt = bridge.remove(DeviceId::new(), DoorCodeId::new()).await;
            assert_eq!(attempt, Attempt::Unreachable, "{error}");
        }
    }

    #[tokio::test]
    async fn a_real_connection_registry_without_the_lock_is_offline() {
        let bridge = LockBridge::new(Arc::new(hse_devices::commands::Connections::new()));
        let attempt = bridge.remove(DeviceId::new(), DoorCodeId::new()).await;
        assert_eq!(attempt, Attempt::Unreachable);
    }
}
