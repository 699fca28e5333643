//! Topic naming: `{namespace}.{service}.{event_type}.v1`.
//!
//! Generated constants carry the namespace-free part; the namespace is the
//! configured environment, applied at run time.

/// Joins the environment and a namespace-free topic.
///
/// ```
/// assert_eq!(
///     onex::topic::qualified("dev", "orders.effect.persist.started.v1"),
///     "dev.orders.effect.persist.started.v1"
/// );
/// ```
pub fn qualified(environment: &str, topic: &str) -> String {
    let mut out = String::with_capacity(environment.len() + 1 + topic.len());
    out.push_str(environment);
    out.push('.');
    out.push_str(topic);
    out
}

/// The namespace-free topic for an event type of a service.
///
/// ```
/// assert_eq!(
///     onex::topic::for_event("orders", "effect.persist.started"),
///     "orders.effect.persist.started.v1"
/// );
/// ```
pub fn for_event(service: &str, event_type: &str) -> String {
    format!("{service}.{event_type}.v1")
}
