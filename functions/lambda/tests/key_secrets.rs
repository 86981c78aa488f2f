//! The keys read from Secrets Manager at start-up, against moto's server (a local stand-in for
//! Secrets Manager, started here by scripts/secrets-local.sh, which installs it on first use):
//! the secrets the environment names stand for `CHATFN_SECRET_KEY` and `CHATFN_MODEL_API_KEY`,
//! a rotation list comes through whole, and a secret that cannot be read stops the start with
//! its name, never a value.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{Credentials, Region};
use chatfn::model::ApiKey;
use chatfn_lambda::{
    MODEL_API_KEY_SECRET, SECRET_KEY_SECRET, SecretsError, config_from_lookup,
    refresh_model_api_key, refresh_secret_key,
};

/// moto's server for this test, stopped when dropped.
struct SecretsStandIn {
    endpoint: String,
    pid: String,
}

impl SecretsStandIn {
    fn start() -> Self {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/secrets-local.sh");
        let output = Command::new("bash")
            .arg(&script)
            .arg("start")
            .output()
            .expect("run scripts/secrets-local.sh");
        assert!(
            output.status.success(),
            "scripts/secrets-local.sh start failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let lines = String::from_utf8_lossy(&output.stdout).into_owned();
        let value = |name: &str| {
            lines
                .lines()
                .find_map(|line| line.strip_prefix(&format!("export {name}=")))
                .unwrap_or_else(|| panic!("no {name} in: {lines}"))
                .to_owned()
        };
        SecretsStandIn {
            endpoint: value("AWS_ENDPOINT_URL_SECRETS_MANAGER"),
            pid: value("CHATFN_SECRETS_LOCAL_PID"),
        }
    }

    async fn client(&self) -> Client {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("local", "local", None, None, "test"))
            .endpoint_url(&self.endpoint)
            .load()
            .await;
        Client::new(&config)
    }
}

impl Drop for SecretsStandIn {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(&self.pid).status();
    }
}

async fn put(client: &Client, name: &str, value: &str) {
    client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("create the secret");
}

/// Puts a new value in the secret `name`, as a rotation does.
async fn rotate(client: &Client, name: &str, value: &str) {
    client
        .put_secret_value()
        .secret_id(name)
        .secret_string(value)
        .send()
        .await
        .expect("rotate the secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_named_secrets_stand_for_the_keys_and_an_unreadable_one_stops_the_start() {
    let stand_in = SecretsStandIn::start();
    let client = stand_in.client().await;
    // A rotation in progress: the new key signs, the old one still verifies.
    put(
        &client,
        "chatfn/secret-key",
        " sk_new_0123456789,sk_old_0123456789\n",
    )
    .await;
    put(&client, "chatfn/model-api-key", "model-key-from-the-secret").await;

    let vars: HashMap<&str, &str> = [
        (SECRET_KEY_SECRET, "chatfn/secret-key"),
        (MODEL_API_KEY_SECRET, "chatfn/model-api-key"),
        ("CHATFN_MODEL_PROVIDER", "openai"),
        // What the secrets stand for wins over a plain variable left behind.
        ("CHATFN_SECRET_KEY", "sk_plain_not_used"),
    ]
    .into();
    let config = config_from_lookup(|name| vars.get(name).map(|v| (*v).to_owned()), &client)
        .await
        .expect("the configuration");
    let keys = config.secret_keys.expect("the secret keys");
    assert_eq!(*keys.all(), ["sk_new_0123456789", "sk_old_0123456789"]);
    assert_eq!(
        config
            .model_api_key
            .as_ref()
            .map(ApiKey::current)
            .as_deref(),
        Some("model-key-from-the-secret")
    );

    // The rotation ends: read again, the list changes in place, for every holder of the keys.
    let held_by_the_routes = keys.clone();
    assert!(
        !refresh_secret_key(&client, "chatfn/secret-key", &keys)
            .await
            .expect("read again")
    );
    rotate(&client, "chatfn/secret-key", "sk_new_0123456789").await;
    assert!(
        refresh_secret_key(&client, "chatfn/secret-key", &keys)
            .await
            .expect("read again")
    );
    assert_eq!(*held_by_the_routes.all(), ["sk_new_0123456789"]);
    assert!(!held_by_the_routes.matches("sk_old_0123456789"));

    // The model key rotates the same way; the model's client holds a clone of the key.
    let model_key = config.model_api_key.clone().expect("the model key");
    let held_by_the_model = model_key.clone();
    assert!(
        !refresh_model_api_key(&client, "chatfn/model-api-key", &model_key)
            .await
            .expect("read again")
    );
    rotate(&client, "chatfn/model-api-key", "model-key-rotated").await;
    assert!(
        refresh_model_api_key(&client, "chatfn/model-api-key", &model_key)
            .await
            .expect("read again")
    );
    assert_eq!(&*held_by_the_model.current(), "model-key-rotated");

    // Only the secret key named: the model key is the plain variable's, as on the local server.
    let vars: HashMap<&str, &str> = [
        (SECRET_KEY_SECRET, "chatfn/secret-key"),
        (MODEL_API_KEY_SECRET, ""),
        ("CHATFN_MODEL_PROVIDER", "openai"),
        ("CHATFN_MODEL_API_KEY", "plain-model-key"),
    ]
    .into();
    let config = config_from_lookup(|name| vars.get(name).map(|v| (*v).to_owned()), &client)
        .await
        .expect("the configuration");
    assert_eq!(
        config
            .model_api_key
            .as_ref()
            .map(ApiKey::current)
            .as_deref(),
        Some("plain-model-key")
    );
    assert_eq!(
        config.secret_keys.expect("keys").signing_key(),
        "sk_new_0123456789"
    );

    // A read that fails keeps the keys: the caller is told, the keys stay.
    let error = refresh_secret_key(&client, "chatfn/gone", &held_by_the_routes)
        .await
        .expect_err("a missing secret");
    assert!(matches!(error, SecretsError::Unreadable { .. }), "{error}");
    assert_eq!(held_by_the_routes.signing_key(), "sk_new_0123456789");

    // A secret that is not there: the start fails, naming the secret and its variable.
    let vars: HashMap<&str, &str> = [(SECRET_KEY_SECRET, "chatfn/no-such-secret")].into();
    let error = config_from_lookup(|name| vars.get(name).map(|v| (*v).to_owned()), &client)
        .await
        .expect_err("a missing secret");
    assert!(matches!(error, SecretsError::Unreadable { .. }), "{error}");
    let message = format!("{error:?}");
    assert!(
        message.contains("chatfn/no-such-secret") && message.contains(SECRET_KEY_SECRET),
        "{message}"
    );
}
