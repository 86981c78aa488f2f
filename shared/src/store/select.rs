//! Which store a native host opens. `CHATFN_STORE` names it (`dynamodb`, the default; `memory`
//! or `sqlite:PATH` for local development), [`from_config`] opens it for the Lambda functions, and
//! the local server maps its flags onto the same [`StoreChoice`] and opens it with
//! [`StoreChoice::open`]. A store the build leaves out is an error at start-up that names the
//! missing feature. [`from_config`] also checks that a DynamoDB table has chatfn's layout, once
//! per process (`CHATFN_TABLE_CHECK=off` skips it).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::memory::MemoryStore;
use super::{Store, StoreError};
use crate::config::Config;

/// Which store to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// `dynamodb` (the default): one DynamoDB table, `CHATFN_TABLE_NAME` on Lambda.
    DynamoDb,
    /// `memory`: local development only. Nothing persists, and processes share nothing.
    Memory,
    /// `sqlite:PATH`: local development only. One file several local processes can share.
    Sqlite(PathBuf),
}

/// Why no store could be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreChoiceError {
    /// `CHATFN_STORE` names no store chatfn knows.
    #[error(
        "CHATFN_STORE must be `dynamodb`, or for local development `memory` or `sqlite:PATH` \
         (got `{0}`)"
    )]
    Unknown(String),
    /// A local development store was asked for on Lambda, where it would lose chats.
    #[error(
        "CHATFN_STORE={0} is for local development only and is refused on AWS Lambda: use the \
         DynamoDB store (CHATFN_STORE=dynamodb, the default)"
    )]
    LocalStoreOnAws(String),
    /// The DynamoDB store was chosen but no table is named.
    #[error(
        "CHATFN_TABLE_NAME is not set: name the DynamoDB table (or set CHATFN_STORE for local \
         development)"
    )]
    NoTableName,
    /// The DynamoDB store was chosen but this build leaves it out.
    #[error(
        "this build of chatfn has no DynamoDB store: build it with the `dynamodb` feature, or set \
         CHATFN_STORE=memory or CHATFN_STORE=sqlite:PATH for local development"
    )]
    DynamoDbNotBuilt,
    /// The SQLite store was chosen but this build leaves it out.
    #[error(
        "CHATFN_STORE=sqlite:… needs a build with the `sqlite` feature (cargo lambda watch \
         --features sqlite)"
    )]
    SqliteNotBuilt,
    /// The DynamoDB table lacks chatfn's layout, or could not be described.
    #[cfg(feature = "dynamodb")]
    #[error(transparent)]
    Table(#[from] super::dynamodb::TableCheckError),
    /// The SQLite file could not be opened.
    #[error("cannot open {}: {source}", path.display())]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// Why it could not be opened.
        #[source]
        source: StoreError,
    },
}

impl StoreChoice {
    /// The store a `CHATFN_STORE` value names; unset or blank is DynamoDB.
    pub fn parse(value: Option<&str>) -> Result<Self, StoreChoiceError> {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            None | Some("dynamodb") => Ok(StoreChoice::DynamoDb),
            Some("memory") => Ok(StoreChoice::Memory),
            Some(other) => match other.strip_prefix("sqlite:") {
                Some(path) if !path.is_empty() => Ok(StoreChoice::Sqlite(path.into())),
                _ => Err(StoreChoiceError::Unknown(other.to_owned())),
            },
        }
    }

    /// Whether this is a local development stand-in rather than the production store.
    pub fn is_local(&self) -> bool {
        !matches!(self, StoreChoice::DynamoDb)
    }

    /// Opens the chosen store; `table` is the DynamoDB table. Builds clients and files only: no
    /// DynamoDB request is made.
    pub async fn open(&self, table: Option<&str>) -> Result<OpenedStore, StoreChoiceError> {
        match self {
            StoreChoice::DynamoDb => open_dynamodb(table).await,
            StoreChoice::Memory => Ok(OpenedStore::Memory(Arc::new(MemoryStore::new()))),
            StoreChoice::Sqlite(path) => open_sqlite(path),
        }
    }
}

