//! The tenancy service used as a client would, on the memory and the
//! PostgreSQL adapters: the seed's rules with an allowed and a refused case
//! each, onboarding, and the visibility property over random tenant trees.

/// Runs each named `async fn(Arc<dyn TenancyStore>)` of the invoking
/// module as a test on the memory adapter and on PostgreSQL.
macro_rules! on_both_adapters {
    ($($name:ident),* $(,)?) => {
        mod memory_adapter {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::support::memory()).await;
                }
            )*
        }
        mod postgres_adapter {
            $(
                #[sqlx::test(migrations = false)]
                async fn $name(pool: sqlx::PgPool) {
                    super::$name(crate::support::postgres(pool).await).await;
                }
            )*
        }
    };
}

mod service;
mod support;
mod tenants;
mod visibility;
