//! SockJS framing (TRANSPORTS.md §1.4 "Frames", "Escaping", the EventSource `%` trap): the
//! `o`/`h`/`a[...]`/`c[...]` frames, JSON string quoting that is safe inside HTML and
//! JavaScript (U+2028/2029 and the other ranges the protocol suite lists are `\u`-escaped, as
//! are `<`, `>` and `&` the way sockjs-go's encoder does), the parsing of the client's JSON
//! arrays of strings, and the wire form of a frame on each receiving sub-transport.

use bytes::{BufMut, Bytes, BytesMut};

/// The open frame.
pub(crate) const OPEN: &str = "o";
/// The heartbeat frame.
pub(crate) const HEARTBEAT: &str = "h";

/// Appends `s` as a JSON string literal (quotes included).
pub(crate) fn quote_into(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_unicode_escape(c) => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `s` as a JSON string literal.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::new();
    quote_into(s, &mut out);
    out
}

/// Characters written as `\uXXXX`: controls, the invisible and line-separator ranges the
/// protocol suite wants escaped (JavaScript treats U+2028/2029 as line ends inside string
/// literals), and the HTML-significant `<`, `>`, `&`.
fn needs_unicode_escape(c: char) -> bool {
    matches!(c as u32,
        0x00..=0x1f | 0x7f..=0x9f | 0x200c..=0x200f | 0x2028..=0x202f | 0x2060..=0x206f
        | 0xfff0..=0xffff)
        || matches!(c, '<' | '>' | '&')
}

/// `a[...]` with each message quoted.
pub(crate) fn array<'a>(messages: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("a[");
    for (i, m) in messages.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        quote_into(m, &mut out);
    }
    out.push(']');
    out
}

/// `c[code,"reason"]`.
pub(crate) fn close(code: u16, reason: &str) -> String {
    let mut out = format!("c[{code},");
    quote_into(reason, &mut out);
    out.push(']');
    out
}

/// The frame a second concurrent receiver gets.
pub(crate) fn another_connection() -> String {
    close(2010, "Another connection still open")
}

/// Why a client payload was refused (`xhr_send`, `jsonp_send`, WebSocket messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PayloadError {
    /// Nothing was sent (`Payload expected.`).
    Empty,
    /// Not a JSON array of strings (`Broken JSON encoding.`).
    Broken,
}

impl PayloadError {
    pub(crate) fn text(self) -> &'static str {
        match self {
            PayloadError::Empty => "Payload expected.",
            PayloadError::Broken => "Broken JSON encoding.",
        }
    }
}

/// Parses a client payload: a JSON array of strings, each one SockJS message.
pub(crate) fn parse_messages(body: &[u8]) -> Result<Vec<String>, PayloadError> {
    if body.trim_ascii().is_empty() {
        return Err(PayloadError::Empty);
    }
    serde_json::from_slice::<Vec<String>>(body).map_err(|_| PayloadError::Broken)
}

/// Whether a JSONP/htmlfile callback name is acceptable: non-empty, `[a-zA-Z0-9_.]` only.
pub(crate) fn valid_callback(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= 256
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// EventSource data escaping: sockjs-client runs `decodeURI` on each event's data, so `%`
/// and the characters that would break the event stream are percent-encoded.
pub(crate) fn escape_eventsource(frame: &str, out: &mut BytesMut) {
    for &b in frame.as_bytes() {
        match b {
            b'%' => out.put_slice(b"%25"),
            b'\n' => out.put_slice(b"%0A"),
            b'\r' => out.put_slice(b"%0D"),
            0 => out.put_slice(b"%00"),
            b => out.put_u8(b),
        }
    }
}

/// The head of an htmlfile response (calls `parent.<callback>`), padded past 1 KiB so that
/// browsers start rendering at once.
pub(crate) fn htmlfile_prelude(callback: &str) -> Bytes {
    let mut s = String::with_capacity(1400);
    s.push_str("<!DOCTYPE html>\n<html>\n<head>\n<meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n<title>SockJS htmlfile</title>\n</head>\n<body>\n<script>\ndocument.domain = document.domain;\nvar r = parent.");
    s.push_str(callback);
    s.push_str(";\nr.start();\nfunction p(m) { r.message(m); }\nwindow.onload = function () { r.stop(); };\n</script>\n");
    // Browsers render a streamed page only once they hold about 1 KiB of it.
    while s.len() < 1040 {
        s.push(' ');
    }
    s.push_str("\r\n\r\n");
    Bytes::from(s)
}

/// How a receiving sub-transport puts one frame on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wrap {
    /// `xhr` and `xhr_streaming`: the frame and `\n`.
    Xhr,
    /// `eventsource`: `data: <escaped frame>\r\n\r\n`.
    EventSource,
    /// `htmlfile`: a script tag calling `p("<frame>")`.
    HtmlFile,
    /// `jsonp`: `<callback>("<frame>");\r\n`.
    Jsonp(String),
}

