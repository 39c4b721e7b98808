//! Tokenisation with the `tokenizers` crate: truncation to a max length, ids with special tokens.
//! (Owned by the assets/data work; interface below is the contract.)

use crate::batch::TokenizedSplit;
use crate::data::Example;

pub struct TextEncoder {
    pub max_len: usize,
    pub pad_id: u32,
}

impl TextEncoder {
    pub fn from_file(_path: &std::path::Path, _max_len: usize) -> crate::Result<Self> {
        todo!()
    }
    pub fn encode(&self, _texts: &[&str]) -> crate::Result<Vec<Vec<u32>>> {
        todo!()
    }
    pub fn encode_split(&self, _examples: &[Example]) -> crate::Result<TokenizedSplit> {
        todo!()
    }
}
