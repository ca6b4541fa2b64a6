//! Typed identifiers.
//!
//! Every entity has its own id type so that an `AreaId` can never be passed
//! where a `DeviceId` is expected. All ids are UUIDv7: time-ordered, so they
//! index well in PostgreSQL and double as a stable pagination cursor.
//! Other HSE crates define their ids with the same [`define_id!`](crate::define_id) macro.

/// Defines a UUIDv7 newtype id with `new`, `Display`, `FromStr` and serde.
///
/// ```
/// hse_core::define_id!(
///     /// Identifies a widget.
///     WidgetId
/// );
/// let id = WidgetId::new();
/// assert_eq!(id, id.to_string().parse().unwrap());
/// ```
#[macro_export]
macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub $crate::__private::uuid::Uuid);

        impl $name {
            /// A new time-ordered (UUIDv7) id.
            #[must_use]
            pub fn new() -> Self {
                Self($crate::__private::uuid::Uuid::now_v7())
            }

            /// The underlying UUID.
            #[must_use]
            pub fn as_uuid(&self) -> $crate::__private::uuid::Uuid {
                self.0
            }
        }

        impl $crate::__private::serde::Serialize for $name {
            fn serialize<S: $crate::__private::serde::Serializer>(
                &self,
                serializer: S,
            ) -> ::std::result::Result<S::Ok, S::Error> {
                $crate::__private::serde::Serialize::serialize(&self.0, serializer)
            }
        }

        impl<'de> $crate::__private::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::__private::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> ::std::result::Result<Self, D::Error> {
                <$crate::__private::uuid::Uuid as $crate::__private::serde::Deserialize<'de>>::deserialize(deserializer)
                    .map(Self)
            }
        }

        impl ::std::default::Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Display::fmt(&self.0, f)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::__private::uuid::Error;

            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }

        $crate::__id_schema!($name);

        impl ::std::convert::From<$crate::__private::uuid::Uuid> for $name {
            fn from(id: $crate::__private::uuid::Uuid) -> Self {
                Self(id)
            }
        }
    };
}

/// Implements the OpenAPI schema of an id (a UUID string) when hse-core is
/// built with the `openapi` feature; otherwise expands to nothing.
#[cfg(feature = "openapi")]
#[doc(hidden)]
#[macro_export]
macro_rules! __id_schema {
    ($name:ident) => {
        impl $crate::__private::utoipa::PartialSchema for $name {
            fn schema() -> $crate::__private::utoipa::openapi::RefOr<
                $crate::__private::utoipa::openapi::schema::Schema,
            > {
                use $crate::__private::utoipa::openapi::schema::{
                    KnownFormat, ObjectBuilder, SchemaFormat, Type,
                };
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                    .into()
            }
        }

        impl $crate::__private::utoipa::ToSchema for $name {
            fn name() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed(stringify!($name))
            }
        }
    };
}

/// Implements the OpenAPI schema of an id when hse-core is built with the
/// `openapi` feature; otherwise expands to nothing.
#[cfg(not(feature = "openapi"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __id_schema {
    ($name:ident) => {};
}

define_id!(
    /// Identifies a partner company (a reseller of the platform).
    PartnerCompanyId
);
define_id!(
    /// Identifies an organization (a customer that runs establishments).
    OrganizationId
);
define_id!(
    /// Identifies an establishment (a hotel, office, campus).
    EstablishmentId
);
define_id!(
    /// Identifies an area inside an establishment (a room, a floor).
    AreaId
);
define_id!(
    /// Identifies a device (sensor, controller, door lock).
    DeviceId
);
define_id!(
    /// Identifies a user account.
    UserId
);
define_id!(
    /// Identifies a role (system or custom).
    RoleId
);
define_id!(
    /// Identifies an invitation.
    InvitationId
);
