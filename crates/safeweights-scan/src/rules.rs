//! The catalogue of rules: each [`RuleId`] with its stable id string, default
//! severity and title, in one table. Ids are stable: renaming one is a
//! breaking change of the JSON/SARIF output.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::severity::Severity;

/// A rule: its stable id, the severity its findings usually carry, and a title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Stable id.
    pub id: RuleId,
    /// Default severity of its findings.
    pub severity: Severity,
    /// One-line description.
    pub title: &'static str,
}

/// The one table of rules: the [`RuleId`] variant, its id string, its default
/// severity and its title. Generates [`RuleId`], [`RuleId::as_str`] and [`RULES`].
macro_rules! rules {
    ($($variant:ident = $id:literal, $severity:ident, $title:literal;)*) => {
        /// A rule id. Serialises (JSON, SARIF) as its stable string, [`RuleId::as_str`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum RuleId {
            $(
                #[doc = concat!("`", $id, "`: ", $title)]
                $variant,
            )*
        }

        impl RuleId {
            /// The stable id, e.g. `pickle.global.critical`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(RuleId::$variant => $id,)*
                }
            }
        }

        /// Every rule the scanner can report.
        pub const RULES: &[Rule] = &[
            $(Rule { id: RuleId::$variant, severity: Severity::$severity, title: $title },)*
        ];
    };
}

rules! {
    PickleGlobalCritical = "pickle.global.critical", Critical,
        "pickle imports a code-execution, file, network or process primitive";
    PickleGlobalUnknown = "pickle.global.unknown", High,
        "pickle imports a global outside the checkpoint allowlist";
    PickleGlobalUnresolved = "pickle.global.unresolved", High,
        "pickle imports a global whose name is computed and cannot be resolved";
    PickleCallUnresolved = "pickle.call.unresolved", High,
        "pickle calls something that is not a named global";
    PickleBuildGlobal = "pickle.build.global", High,
        "pickle BUILD sets attributes on a module or class (monkey-patching)";
    PickleExt = "pickle.ext", High,
        "pickle uses the copyreg extension registry (EXT1/2/4): the global cannot be judged";
    PickleMalformed = "pickle.malformed", Medium, "pickle stream cannot be fully parsed";
    PickleGlobalHarmless = "pickle.global.harmless", Low,
        "pickle imports an unknown but harmless constructor (a path, date, namespace or settings class)";
    PickleFrame = "pickle.frame", High,
        "pickle opcodes cross protocol 4 frame boundaries (readers disagree on the opcodes)";
    TorchStorageSize = "torch.storage-size", High,
        "PyTorch storage declaration disagrees with its data record";
    TorchViewBounds = "torch.view-bounds", High, "PyTorch tensor view reaches past its storage";
    TorchTensorMutation = "torch.tensor-mutation", High,
        "pickle applies SETITEM/APPEND/BUILD to a storage or tensor (weights_only heap corruption)";
    CompressedMalformed = "compressed.malformed", Medium,
        "compressed stream (zlib, bzip2, xz, lzma, joblib ZF) cannot be decompressed";
    PickleFormat = "pickle.format", Info,
        "pickle-based weights with only allowlisted globals: convert to safetensors";
    TorchscriptCode = "torchscript.code", High, "TorchScript archive contains a program";
    NpyObjectArray = "npy.object-array", Low,
        "NumPy object array: the data is a pickle (loading needs allow_pickle=True)";
    KerasLambda = "keras.lambda", High, "Keras model has a Lambda layer (serialized Python code)";
    KerasTfOpLambda = "keras.tfoplambda", High,
        "Keras TFOpLambda layer bound to a TensorFlow op that touches files, processes or Python";
    KerasTfsmLayer = "keras.tfsm-layer", High,
        "Keras TFSMLayer: loading the model loads (and runs) another SavedModel";
    KerasCustomObject = "keras.custom-object", Medium,
        "Keras config names an object outside Keras (custom module, or a Python primitive)";
    SavedModelOp = "savedmodel.op", High,
        "TensorFlow graph uses an op that touches files, processes or Python";
    TemplatePythonInternals = "template.python-internals", High,
        "Jinja (chat) template reaches Python internals: a sandbox escape";
    GgufMalformed = "gguf.malformed", Medium, "GGUF metadata cannot be fully read";
    FormatMismatch = "format.mismatch", Medium,
        "file name claims a model format (.safetensors, .gguf, .onnx, .keras) its content is not";
    FormatAmbiguous = "format.ambiguous", Low,
        "safetensors file whose length prefix also reads as a pickle";
    PolyglotZip = "polyglot.zip", High,
        "a zip archive hides inside another file or a tensor (zip readers find it)";
    SafetensorsTrailingBytes = "safetensors.trailing-bytes", High,
        "bytes after the declared safetensors buffer (polyglot file)";
    SafetensorsDuplicateKey = "safetensors.duplicate-key", High,
        "safetensors header has a duplicate key";
    SafetensorsInvalid = "safetensors.invalid", Medium, "safetensors header fails validation";
    SafetensorsPathName = "safetensors.path-like-name", Low,
        "tensor name looks like a path (absolute, drive letter or '..')";
    OnnxExternalDataEscape = "onnx.external-data-escape", High,
        "ONNX external data location leaves the model folder";
    ZipCrcMismatch = "zip.crc-mismatch", Medium, "zip member CRC does not match its content";
    ZipEncrypted = "zip.encrypted", Medium, "zip member is encrypted";
    ZipFlags = "zip.flags", Medium, "zip member has unexpected general-purpose flag bits";
    ZipHeaderMismatch = "zip.header-mismatch", Medium,
        "zip local header disagrees with the central directory";
    ZipDescriptorMismatch = "zip.descriptor-mismatch", Medium,
        "zip data descriptor disagrees with the central directory";
    ZipDuplicateName = "zip.duplicate-name", Medium, "zip has two members with the same name";
    ZipOverlap = "zip.overlap", Medium, "zip members overlap";
    ZipPrefixData = "zip.prefix-data", Medium,
        "bytes before the first zip member or between members";
    ZipPathTraversal = "zip.path-traversal", Medium,
        "archive member name is absolute or climbs out with '..'";
    ZipUnsupportedMethod = "zip.unsupported-method", Medium,
        "zip member compression method cannot be inspected";
    ZipMalformed = "zip.malformed", Medium, "zip structure is broken";
    TarMalformed = "tar.malformed", Medium, "tar structure is broken";
    TarPathTraversal = "tar.path-traversal", Medium,
        "tar member or link target is absolute or climbs out with '..'";
    GzipMalformed = "gzip.malformed", Medium, "gzip stream is broken";
    ArchiveCannotInspect = "archive.cannot-inspect", Medium,
        "archive or compression format the scanner cannot open (7z, zstd)";
    LimitDepth = "limit.depth", Medium, "nesting depth limit reached: deeper members not scanned";
    LimitMembers = "limit.members", Medium,
        "member count limit reached: remaining members not scanned";
    LimitExpandedSize = "limit.expanded-size", Medium,
        "expanded-size limit reached (possible archive bomb)";
    PolicyNotSafetensors = "policy.not-safetensors", High,
        "weights file is not safetensors (safetensors-only policy)";
    ScanPartial = "scan.partial", Info, "only part of a large file was searched";
    PathSymlink = "path.symlink", Info,
        "symlinked folder outside the scanned folder (followed) or a symlink loop (not entered twice)";
}

