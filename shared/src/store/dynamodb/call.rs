//! What a DynamoDB call can come back with, the retries around it, and the capacity it used.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemError;
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::describe_table::DescribeTableError;
use aws_sdk_dynamodb::operation::describe_time_to_live::DescribeTimeToLiveError;
use aws_sdk_dynamodb::operation::get_item::GetItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::query::QueryError;
use aws_sdk_dynamodb::operation::scan::ScanError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_time_to_live::UpdateTimeToLiveError;
use aws_sdk_dynamodb::types::{CancellationReason, ConsumedCapacity};

use super::item::Item;
use crate::store::{StoreError, StoreResult};

/// Error codes worth another try after the SDK's own retries gave up (or never tried).
const RETRYABLE: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TransactionConflictException",
    "InternalServerError",
];

/// Cancellation reasons of a transaction that did not fail on its own conditions.
const RETRYABLE_REASONS: &[&str] = &[
    "TransactionConflict",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
];

/// How a call failed, in the terms the store acts on.
#[derive(Debug)]
pub(super) enum Failure {
    /// A single-item write's condition did not hold: the item as it was, when asked for.
    Condition(Option<Item>),
    /// A transaction failed on a condition: one reason per action, in order.
    Canceled(Vec<CancellationReason>),
    /// Throttled, or in conflict with another transaction: worth another try.
    Retry(String),
    /// Anything else.
    Fatal(String),
}

impl Failure {
    pub fn into_store_error(self) -> StoreError {
        match self {
            Failure::Condition(_) => {
                StoreError::Backend("DynamoDB: unexpected conditional check failure".into())
            }
            Failure::Canceled(reasons) => StoreError::Backend(format!(
                "DynamoDB: transaction cancelled unexpectedly: {}",
                reason_codes(&reasons)
            )),
            Failure::Retry(message) | Failure::Fatal(message) => StoreError::Backend(message),
        }
    }
}

