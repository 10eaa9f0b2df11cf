//! Which name of a group of tied tensors (exact aliases of one storage
//! view) is written, and which are dropped and recorded as aliases.
//!
//! A lone checkpoint follows the reference's `_remove_duplicate_names`: the
//! first name in sort order among those covering the whole storage. A
//! Hugging Face model folder follows transformers' `save_pretrained`
//! instead: the names a model lists in `_tied_weights_keys` (the output
//! embeddings, `lm_head.weight` for GPT-2) are the ones dropped, because
//! loading ties them back to the name that is kept
//! (`transformer.wte.weight`); otherwise the first name in state-dict
//! order. Keeping `lm_head.weight` instead leaves older transformers (4.x)
//! with the input embeddings on the meta device.

/// How the kept name of a tie group is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum TieRule {
    /// The reference's `_remove_duplicate_names`: first in sort order.
    #[default]
    SortOrder,
    /// transformers' `save_pretrained`: not a `_tied_weights_keys` name,
    /// then first in state-dict order.
    Transformers,
}

/// Names (as suffixes after a `.` or the whole name) that transformers
/// models list in `_tied_weights_keys`: the copies that are tied back to
/// the input embeddings when a model is loaded (GPT-2, Llama, Mistral,
/// GPT-J, OPT, BLOOM, BERT, RoBERTa, T5, BART and their kin).
const TIED_WEIGHTS_KEYS: &[&str] = &[
    "lm_head.weight",
    "lm_head.decoder.weight",
    "lm_head.decoder.bias",
    "cls.predictions.decoder.weight",
    "cls.predictions.decoder.bias",
    "generator_lm_head.weight",
    "encoder.embed_tokens.weight",
    "decoder.embed_tokens.weight",
    "embed_out.weight",
    "output_projection.weight",
];

/// Whether transformers would drop `name` from a tie group.
pub(crate) fn is_tied_weights_key(name: &str) -> bool {
    TIED_WEIGHTS_KEYS
        .iter()
        .any(|k| name == *k || name.strip_suffix(k).is_some_and(|rest| rest.ends_with('.')))
}

/// The preference order of a tie group's members: `members` are
/// (state-dict position, name, covers the whole storage); returns the
/// position of the member to keep.
pub(crate) fn keep_of(rule: TieRule, members: &[(usize, &str, bool)]) -> Option<usize> {
    let mut sorted: Vec<&(usize, &str, bool)> = members.iter().collect();
    match rule {
        TieRule::SortOrder => sorted.sort_by(|a, b| (!a.2, a.1).cmp(&(!b.2, b.1))),
        TieRule::Transformers => sorted.sort_by_key(|m| (is_tied_weights_key(m.1), !m.2, m.0)),
    }
    sorted.first().map(|m| m.0)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    #[test]
    fn transformers_keeps_the_input_embeddings() {
        // GPT-2: wte comes first in the state dict, lm_head last
        let gpt2 = [
            (0, "transformer.wte.weight", true),
            (9, "lm_head.weight", true),
        ];
        assert_eq!(keep_of(TieRule::Transformers, &gpt2), Some(0));
        assert_eq!(keep_of(TieRule::SortOrder, &gpt2), Some(9));
        // T5: shared, encoder and decoder embeddings, lm_head
        let t5 = [
            (3, "encoder.embed_tokens.weight", true),
            (0, "shared.weight", true),
            (5, "decoder.embed_tokens.weight", true),
            (8, "lm_head.weight", true),
        ];
        assert_eq!(keep_of(TieRule::Transformers, &t5), Some(0));
        // no known name: first in state-dict order
        let other = [(4, "b.weight", true), (2, "c.weight", true)];
        assert_eq!(keep_of(TieRule::Transformers, &other), Some(2));
        assert!(is_tied_weights_key("model.lm_head.weight"));
        assert!(!is_tied_weights_key("not_lm_head.weight"));
    }
}
