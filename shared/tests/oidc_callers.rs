//! End users who start sessions and refresh tokens with an OpenID Connect ID token, checked
//! against a local issuer's JWKS. The fixture key pair exists only for these tests.

#[path = "support/app.rs"]
mod app;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use app::{TestApp, stock_agent};
use axum::Json;
use axum::routing::get;
use chatfn::auth::{EndUser, OidcError, OidcVerifier};
use chatfn::model::offline::OfflineModel;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

const AUDIENCE: &str = "chatfn-tests";

async fn issuer() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let jwks: Value =
        serde_json::from_str(include_str!("fixtures/oidc-jwks.json")).expect("jwks fixture");
    let discovery = json!({"issuer": base, "jwks_uri": format!("{base}/jwks")});
    let router = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { Json(discovery) }),
        )
        .route("/jwks", get(move || async move { Json(jwks) }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    base
}

fn id_token(issuer: &str, sub: &str, audience: &str, exp_offset: i64, kid: &str) -> String {
    let now = (chatfn::clock::now_ms() / 1000) as i64;
    let claims =
        json!({"iss": issuer, "sub": sub, "aud": audience, "iat": now, "exp": now + exp_offset});
    let key =
        EncodingKey::from_ec_pem(include_bytes!("fixtures/oidc-signing-key.pem")).expect("key");
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

/// A token of the issuer's own key whose header names a critical extension.
fn critical(issuer: &str) -> String {
    let now = (chatfn::clock::now_ms() / 1000) as i64;
    let claims =
        json!({"iss": issuer, "sub": "alice", "aud": AUDIENCE, "iat": now, "exp": now + 300});
    let key =
        EncodingKey::from_ec_pem(include_bytes!("fixtures/oidc-signing-key.pem")).expect("key");
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("test-key-1".to_owned());
    header.crit = Some(vec!["exp".to_owned()]);
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

/// An issuer that counts the requests for its discovery document, and answers 500 to them when
/// `failing`.
async fn counting_issuer(failing: bool) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let jwks: Value =
        serde_json::from_str(include_str!("fixtures/oidc-jwks.json")).expect("jwks fixture");
    let discovery = json!({"issuer": base, "jwks_uri": format!("{base}/jwks")});
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    let router = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move {
                counter.fetch_add(1, Ordering::SeqCst);
                // Slow enough that concurrent callers all find the fetch under way.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                if failing {
                    Err(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
                } else {
                    Ok(Json(discovery))
                }
            }),
        )
        .route("/jwks", get(move || async move { Json(jwks) }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (base, asked)
}

async fn start(issuer: &str) -> TestApp {
    let verifier = Arc::new(OidcVerifier::new(issuer, Some(AUDIENCE.to_owned())));
    TestApp::start_with(
        stock_agent(Arc::new(OfflineModel::new())),
        Arc::new(chatfn::store::memory::MemoryStore::new()),
        |mut settings| {
            settings.oidc = Some(verifier);
            settings
        },
    )
    .await
}

async fn create(app: &TestApp, credential: &str, chat_id: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/api/v1/sessions", app.base))
        .bearer_auth(credential)
        .json(&json!({"type": "chat.agent", "externalId": chat_id, "taskIdentifier": "chat"}))
        .send()
        .await
        .expect("create")
}

async fn create_for(
    app: &TestApp,
    credential: &str,
    chat_id: &str,
    owner: &str,
) -> reqwest::Response {
    app.client
        .post(format!("{}/api/v1/sessions", app.base))
        .bearer_auth(credential)
        .json(&json!({"type": "chat.agent", "externalId": chat_id, "owner": owner}))
        .send()
        .await
        .expect("create")
}

async fn refresh(app: &TestApp, credential: &str, chat_id: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/api/v1/sessions/{chat_id}/token", app.base))
        .bearer_auth(credential)
        .send()
        .await
        .expect("refresh")
}

#[tokio::test]
async fn the_owner_starts_and_refreshes_and_nobody_else_does() {
    let issuer = issuer().await;
    let app = start(&issuer).await;
    let alice = id_token(&issuer, "alice", AUDIENCE, 300, "test-key-1");
    let bob = id_token(&issuer, "bob", AUDIENCE, 300, "test-key-1");

    let created = create(&app, &alice, "chat-alice").await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let body: Value = created.json().await.expect("json");
    let token = body["publicAccessToken"].as_str().expect("token");
    assert!(app.messages(token, "chat-alice").await.is_empty());
    let stored = app
        .store
        .session("chat-alice")
        .await
        .expect("store")
        .expect("session");
    assert_eq!(stored.owner.as_deref(), Some("alice"));

    assert_eq!(
        refresh(&app, &alice, "chat-alice").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        create(&app, &alice, "chat-alice").await.status(),
        StatusCode::OK
    );
    for response in [
        create(&app, &bob, "chat-alice").await,
        refresh(&app, &bob, "chat-alice").await,
    ] {
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body: Value = response.json().await.expect("json");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("another user")
        );
    }
    // A chat the server made for nobody in particular is nobody's to take.
    assert_eq!(
        create(&app, app::SECRET, "chat-server").await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        refresh(&app, &alice, "chat-server").await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_chat_id_an_end_user_took_is_not_handed_to_the_backend_as_its_own() {
    let issuer = issuer().await;
    let app = start(&issuer).await;
    let mallory = id_token(&issuer, "mallory", AUDIENCE, 300, "test-key-1");
    let carol = id_token(&issuer, "carol", AUDIENCE, 300, "test-key-1");

    // Mallory takes an id the backend will use later.
    assert_eq!(
        create(&app, &mallory, "support-42").await.status(),
        StatusCode::CREATED
    );
    let squatted = create(&app, app::SECRET, "support-42").await;
    assert_eq!(squatted.status(), StatusCode::CONFLICT);
    let body: Value = squatted.json().await.expect("json");
    assert_eq!(body["code"], "chat_owned_by_another", "{body}");
    assert!(body.get("publicAccessToken").is_none(), "{body}");
    assert!(!body.to_string().contains("mallory"), "{body}");
    // Naming another owner is no better; naming the owner takes the chat up knowingly.
    let wrong = create_for(&app, app::SECRET, "support-42", "carol").await;
    assert_eq!(wrong.status(), StatusCode::CONFLICT);
    let named = create_for(&app, app::SECRET, "support-42", "mallory").await;
    assert_eq!(named.status(), StatusCode::OK);
    let body: Value = named.json().await.expect("json");
    assert_eq!(body["isCached"], true);

    // The backend may start a chat for a user, who then refreshes its token themselves.
    assert_eq!(
        create_for(&app, app::SECRET, "carol-1", "carol")
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        refresh(&app, &carol, "carol-1").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        refresh(&app, &mallory, "carol-1").await.status(),
        StatusCode::FORBIDDEN
    );
    // An end user cannot start a chat in another's name.
    assert_eq!(
        create_for(&app, &mallory, "mallory-2", "carol")
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    // Chats the backend started for nobody are still its own to reopen.
    assert_eq!(
        create(&app, app::SECRET, "plain").await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        create(&app, app::SECRET, "plain").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn bad_id_tokens_are_refused() {
    let issuer = issuer().await;
    let app = start(&issuer).await;
    let hs256 = {
        let now = chatfn::clock::now_ms() / 1000;
        let claims = json!({"iss": issuer, "sub": "eve", "aud": AUDIENCE, "exp": now + 300});
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"guess"),
        )
        .expect("sign")
    };
    for (token, needle) in [
        (
            id_token(&issuer, "alice", AUDIENCE, -120, "test-key-1"),
            "expired",
        ),
        (
            id_token(&issuer, "alice", "someone-else", 300, "test-key-1"),
            "audience",
        ),
        (
            id_token("https://evil.example", "alice", AUDIENCE, 300, "test-key-1"),
            "issuer",
        ),
        (
            id_token(&issuer, "alice", AUDIENCE, 300, "unknown-key"),
            "signature",
        ),
        (hs256, "signature"),
        ("garbage".to_owned(), "signature"),
        (critical(&issuer), "malformed"),
    ] {
        let response = create(&app, &token, "chat-x").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{needle}");
        let body: Value = response.json().await.expect("json");
        assert!(
            body["error"].as_str().unwrap_or_default().contains(needle),
            "{needle}: {body}"
        );
    }
    assert!(app.store.session("chat-x").await.expect("store").is_none());
}

/// `count` verifications of `token`, each its own task, all started at once.
async fn verify_at_once(
    verifier: &Arc<OidcVerifier>,
    token: &str,
    count: usize,
) -> Vec<Result<EndUser, OidcError>> {
    let checks = (0..count).map(|_| {
        let (verifier, token) = (verifier.clone(), token.to_owned());
        tokio::spawn(async move { verifier.verify(&token).await })
    });
    futures::future::join_all(checks)
        .await
        .into_iter()
        .map(|check| check.expect("joined"))
        .collect()
}

#[tokio::test]
async fn key_fetches_are_shared_and_failures_remembered() {
    let (issuer, asked) = counting_issuer(false).await;
    let verifier = Arc::new(OidcVerifier::new(&issuer, Some(AUDIENCE.to_owned())));
    let token = id_token(&issuer, "alice", AUDIENCE, 300, "test-key-1");
    for check in verify_at_once(&verifier, &token, 20).await {
        assert_eq!(check.expect("verified").sub, "alice");
    }
    assert_eq!(asked.load(Ordering::SeqCst), 1, "one fetch for 20 callers");

    let (down, asked) = counting_issuer(true).await;
    let verifier = Arc::new(OidcVerifier::new(&down, Some(AUDIENCE.to_owned())));
    let token = id_token(&down, "alice", AUDIENCE, 300, "test-key-1");
    for check in verify_at_once(&verifier, &token, 20).await {
        assert!(
            matches!(check, Err(OidcError::Unavailable(_))),
            "an issuer that is down makes the keys unavailable"
        );
    }
    for _ in 0..5 {
        assert!(matches!(
            verifier.verify(&token).await,
            Err(OidcError::Unavailable(_))
        ));
    }
    assert_eq!(
        asked.load(Ordering::SeqCst),
        1,
        "one fetch for 25 callers while the failure is remembered"
    );
}

async fn list(app: &TestApp, credential: &str) -> Vec<String> {
    let response = app
        .client
        .get(format!("{}/api/v1/sessions?page[size]=100", app.base))
        .bearer_auth(credential)
        .send()
        .await
        .expect("list");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|session| session["externalId"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn an_end_user_lists_edits_and_erases_only_their_own_chats() {
    let issuer = issuer().await;
    let app = start(&issuer).await;
    let alice = id_token(&issuer, "alice", AUDIENCE, 300, "test-key-1");
    let bob = id_token(&issuer, "bob", AUDIENCE, 300, "test-key-1");
    for (credential, chat) in [(&alice, "a-1"), (&bob, "b-1"), (&alice, "a-2")] {
        assert_eq!(
            create(&app, credential, chat).await.status(),
            StatusCode::CREATED
        );
        // A listing orders by creation time, then by chat id: a millisecond apart, the order
        // below is the order of creation.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    assert_eq!(list(&app, &alice).await, ["a-2", "a-1"]);
    assert_eq!(list(&app, &bob).await, ["b-1"]);
    assert_eq!(list(&app, app::SECRET).await, ["a-2", "b-1", "a-1"]);

    let patch = |credential: &str, chat: &str| {
        app.client
            .patch(format!("{}/api/v1/sessions/{chat}", app.base))
            .bearer_auth(credential)
            .json(&json!({"tags": ["x"]}))
            .send()
    };
    // Another user's chat and a chat that does not exist answer alike.
    for chat in ["a-1", "nobody-has-this"] {
        let refused = patch(&bob, chat).await.expect("patch");
        assert_eq!(refused.status(), StatusCode::NOT_FOUND, "{chat}");
        let body: Value = refused.json().await.expect("json");
        assert_eq!(body["code"], "not_found", "{chat}: {body}");
        assert!(!body.to_string().contains(chat), "{chat}: {body}");
    }
    assert_eq!(
        patch(&alice, "a-1").await.expect("patch").status(),
        StatusCode::OK
    );

    let erase = |credential: &str, path: String| {
        app.client
            .delete(format!("{}{path}", app.base))
            .bearer_auth(credential)
            .send()
    };
    // Another user's chat and a chat that does not exist answer alike.
    for chat in ["a-1", "nobody-has-this"] {
        let refused = erase(&bob, format!("/api/v1/sessions/{chat}"))
            .await
            .expect("delete");
        assert_eq!(refused.status(), StatusCode::OK);
        let body: Value = refused.json().await.expect("json");
        assert_eq!(body, json!({"id": chat, "deleted": false}));
    }
    assert_eq!(
        list(&app, &alice).await,
        ["a-2", "a-1"],
        "bob erased nothing"
    );
    let refused = erase(&bob, "/api/v1/owners/alice/sessions".into())
        .await
        .expect("delete");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let erased = erase(&alice, "/api/v1/owners/alice/sessions".into())
        .await
        .expect("delete");
    assert_eq!(erased.status(), StatusCode::OK);
    let body: Value = erased.json().await.expect("json");
    assert_eq!(body["deleted"], 2);
    assert!(list(&app, &alice).await.is_empty());
    assert_eq!(list(&app, app::SECRET).await, ["b-1"]);
}
