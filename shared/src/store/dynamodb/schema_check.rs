//! The table check at start-up. A table chatfn did not create (an existing one, named by
//! `CHATFN_TABLE_NAME`) must have the layout chatfn writes with: `pk` and `sk` string keys, TTL
//! on `expires_at`, and the indexes of [`CHAT_TABLE`]. A table that lacks any of it would fail
//! later, on a chat's first write, with an error that names neither the table nor the fix; the
//! check fails the start instead and lists everything that is missing.
//!
//! It costs one DescribeTable and one DescribeTimeToLive per process, sent together: the Lambda
//! functions open their store once, at a cold start. [`table_mismatches`] compares what they
//! return with a [`TableLayout`] without I/O.

use std::fmt;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    KeySchemaElement, KeyType, ScalarAttributeType, TableDescription, TimeToLiveDescription,
    TimeToLiveStatus,
};

use super::DynamoStore;
use super::item::{EXPIRES_AT, LIST_KEY, LISTED_INDEX, LISTED_PK, OWNER_INDEX, OWNER_PK, PK, SK};

/// The layout a table must have: its keys (string attributes), its TTL attribute and its indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableLayout {
    /// The partition key, a string attribute.
    pub partition_key: &'static str,
    /// The sort key, a string attribute.
    pub sort_key: &'static str,
    /// The attribute TTL must be enabled on (epoch seconds).
    pub ttl_attribute: &'static str,
    /// The secondary indexes (global or local) the store queries.
    pub indexes: &'static [IndexLayout],
}

/// A secondary index a table must have, by name and keys (string attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexLayout {
    /// The index's name.
    pub name: &'static str,
    /// Its partition key.
    pub partition_key: &'static str,
    /// Its sort key, if it has one.
    pub sort_key: Option<&'static str>,
}

/// The layout of chatfn's table, as infra/template.yaml creates it: the listing of sessions
/// queries two indexes (see `listing.rs`).
pub const CHAT_TABLE: TableLayout = TableLayout {
    partition_key: PK,
    sort_key: SK,
    ttl_attribute: EXPIRES_AT,
    indexes: &[
        IndexLayout {
            name: LISTED_INDEX,
            partition_key: LISTED_PK,
            sort_key: Some(LIST_KEY),
        },
        IndexLayout {
            name: OWNER_INDEX,
            partition_key: OWNER_PK,
            sort_key: Some(LIST_KEY),
        },
    ],
};

/// One way a table differs from the layout it must have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableMismatch {
    /// A key of the table (or of an index) is another attribute, or missing.
    #[error("{what} must be `{wanted}`, found {}", found.as_deref().map_or("none".into(), |f| format!("`{f}`")))]
    Key {
        /// Which key: "the partition key", "the sort key of index `x`".
        what: String,
        /// The attribute it must be.
        wanted: &'static str,
        /// The attribute it is.
        found: Option<String>,
    },
    /// A key attribute is not a string.
    #[error("key attribute `{attribute}` must be a string (S), found {found}")]
    KeyType {
        /// The attribute.
        attribute: &'static str,
        /// Its type in the table's attribute definitions.
        found: String,
    },
    /// An index the store queries does not exist.
    #[error("index `{}` is missing (keys: {})", index.name, index_keys(index))]
    MissingIndex {
        /// The index, with the keys it must have.
        index: IndexLayout,
    },
    /// TTL is off, or on another attribute.
    #[error("TTL must be enabled on `{wanted}` (expired chats are deleted by it), found {found}")]
    Ttl {
        /// The attribute TTL must be on.
        wanted: &'static str,
        /// What the table has instead.
        found: String,
    },
}

fn index_keys(index: &IndexLayout) -> String {
    match index.sort_key {
        Some(sort) => format!("`{}` HASH, `{sort}` RANGE", index.partition_key),
        None => format!("`{}` HASH", index.partition_key),
    }
}