impl Wrap {
    /// Appends the wire form of `frame` to `out`.
    pub(crate) fn put(&self, frame: &str, out: &mut BytesMut) {
        match self {
            Wrap::Xhr => {
                out.put_slice(frame.as_bytes());
                out.put_u8(b'\n');
            }
            Wrap::EventSource => {
                out.put_slice(b"data: ");
                escape_eventsource(frame, out);
                out.put_slice(b"\r\n\r\n");
            }
            Wrap::HtmlFile => {
                out.put_slice(b"<script>\np(");
                out.put_slice(quote(frame).as_bytes());
                out.put_slice(b");\n</script>\r\n");
            }
            Wrap::Jsonp(cb) => {
                out.put_slice(cb.as_bytes());
                out.put_u8(b'(');
                out.put_slice(quote(frame).as_bytes());
                out.put_slice(b");\r\n");
            }
        }
    }

    /// `frame` alone on the wire.
    pub(crate) fn one(&self, frame: &str) -> Bytes {
        let mut out = BytesMut::with_capacity(frame.len() + 16);
        self.put(frame, &mut out);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_js_line_separators_and_html() {
        assert_eq!(quote("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(quote("x\u{2028}y\u{2029}"), r#""x\u2028y\u2029""#);
        assert_eq!(quote("<script>&"), r#""\u003cscript\u003e\u0026""#);
        assert_eq!(quote("\u{1}\u{7f}é✓"), "\"\\u0001\\u007fé✓\"");
        let a = array(["{\"id\":1}\n", "x"]);
        assert_eq!(a, r#"a["{\"id\":1}\n","x"]"#);
        let parsed: Vec<String> = serde_json::from_str(&a[1..]).unwrap();
        assert_eq!(parsed, vec!["{\"id\":1}\n", "x"]);
    }

    #[test]
    fn close_frames() {
        assert_eq!(
            close(3012, r#"{"reason":"force disconnect","reconnect":false}"#),
            r#"c[3012,"{\"reason\":\"force disconnect\",\"reconnect\":false}"]"#
        );
        assert_eq!(
            another_connection(),
            r#"c[2010,"Another connection still open"]"#
        );
    }

    #[test]
    fn payloads() {
        assert_eq!(parse_messages(b""), Err(PayloadError::Empty));
        assert_eq!(parse_messages(b" \n"), Err(PayloadError::Empty));
        assert_eq!(parse_messages(b"[\"a"), Err(PayloadError::Broken));
        assert_eq!(parse_messages(b"{}"), Err(PayloadError::Broken));
        assert_eq!(parse_messages(b"[1]"), Err(PayloadError::Broken));
        assert_eq!(parse_messages(b"[]"), Ok(vec![]));
        assert_eq!(
            parse_messages(b"[\"a\",\"b\"]"),
            Ok(vec!["a".into(), "b".into()])
        );
    }

    #[test]
    fn callbacks() {
        assert!(valid_callback("_jp.a123bc"));
        assert!(!valid_callback(""));
        assert!(!valid_callback("alert(1)"));
        assert!(!valid_callback("a-b"));
    }

    #[test]
    fn wire_forms() {
        let mut out = BytesMut::new();
        Wrap::EventSource.put("a[\"100%\\n\"]\r\n\0", &mut out);
        assert_eq!(&out[..], b"data: a[\"100%25\\n\"]%0D%0A%00\r\n\r\n");
        assert_eq!(&Wrap::Xhr.one("o")[..], b"o\n");
        assert_eq!(&Wrap::Jsonp("cb".into()).one("o")[..], b"cb(\"o\");\r\n");
        assert_eq!(
            &Wrap::HtmlFile.one("a[\"x\"]")[..],
            b"<script>\np(\"a[\\\"x\\\"]\");\n</script>\r\n"
        );
        let p = htmlfile_prelude("cb");
        assert!(p.len() > 1024);
        assert!(std::str::from_utf8(&p).unwrap().contains("parent.cb;"));
        assert!(std::str::from_utf8(&p).unwrap().contains("function p("));
    }
}
