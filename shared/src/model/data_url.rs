//! `data:` URLs (RFC 2397), the way the AI SDK sends a file's bytes inside a message: every
//! provider reads its media type and its payload here, as written or decoded.

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// A parsed `data:[<media type>][;base64],<payload>` URL, borrowing from the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataUrl<'a> {
    /// What precedes the payload, less `;base64`: `image/png`, `text/plain;charset=utf-8`, or
    /// empty.
    pub media_type: &'a str,
    /// The payload is base64 rather than percent-encoded text.
    pub base64: bool,
    /// The payload as written in the URL.
    pub payload: &'a str,
}

/// Clients write base64 with or without padding, and in either alphabet; the standard one is
/// decoded here after the URL-safe letters are mapped onto it.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

impl<'a> DataUrl<'a> {
    /// `None` when `url` is not a `data:` URL (the scheme is case-insensitive) or has no `,`.
    pub fn parse(url: &'a str) -> Option<DataUrl<'a>> {
        let scheme = url.get(..5)?;
        if !scheme.eq_ignore_ascii_case("data:") {
            return None;
        }
        let (meta, payload) = url[5..].split_once(',')?;
        let (media_type, base64) = match meta.rsplit_once(';') {
            Some((media_type, marker)) if marker.trim().eq_ignore_ascii_case("base64") => {
                (media_type, true)
            }
            _ => (meta, false),
        };
        Some(DataUrl {
            media_type,
            base64,
            payload,
        })
    }

    /// The payload's bytes; `None` when base64 that does not decode.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        if self.base64 {
            decode_base64(self.payload)
        } else {
            Some(percent_encoding::percent_decode_str(self.payload).collect())
        }
    }
}

/// Standard or URL-safe base64, padding optional, whitespace ignored.
fn decode_base64(input: &str) -> Option<Vec<u8>> {
    let standard: Vec<u8> = input
        .bytes()
        .filter(|byte| !byte.is_ascii_whitespace())
        .map(|byte| match byte {
            b'-' => b'+',
            b'_' => b'/',
            other => other,
        })
        .collect();
    LENIENT_BASE64.decode(standard).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(url: &str) -> Option<Vec<u8>> {
        DataUrl::parse(url).and_then(|url| url.bytes())
    }

    #[test]
    fn parts_of_a_data_url() {
        assert_eq!(
            DataUrl::parse("data:image/png;base64,iVBO"),
            Some(DataUrl {
                media_type: "image/png",
                base64: true,
                payload: "iVBO",
            })
        );
        assert_eq!(
            DataUrl::parse("DATA:text/plain;charset=utf-8;BASE64,aGk="),
            Some(DataUrl {
                media_type: "text/plain;charset=utf-8",
                base64: true,
                payload: "aGk=",
            })
        );
        assert_eq!(
            DataUrl::parse("data:,a%20b"),
            Some(DataUrl {
                media_type: "",
                base64: false,
                payload: "a%20b",
            })
        );
        // `base64` is the marker only as the last parameter, right before the payload.
        let url = DataUrl::parse("data:text/plain;base64;x=y,abc").expect("a data URL");
        assert!(!url.base64);
        assert_eq!(url.media_type, "text/plain;base64;x=y");
    }

    #[test]
    fn other_urls_are_not_data_urls() {
        for url in [
            "https://example.com/a.png",
            "data:image/png;base64",
            "dat",
            "",
        ] {
            assert_eq!(DataUrl::parse(url), None, "{url}");
        }
    }

    #[test]
    fn base64_payloads_decode_in_either_alphabet_with_or_without_padding() {
        assert_eq!(bytes("data:;base64,").unwrap(), b"");
        assert_eq!(bytes("data:;base64,Zg==").unwrap(), b"f");
        assert_eq!(bytes("data:;base64,Zm8").unwrap(), b"fo");
        assert_eq!(bytes("data:;base64,Zm9v").unwrap(), b"foo");
        assert_eq!(bytes("data:;base64,Zm9v\nYmFy").unwrap(), b"foobar");
        assert_eq!(bytes("data:;base64, Zm9v YmFy\r\n").unwrap(), b"foobar");
        assert_eq!(
            bytes("data:;base64,-_8=").unwrap(),
            bytes("data:;base64,+/8=").unwrap()
        );
    }

    #[test]
    fn broken_base64_is_refused_rather_than_cut_short() {
        assert_eq!(bytes("data:;base64,Zm9v!"), None);
        // Padding is the end: bytes after it are not dropped in silence.
        assert_eq!(bytes("data:;base64,Zg==Zm9v"), None);
        assert_eq!(bytes("data:;base64,Zm9vY"), None);
    }

    #[test]
    fn text_payloads_are_percent_decoded() {
        assert_eq!(bytes("data:text/csv,a%2Cb%0A1%2C2").unwrap(), b"a,b\n1,2");
        assert_eq!(
            bytes("data:text/plain,caf%C3%A9").unwrap(),
            "café".as_bytes()
        );
        // A `%` that does not start an escape stays as it is.
        assert_eq!(bytes("data:,100%25 and 5%").unwrap(), b"100% and 5%");
        assert_eq!(bytes("data:,%zz").unwrap(), b"%zz");
    }
}
