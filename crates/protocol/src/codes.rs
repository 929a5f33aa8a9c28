//! Error codes (`Reply.error`) and disconnect codes (WebSocket close frames) for both client
//! protocol generations. The numbers of several disconnects were reassigned between v1 and v2,
//! so callers name a [`DisconnectKind`] and ask for the code of the connection's generation.

use crate::Generation;

/// An error sent in a reply. The connection stays open. The built-in codes have static
/// messages; an application backend may answer with its own code, message and `temporary`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorCode {
    pub code: u32,
    pub message: std::borrow::Cow<'static, str>,
    /// v2 clients retry temporary errors instead of giving up (v1 has no such field).
    pub temporary: bool,
}

impl ErrorCode {
    pub const INTERNAL: Self = Self::new(100, "internal server error");
    pub const UNAUTHORIZED: Self = Self::new(101, "unauthorized");
    pub const UNKNOWN_CHANNEL: Self = Self::new(102, "unknown channel");
    pub const PERMISSION_DENIED: Self = Self::new(103, "permission denied");
    pub const METHOD_NOT_FOUND: Self = Self::new(104, "method not found");
    pub const ALREADY_SUBSCRIBED: Self = Self::new(105, "already subscribed");
    pub const LIMIT_EXCEEDED: Self = Self::new(106, "limit exceeded");
    pub const BAD_REQUEST: Self = Self::new(107, "bad request");
    pub const NOT_AVAILABLE: Self = Self::new(108, "not available");
    pub const TOKEN_EXPIRED: Self = Self::new(109, "token expired");
    pub const EXPIRED: Self = Self::new(110, "expired");
    pub const TOO_MANY_REQUESTS: Self = Self::new(111, "too many requests");
    pub const UNRECOVERABLE_POSITION: Self = Self::new(112, "unrecoverable position");

    const fn new(code: u32, message: &'static str) -> Self {
        Self {
            code,
            message: std::borrow::Cow::Borrowed(message),
            temporary: matches!(code, 100 | 111),
        }
    }

    /// An application's error (from the backend): any code, message and `temporary` flag.
    pub fn custom(code: u32, message: String, temporary: bool) -> Self {
        Self {
            code,
            message: std::borrow::Cow::Owned(message),
            temporary,
        }
    }

    /// v2 clients retry temporary errors instead of giving up.
    pub fn temporary(&self) -> bool {
        self.temporary
    }
}

/// Why the server closes a connection, independent of the generation's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectKind {
    Normal,
    Shutdown,
    InvalidToken,
    BadRequest,
    InternalError,
    Expired,
    SubscriptionExpired,
    Stale,
    Slow,
    WriteError,
    InsufficientState,
    ForceReconnect,
    ForceDisconnect,
    ConnectionLimit,
    /// v2 only: the client did not answer a server ping in time.
    NoPong,
    /// v2 only.
    ChannelLimit,
    /// v2 only: the client sent a message the generation does not allow (e.g. an unsolicited pong).
    InappropriateProtocol,
    /// v2 only: the command is not available on this server (a `send` without a handler).
    NotAvailable,
}

/// A close frame's code and reason text, ready for the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    pub code: u16,
    pub reason: &'static str,
    pub reconnect: bool,
}

impl Disconnect {
    /// The close-frame reason text: v1 clients parse `{"reason":..,"reconnect":..}`, v2 clients
    /// read plain text and derive reconnect from the code range.
    pub fn close_text(&self, generation: Generation) -> String {
        match generation {
            Generation::V1 => format!(
                "{{\"reason\":\"{}\",\"reconnect\":{}}}",
                self.reason, self.reconnect
            ),
            Generation::V2 => self.reason.to_string(),
        }
    }
}

impl DisconnectKind {
    /// The code, reason and reconnect advice this kind has in `generation`.
    pub fn for_generation(self, generation: Generation) -> Disconnect {
        use DisconnectKind::*;
        let (code, reason, reconnect) = match generation {
            Generation::V1 => match self {
                Normal => (3000, "normal", true),
                Shutdown => (3001, "shutdown", true),
                InvalidToken => (3002, "invalid token", false),
                BadRequest | InappropriateProtocol | NotAvailable => (3003, "bad request", false),
                InternalError => (3004, "internal server error", true),
                Expired => (3005, "expired", true),
                SubscriptionExpired => (3006, "subscription expired", true),
                Stale => (3007, "stale", false),
                Slow => (3008, "slow", true),
                WriteError => (3009, "write error", true),
                InsufficientState => (3010, "insufficient state", true),
                ForceReconnect => (3011, "force reconnect", true),
                ForceDisconnect => (3012, "force disconnect", false),
                ConnectionLimit => (3013, "connection limit", false),
                // v1 has no pong command; a missing WebSocket pong drops the TCP connection.
                NoPong => (3011, "force reconnect", true),
                ChannelLimit => (3003, "bad request", false),
            },
            Generation::V2 => match self {
                Normal => (3000, "connection closed", true),
                Shutdown => (3001, "shutdown", true),
                InternalError => (3004, "internal server error", true),
                Expired => (3005, "connection expired", true),
                SubscriptionExpired => (3006, "subscription expired", true),
                Slow => (3008, "slow", true),
                WriteError => (3009, "write error", true),
                InsufficientState => (3010, "insufficient state", true),
                ForceReconnect => (3011, "force reconnect", true),
                NoPong => (3012, "no pong", true),
                InvalidToken => (3500, "invalid token", false),
                BadRequest => (3501, "bad request", false),
                Stale => (3502, "stale", false),
                ForceDisconnect => (3503, "force disconnect", false),
                ConnectionLimit => (3504, "connection limit", false),
                ChannelLimit => (3505, "channel limit", false),
                InappropriateProtocol => (3506, "inappropriate protocol", false),
                NotAvailable => (3508, "not available", false),
            },
        };
        Disconnect {
            code,
            reason,
            reconnect,
        }
    }
}

/// v2 unsubscribe push codes: below 2500 the client stays unsubscribed, from 2500 it resubscribes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsubscribeCode {
    pub code: u32,
    pub reason: &'static str,
}

impl UnsubscribeCode {
    pub const SERVER: Self = Self {
        code: 2000,
        reason: "server unsubscribe",
    };
    pub const INSUFFICIENT_STATE: Self = Self {
        code: 2500,
        reason: "insufficient state",
    };
    pub const EXPIRED: Self = Self {
        code: 2501,
        reason: "subscription expired",
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_close_text_is_compact_json() {
        let d = DisconnectKind::InvalidToken.for_generation(Generation::V1);
        assert_eq!(d.code, 3002);
        assert_eq!(
            d.close_text(Generation::V1),
            r#"{"reason":"invalid token","reconnect":false}"#
        );
    }

    #[test]
    fn v2_codes_are_reassigned() {
        assert_eq!(
            DisconnectKind::ForceDisconnect
                .for_generation(Generation::V2)
                .code,
            3503
        );
        assert_eq!(
            DisconnectKind::NoPong.for_generation(Generation::V2).code,
            3012
        );
        assert_eq!(
            DisconnectKind::BadRequest
                .for_generation(Generation::V2)
                .close_text(Generation::V2),
            "bad request"
        );
    }
}
