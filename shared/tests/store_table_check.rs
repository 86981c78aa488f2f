//! The start-up check of an existing DynamoDB table against Amazon's DynamoDB Local: the table
//! chatfn creates passes; one with other keys, without TTL, or without an index the layout names
//! fails with every difference named; a missing table is named as such.
//!
//! Needs `AWS_ENDPOINT_URL_DYNAMODB`: `eval "$(scripts/dynamodb-local.sh start)"` starts DynamoDB
//! Local and prints it (scripts/test.sh does that). Each test uses tables of its own.
#![cfg(feature = "dynamodb")]

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use chatfn::store::dynamodb::{
    CHAT_TABLE, DynamoStore, IndexLayout, TableCheckError, TableLayout, TableMismatch,
};

const HOW_TO_START: &str = "AWS_ENDPOINT_URL_DYNAMODB is not set: these tests run against \
     DynamoDB Local. Start it with `eval \"$(scripts/dynamodb-local.sh start)\"` (it prints the \
     endpoint and the PID to kill afterwards), or run scripts/test.sh, which does it for you.";

/// chatfn's layout with an index, as a store that queries one would declare it.
const WITH_INDEX: TableLayout = TableLayout {
    indexes: &[IndexLayout {
        name: "by-due",
        partition_key: "due_shard",
        sort_key: Some("due_at"),
    }],
    ..CHAT_TABLE
};

async fn client() -> Client {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_default();
    assert!(!endpoint.is_empty(), "{HOW_TO_START}");
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "test"))
        .load()
        .await;
    Client::new(&config)
}

fn table_name(what: &str) -> String {
    format!("chatfn-check-{what}-{}", uuid::Uuid::new_v4().simple())
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("key")
}

fn string(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("attribute")
}

/// A table with `keys` (string attributes), `index` if given, and TTL on `expires_at` when
/// `ttl` is true.
async fn create(
    client: &Client,
    name: &str,
    keys: &[(&str, KeyType)],
    index: Option<&IndexLayout>,
    ttl: bool,
) {
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    let mut attributes: Vec<&str> = keys.iter().map(|(name, _)| *name).collect();
    for (attribute, kind) in keys {
        request = request.key_schema(key(attribute, kind.clone()));
    }
    if let Some(index) = index {
        let mut gsi = GlobalSecondaryIndex::builder()
            .index_name(index.name)
            .key_schema(key(index.partition_key, KeyType::Hash))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::KeysOnly)
                    .build(),
            );
        attributes.push(index.partition_key);
        if let Some(sort) = index.sort_key {
            gsi = gsi.key_schema(key(sort, KeyType::Range));
            attributes.push(sort);
        }
        request = request.global_secondary_indexes(gsi.build().expect("index"));
    }
    for attribute in attributes {
        request = request.attribute_definitions(string(attribute));
    }
    request.send().await.expect("create table");
    if ttl {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("expires_at")
                    .build()
                    .expect("ttl"),
            )
            .send()
            .await
            .expect("enable TTL");
    }
}

async fn delete(client: &Client, name: &str) {
    let _ = client.delete_table().table_name(name).send().await;
}

#[tokio::test]
async fn the_table_chatfn_creates_passes() {
    let client = client().await;
    let name = table_name("created");
    let store = DynamoStore::new(client.clone(), &name);
    store.create_table().await.expect("create table");
    let checked = store.check_table().await;
    delete(&client, &name).await;
    checked.expect("the table chatfn creates fits its layout");
}

#[tokio::test]
async fn a_table_with_other_keys_fails_naming_them() {
    let client = client().await;
    let name = table_name("keys");
    create(&client, &name, &[("id", KeyType::Hash)], None, true).await;
    let checked = DynamoStore::new(client.clone(), &name).check_table().await;
    delete(&client, &name).await;
    let error = checked.expect_err("a table keyed on `id` does not fit");
    assert_eq!(
        error.mismatches(),
        [
            TableMismatch::Key {
                what: "the partition key".into(),
                wanted: "pk",
                found: Some("id".into()),
            },
            TableMismatch::Key {
                what: "the sort key".into(),
                wanted: "sk",
                found: None,
            },
            TableMismatch::MissingIndex {
                index: CHAT_TABLE.indexes[0],
            },
            TableMismatch::MissingIndex {
                index: CHAT_TABLE.indexes[1],
            },
        ]
    );
    let message = error.to_string();
    assert!(message.contains(&format!("`{name}`")), "{message}");
    assert!(
        message.contains("the partition key must be `pk`, found `id`"),
        "{message}"
    );
}

#[tokio::test]
async fn a_table_without_ttl_fails() {
    let client = client().await;
    let name = table_name("ttl");
    create(
        &client,
        &name,
        &[("pk", KeyType::Hash), ("sk", KeyType::Range)],
        None,
        false,
    )
    .await;
    let checked = DynamoStore::new(client.clone(), &name).check_table().await;
    delete(&client, &name).await;
    let error = checked.expect_err("a table without TTL does not fit");
    assert_eq!(
        error.mismatches(),
        [
            TableMismatch::MissingIndex {
                index: CHAT_TABLE.indexes[0],
            },
            TableMismatch::MissingIndex {
                index: CHAT_TABLE.indexes[1],
            },
            TableMismatch::Ttl {
                wanted: "expires_at",
                found: "TTL disabled".into(),
            },
        ]
    );
}

#[tokio::test]
async fn a_table_that_lacks_an_index_fails_naming_it() {
    let client = client().await;
    let keys = [("pk", KeyType::Hash), ("sk", KeyType::Range)];
    let without = table_name("no-index");
    let with = table_name("index");
    create(&client, &without, &keys, None, true).await;
    create(&client, &with, &keys, Some(&WITH_INDEX.indexes[0]), true).await;
    let lacking = DynamoStore::new(client.clone(), &without)
        .check_table_against(&WITH_INDEX)
        .await;
    let having = DynamoStore::new(client.clone(), &with)
        .check_table_against(&WITH_INDEX)
        .await;
    delete(&client, &without).await;
    delete(&client, &with).await;

    let error = lacking.expect_err("a table without the index does not fit");
    assert_eq!(
        error.mismatches(),
        [TableMismatch::MissingIndex {
            index: WITH_INDEX.indexes[0]
        }]
    );
    assert!(
        error
            .to_string()
            .contains("index `by-due` is missing (keys: `due_shard` HASH, `due_at` RANGE)"),
        "{error}"
    );
    having.expect("a table with the index fits");
}

#[tokio::test]
async fn a_missing_table_is_named() {
    let client = client().await;
    let name = table_name("absent");
    let checked = DynamoStore::new(client, &name).check_table().await;
    assert!(
        matches!(&checked, Err(TableCheckError::NotFound { table }) if *table == name),
        "{checked:?}"
    );
}