impl RuleId {
    /// The rule's entry in [`RULES`] (its default severity and title).
    pub fn rule(self) -> &'static Rule {
        // RuleId and RULES come from one table, in the same order
        &RULES[self as usize]
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a string that is no rule id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rule id {0:?}")]
pub struct UnknownRuleId(pub String);

impl FromStr for RuleId {
    type Err = UnknownRuleId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        rule(s)
            .map(|r| r.id)
            .ok_or_else(|| UnknownRuleId(s.to_string()))
    }
}

impl PartialEq<str> for RuleId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for RuleId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for RuleId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RuleId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Looks a rule up by id.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id.as_str() == id)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_in_table_order() {
        for (i, r) in RULES.iter().enumerate() {
            assert_eq!(r.id as usize, i);
            assert_eq!(r.id.rule(), r);
            assert_eq!(r.id.as_str().parse::<RuleId>(), Ok(r.id));
            let json = serde_json::to_string(&r.id).unwrap();
            assert_eq!(json, format!("\"{}\"", r.id.as_str()));
            assert_eq!(serde_json::from_str::<RuleId>(&json).unwrap(), r.id);
        }
        assert!("pickle.nope".parse::<RuleId>().is_err());
        assert_eq!(RuleId::PickleGlobalCritical, "pickle.global.critical");
        assert_eq!(
            RuleId::ZipUnsupportedMethod.to_string(),
            "zip.unsupported-method"
        );
    }
}
