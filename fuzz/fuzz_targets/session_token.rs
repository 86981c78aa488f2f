//! Session tokens: any string is refused without a panic; a token signed with the key is judged
//! by its times and scopes exactly as documented, whatever numbers it holds; and the bearer
//! header parse takes any header value.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chatfn::auth::{Access, SecretKeys, SessionToken, TokenError, scope};
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use sha2::Sha256;

const SECRET: &str = "tr_dev_fuzz_secret";

#[derive(Debug, Arbitrary)]
enum Payload {
    Claims {
        sub: Option<String>,
        public: Option<bool>,
        /// Adds the scope the check asks for, so the fuzzer reaches the success path.
        grant: Option<bool>,
        scopes: Vec<String>,
        iat: u64,
        exp: u64,
        nbf: Option<u64>,
    },
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum Alg {
    Hs256,
    Hs256Jwt,
    None,
    Hs512,
    Raw(String),
}

#[derive(Debug, Arbitrary)]
struct Input {
    raw: String,
    alg: Alg,
    payload: Payload,
    chat_id: String,
    write: bool,
    now: u64,
    authorization: Vec<u8>,
}

fn sign(header: &str, payload: &str) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(message.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{message}.{signature}")
}

/// A fixed clock for the raw mode, so a seed's verdict does not change from one day to the next.
const SEED_NOW: u64 = 1_795_466_771;

fn bearer(authorization: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(authorization) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, value);
    if let Some(credential) = chatfn::http::bearer(&headers) {
        assert!(!credential.is_empty());
        assert_eq!(credential, credential.trim());
        let text = String::from_utf8_lossy(authorization);
        assert!(
            text.get(..7)
                .is_some_and(|s| s.eq_ignore_ascii_case("bearer "))
        );
    }
}

/// A token as it comes in a header: whatever the verdict, it holds what the checks promise.
fn raw(token: &str) {
    let keys = SecretKeys::parse(SECRET).expect("the fuzz secret parses");
    for access in [Access::Read, Access::Write] {
        if let Ok(claims) = SessionToken::verify(token, &keys, "chat-1", access, SEED_NOW) {
            assert!(claims.allows(access, "chat-1"));
            assert!(u128::from(claims.exp) + 5 > u128::from(SEED_NOW));
        }
    }
}

fn structured(input: Input) {
    let keys = SecretKeys::parse(SECRET).expect("the fuzz secret parses");
    let access = if input.write {
        Access::Write
    } else {
        Access::Read
    };

    assert!(
        SessionToken::verify(&input.raw, &keys, &input.chat_id, access, input.now).is_err(),
        "an unsigned string verified: {:?}",
        input.raw
    );

    let header = match &input.alg {
        Alg::Hs256 => r#"{"alg":"HS256"}"#.to_owned(),
        Alg::Hs256Jwt => r#"{"alg":"HS256","typ":"JWT"}"#.to_owned(),
        Alg::None => r#"{"alg":"none"}"#.to_owned(),
        Alg::Hs512 => r#"{"alg":"HS512"}"#.to_owned(),
        Alg::Raw(raw) => raw.clone(),
    };
    // A raw header may well be a valid HS256 one: only the listed ones have a known verdict.
    let good_alg = match input.alg {
        Alg::Hs256 | Alg::Hs256Jwt => Some(true),
        Alg::None | Alg::Hs512 => Some(false),
        Alg::Raw(_) => None,
    };
    let expected = match &input.payload {
        Payload::Claims {
            sub,
            public,
            grant,
            scopes,
            iat,
            exp,
            nbf,
        } => {
            let mut scopes = scopes.clone();
            if grant == &Some(true) {
                scopes.push(scope(access, &input.chat_id));
            }
            let mut claims = json!({"scopes": scopes, "iat": iat, "exp": exp});
            if let Some(sub) = sub {
                claims["sub"] = json!(sub);
            }
            if let Some(public) = public {
                claims["pub"] = json!(public);
            }
            if let Some(nbf) = nbf {
                claims["nbf"] = json!(nbf);
            }
            let token = sign(&header, &claims.to_string());
            let leeway = 5u128;
            let outcome = if u128::from(*exp) + leeway <= u128::from(input.now) {
                Err(TokenError::Expired)
            } else if nbf.is_some_and(|nbf| u128::from(nbf) > u128::from(input.now) + leeway) {
                Err(TokenError::NotYetValid)
            } else if !scopes.contains(&scope(access, &input.chat_id)) {
                Err(TokenError::MissingScope(scope(access, &input.chat_id)))
            } else {
                Ok(())
            };
            Some((token, outcome))
        }
        Payload::Raw(payload) => {
            let token = sign(&header, payload);
            // Whatever a signed payload holds, the verdict must come without a panic.
            let _ = SessionToken::verify(&token, &keys, &input.chat_id, access, input.now);
            None
        }
    };
    if let Some((token, outcome)) = expected {
        let verdict = SessionToken::verify(&token, &keys, &input.chat_id, access, input.now);
        match good_alg {
            Some(true) => assert_eq!(verdict.map(|_| ()), outcome, "token {token}"),
            Some(false) => assert_eq!(
                verdict.map(|_| ()),
                Err(TokenError::Invalid),
                "token {token}"
            ),
            None => {}
        }
    }

    bearer(&input.authorization);
}

// An even first byte: the rest is a token and an `Authorization` value as sent (the seeds are
// real tokens and headers). Odd: the fuzzer's bytes describe claims, which are signed.
fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((mode, rest)) if mode % 2 == 0 => {
            raw(&String::from_utf8_lossy(rest));
            bearer(rest);
        }
        Some((_, rest)) => {
            if let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(rest)) {
                structured(input);
            }
        }
        None => {}
    }
});
