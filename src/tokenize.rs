//! Tokenisation with the `tokenizers` crate: truncation to a max length, ids with special tokens, no padding.
//! The tokenizer comes from a `tokenizer.json` (BERT family) or a GGUF's metadata (llama family).

use crate::backbone::config::BertConfig;
use crate::batch::TokenizedSplit;
use crate::data::{DataError, Example};
use std::path::{Path, PathBuf};
use tokenizers::{
    PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

/// A tokenizer set up for pets: ids of at most `max_len` tokens, special tokens (`[CLS]`/`[SEP]`,
/// a BOS) included.
pub struct TextEncoder {
    pub tokenizer: Tokenizer,
    pub max_len: usize,
    /// Id the batcher pads with: a `tokenizer.json`'s `[PAD]`, else 0; a GGUF's padding id, else
    /// its EOS id.
    pub pad_id: u32,
    /// The file it came from (for error messages).
    pub path: PathBuf,
    /// The encoder's position embeddings: a longer sequence is refused by name instead of
    /// failing deep in the forward pass (`usize::MAX` until [`TextEncoder::fit_model`]).
    pub positions: usize,
}

impl TextEncoder {
    /// A `tokenizer.json` (BERT family): pads with its `[PAD]`, else 0.
    pub fn from_file(path: &Path, max_len: usize) -> crate::Result<Self> {
        let tokenizer = Tokenizer::from_file(path).map_err(|e| DataError::Tokenizer {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(0);
        Self::from_tokenizer(tokenizer, path, max_len, pad_id)
    }

    /// The tokenizer in a GGUF checkpoint's metadata (llama family): no BOS unless the file asks
    /// for one; pads with the file's padding id, else its EOS id. The vocabulary must fit the
    /// model, checked with [`TextEncoder::fit_sizes`].
    pub fn from_gguf(path: &Path, max_len: usize) -> crate::Result<Self> {
        let gguf = crate::backbone::llama::tokenizer::from_gguf_file(path)?;
        Self::from_tokenizer(gguf.tokenizer, path, max_len, gguf.pad_id)
    }

    /// Any tokenizer, set up for pets: truncated to `max_len` (special tokens included), its own
    /// padding removed, `pad_id` for the batcher; `path` names it in errors.
    pub fn from_tokenizer(
        mut tokenizer: Tokenizer,
        path: &Path,
        max_len: usize,
        pad_id: u32,
    ) -> crate::Result<Self> {
        let err = |message: String| DataError::Tokenizer {
            path: path.to_path_buf(),
            message,
        };
        let specials = tokenizer
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false));
        // The tokenizer subtracts the special tokens from max_len, which must leave room for text.
        if max_len <= specials {
            return Err(err(format!(
                "max_len {max_len} leaves no room for text next to {specials} special tokens"
            ))
            .into());
        }
        // Files saved by transformers may carry their own fixed padding and truncation (minilm's
        // pads to 128); pets truncates to its own max_len and leaves padding to the batcher.
        tokenizer.with_padding(None);
        let truncation = TruncationParams {
            max_length: max_len,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        };
        tokenizer
            .with_truncation(Some(truncation))
            .map_err(|e| err(e.to_string()))?;
        Ok(TextEncoder {
            tokenizer,
            max_len,
            pad_id,
            path: path.to_path_buf(),
            positions: usize::MAX,
        })
    }

    /// Checks the tokenizer against the model's `config.json`: every token id must have an
    /// embedding row (a tokenizer from another model would index past the table), and sequences
    /// are limited to the position embeddings from now on.
    pub fn fit_model(self, config: &BertConfig) -> crate::Result<Self> {
        self.fit_sizes(
            config.vocab_size,
            config.max_position_embeddings,
            "config.json",
        )
    }

    /// [`TextEncoder::fit_model`] for any family: `vocab_size` embedding rows, at most
    /// `positions` tokens a sequence; `source` names where the model's sizes came from.
    pub fn fit_sizes(
        mut self,
        vocab_size: usize,
        positions: usize,
        source: &str,
    ) -> crate::Result<Self> {
        let largest = self
            .tokenizer
            .get_vocab(true)
            .into_values()
            .max()
            .unwrap_or(0);
        if largest as usize >= vocab_size {
            return Err(DataError::Tokenizer {
                path: self.path.clone(),
                message: format!(
                    "token ids go up to {largest}, but the model's {source} has vocab_size \
                     {vocab_size}: the tokenizer belongs to another model"
                ),
            }
            .into());
        }
        self.positions = positions;
        Ok(self)
    }

    /// Token ids of each text, with special tokens, truncated to `max_len` (encoded in parallel).
    pub fn encode(&self, texts: &[&str]) -> crate::Result<Vec<Vec<u32>>> {
        let encodings = self
            .tokenizer
            .encode_batch_fast(texts.to_vec(), true)
            .map_err(|e| DataError::Tokenizer {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        let ids: Vec<Vec<u32>> = encodings
            .into_iter()
            .map(|e| e.get_ids().to_vec())
            .collect();
        let longest = ids.iter().map(Vec::len).max().unwrap_or(0);
        if longest > self.positions {
            return Err(DataError::Tokenizer {
                path: self.path.clone(),
                message: format!(
                    "a text encodes to {longest} tokens (max_len {}), more than the model's \
                     max_position_embeddings {}: pass --max-len {} or less",
                    self.max_len, self.positions, self.positions
                ),
            }
            .into());
        }
        Ok(ids)
    }

    pub fn encode_split(&self, examples: &[Example]) -> crate::Result<TokenizedSplit> {
        let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
        let ids = self.encode(&texts)?;
        Ok(TokenizedSplit {
            ids,
            labels: examples.iter().map(|e| e.label).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data/tiny_tokenizer.json")
    }

    #[test]
    fn encodes_with_special_tokens_truncates_and_does_not_pad() -> crate::Result<()> {
        // The fixture pads to 16 and truncates at 128; both must be overridden.
        let enc = TextEncoder::from_file(&fixture(), 6)?;
        assert_eq!(enc.pad_id, 3);
        let cases: &[(&str, &[u32])] = &[
            ("The cats sat.", &[1, 4, 5, 6, 7, 8, 2]),
            ("cat", &[1, 5, 2]),
            ("dog", &[1, 0, 2]),
            ("", &[1, 2]),
        ];
        let texts: Vec<&str> = cases.iter().map(|c| c.0).collect();
        let ids = enc.encode(&texts)?;
        // "The cats sat." has 5 word pieces: 4 fit next to [CLS] and [SEP] within max_len 6.
        let expected: Vec<Vec<u32>> = vec![
            vec![1, 4, 5, 6, 7, 2],
            vec![1, 5, 2],
            vec![1, 0, 2],
            vec![1, 2],
        ];
        assert_eq!(ids, expected);
        let wide = TextEncoder::from_file(&fixture(), 64)?;
        for ((text, want), got) in cases.iter().zip(wide.encode(&texts)?) {
            assert_eq!(&got, want, "{text:?}");
        }
        Ok(())
    }

    #[test]
    fn encode_split_keeps_labels_aligned() -> crate::Result<()> {
        let enc = TextEncoder::from_file(&fixture(), 8)?;
        let examples = vec![
            Example {
                text: "the cat".into(),
                label: 1,
            },
            Example {
                text: "sat".into(),
                label: 0,
            },
        ];
        let split = enc.encode_split(&examples)?;
        assert_eq!(split.ids, vec![vec![1, 4, 5, 2], vec![1, 7, 2]]);
        assert_eq!(split.labels, vec![1, 0]);
        assert!(enc.encode(&[])?.is_empty());
        Ok(())
    }

    #[test]
    fn a_gguf_tokenizer_truncates_and_pads_with_its_eos() -> crate::Result<()> {
        let io = || crate::error::io_err("the test GGUF");
        let path = crate::backbone::llama::tokenizer::tests::write_gguf("encoder").map_err(io())?;
        let enc = TextEncoder::from_gguf(&path, 2);
        std::fs::remove_file(&path).map_err(io())?;
        let enc = enc?;
        // Vocabulary ids 15 "hello", 20 " world", 1 "<|im_end|>"; no BOS, the EOS pads.
        assert_eq!(enc.pad_id, 1);
        let ids = enc.encode(&["hello world<|im_end|>", "hello"])?;
        assert_eq!(ids, vec![vec![15, 20], vec![15]]);
        let small = enc
            .fit_sizes(16, 8, "GGUF metadata")
            .err()
            .map(|e| e.to_string());
        assert!(small
            .unwrap_or_default()
            .contains("GGUF metadata has vocab_size 16"));
        Ok(())
    }

    #[test]
    fn errors_name_the_file() {
        let too_short = TextEncoder::from_file(&fixture(), 2)
            .err()
            .map(|e| e.to_string());
        let too_short = too_short.unwrap_or_default();
        assert!(
            too_short.contains("tiny_tokenizer.json") && too_short.contains("max_len 2"),
            "{too_short}"
        );
        let missing = Path::new("no/such/tokenizer.json");
        let err = TextEncoder::from_file(missing, 8)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("tokenizer no/such/tokenizer.json:"),
            "{err}"
        );
    }
}