/// An opened store, by kind: a host that uses more than the [`Store`] port (the local server
/// creates its DynamoDB table and reports its capacity units) matches on it.
pub enum OpenedStore {
    /// The DynamoDB store.
    #[cfg(feature = "dynamodb")]
    DynamoDb(Arc<super::dynamodb::DynamoStore>),
    /// The in-memory store.
    Memory(Arc<MemoryStore>),
    /// The SQLite store.
    #[cfg(feature = "sqlite")]
    Sqlite(Arc<super::sqlite::SqliteStore>),
}

impl OpenedStore {
    /// The store behind the port, for everything that needs no more.
    pub fn into_store(self) -> Arc<dyn Store> {
        match self {
            #[cfg(feature = "dynamodb")]
            OpenedStore::DynamoDb(store) => store,
            OpenedStore::Memory(store) => store,
            #[cfg(feature = "sqlite")]
            OpenedStore::Sqlite(store) => store,
        }
    }
}

#[cfg(feature = "dynamodb")]
async fn open_dynamodb(table: Option<&str>) -> Result<OpenedStore, StoreChoiceError> {
    let table = table.ok_or(StoreChoiceError::NoTableName)?;
    // Credentials and region from the environment, and AWS_ENDPOINT_URL_DYNAMODB for DynamoDB
    // Local.
    let store = super::dynamodb::DynamoStore::from_env(table).await;
    Ok(OpenedStore::DynamoDb(Arc::new(store)))
}

#[cfg(not(feature = "dynamodb"))]
async fn open_dynamodb(_table: Option<&str>) -> Result<OpenedStore, StoreChoiceError> {
    Err(StoreChoiceError::DynamoDbNotBuilt)
}