/// Why the store will not start on a table.
#[derive(Debug, thiserror::Error)]
pub enum TableCheckError {
    /// The table has another layout than chatfn's.
    #[error(
        "DynamoDB table `{table}` lacks what chatfn needs: {}. See docs/deploy-aws.md, \
         \"An existing table\"",
        Listed(mismatches)
    )]
    Mismatch {
        /// The table.
        table: String,
        /// Every difference found.
        mismatches: Vec<TableMismatch>,
    },
    /// No table of that name in this account and region.
    #[error("DynamoDB table `{table}` does not exist (CHATFN_TABLE_NAME, in this region)")]
    NotFound {
        /// The table.
        table: String,
    },
    /// The table could not be described (permissions, network).
    #[error(
        "cannot check DynamoDB table `{table}`: {operation}: {reason}. The functions' role \
         needs dynamodb:DescribeTable and dynamodb:DescribeTimeToLive on it, or set \
         CHATFN_TABLE_CHECK=off to skip the check"
    )]
    Describe {
        /// The table.
        table: String,
        /// The call that failed.
        operation: &'static str,
        /// Why it failed.
        reason: String,
    },
}

impl TableCheckError {
    /// The differences found, when the table could be described.
    pub fn mismatches(&self) -> &[TableMismatch] {
        match self {
            TableCheckError::Mismatch { mismatches, .. } => mismatches,
            _ => &[],
        }
    }
}

/// Mismatches joined by "; ".
struct Listed<'a>(&'a [TableMismatch]);

impl fmt::Display for Listed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, mismatch) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{mismatch}")?;
        }
        Ok(())
    }
}

/// The attribute of `schema` with `kind`.
fn key_of(schema: &[KeySchemaElement], kind: KeyType) -> Option<&str> {
    schema
        .iter()
        .find(|element| element.key_type() == &kind)
        .map(KeySchemaElement::attribute_name)
}

fn check_key(
    what: String,
    wanted: &'static str,
    found: Option<&str>,
    mismatches: &mut Vec<TableMismatch>,
) {
    if found != Some(wanted) {
        mismatches.push(TableMismatch::Key {
            what,
            wanted,
            found: found.map(str::to_owned),
        });
    }
}

/// How `table` and its TTL settings differ from `layout`; empty when they fit.
pub fn table_mismatches(
    layout: &TableLayout,
    table: &TableDescription,
    ttl: Option<&TimeToLiveDescription>,
) -> Vec<TableMismatch> {
    let mut mismatches = Vec::new();
    let schema = table.key_schema();
    check_key(
        "the partition key".into(),
        layout.partition_key,
        key_of(schema, KeyType::Hash),
        &mut mismatches,
    );
    check_key(
        "the sort key".into(),
        layout.sort_key,
        key_of(schema, KeyType::Range),
        &mut mismatches,
    );

    let indexes = table
        .global_secondary_indexes()
        .iter()
        .map(|index| (index.index_name(), index.key_schema()))
        .chain(
            table
                .local_secondary_indexes()
                .iter()
                .map(|index| (index.index_name(), index.key_schema())),
        )
        .collect::<Vec<_>>();
    for wanted in layout.indexes {
        let Some((_, schema)) = indexes.iter().find(|(name, _)| *name == Some(wanted.name)) else {
            mismatches.push(TableMismatch::MissingIndex { index: *wanted });
            continue;
        };
        check_key(
            format!("the partition key of index `{}`", wanted.name),
            wanted.partition_key,
            key_of(schema, KeyType::Hash),
            &mut mismatches,
        );
        if let Some(sort) = wanted.sort_key {
            check_key(
                format!("the sort key of index `{}`", wanted.name),
                sort,
                key_of(schema, KeyType::Range),
                &mut mismatches,
            );
        }
    }

    // Key attributes are typed in the attribute definitions; a key the checks above found
    // missing is not reported twice.
    let mut keys = vec![layout.partition_key, layout.sort_key];
    for index in layout.indexes {
        for attribute in std::iter::once(index.partition_key).chain(index.sort_key) {
            if !keys.contains(&attribute) {
                keys.push(attribute);
            }
        }
    }
    for attribute in keys {
        let found = table
            .attribute_definitions()
            .iter()
            .find(|definition| definition.attribute_name() == attribute)
            .map(|definition| definition.attribute_type());
        if let Some(kind) = found
            && kind != &ScalarAttributeType::S
        {
            mismatches.push(TableMismatch::KeyType {
                attribute,
                found: kind.as_str().to_owned(),
            });
        }
    }

    let ttl_on = ttl.and_then(|ttl| {
        matches!(
            ttl.time_to_live_status(),
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        )
        .then(|| ttl.attribute_name())
        .flatten()
    });
    if ttl_on != Some(layout.ttl_attribute) {
        mismatches.push(TableMismatch::Ttl {
            wanted: layout.ttl_attribute,
            found: match ttl_on {
                Some(other) => format!("TTL on `{other}`"),
                None => "TTL disabled".into(),
            },
        });
    }
    mismatches
}

