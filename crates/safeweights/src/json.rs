//! A one-pass, typed view of header JSON that keeps what validation needs:
//! every key in document order (so duplicates can be seen; serde_json's own
//! maps keep only the last), and for each value just enough to name what is
//! wrong with it. Numbers and tensor fields are decoded without building a
//! generic value tree.

use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The JSON type of a value, for messages.
pub(crate) type Kind = &'static str;

/// The header object, keys in document order.
pub(crate) enum Top {
    Object(Vec<(String, Entry)>),
    Other(Kind),
}

/// One top-level value: metadata or a tensor entry.
pub(crate) enum Entry {
    Metadata(Meta),
    Tensor(RawTensor),
}

/// The `__metadata__` value.
pub(crate) enum Meta {
    Null,
    Object(Vec<(String, MetaValue)>),
    Other(Kind),
}

/// A metadata value.
pub(crate) enum MetaValue {
    String(String),
    Other(Kind),
}

/// A tensor entry.
pub(crate) enum RawTensor {
    Object(RawFields),
    Other(Kind),
}

/// The fields of a tensor entry; the first repeated field is remembered.
#[derive(Default)]
pub(crate) struct RawFields {
    pub dtype: Option<Field<DtypeName>>,
    pub shape: Option<Field<Vec<usize>>>,
    pub data_offsets: Option<Field<Offsets>>,
    pub duplicate: Option<String>,
}

/// A dtype field: a known dtype, or the unknown name as written.
pub(crate) enum DtypeName {
    Known(crate::Dtype),
    Unknown(String),
}

/// `data_offsets`: exactly two non-negative integers, or not.
pub(crate) enum Offsets {
    Pair(usize, usize),
    Malformed,
}

/// A field's value, or the wrong type it had.
pub(crate) enum Field<T> {
    Ok(T),
    Wrong,
}

/// A number in `shape` or `data_offsets`: only non-negative integers are valid.
#[derive(Clone, Copy)]
enum Num {
    UInt(u64),
    Other,
}

impl Num {
    fn as_usize(self) -> Option<usize> {
        match self {
            Num::UInt(v) => usize::try_from(v).ok(),
            Num::Other => None,
        }
    }
}

