//! The Redis dead-letter store: one letter per event, whatever the number
//! of writers.

use super::*;

/// How long a dead-lettered event's marker keeps a second writer from
/// dead-lettering it again (a day: far longer than any redelivery).
const DLQ_EVENT_TTL_SECONDS: u64 = 86_400;

/// Adds the letter `ARGV[1]` to the stream `KEYS[2]` unless the event's
/// marker `KEYS[1]` exists (another writer dead-lettered it already);
/// sets the marker for `ARGV[2]` seconds. Returns 1 when added.
const ADD_ONCE: &str = r"
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
    redis.call('XADD', KEYS[2], '*', 'l', ARGV[1])
    return 1
end
return 0";

/// Replaces entry `ARGV[1]` of `KEYS[1]` by the letter `ARGV[2]` in
/// `KEYS[2]`, only if the entry was still there: of several writers that
/// retried the same letter at once, one moves it and the others change
/// nothing. Returns 1 when moved.
const MOVE_IF_THERE: &str = r"
if redis.call('XDEL', KEYS[1], ARGV[1]) == 1 then
    redis.call('XADD', KEYS[2], '*', 'l', ARGV[2])
    return 1
end
return 0";

/// Dead letters in the streams `{p}dlq` (retrying) and `{p}dlq:permanent`.
///
/// One letter per event whatever the number of writers: adding sets a
/// per-event marker first (`SET NX`), and a retry's update moves the
/// letter only if its entry is still there (`XDEL` returned 1), in one
/// script each.
#[derive(Clone, Debug)]
pub struct RedisDeadLetters {
    conn: ConnectionManager,
    keys: Keys,
}

impl RedisDeadLetters {
    /// Dead letters under `keys`.
    #[must_use]
    pub fn new(conn: ConnectionManager, keys: Keys) -> Self {
        Self { conn, keys }
    }

    async fn range(
        &self,
        permanent: bool,
        start: &str,
        end: &str,
        max: usize,
    ) -> Result<Vec<DeadLetter>, QueueError> {
        let mut conn = self.conn.clone();
        let reply: StreamRangeReply = conn
            .xrange_count(self.keys.dlq(permanent), start, end, max)
            .await
            .map_err(unavailable)?;
        Ok(reply
            .ids
            .iter()
            .filter_map(|entry| letter_of(entry, permanent))
            .collect())
    }
}

fn letter_of(entry: &StreamId, permanent: bool) -> Option<DeadLetter> {
    let raw = match entry.map.get("l")? {
        Value::BulkString(bytes) => bytes.clone(),
        Value::SimpleString(text) => text.clone().into_bytes(),
        _ => return None,
    };
    let mut letter: DeadLetter = serde_json::from_slice(&raw).ok()?;
    letter.id = format!("{}{}", if permanent { "p-" } else { "r-" }, entry.id);
    letter.permanent = permanent;
    Some(letter)
}

/// The stream and entry id of a dead letter's id (`r-…` or `p-…`).
fn split_id(id: &str) -> Option<(bool, &str)> {
    id.strip_prefix("p-")
        .map(|rest| (true, rest))
        .or_else(|| id.strip_prefix("r-").map(|rest| (false, rest)))
}

fn encode_letter(letter: &DeadLetter) -> Result<String, QueueError> {
    serde_json::to_string(letter).map_err(|e| QueueError::Corrupt(e.to_string()))
}

#[async_trait]
impl DeadLetters for RedisDeadLetters {
    async fn add(
        &self,
        event: &Event,
        reason: &str,
        next_attempt_ms: i64,
    ) -> Result<(), QueueError> {
        let letter = DeadLetter {
            id: String::new(),
            event: event.clone(),
            reason: reason.to_owned(),
            tries: 0,
            next_attempt_ms,
            permanent: false,
        };
        let mut conn = self.conn.clone();
        static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(ADD_ONCE));
        SCRIPT
            .key(self.keys.dlq_event(event.device_id, event.event_id))
            .key(self.keys.dlq(false))
            .arg(encode_letter(&letter)?)
            .arg(DLQ_EVENT_TTL_SECONDS)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    async fn due(&self, now_ms: i64, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let all = self.range(false, "-", "+", 10_000).await?;
        Ok(all
            .into_iter()
            .filter(|l| l.next_attempt_ms <= now_ms)
            .take(max)
            .collect())
    }

    async fn update(&self, letter: &DeadLetter) -> Result<(), QueueError> {
        let (was_permanent, entry) = split_id(&letter.id).ok_or(QueueError::NotFound)?;
        let mut conn = self.conn.clone();
        static SCRIPT: LazyLock<redis::Script> =
            LazyLock::new(|| redis::Script::new(MOVE_IF_THERE));
        SCRIPT
            .key(self.keys.dlq(was_permanent))
            .key(self.keys.dlq(letter.permanent))
            .arg(entry)
            .arg(encode_letter(letter)?)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    async fn remove(&self, letter: &DeadLetter) -> Result<(), QueueError> {
        let (permanent, entry) = split_id(&letter.id).ok_or(QueueError::NotFound)?;
        let mut conn = self.conn.clone();
        conn.xdel(self.keys.dlq(permanent), &[entry])
            .await
            .map_err(unavailable)
    }

    async fn list(&self, permanent: bool, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        self.range(permanent, "-", "+", max).await
    }

    async fn get(&self, id: &str) -> Result<Option<DeadLetter>, QueueError> {
        let Some((permanent, entry)) = split_id(id) else {
            return Ok(None);
        };
        Ok(self
            .range(permanent, entry, entry, 1)
            .await?
            .into_iter()
            .next())
    }
}
