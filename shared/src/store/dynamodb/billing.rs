//! Write units as DynamoDB on AWS bills them, worked out from the items the store sends.
//!
//! DynamoDB Local reports a transaction's capacity as if its items were one (two units per KB of
//! all of them together), where AWS bills two units per KB of each item, rounded up item by item:
//! a transaction of three small items is 2 units on DynamoDB Local and 6 on AWS. The store counts
//! both, so a figure measured on DynamoDB Local can be held against what AWS would charge.
//!
//! An item's size follows AWS's rules: the UTF-8 length of every attribute name plus its value
//! (strings by their UTF-8 length, binaries by their length, numbers by about one byte per two
//! digits plus one, a few bytes of overhead for lists and maps). Updates and deletes are billed on
//! the stored item, which the store does not hold: they count as one item of under 1 KB. Every
//! item the store updates or deletes in a turn is one (the head's counters, the lease, the
//! session); deleting stored messages (a truncation) is billed higher on AWS than counted here.

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};

use super::item::Item;

/// Bytes per write unit.
const WRITE_UNIT_BYTES: usize = 1024;

/// An item's size as DynamoDB computes it for billing.
pub(super) fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(text) => text.len(),
        AttributeValue::N(number) => number_size(number),
        AttributeValue::B(blob) => blob.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(texts) => texts.iter().map(String::len).sum(),
        AttributeValue::Ns(numbers) => numbers.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(blobs) => blobs.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(values) => 3 + values.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(fields) => {
            3 + fields
                .iter()
                .map(|(name, v)| 1 + name.len() + value_size(v))
                .sum::<usize>()
        }
        // A kind of value added to the SDK after this was written: at least a byte.
        _ => 1,
    }
}

/// About one byte per two significant digits, plus one.
fn number_size(number: &str) -> usize {
    let digits = number
        .trim_start_matches(['-', '+'])
        .chars()
        .filter(char::is_ascii_digit)
        .count();
    digits.div_ceil(2) + 1
}

/// The write units of a standard (not transactional) write of an item of `size` bytes.
pub(super) fn write_units(size: usize) -> u64 {
    size.div_ceil(WRITE_UNIT_BYTES).max(1) as u64
}

/// The write units of a put of `item`.
pub(super) fn put_units(item: &Item) -> u64 {
    write_units(item_size(item))
}

/// The write units of a TransactWriteItems: two per KB of each item, item by item.
pub(super) fn transaction_units(actions: &[TransactWriteItem]) -> u64 {
    actions
        .iter()
        .map(|action| {
            let item_units = match action.put() {
                Some(put) => put_units(put.item()),
                // Updates, deletes and condition checks, on small items (see the module docs).
                None => 1,
            };
            2 * item_units
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::primitives::Blob;
    use aws_sdk_dynamodb::types::{Put, Update};

    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect::<HashMap<_, _>>()
    }

    #[test]
    fn sizes_add_names_and_values() {
        let small = item(&[
            ("pk", AttributeValue::S("chat#abc".into())),
            ("sk", AttributeValue::S("head".into())),
            ("in_next", AttributeValue::N("12345".into())),
            ("d", AttributeValue::B(Blob::new(vec![0; 100]))),
        ]);
        // Names and values: 2+8, 2+4, 7+(5 digits: 3+1), 1+100.
        assert_eq!(item_size(&small), 10 + 6 + 7 + 4 + 101);
        assert_eq!(number_size("-0"), 2);
        assert_eq!(
            value_size(&AttributeValue::L(vec![AttributeValue::S("ab".into())])),
            3 + 1 + 2
        );
    }

    #[test]
    fn units_round_up_per_kilobyte() {
        assert_eq!(write_units(0), 1);
        assert_eq!(write_units(1024), 1);
        assert_eq!(write_units(1025), 2);
        assert_eq!(write_units(3000), 3);
    }

    #[test]
    fn a_transaction_bills_two_units_per_item() {
        let key = item(&[
            ("pk", AttributeValue::S("chat#abc".into())),
            ("sk", AttributeValue::S("head".into())),
        ]);
        let update = Update::builder()
            .table_name("t")
            .set_key(Some(key))
            .update_expression("SET #n = :n")
            .build()
            .unwrap();
        let big = item(&[
            ("pk", AttributeValue::S("chat#abc".into())),
            ("sk", AttributeValue::S("msg#1".into())),
            ("d", AttributeValue::B(Blob::new(vec![0; 2500]))),
        ]);
        let put = Put::builder()
            .table_name("t")
            .set_item(Some(big))
            .build()
            .unwrap();
        let actions = [
            TransactWriteItem::builder().update(update).build(),
            TransactWriteItem::builder().put(put).build(),
        ];
        // 2 for the small update, 2 × 3 for the 2.5 KB put.
        assert_eq!(transaction_units(&actions), 8);
    }
}