/// Implements the scalar and compound visit methods of a visitor whose
/// non-matching inputs all map to one "other kind" value, consuming nested
/// content fully.
macro_rules! other_kinds {
    ($other:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($other("boolean"))
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($other("number"))
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($other("number"))
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($other("number"))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($other("null"))
        }
    };
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    other_kinds!(Top::Other);
    fn visit_str<E>(self, _: &str) -> Result<Top, E> {
        Ok(Top::Other("string"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Top, A::Error> {
        skip_seq(seq)?;
        Ok(Top::Other("array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key::<String>()? {
            let entry = if key == crate::METADATA_KEY {
                Entry::Metadata(map.next_value()?)
            } else {
                Entry::Tensor(map.next_value()?)
            };
            entries.push((key, entry));
        }
        Ok(Top::Object(entries))
    }
}

impl<'de> Deserialize<'de> for Top {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Top, D::Error> {
        d.deserialize_any(TopVisitor)
    }
}

struct MetaVisitor;

impl<'de> Visitor<'de> for MetaVisitor {
    type Value = Meta;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Meta, E> {
        Ok(Meta::Other("boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Meta, E> {
        Ok(Meta::Other("number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Meta, E> {
        Ok(Meta::Other("number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Meta, E> {
        Ok(Meta::Other("number"))
    }
    fn visit_unit<E>(self) -> Result<Meta, E> {
        Ok(Meta::Null)
    }
    fn visit_str<E>(self, _: &str) -> Result<Meta, E> {
        Ok(Meta::Other("string"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Meta, A::Error> {
        skip_seq(seq)?;
        Ok(Meta::Other("array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Meta, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            entries.push((key, map.next_value()?));
        }
        Ok(Meta::Object(entries))
    }
}

impl<'de> Deserialize<'de> for Meta {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Meta, D::Error> {
        d.deserialize_any(MetaVisitor)
    }
}

struct MetaValueVisitor;

impl<'de> Visitor<'de> for MetaValueVisitor {
    type Value = MetaValue;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    other_kinds!(MetaValue::Other);
    fn visit_str<E>(self, v: &str) -> Result<MetaValue, E> {
        Ok(MetaValue::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<MetaValue, E> {
        Ok(MetaValue::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<MetaValue, A::Error> {
        skip_seq(seq)?;
        Ok(MetaValue::Other("array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MetaValue, A::Error> {
        skip_map(map)?;
        Ok(MetaValue::Other("object"))
    }
}

impl<'de> Deserialize<'de> for MetaValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MetaValue, D::Error> {
        d.deserialize_any(MetaValueVisitor)
    }
}

struct TensorVisitor;

impl<'de> Visitor<'de> for TensorVisitor {
    type Value = RawTensor;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a tensor object")
    }
    other_kinds!(RawTensor::Other);
    fn visit_str<E>(self, _: &str) -> Result<RawTensor, E> {
        Ok(RawTensor::Other("string"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawTensor, A::Error> {
        skip_seq(seq)?;
        Ok(RawTensor::Other("array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawTensor, A::Error> {
        let mut fields = RawFields::default();
        while let Some(key) = map.next_key::<FieldName>()? {
            let seen = match key {
                FieldName::Dtype => fields
                    .dtype
                    .replace(map.next_value()?)
                    .is_some(),
                FieldName::Shape => fields
                    .shape
                    .replace(map.next_value()?)
                    .is_some(),
                FieldName::DataOffsets => fields
                    .data_offsets
                    .replace(map.next_value()?)
                    .is_some(),
                FieldName::Other => {
                    // Unknown fields are ignored, as by the reference.
                    map.next_value::<IgnoredAny>()?;
                    false
                }
            };
            if seen && fields.duplicate.is_none() {
                fields.duplicate = Some(key.as_str().to_owned());
            }
        }
        Ok(RawTensor::Object(fields))
    }
}

impl<'de> Deserialize<'de> for RawTensor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawTensor, D::Error> {
        d.deserialize_any(TensorVisitor)
    }
}

enum FieldName {
    Dtype,
    Shape,
    DataOffsets,
    Other,
}

impl FieldName {
    fn as_str(&self) -> &str {
        match self {
            FieldName::Dtype => "dtype",
            FieldName::Shape => "shape",
            FieldName::DataOffsets => "data_offsets",
            FieldName::Other => "",
        }
    }
}

impl<'de> Deserialize<'de> for FieldName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FieldName, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = FieldName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E>(self, v: &str) -> Result<FieldName, E> {
                Ok(match v {
                    "dtype" => FieldName::Dtype,
                    "shape" => FieldName::Shape,
                    "data_offsets" => FieldName::DataOffsets,
                    _ => FieldName::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

struct DtypeField;

impl<'de> Visitor<'de> for DtypeField {
    type Value = Field<DtypeName>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    other_kinds!(|_| Field::Wrong);
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Field::Ok(match crate::Dtype::from_name(v) {
            Some(d) => DtypeName::Known(d),
            None => DtypeName::Unknown(v.to_owned()),
        }))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        skip_seq(seq)?;
        Ok(Field::Wrong)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        skip_map(map)?;
        Ok(Field::Wrong)
    }
}

impl<'de> Deserialize<'de> for Field<DtypeName> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DtypeField)
    }
}

struct ShapeField;

impl<'de> Visitor<'de> for ShapeField {
    type Value = Field<Vec<usize>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of integers")
    }
    other_kinds!(|_| Field::Wrong);
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Field::Wrong)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(4);
        let mut valid = true;
        while let Some(n) = seq.next_element::<Num>()? {
            match n.as_usize() {
                Some(v) if valid => out.push(v),
                _ => valid = false,
            }
        }
        Ok(if valid { Field::Ok(out) } else { Field::Wrong })
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        skip_map(map)?;
        Ok(Field::Wrong)
    }
}

impl<'de> Deserialize<'de> for Field<Vec<usize>> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ShapeField)
    }
}

struct OffsetsField;

impl<'de> Visitor<'de> for OffsetsField {
    type Value = Field<Offsets>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("two integers")
    }
    other_kinds!(|_| Field::Wrong);
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Field::Wrong)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut got = [0usize; 2];
        let mut count = 0usize;
        let mut valid = true;
        while let Some(n) = seq.next_element::<Num>()? {
            match (n.as_usize(), got.get_mut(count)) {
                (Some(v), Some(slot)) => *slot = v,
                _ => valid = false,
            }
            count += 1;
        }
        Ok(Field::Ok(if valid && count == 2 {
            Offsets::Pair(got[0], got[1])
        } else {
            Offsets::Malformed
        }))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        skip_map(map)?;
        Ok(Field::Wrong)
    }
}

impl<'de> Deserialize<'de> for Field<Offsets> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OffsetsField)
    }
}

struct NumVisitor;

impl<'de> Visitor<'de> for NumVisitor {
    type Value = Num;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer")
    }
    fn visit_u64<E>(self, v: u64) -> Result<Num, E> {
        Ok(Num::UInt(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Num, E> {
        Ok(u64::try_from(v).map_or(Num::Other, Num::UInt))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Num, E> {
        Ok(Num::Other)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Num, E> {
        Ok(Num::Other)
    }
    fn visit_unit<E>(self) -> Result<Num, E> {
        Ok(Num::Other)
    }
    fn visit_str<E>(self, _: &str) -> Result<Num, E> {
        Ok(Num::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Num, A::Error> {
        skip_seq(seq)?;
        Ok(Num::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Num, A::Error> {
        skip_map(map)?;
        Ok(Num::Other)
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Num, D::Error> {
        d.deserialize_any(NumVisitor)
    }
}

/// Parses header text; the error keeps serde_json's line and column.
pub(crate) fn parse(text: &str) -> Result<Top, serde_json::Error> {
    serde_json::from_str(text)
}
