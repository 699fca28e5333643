//! Declarative macros for what every generated events module repeats per
//! event: its identity ([`impl_event!`](crate::impl_event)), the node's
//! event enum's decoding, names, topics and conversions
//! ([`impl_event_set!`](crate::impl_event_set)), and turning a failed event
//! back into its error ([`impl_failure!`](crate::impl_failure)).
//! They live here once, so that a module holds one line per event instead
//! of a dozen, and the compiler sees the same code.

/// Implements, for a node's event enum (one variant per event type, each
/// holding its typed event): [`EventSet`](crate::EventSet), which decodes an
/// envelope into the variant its event type names (its `EVENT_TYPES` is the
/// `EVENT_TYPES` constant in scope, every event type in variant order);
/// `topic()` and `category()`; and `From` for each event type.
///
/// ```
/// # use onex::{Event, EventSet, MessageCategory};
/// # #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
/// # pub struct Pinged { pub n: u32 }
/// # impl Event for Pinged {
/// #     const EVENT_TYPE: &'static str = "effect.pinged";
/// #     const EVENT_VERSION: &'static str = "1.0";
/// #     const CATEGORY: MessageCategory = MessageCategory::Event;
/// #     const TOPIC: &'static str = "ping.effect.pinged.v1";
/// # }
/// /// Every event type of the `ping` node.
/// pub const EVENT_TYPES: &[&str] = &[<Pinged as Event>::EVENT_TYPE];
///
/// /// Every event of the `ping` node.
/// #[derive(Debug, Clone, PartialEq)]
/// pub enum PingEvent {
///     /// A ping.
///     Pinged(Pinged),
/// }
///
/// onex::impl_event_set!(PingEvent { Pinged(Pinged) });
///
/// let event = PingEvent::from(Pinged { n: 1 });
/// assert_eq!(event.topic(), "ping.effect.pinged.v1");
/// assert_eq!(event.event_type(), "effect.pinged");
/// ```
#[macro_export]
macro_rules! impl_event_set {
    ($name:ident { $($variant:ident($event:ty)),* $(,)? }) => {
        impl $crate::EventSet for $name {
            const EVENT_TYPES: &'static [&'static str] = EVENT_TYPES;

            fn decode(
                envelope: &$crate::OnexEnvelopeV1,
            ) -> ::std::result::Result<Self, $crate::DecodeError> {
                $(
                    if envelope.event_type == <$event as $crate::Event>::EVENT_TYPE {
                        return $crate::Event::from_envelope(envelope).map(Self::$variant);
                    }
                )*
                ::std::result::Result::Err($crate::DecodeError::UnknownEventType {
                    event_type: ::std::borrow::ToOwned::to_owned(envelope.event_type.as_str()),
                    expected: EVENT_TYPES.join(", "),
                })
            }

            fn event_type(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => <$event as $crate::Event>::EVENT_TYPE, )*
                }
            }
        }

        impl $name {
            /// The namespace-free topic of this event.
            pub fn topic(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => <$event as $crate::Event>::TOPIC, )*
                }
            }

            /// Whether this is an event, a command or an intent.
            pub fn category(&self) -> $crate::MessageCategory {
                match self {
                    $( Self::$variant(_) => <$event as $crate::Event>::CATEGORY, )*
                }
            }
        }

        $(
            impl ::std::convert::From<$event> for $name {
                fn from(event: $event) -> Self {
                    Self::$variant(event)
                }
            }
        )*
    };
}

/// Implements [`Event`](crate::Event) for a payload type: its event type,
/// schema version, category (`Event`, `Command` or `Intent`) and
/// namespace-free topic.
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// pub struct Pinged {
///     pub n: u32,
/// }
/// onex::impl_event!(Pinged, "effect.pinged", "1.0", Event, "ping.effect.pinged.v1");
/// assert_eq!(<Pinged as onex::Event>::TOPIC, "ping.effect.pinged.v1");
/// ```
#[macro_export]
macro_rules! impl_event {
    ($event:ty, $event_type:expr, $version:expr, $category:ident, $topic:expr $(,)?) => {
        impl $crate::Event for $event {
            const EVENT_TYPE: &'static str = $event_type;
            const EVENT_VERSION: &'static str = $version;
            const CATEGORY: $crate::MessageCategory = $crate::MessageCategory::$category;
            const TOPIC: &'static str = $topic;
        }
    };
}

/// Implements [`Failure`](crate::operation::Failure) for a failed event
/// that carries `error_type`, `error_message` and `recovery_suggestions`,
/// as every failed event the generator derives does.
#[macro_export]
macro_rules! impl_failure {
    ($($event:ty),* $(,)?) => {
        $(
            impl $crate::operation::Failure for $event {
                fn error(&self) -> $crate::OperationError {
                    let mut error = $crate::OperationError::new(
                        ::std::clone::Clone::clone(&self.error_type),
                        ::std::clone::Clone::clone(&self.error_message),
                    );
                    error.suggestions = ::std::clone::Clone::clone(&self.recovery_suggestions);
                    error
                }
            }
        )*
    };
}
