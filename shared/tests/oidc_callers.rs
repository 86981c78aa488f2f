//! End users who start sessions and refresh tokens with an OpenID Connect ID token, checked
//! against a local issuer's JWKS. The fixture key pair exists only for these tests.

#[path = "support/app.rs"]
mod app;

use std::sync::Arc;

use app::{TestApp, stock_agent};
use axum::Json;
use axum::routing::get;
use chatfn::auth::OidcVerifier;
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
    assert_eq!(
        patch(&bob, "a-1").await.expect("patch").status(),
        StatusCode::FORBIDDEN
    );
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
    let refused = erase(&bob, "/api/v1/sessions/a-1".into())
        .await
        .expect("delete");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
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