#[cfg(feature = "sqlite")]
fn open_sqlite(path: &Path) -> Result<OpenedStore, StoreChoiceError> {
    match super::sqlite::SqliteStore::open(path) {
        Ok(store) => Ok(OpenedStore::Sqlite(Arc::new(store))),
        Err(source) => Err(StoreChoiceError::Sqlite {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(not(feature = "sqlite"))]
fn open_sqlite(_path: &Path) -> Result<OpenedStore, StoreChoiceError> {
    Err(StoreChoiceError::SqliteNotBuilt)
}

/// Whether this process runs on AWS rather than under a local emulator (`cargo lambda watch`).
/// Lambda sets `AWS_LAMBDA_INITIALIZATION_TYPE` in every execution environment; the emulators
/// do not.
fn on_aws() -> bool {
    std::env::var_os("AWS_LAMBDA_INITIALIZATION_TYPE").is_some()
}

/// Whether to check the DynamoDB table's layout at start-up (one DescribeTable and one
/// DescribeTimeToLive per process): unless `CHATFN_TABLE_CHECK` is `off`. The SAM template turns
/// it off for the table it creates itself, and on for an existing one.
#[cfg_attr(not(feature = "dynamodb"), allow(dead_code))]
fn table_check_wanted(value: Option<&str>) -> bool {
    !matches!(
        value.map(|v| v.trim().to_ascii_lowercase()).as_deref(),
        Some("off" | "false" | "0" | "no")
    )
}

/// The store the `CHATFN_STORE` value names, refusing the local stand-ins on AWS: there, each
/// function instance would keep chats of its own.
fn choice_for(value: Option<&str>, on_aws: bool) -> Result<StoreChoice, StoreChoiceError> {
    let choice = StoreChoice::parse(value)?;
    if choice.is_local() && on_aws {
        return Err(StoreChoiceError::LocalStoreOnAws(
            value.unwrap_or_default().to_owned(),
        ));
    }
    Ok(choice)
}

/// The store `CHATFN_STORE` selects, with the table of the configuration: DynamoDB in production;
/// the local stand-ins only off AWS.
pub async fn from_config(config: &Config) -> Result<Arc<dyn Store>, StoreChoiceError> {
    let choice = choice_for(std::env::var("CHATFN_STORE").ok().as_deref(), on_aws())?;
    let table = config.table_name.as_deref();
    let store = choice.open(table).await?;
    #[cfg(feature = "dynamodb")]
    if let OpenedStore::DynamoDb(dynamo) = &store
        && table_check_wanted(std::env::var("CHATFN_TABLE_CHECK").ok().as_deref())
    {
        dynamo.check_table().await?;
    }
    match &choice {
        StoreChoice::DynamoDb => tracing::info!(table, "store: DynamoDB"),
        StoreChoice::Memory => tracing::error!(
            "CHATFN_STORE=memory: LOCAL DEVELOPMENT ONLY. Nothing persists (every chat is lost \
             when this process ends), and the functions do not share state: a session created \
             by session-start is unknown to agent-turn, and two instances of one function see \
             different chats. Use CHATFN_STORE=dynamodb (DynamoDB Local works)"
        ),
        StoreChoice::Sqlite(path) => tracing::warn!(
            path = %path.display(),
            "CHATFN_STORE=sqlite: local development only; every local function process must use \
             the same file. Deployed functions use DynamoDB"
        ),
    }
    Ok(store.into_store())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_is_dynamodb_unless_told_otherwise() {
        let parse = |value| StoreChoice::parse(value).ok();
        assert_eq!(parse(None), Some(StoreChoice::DynamoDb));
        assert_eq!(parse(Some(" ")), Some(StoreChoice::DynamoDb));
        assert_eq!(parse(Some("dynamodb")), Some(StoreChoice::DynamoDb));
        assert_eq!(parse(Some("memory")), Some(StoreChoice::Memory));
        assert_eq!(
            parse(Some("sqlite:/tmp/x.db")),
            Some(StoreChoice::Sqlite("/tmp/x.db".into()))
        );
        assert!(matches!(
            StoreChoice::parse(Some("sqlite:")),
            Err(StoreChoiceError::Unknown(value)) if value == "sqlite:"
        ));
        assert!(matches!(
            StoreChoice::parse(Some("redis")),
            Err(StoreChoiceError::Unknown(value)) if value == "redis"
        ));
    }

    #[test]
    fn the_local_stand_ins_are_refused_on_aws() {
        assert!(matches!(
            choice_for(Some("memory"), true),
            Err(StoreChoiceError::LocalStoreOnAws(value)) if value == "memory"
        ));
        assert!(matches!(
            choice_for(Some("sqlite:/tmp/x.db"), true),
            Err(StoreChoiceError::LocalStoreOnAws(value)) if value == "sqlite:/tmp/x.db"
        ));
        assert_eq!(choice_for(None, true).ok(), Some(StoreChoice::DynamoDb));
        assert_eq!(
            choice_for(Some("memory"), false).ok(),
            Some(StoreChoice::Memory)
        );
    }

    #[test]
    fn the_table_is_checked_unless_turned_off() {
        assert!(table_check_wanted(None));
        assert!(table_check_wanted(Some("on")));
        assert!(table_check_wanted(Some("")));
        assert!(!table_check_wanted(Some("off")));
        assert!(!table_check_wanted(Some(" False ")));
    }

    #[tokio::test]
    async fn dynamodb_needs_its_feature_and_a_table() {
        let opened = StoreChoice::DynamoDb.open(None).await;
        #[cfg(feature = "dynamodb")]
        assert!(matches!(opened, Err(StoreChoiceError::NoTableName)));
        #[cfg(not(feature = "dynamodb"))]
        assert!(matches!(opened, Err(StoreChoiceError::DynamoDbNotBuilt)));
    }

    #[tokio::test]
    async fn sqlite_needs_its_feature() {
        let path = std::env::temp_dir().join(format!("chatfn-select-{}.db", uuid::Uuid::new_v4()));
        let opened = StoreChoice::Sqlite(path.clone()).open(None).await;
        #[cfg(feature = "sqlite")]
        assert!(matches!(opened, Ok(OpenedStore::Sqlite(_))));
        #[cfg(not(feature = "sqlite"))]
        assert!(matches!(opened, Err(StoreChoiceError::SqliteNotBuilt)));
        drop(opened);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    #[tokio::test]
    async fn memory_opens_in_every_build() {
        let opened = StoreChoice::Memory.open(None).await;
        assert!(matches!(opened, Ok(OpenedStore::Memory(_))));
    }
}