fn describe_failed<E, R>(
    table: &str,
    operation: &'static str,
    error: SdkError<E, R>,
) -> TableCheckError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    if error.code() == Some("ResourceNotFoundException") {
        return TableCheckError::NotFound {
            table: table.to_owned(),
        };
    }
    TableCheckError::Describe {
        table: table.to_owned(),
        operation,
        reason: DisplayErrorContext(&error).to_string(),
    }
}

impl DynamoStore {
    /// Checks that the table has chatfn's layout ([`CHAT_TABLE`]): one DescribeTable and one
    /// DescribeTimeToLive, sent together.
    pub async fn check_table(&self) -> Result<(), TableCheckError> {
        self.check_table_against(&CHAT_TABLE).await
    }

    /// Checks that the table has `layout`.
    pub async fn check_table_against(&self, layout: &TableLayout) -> Result<(), TableCheckError> {
        check(&self.client, &self.table, layout).await
    }
}

async fn check(client: &Client, table: &str, layout: &TableLayout) -> Result<(), TableCheckError> {
    let (described, ttl) = futures::join!(
        client.describe_table().table_name(table).send(),
        client.describe_time_to_live().table_name(table).send(),
    );
    let described = described.map_err(|e| describe_failed(table, "DescribeTable", e))?;
    let ttl = ttl.map_err(|e| describe_failed(table, "DescribeTimeToLive", e))?;
    let Some(description) = described.table() else {
        return Err(TableCheckError::NotFound {
            table: table.to_owned(),
        });
    };
    let mismatches = table_mismatches(layout, description, ttl.time_to_live_description());
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(TableCheckError::Mismatch {
            table: table.to_owned(),
            mismatches,
        })
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, GlobalSecondaryIndexDescription, KeySchemaElement,
    };

    use super::*;

    fn key(name: &str, kind: KeyType) -> KeySchemaElement {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("key")
    }

    fn attribute(name: &str, kind: ScalarAttributeType) -> AttributeDefinition {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .expect("attribute")
    }

    fn ttl(status: TimeToLiveStatus, attribute: &str) -> TimeToLiveDescription {
        TimeToLiveDescription::builder()
            .time_to_live_status(status)
            .attribute_name(attribute)
            .build()
    }

    /// The table infra/template.yaml creates, with the listing's indexes.
    fn chat_table() -> TableDescription {
        let index = |name: &str, partition: &str| {
            GlobalSecondaryIndexDescription::builder()
                .index_name(name)
                .key_schema(key(partition, KeyType::Hash))
                .key_schema(key("lk", KeyType::Range))
                .build()
        };
        TableDescription::builder()
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .attribute_definitions(attribute("pk", ScalarAttributeType::S))
            .attribute_definitions(attribute("sk", ScalarAttributeType::S))
            .global_secondary_indexes(index("listed", "lpk"))
            .global_secondary_indexes(index("by_owner", "opk"))
            .build()
    }

    /// The keys and TTL of [`CHAT_TABLE`] without its indexes, for the cases about those.
    const KEYS_ONLY: TableLayout = TableLayout {
        indexes: &[],
        ..CHAT_TABLE
    };

    const WITH_INDEX: TableLayout = TableLayout {
        indexes: &[IndexLayout {
            name: "by-due",
            partition_key: "due_shard",
            sort_key: Some("due_at"),
        }],
        ..KEYS_ONLY
    };

    #[test]
    fn the_table_infra_creates_fits() {
        let enabled = ttl(TimeToLiveStatus::Enabled, "expires_at");
        assert_eq!(
            table_mismatches(&CHAT_TABLE, &chat_table(), Some(&enabled)),
            []
        );
        let enabling = ttl(TimeToLiveStatus::Enabling, "expires_at");
        assert_eq!(
            table_mismatches(&CHAT_TABLE, &chat_table(), Some(&enabling)),
            []
        );
    }

    #[test]
    fn other_keys_are_named() {
        let table = TableDescription::builder()
            .key_schema(key("id", KeyType::Hash))
            .attribute_definitions(attribute("id", ScalarAttributeType::S))
            .build();
        let enabled = ttl(TimeToLiveStatus::Enabled, "expires_at");
        let found = table_mismatches(&KEYS_ONLY, &table, Some(&enabled));
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            found[0].to_string(),
            "the partition key must be `pk`, found `id`"
        );
        assert_eq!(
            found[1].to_string(),
            "the sort key must be `sk`, found none"
        );
    }

    #[test]
    fn a_numeric_key_is_named() {
        let table = TableDescription::builder()
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .attribute_definitions(attribute("pk", ScalarAttributeType::S))
            .attribute_definitions(attribute("sk", ScalarAttributeType::N))
            .build();
        let enabled = ttl(TimeToLiveStatus::Enabled, "expires_at");
        assert_eq!(
            table_mismatches(&KEYS_ONLY, &table, Some(&enabled)),
            [TableMismatch::KeyType {
                attribute: "sk",
                found: "N".into()
            }]
        );
    }

    #[test]
    fn ttl_off_or_elsewhere_is_named() {
        let disabled = ttl(TimeToLiveStatus::Disabled, "expires_at");
        let other = ttl(TimeToLiveStatus::Enabled, "ttl");
        for (described, found) in [
            (None, "TTL disabled"),
            (Some(&disabled), "TTL disabled"),
            (Some(&other), "TTL on `ttl`"),
        ] {
            assert_eq!(
                table_mismatches(&CHAT_TABLE, &chat_table(), described),
                [TableMismatch::Ttl {
                    wanted: "expires_at",
                    found: found.into()
                }]
            );
        }
    }

    #[test]
    fn indexes_are_checked_by_name_and_keys() {
        let enabled = ttl(TimeToLiveStatus::Enabled, "expires_at");
        let missing = table_mismatches(&WITH_INDEX, &chat_table(), Some(&enabled));
        assert_eq!(
            missing.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["index `by-due` is missing (keys: `due_shard` HASH, `due_at` RANGE)"]
        );

        let index = |sort: &str| {
            GlobalSecondaryIndexDescription::builder()
                .index_name("by-due")
                .key_schema(key("due_shard", KeyType::Hash))
                .key_schema(key(sort, KeyType::Range))
                .build()
        };
        let table = |sort: &str| {
            TableDescription::builder()
                .key_schema(key("pk", KeyType::Hash))
                .key_schema(key("sk", KeyType::Range))
                .attribute_definitions(attribute("pk", ScalarAttributeType::S))
                .attribute_definitions(attribute("sk", ScalarAttributeType::S))
                .global_secondary_indexes(index(sort))
                .build()
        };
        assert_eq!(
            table_mismatches(&WITH_INDEX, &table("due_at"), Some(&enabled)),
            []
        );
        assert_eq!(
            table_mismatches(&WITH_INDEX, &table("created_at"), Some(&enabled))
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["the sort key of index `by-due` must be `due_at`, found `created_at`"]
        );
    }

    #[test]
    fn the_error_lists_every_mismatch() {
        let error = TableCheckError::Mismatch {
            table: "app".into(),
            mismatches: vec![
                TableMismatch::MissingIndex {
                    index: WITH_INDEX.indexes[0],
                },
                TableMismatch::Ttl {
                    wanted: "expires_at",
                    found: "TTL disabled".into(),
                },
            ],
        };
        assert_eq!(
            error.to_string(),
            "DynamoDB table `app` lacks what chatfn needs: index `by-due` is missing (keys: \
             `due_shard` HASH, `due_at` RANGE); TTL must be enabled on `expires_at` (expired \
             chats are deleted by it), found TTL disabled. See docs/deploy-aws.md, \"An existing \
             table\""
        );
    }
}
