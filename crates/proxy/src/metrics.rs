//! Proxy call metrics: a duration histogram and a failure count per (event type, proxy name),
//! rendered by the server's `/metrics`. (Placeholder to be completed with Centrifugo's names.)

use std::time::Duration;

use crate::ProxyKind;

/// Records one call.
pub(crate) fn observe(_kind: ProxyKind, _name: &str, _took: Duration, _ok: bool) {}
