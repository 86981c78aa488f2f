//! Approvals signed by the server. An approval request carries an HMAC over the chat, the approval,
//! the tool call, the tool's name and a digest of its input; the answer comes back with the
//! request's signature, and the engine runs the call only if the signature is the server's for that
//! exact call. A client replaying history cannot approve a call it was never asked about, move an
//! approval to another call or chat, or change the input it approved.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::SecretKeys;

type HmacSha256 = Hmac<Sha256>;

/// Separates approval signatures from every other use of the secret keys.
const DOMAIN: &str = "chatfn-tool-approval-v1";

/// What an approval signature covers.
#[derive(Debug, Clone, Copy)]
pub struct ApprovalClaim<'a> {
    /// The chat the call belongs to.
    pub chat_id: &'a str,
    /// The id of this approval request, as sent to the client.
    pub approval_id: &'a str,
    /// The tool call waiting for the approval.
    pub tool_call_id: &'a str,
    /// The tool the call would run.
    pub tool_name: &'a str,
    /// The call's input, covered by a digest so an approval cannot be moved to other arguments.
    pub input: &'a Value,
}

/// Signs approval requests with the environment's secret key and verifies answers with any live
/// key, so a rotation does not void the approvals that are waiting for a person.
#[derive(Clone)]
pub struct ApprovalSigner {
    keys: SecretKeys,
}

impl std::fmt::Debug for ApprovalSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalSigner").finish_non_exhaustive()
    }
}

impl ApprovalSigner {
    /// A signer over the environment's secret keys: signs with the current key, verifies with
    /// any live one.
    pub fn new(keys: SecretKeys) -> Self {
        ApprovalSigner { keys }
    }

    /// The signature of `claim`, base64url without padding.
    pub fn sign(&self, claim: ApprovalClaim<'_>) -> String {
        let tag = mac(&self.keys.signing_key(), claim).finalize().into_bytes();
        URL_SAFE_NO_PAD.encode(tag)
    }

    /// Whether `signature` was made by one of the live keys for exactly `claim` (compared in
    /// constant time).
    pub fn verify(&self, claim: ApprovalClaim<'_>, signature: &str) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(signature.trim_end_matches('=')) else {
            return false;
        };
        self.keys
            .all()
            .iter()
            .any(|key| mac(key, claim).verify_slice(&tag).is_ok())
    }
}

fn mac(key: &str, claim: ApprovalClaim<'_>) -> HmacSha256 {
    // HMAC takes keys of any length, so this never fails.
    let mut mac = match HmacSha256::new_from_slice(key.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable_hmac_key(),
    };
    mac.update(&payload(claim));
    mac
}

#[cold]
fn unreachable_hmac_key() -> ! {
    unreachable!("HMAC accepts keys of every length")
}

/// A JSON array of the claim's fields: escaping keeps the field boundaries unambiguous whatever
/// characters the ids hold.
fn payload(claim: ApprovalClaim<'_>) -> Vec<u8> {
    let fields = [
        DOMAIN,
        claim.chat_id,
        claim.approval_id,
        claim.tool_call_id,
        claim.tool_name,
        &input_digest(claim.input),
    ];
    serde_json::to_vec(&fields).unwrap_or_default()
}

/// SHA-256 of the input in canonical JSON (object keys sorted), so the same input always has the
/// same digest whatever order a client or a store kept its keys in.
fn input_digest(input: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(input, &mut canonical);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (index, (key, value)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn signer(keys: &str) -> ApprovalSigner {
        ApprovalSigner::new(SecretKeys::parse(keys).expect("keys"))
    }

    fn claim<'a>(input: &'a Value) -> ApprovalClaim<'a> {
        ApprovalClaim {
            chat_id: "chat-1",
            approval_id: "approval_1",
            tool_call_id: "call_1",
            tool_name: "send_money",
            input,
        }
    }

    #[test]
    fn a_signature_verifies_for_its_claim_only() {
        let signer = signer("sk_test");
        let input = json!({"to": "alice", "amount": 10});
        let signature = signer.sign(claim(&input));
        assert!(signer.verify(claim(&input), &signature));

        let more = json!({"to": "alice", "amount": 1000});
        assert!(!signer.verify(claim(&more), &signature), "other input");
        let other_chat = ApprovalClaim {
            chat_id: "chat-2",
            ..claim(&input)
        };
        assert!(!signer.verify(other_chat, &signature), "other chat");
        let other_call = ApprovalClaim {
            tool_call_id: "call_2",
            ..claim(&input)
        };
        assert!(!signer.verify(other_call, &signature), "other call");
        let other_tool = ApprovalClaim {
            tool_name: "read_balance",
            ..claim(&input)
        };
        assert!(!signer.verify(other_tool, &signature), "other tool");
        assert!(!signer.verify(claim(&input), "not base64 !"));
        assert!(!signer.verify(claim(&input), ""));
    }

    #[test]
    fn key_order_in_the_input_does_not_matter() {
        let signer = signer("sk_test");
        let a: Value =
            serde_json::from_str(r#"{"a":1,"b":{"y":[1,{"q":2,"p":1}],"x":"s"}}"#).expect("json");
        let b: Value =
            serde_json::from_str(r#"{"b":{"x":"s","y":[1,{"p":1,"q":2}]},"a":1}"#).expect("json");
        assert!(signer.verify(claim(&b), &signer.sign(claim(&a))));
    }

    #[test]
    fn fields_cannot_be_shifted_into_each_other() {
        let signer = signer("sk_test");
        let input = json!({});
        let one = ApprovalClaim {
            approval_id: "a\",\"b",
            tool_call_id: "c",
            ..claim(&input)
        };
        let two = ApprovalClaim {
            approval_id: "a",
            tool_call_id: "b\",\"c",
            ..claim(&input)
        };
        assert!(!signer.verify(two, &signer.sign(one)));
    }

    #[test]
    fn rotation_keeps_waiting_approvals_valid_and_other_keys_fail() {
        let input = json!({"n": 1});
        let signature = signer("sk_old").sign(claim(&input));
        assert!(signer("sk_new,sk_old").verify(claim(&input), &signature));
        assert!(!signer("sk_new").verify(claim(&input), &signature));
    }
}
