//! The gRPC server of the `grpc` role: `proto/devices.proto`, and beside
//! it the standard services tooling and load balancers use:
//!
//! | service | what | token |
//! |---|---|---|
//! | `devices.DeviceStream` | the device service | `HSE_GRPC_TOKEN`, when set |
//! | `grpc.health.v1.Health` | `SERVING` for `""` (the server) and `devices.DeviceStream`; `NOT_SERVING` once the server drains, then `Watch` streams end | none: a load balancer's probe carries none |
//! | `grpc.reflection.v1.ServerReflection`, `grpc.reflection.v1alpha.ServerReflection` | the services and their descriptors (`grpcurl`, `grpc_cli`, Postman) | none: they describe the published proto only |
//!
//! With TLS ([`crate::tls`]) the listener negotiates ALPN `h2`.

use hse_devices::grpc::DevicesService;
use hse_devices::grpc::pb::FILE_DESCRIPTOR_SET;
use hse_devices::grpc::pb::device_stream_server::DeviceStreamServer;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use super::Devices;
use crate::connections::Limits;

/// The device service's name, as health checks name it.
pub const DEVICE_SERVICE: &str = <DeviceStreamServer<DevicesService> as NamedService>::NAME;

/// The services whose health is reported: the server as a whole (`""`)
/// and the device service.
pub const HEALTH_SERVICES: [&str; 2] = ["", DEVICE_SERVICE];

/// The gRPC service until `shutdown`, its connections bounded by `limits`
/// (caps per listener and per source, closed after the idle timeout; the
/// server pings every half of it so live clients are never idle), inside
/// TLS with `tls`.
///
/// With a `token`, every device-service call must carry
/// `authorization: Bearer <token>` (compared in constant time); without
/// one the service only listens on loopback, which the configuration
/// enforces.
pub async fn serve_grpc(
    devices: Devices,
    listener: TcpListener,
    token: Option<String>,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let service = DevicesService::new(
        devices.ingest.clone(),
        devices.commands.clone(),
        devices.state.clone(),
        devices.history.clone(),
    )
    .with_retention(devices.sessions.config.retention)
    .with_shutdown(shutdown.clone());
    let (reporter, health) = tonic_health::server::health_reporter();
    for name in HEALTH_SERVICES {
        reporter
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let (reflection_v1, reflection_v1alpha) =
        match (reflection().build_v1(), reflection().build_v1alpha()) {
            (Ok(v1), Ok(v1alpha)) => (v1, v1alpha),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "gRPC reflection: the descriptors do not load");
                return;
            }
        };
    let incoming = crate::connections::grpc_incoming(listener, limits, tls);
    let served = tonic::transport::Server::builder()
        .trace_fn(grpc_span)
        .http2_keepalive_interval(Some(limits.idle_timeout / 2))
        .http2_keepalive_timeout(Some(limits.idle_timeout / 2))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(DeviceStreamServer::with_interceptor(
            service,
            move |request| check_grpc_token(token.as_deref(), request),
        ))
        .serve_with_incoming_shutdown(incoming, draining(reporter, shutdown))
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "gRPC server failed");
    }
}

/// Completes on `shutdown`, once health reports `NOT_SERVING`: a `Watch`
/// sees it, then its stream ends (the statuses are cleared), so a
/// watching load balancer neither misses the drain nor holds it up.
async fn draining(mut reporter: HealthReporter, shutdown: CancellationToken) {
    shutdown.cancelled().await;
    for name in HEALTH_SERVICES {
        reporter
            .set_service_status(name, ServingStatus::NotServing)
            .await;
    }
    for name in HEALTH_SERVICES {
        reporter.clear_service_status(name).await;
    }
}

/// The methods of `proto/devices.proto`, the only values of `grpc.method`.
const GRPC_METHODS: [&str; 5] = [
    "SubscribeToDeviceChanges",
    "SendDeviceCommand",
    "NotifyDeviceEvents",
    "GetDeviceStatus",
    "GetDeviceEvents",
];

/// The span of one gRPC call: `transport = "grpc"` and the method, one of
/// [`GRPC_METHODS`] or `unknown` (never the path as sent).
fn grpc_span(request: &axum::http::Request<()>) -> tracing::Span {
    let method = grpc_method(request.uri().path());
    tracing::info_span!("grpc.call", transport = "grpc", grpc.method = method)
}

/// The `grpc.method` of a call to `path`.
fn grpc_method(path: &str) -> &'static str {
    let called = path
        .strip_prefix("/devices.DeviceStream/")
        .unwrap_or_default();
    GRPC_METHODS
        .into_iter()
        .find(|m| *m == called)
        .unwrap_or("unknown")
}

/// The gRPC interceptor: lets a call through when no token is configured or
/// when it carries the configured bearer token.
fn check_grpc_token(
    token: Option<&str>,
    request: tonic::Request<()>,
) -> Result<tonic::Request<()>, tonic::Status> {
    let Some(expected) = token else {
        return Ok(request);
    };
    let presented = request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let same = presented.len() == expected.len()
        && presented
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(request)
    } else {
        Err(tonic::Status::unauthenticated(
            "a valid bearer token is required",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(header: Option<&str>) -> tonic::Request<()> {
        let mut request = tonic::Request::new(());
        if let Some(h) = header {
            request
                .metadata_mut()
                .insert("authorization", h.parse().unwrap());
        }
        request
    }

    #[test]
    fn grpc_calls_need_the_configured_token() {
        let token = Some("s3cret-token-s3cret-token-s3cret!");
        assert!(
            check_grpc_token(
                token,
                call(Some("Bearer s3cret-token-s3cret-token-s3cret!"))
            )
            .is_ok()
        );
        for bad in [
            None,
            Some("Bearer wrong"),
            Some("s3cret-token-s3cret-token-s3cret!"),
        ] {
            let refused = check_grpc_token(token, call(bad)).unwrap_err();
            assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        }
        assert!(check_grpc_token(None, call(None)).is_ok());
    }

    #[test]
    fn a_grpc_span_names_a_method_of_the_service_or_unknown() {
        for method in GRPC_METHODS {
            let path = format!("/devices.DeviceStream/{method}");
            assert_eq!(grpc_method(&path), method);
        }
        let long = format!("/devices.DeviceStream/{}", "x".repeat(10_000));
        for path in [
            "/",
            "/devices.DeviceStream/",
            "/other.Service/GetDeviceStatus",
            &long,
        ] {
            assert_eq!(grpc_method(path), "unknown", "{path:.40}");
        }
    }
}
