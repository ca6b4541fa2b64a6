//! A Rust client of the devices gRPC service (feature `grpc`) for other
//! services: calls go through a [`CircuitBreaker`], and a subscription
//! re-subscribes by itself from the last cursor it delivered, so a
//! reconnecting client misses nothing the feed still holds. A server
//! started with a service token (`HSE_GRPC_TOKEN`) is called with
//! [`DevicesClient::with_token`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::breaker::{BreakerSettings, BreakerState, CircuitBreaker};
use crate::grpc::pb::device_stream_client::DeviceStreamClient;
use crate::grpc::pb::{
    CommandResponse, DeviceChangeEvent, DeviceCommand, DeviceEventsRequest, DeviceEventsResponse,
    DeviceStatusRequest, DeviceStatusResponse, NotifyEventsRequest, NotifyEventsResponse,
    SubscriptionRequest,
};

/// Changes buffered for the application before the subscription waits.
const BUFFER: usize = 256;
/// Longest pause between re-subscription attempts.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// The client.
#[derive(Clone, Debug)]
pub struct DevicesClient {
    inner: Inner,
    channel: Channel,
    breaker: Arc<Mutex<CircuitBreaker>>,
}

/// The generated client, adding the bearer token (if any) to every call.
type Inner = DeviceStreamClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer <token>` to each call when there is a token.
#[derive(Clone, Debug, Default)]
struct Bearer(Option<AsciiMetadataValue>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// Whether a failure says the service is unhealthy (counts for the breaker)
/// rather than that the request was wrong.
fn is_outage(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Internal
            | Code::Unknown
            | Code::ResourceExhausted
    )
}

impl DevicesClient {
    /// A client of the service at `url` (e.g. `http://127.0.0.1:50051`);
    /// connects lazily and reconnects by itself.
    ///
    /// # Errors
    /// [`Status`] `InvalidArgument` when `url` is not a valid endpoint.
    pub fn connect_lazy(url: &str, settings: BreakerSettings) -> Result<Self, Status> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|_| Status::invalid_argument("not a valid endpoint URL"))?
            .connect_timeout(Duration::from_secs(2));
        let channel = endpoint.connect_lazy();
        Ok(Self {
            inner: DeviceStreamClient::with_interceptor(channel.clone(), Bearer::default()),
            channel,
            breaker: Arc::new(Mutex::new(CircuitBreaker::new(settings, Instant::now()))),
        })
    }

    /// The same client sending `token` as `authorization: Bearer <token>`
    /// on every call (the server's `HSE_GRPC_TOKEN`).
    ///
    /// # Errors
    /// [`Status`] `InvalidArgument` when the token is not printable ASCII.
    pub fn with_token(self, token: &str) -> Result<Self, Status> {
        let value: AsciiMetadataValue = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| Status::invalid_argument("the token must be printable ASCII"))?;
        Ok(Self {
            inner: DeviceStreamClient::with_interceptor(self.channel.clone(), Bearer(Some(value))),
            ..self
        })
    }

    /// The breaker's state now.
    #[must_use]
    pub fn circuit(&self) -> BreakerState {
        self.lock().state(Instant::now())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CircuitBreaker> {
        self.breaker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn guarded<T, F>(&self, call: F) -> Result<T, Status>
    where
        F: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.lock()
            .allow(Instant::now())
            .map_err(|_| Status::unavailable("circuit open"))?;
        let outcome = call.await;
        let healthy = outcome.as_ref().err().is_none_or(|s| !is_outage(s));
        self.lock().record(Instant::now(), healthy);
        outcome.map(tonic::Response::into_inner)
    }

    /// `SendDeviceCommand` through the breaker.
    ///
    /// # Errors
    /// The call's [`Status`], or `Unavailable` while the circuit is open.
    pub async fn send_command(&self, command: DeviceCommand) -> Result<CommandResponse, Status> {
        let mut inner = self.inner.clone();
        self.guarded(inner.send_device_command(command)).await
    }

    /// `NotifyDeviceEvents` through the breaker.
    ///
    /// # Errors
    /// The call's [`Status`], or `Unavailable` while the circuit is open.
    pub async fn notify_events(
        &self,
        request: NotifyEventsRequest,
    ) -> Result<NotifyEventsResponse, Status> {
        let mut inner = self.inner.clone();
        self.guarded(inner.notify_device_events(request)).await
    }

    /// `GetDeviceStatus` through the breaker.
    ///
    /// # Errors
    /// The call's [`Status`], or `Unavailable` while the circuit is open.
    pub async fn status(&self, device_id: &str) -> Result<DeviceStatusResponse, Status> {
        let mut inner = self.inner.clone();
        let request = DeviceStatusRequest {
            device_id: device_id.to_owned(),
        };
        self.guarded(inner.get_device_status(request)).await
    }

    /// `GetDeviceEvents` through the breaker.
    ///
    /// # Errors
    /// The call's [`Status`], or `Unavailable` while the circuit is open.
    pub async fn events(
        &self,
        request: DeviceEventsRequest,
    ) -> Result<DeviceEventsResponse, Status> {
        let mut inner = self.inner.clone();
        self.guarded(inner.get_device_events(request)).await
    }

    /// Subscribes and keeps subscribed: after a broken stream it
    /// re-subscribes from the last delivered cursor, with capped backoff.
    /// A `DATA_LOSS` status (fell behind the feed) is passed on, then it
    /// continues from the live head. Ends when the receiver is dropped.
    #[must_use]
    pub fn subscribe(
        &self,
        request: SubscriptionRequest,
    ) -> mpsc::Receiver<Result<DeviceChangeEvent, Status>> {
        let (tx, rx) = mpsc::channel(BUFFER);
        tokio::spawn(resubscribing(self.inner.clone(), request, tx));
        rx
    }
}

async fn resubscribing(
    mut client: Inner,
    mut request: SubscriptionRequest,
    tx: mpsc::Sender<Result<DeviceChangeEvent, Status>>,
) {
    let mut delay = Duration::from_millis(50);
    while !tx.is_closed() {
        if let Ok(response) = client.subscribe_to_device_changes(request.clone()).await {
            let mut stream = response.into_inner();
            delay = Duration::from_millis(50);
            loop {
                match stream.message().await {
                    Ok(Some(change)) => {
                        request.resume_cursor.clone_from(&change.cursor);
                        if tx.send(Ok(change)).await.is_err() {
                            return;
                        }
                    }
                    Err(status) if status.code() == Code::DataLoss => {
                        request.resume_cursor.clear();
                        if tx.send(Err(status)).await.is_err() {
                            return;
                        }
                        break;
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
        tokio::select! {
            () = tx.closed() => return,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(MAX_RETRY);
    }
}