pub(super) fn reason_codes(reasons: &[CancellationReason]) -> String {
    reasons
        .iter()
        .map(|reason| reason.code().unwrap_or("None"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether the action at `index` of a cancelled transaction failed its condition.
pub(super) fn failed_at(reasons: &[CancellationReason], index: usize) -> bool {
    reasons
        .get(index)
        .and_then(CancellationReason::code)
        .is_some_and(|code| code == "ConditionalCheckFailed")
}

/// The item a cancelled transaction's action at `index` found, when it failed its condition.
pub(super) fn item_at(reasons: &[CancellationReason], index: usize) -> Option<Item> {
    reasons
        .get(index)
        .filter(|_| failed_at(reasons, index))
        .and_then(|reason| reason.item().cloned())
}

/// The per-operation errors that carry a failed condition's item or a cancellation.
pub(super) trait OperationError: ProvideErrorMetadata + std::error::Error + 'static {
    fn condition(&self) -> Option<Option<Item>> {
        None
    }

    fn cancellation(&self) -> Option<Vec<CancellationReason>> {
        None
    }
}

macro_rules! conditional {
    ($($error:ident),*) => {$(
        impl OperationError for $error {
            fn condition(&self) -> Option<Option<Item>> {
                match self {
                    $error::ConditionalCheckFailedException(e) => Some(e.item().cloned()),
                    _ => None,
                }
            }
        }
    )*};
}

conditional!(PutItemError, UpdateItemError, DeleteItemError);

impl OperationError for GetItemError {}
impl OperationError for QueryError {}
impl OperationError for ScanError {}
impl OperationError for BatchWriteItemError {}
impl OperationError for BatchGetItemError {}
impl OperationError for CreateTableError {}
impl OperationError for DescribeTableError {}
impl OperationError for DescribeTimeToLiveError {}
impl OperationError for UpdateTimeToLiveError {}

impl OperationError for TransactWriteItemsError {
    fn cancellation(&self) -> Option<Vec<CancellationReason>> {
        match self {
            TransactWriteItemsError::TransactionCanceledException(e) => {
                Some(e.cancellation_reasons().to_vec())
            }
            _ => None,
        }
    }
}

/// Sorts an SDK error into what the store does next. The message names the operation and the
/// error chain (codes and messages from DynamoDB), never the request's credentials.
pub(super) fn classify<E, R>(operation: &str, error: SdkError<E, R>) -> Failure
where
    E: OperationError,
    R: std::fmt::Debug,
{
    if let Some(service) = error.as_service_error() {
        if let Some(item) = service.condition() {
            return Failure::Condition(item);
        }
        if let Some(reasons) = service.cancellation() {
            let retry = reasons
                .iter()
                .filter_map(CancellationReason::code)
                .any(|code| RETRYABLE_REASONS.contains(&code));
            if retry {
                return Failure::Retry(format!(
                    "DynamoDB {operation}: transaction cancelled: {}",
                    reason_codes(&reasons)
                ));
            }
            return Failure::Canceled(reasons);
        }
    }
    let message = format!("DynamoDB {operation}: {}", DisplayErrorContext(&error));
    match error.code() {
        Some(code) if RETRYABLE.contains(&code) => Failure::Retry(message),
        _ => Failure::Fatal(message),
    }
}

/// Retries with exponential backoff and full jitter.
#[derive(Debug)]
pub(super) struct Backoff {
    attempt: u32,
    max_attempts: u32,
}

impl Backoff {
    /// Enough for a few dozen writers racing on one chat's counter.
    pub fn new() -> Self {
        Backoff {
            attempt: 0,
            max_attempts: 40,
        }
    }

    /// Waits before the next attempt, or gives up with `why`.
    pub async fn wait(&mut self, why: impl FnOnce() -> String) -> StoreResult<()> {
        self.attempt += 1;
        if self.attempt >= self.max_attempts {
            return Err(StoreError::Backend(format!(
                "gave up after {} attempts: {}",
                self.attempt,
                why()
            )));
        }
        let cap_ms = (5u64 << self.attempt.min(7)).min(500);
        let jitter = getrandom::u64().unwrap_or(0) % (cap_ms + 1);
        tokio::time::sleep(Duration::from_millis(jitter)).await;
        Ok(())
    }
}

/// Capacity units the store's calls consumed, as DynamoDB reported them
/// (`ReturnConsumedCapacity::Total` on every call), and the write units AWS bills for the same
/// writes (see `billing.rs`: DynamoDB Local reports transactions low). Failed conditional writes
/// also cost capacity, but DynamoDB does not report it on an error, so they are not counted.
#[derive(Debug, Default)]
pub struct CapacityMeter {
    /// In thousandths of a unit.
    read_milli: AtomicU64,
    write_milli: AtomicU64,
    billed_write: AtomicU64,
    calls: AtomicU64,
}

/// A reading of a [`CapacityMeter`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Capacity {
    /// Read units, as DynamoDB reported them.
    pub read_units: f64,
    /// As DynamoDB reported them.
    pub write_units: f64,
    /// As AWS bills the writes, worked out from the items written.
    pub billed_write_units: f64,
    /// Calls that reported capacity.
    pub calls: u64,
}

impl std::ops::Sub for Capacity {
    type Output = Capacity;

    fn sub(self, earlier: Capacity) -> Capacity {
        Capacity {
            read_units: self.read_units - earlier.read_units,
            write_units: self.write_units - earlier.write_units,
            billed_write_units: self.billed_write_units - earlier.billed_write_units,
            calls: self.calls.saturating_sub(earlier.calls),
        }
    }
}

/// Whether a call reads or writes, for responses that give only a total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Read,
    Write,
}

impl CapacityMeter {
    /// The units counted so far.
    pub fn snapshot(&self) -> Capacity {
        Capacity {
            read_units: self.read_milli.load(Ordering::Relaxed) as f64 / 1000.0,
            write_units: self.write_milli.load(Ordering::Relaxed) as f64 / 1000.0,
            billed_write_units: self.billed_write.load(Ordering::Relaxed) as f64,
            calls: self.calls.load(Ordering::Relaxed),
        }
    }

    /// Adds the write units AWS bills for a write that succeeded.
    pub(super) fn bill(&self, write_units: u64) {
        self.billed_write.fetch_add(write_units, Ordering::Relaxed);
    }

    pub(super) fn record<'a>(
        &self,
        kind: Kind,
        consumed: impl IntoIterator<Item = &'a ConsumedCapacity>,
    ) {
        let milli = |units: f64| (units * 1000.0).round().max(0.0) as u64;
        let (mut read, mut write) = (0, 0);
        for capacity in consumed {
            match (
                capacity.read_capacity_units(),
                capacity.write_capacity_units(),
            ) {
                (None, None) => {
                    let total = milli(capacity.capacity_units().unwrap_or(0.0));
                    match kind {
                        Kind::Read => read += total,
                        Kind::Write => write += total,
                    }
                }
                (r, w) => {
                    read += milli(r.unwrap_or(0.0));
                    write += milli(w.unwrap_or(0.0));
                }
            }
        }
        self.read_milli.fetch_add(read, Ordering::Relaxed);
        self.write_milli.fetch_add(write, Ordering::Relaxed);
        if write > 0 {
            crate::store::write_units::WriteUnits::add(write as f64 / 1000.0);
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}
