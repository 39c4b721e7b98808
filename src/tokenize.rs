//! Tokenisation with the `tokenizers` crate: truncation to a max length, ids with special tokens, no padding.

use crate::batch::TokenizedSplit;
use crate::data::{DataError, Example};
use std::path::{Path, PathBuf};
use tokenizers::{
    PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

/// A `tokenizer.json` set up for pets: ids of at most `max_len` tokens, `[CLS]`/`[SEP]` included.
pub struct TextEncoder {
    pub tokenizer: Tokenizer,
    pub max_len: usize,
    /// Id the batcher pads with: the tokenizer's `[PAD]`, else 0.
    pub pad_id: u32,
    /// The file it came from (for error messages).
    pub path: PathBuf,
}

impl TextEncoder {
    pub fn from_file(path: &Path, max_len: usize) -> crate::Result<Self> {
        let err = |message: String| DataError::Tokenizer {
            path: path.to_path_buf(),
            message,
        };
        let mut tokenizer = Tokenizer::from_file(path).map_err(|e| err(e.to_string()))?;
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
        let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(0);
        Ok(TextEncoder {
            tokenizer,
            max_len,
            pad_id,
            path: path.to_path_buf(),
        })
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
        Ok(encodings
            .into_iter()
            .map(|e| e.get_ids().to_vec())
            .collect())
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
