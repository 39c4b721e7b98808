//! The tokenizer a GGUF checkpoint carries in its metadata, rebuilt as a `tokenizers::Tokenizer`.
//!
//! A GGUF has no `tokenizer.json`: llama.cpp stores the vocabulary (`tokenizer.ggml.tokens`), the
//! merges, each token's type and the special ids as metadata. Only byte-level BPE
//! (`tokenizer.ggml.model` = `gpt2`, the SmolLM, Llama 3 and Qwen 2 families) is built here. The
//! vocabulary and merges go into a BPE model as they are; `tokenizer.ggml.pre` names the
//! pre-tokenizer (how text is cut before the merges apply), and an unknown name is refused
//! rather than guessed, since a wrong split gives plausible but wrong ids. Tokens of type 3
//! (control, e.g. `<|im_end|>`) are added as special tokens so they stay whole in text.
//! BOS/EOS are added only where `tokenizer.ggml.add_bos_token`/`add_eos_token` say so.

use crate::data::DataError;
use candle_core::quantized::gguf_file::{Content, Value};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

/// llama.cpp's token type for control tokens (`<|endoftext|>`, `<|im_start|>` ...).
const CONTROL: i64 = 3;
/// llama.cpp's token type for user-defined added tokens (matched whole, not special).
const USER_DEFINED: i64 = 4;

/// Llama 3's split (llama.cpp's `llama-bpe`): letters with one leading non-letter, numbers in
/// groups of at most three, case-insensitive contractions.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 2's split: as Llama 3's, but every digit alone.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The `tokenizer.ggml.pre` values understood, for error messages.
pub const KNOWN_PRE_TOKENIZERS: &[&str] = &[
    "default",
    "gpt2",
    "smollm",
    "llama-bpe",
    "llama3",
    "llama-v3",
    "qwen2",
];

/// A GGUF's tokenizer and the ids pets needs beside it.
pub struct GgufTokenizer {
    pub tokenizer: Tokenizer,
    /// Id the batcher pads with: `tokenizer.ggml.padding_token_id`, else the EOS id (the padded
    /// positions are masked, so any real token serves; SmolLM2's file names `<|im_end|>`).
    pub pad_id: u32,
    /// `tokenizer.ggml.eos_token_id`, where the file has one.
    pub eos_id: Option<u32>,
    /// How many tokens the vocabulary has (the embedding table must have as many rows).
    pub vocab_size: usize,
}

/// Reads the metadata of the GGUF at `path` (the header only; tensor data is not read) and
/// builds its tokenizer.
pub fn from_gguf_file(path: &Path) -> Result<GgufTokenizer, DataError> {
    let err = |message: String| DataError::Tokenizer {
        path: path.to_path_buf(),
        message,
    };
    let mut file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let content = Content::read(&mut file).map_err(|e| err(format!("not a GGUF file: {e}")))?;
    from_metadata(&content.metadata, path)
}

/// Builds the tokenizer from GGUF metadata; `path` only names the source in errors.
pub fn from_metadata(
    metadata: &HashMap<String, Value>,
    path: &Path,
) -> Result<GgufTokenizer, DataError> {
    let meta = Metadata { metadata, path };
    let model = meta.string("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(meta.error(format!(
            "tokenizer.ggml.model is {model:?}; only byte-level BPE (\"gpt2\") is supported"
        )));
    }
    let tokens = meta.strings("tokenizer.ggml.tokens")?;
    let merges = meta.strings("tokenizer.ggml.merges")?;
    let types = match metadata.get("tokenizer.ggml.token_type") {
        Some(_) => meta.integers("tokenizer.ggml.token_type")?,
        None => vec![],
    };
    if !types.is_empty() && types.len() != tokens.len() {
        return Err(meta.error(format!(
            "tokenizer.ggml.token_type has {} entries for {} tokens",
            types.len(),
            tokens.len()
        )));
    }

    let spelling = bytes_to_unicode();
    let alphabet: HashSet<char> = spelling.iter().copied().collect();
    let in_alphabet = |t: &str| t.chars().all(|c| alphabet.contains(&c));
    // Every byte-level token is spelled in the byte alphabet; one that is not (a mislabelled
    // added token) is respelled from its UTF-8 bytes, as transformers' GGUF reader does.
    let mut vocab = Vocab::default();
    for (id, token) in tokens.iter().enumerate() {
        let spelled = if in_alphabet(token) {
            token.clone()
        } else {
            token.bytes().map(|b| spelling[b as usize]).collect()
        };
        vocab.entry(spelled).or_insert(id as u32);
    }
    let mut pairs = Vec::with_capacity(merges.len());
    for (i, merge) in merges.iter().enumerate() {
        match merge.split_once(' ') {
            Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains(' ') => {
                pairs.push((a.to_string(), b.to_string()))
            }
            _ => {
                return Err(meta.error(format!(
                    "tokenizer.ggml.merges[{i}] is {merge:?}, not two tokens and a space"
                )))
            }
        }
    }
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, pairs)
        .build()
        .map_err(|e| meta.error(format!("tokenizer.ggml.merges: {e}")))?;

    let add_prefix_space = meta
        .flag("tokenizer.ggml.add_space_prefix")?
        .unwrap_or(false);
    let pre = match metadata.get("tokenizer.ggml.pre") {
        Some(_) => meta.string("tokenizer.ggml.pre")?,
        None => "default".to_string(),
    };
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer(&pre, add_prefix_space, &meta)?));
    tokenizer.with_decoder(Some(ByteLevel::default()));

    let marked = |wanted: i64| {
        tokens
            .iter()
            .zip(&types)
            .filter(move |(t, &k)| k == wanted && in_alphabet(t))
            .map(|(t, _)| t.as_str())
    };
    let control: Vec<AddedToken> = marked(CONTROL).map(|t| AddedToken::from(t, true)).collect();
    // The count returned is of tokens new to the vocabulary: none here, they are all in it.
    let _ = tokenizer.add_special_tokens(control);
    let user: Vec<AddedToken> = marked(USER_DEFINED)
        .map(|t| AddedToken::from(t, false))
        .collect();
    let _ = tokenizer.add_tokens(user);

    let bos = meta.id("tokenizer.ggml.bos_token_id", &tokens)?;
    let eos = meta.id("tokenizer.ggml.eos_token_id", &tokens)?;
    let pad = meta.id("tokenizer.ggml.padding_token_id", &tokens)?;
    let add_bos = meta.flag("tokenizer.ggml.add_bos_token")?.unwrap_or(false);
    let add_eos = meta.flag("tokenizer.ggml.add_eos_token")?.unwrap_or(false);
    let wrap = |wanted: bool, key: &str, id: Option<u32>| match (wanted, id) {
        (false, _) => Ok(None),
        (true, Some(id)) => Ok(Some((tokens[id as usize].clone(), id))),
        (true, None) => Err(meta.error(format!("{key} is true but its token id is missing"))),
    };
    let bos = wrap(add_bos, "tokenizer.ggml.add_bos_token", bos)?;
    let eos_added = wrap(add_eos, "tokenizer.ggml.add_eos_token", eos)?;
    if bos.is_some() || eos_added.is_some() {
        tokenizer.with_post_processor(Some(template(bos, eos_added, &meta)?));
    }
    let pad_id = pad.or(eos).ok_or_else(|| {
        meta.error(
            "neither tokenizer.ggml.padding_token_id nor tokenizer.ggml.eos_token_id is set: \
             no id to pad with"
                .into(),
        )
    })?;
    Ok(GgufTokenizer {
        tokenizer,
        pad_id,
        eos_id: eos,
        vocab_size: tokens.len(),
    })
}

/// The pre-tokenizer `tokenizer.ggml.pre` names. `smollm` is the original SmolLM2
/// `tokenizer.json`'s (and llama.cpp's): digits cut one by one, then GPT-2's split.
fn pre_tokenizer(
    name: &str,
    add_prefix_space: bool,
    meta: &Metadata,
) -> Result<PreTokenizerWrapper, DataError> {
    let byte_level = |use_regex: bool| ByteLevel::new(add_prefix_space, true, use_regex);
    let split = |regex: &str| -> Result<PreTokenizerWrapper, DataError> {
        let split = Split::new(
            SplitPattern::Regex(regex.into()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| meta.error(format!("tokenizer.ggml.pre {name:?}: {e}")))?;
        Ok(Sequence::new(vec![split.into(), byte_level(false).into()]).into())
    };
    match name {
        "default" | "gpt2" => Ok(byte_level(true).into()),
        "smollm" => {
            Ok(Sequence::new(vec![Digits::new(true).into(), byte_level(true).into()]).into())
        }
        "llama-bpe" | "llama3" | "llama-v3" => split(LLAMA3_SPLIT),
        "qwen2" => split(QWEN2_SPLIT),
        other => Err(meta.error(format!(
            "tokenizer.ggml.pre is {other:?}, a pre-tokenizer pets does not know (known: {})",
            KNOWN_PRE_TOKENIZERS.join(", ")
        ))),
    }
}

/// BOS before and/or EOS after each text.
fn template(
    bos: Option<(String, u32)>,
    eos: Option<(String, u32)>,
    meta: &Metadata,
) -> Result<TemplateProcessing, DataError> {
    let mut single = vec![];
    let mut specials = vec![];
    if let Some((token, id)) = bos {
        single.push(token.clone());
        specials.push((token, id));
    }
    single.push("$A".to_string());
    if let Some((token, id)) = eos {
        single.push(token.clone());
        specials.push((token, id));
    }
    TemplateProcessing::builder()
        .try_single(single)
        .and_then(|b| {
            b.special_tokens(specials)
                .build()
                .map_err(|e| e.to_string())
        })
        .map_err(|e| meta.error(format!("BOS/EOS template: {e}")))
}

/// GPT-2's byte alphabet: printable bytes stand for themselves, the others for code points from
/// 256 on, so that every byte has a visible character (`Ġ` is the space).
fn bytes_to_unicode() -> Vec<char> {
    let mut chars = vec!['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        chars[b as usize] = if printable {
            char::from(b)
        } else {
            next += 1;
            char::from_u32(next - 1).unwrap_or('\u{FFFD}')
        };
    }
    chars
}

/// Typed reads of metadata keys; errors name the file and the key.
struct Metadata<'a> {
    metadata: &'a HashMap<String, Value>,
    path: &'a Path,
}

impl Metadata<'_> {
    fn error(&self, message: String) -> DataError {
        DataError::Tokenizer {
            path: self.path.to_path_buf(),
            message,
        }
    }

    fn get(&self, key: &str) -> Result<&Value, DataError> {
        self.metadata
            .get(key)
            .ok_or_else(|| self.error(format!("the GGUF metadata has no {key}")))
    }

    fn bad(&self, key: &str, want: &str, value: &Value) -> DataError {
        self.error(format!("{key} is a {:?}, not {want}", value.value_type()))
    }

    fn string(&self, key: &str) -> Result<String, DataError> {
        match self.get(key)? {
            Value::String(s) => Ok(s.clone()),
            v => Err(self.bad(key, "a string", v)),
        }
    }

    fn strings(&self, key: &str) -> Result<Vec<String>, DataError> {
        let Value::Array(items) = self.get(key)? else {
            return Err(self.bad(key, "an array of strings", self.get(key)?));
        };
        items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                v => Err(self.bad(key, "an array of strings", v)),
            })
            .collect()
    }

    fn integers(&self, key: &str) -> Result<Vec<i64>, DataError> {
        let Value::Array(items) = self.get(key)? else {
            return Err(self.bad(key, "an array of integers", self.get(key)?));
        };
        items
            .iter()
            .map(|v| integer(v).ok_or_else(|| self.bad(key, "an array of integers", v)))
            .collect()
    }

    fn flag(&self, key: &str) -> Result<Option<bool>, DataError> {
        match self.metadata.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.bad(key, "a bool", v)),
        }
    }

    /// An optional token id, which must index the vocabulary.
    fn id(&self, key: &str, tokens: &[String]) -> Result<Option<u32>, DataError> {
        let Some(value) = self.metadata.get(key) else {
            return Ok(None);
        };
        match integer(value) {
            Some(id) if (0..tokens.len() as i64).contains(&id) => Ok(Some(id as u32)),
            Some(id) => Err(self.error(format!(
                "{key} is {id}, outside the vocabulary of {} tokens",
                tokens.len()
            ))),
            None => Err(self.bad(key, "an integer", value)),
        }
    }
}

/// Any integer-typed metadata value.
fn integer(value: &Value) -> Option<i64> {
    Some(match value {
        Value::U8(v) => *v as i64,
        Value::I8(v) => *v as i64,
        Value::U16(v) => *v as i64,
        Value::I16(v) => *v as i64,
        Value::U32(v) => *v as i64,
        Value::I32(v) => *v as i64,
        Value::U64(v) => i64::try_from(*v).ok()?,
        Value::I64(v) => *v,
        _ => return None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A byte-level vocabulary small enough to follow by hand: "hello", " world", "  ", digits.
    pub(crate) fn metadata(pre: &str) -> HashMap<String, Value> {
        let strings = |items: &[&str]| {
            Value::Array(items.iter().map(|s| Value::String(s.to_string())).collect())
        };
        let tokens = [
            "<|endoftext|>",
            "<|im_end|>",
            "h",
            "e",
            "l",
            "o",
            "Ġ",
            "w",
            "r",
            "d",
            "1",
            "2",
            "he",
            "ll",
            "hell",
            "hello",
            "Ġw",
            "or",
            "Ġwor",
            "ld",
            "Ġworld",
            "ĠĠ",
        ];
        let merges = [
            "h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld", "Ġ Ġ",
        ];
        let mut types = vec![Value::I32(1); tokens.len()];
        types[0] = Value::I32(3);
        types[1] = Value::I32(3);
        let mut m: HashMap<String, Value> = [
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            ("tokenizer.ggml.pre", Value::String(pre.into())),
            ("tokenizer.ggml.tokens", strings(&tokens)),
            ("tokenizer.ggml.merges", strings(&merges)),
            ("tokenizer.ggml.token_type", Value::Array(types)),
            ("tokenizer.ggml.eos_token_id", Value::U32(1)),
            ("tokenizer.ggml.add_bos_token", Value::Bool(false)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        m.insert("tokenizer.ggml.bos_token_id".into(), Value::U32(0));
        m
    }

    fn ids(tok: &GgufTokenizer, text: &str) -> Vec<u32> {
        let encoding = tok
            .tokenizer
            .encode(text, true)
            .map(|e| e.get_ids().to_vec());
        encoding.unwrap_or_default()
    }

    fn message(metadata: &HashMap<String, Value>) -> String {
        let built = from_metadata(metadata, Path::new("m.gguf"));
        built.err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn merges_keep_specials_whole_and_add_no_bos() -> Result<(), DataError> {
        let tok = from_metadata(&metadata("smollm"), Path::new("m.gguf"))?;
        assert_eq!(ids(&tok, "hello world"), [15, 20]);
        assert_eq!(ids(&tok, "hello<|im_end|>"), [15, 1]);
        assert_eq!(ids(&tok, "held"), [12, 19]);
        // No padding id in the file: the EOS id pads.
        assert_eq!((tok.pad_id, tok.eos_id, tok.vocab_size), (1, Some(1), 22));
        let text = tok.tokenizer.decode(&[15, 20, 21, 10], false);
        assert_eq!(text.ok().as_deref(), Some("hello world  1"));
        Ok(())
    }

    #[test]
    fn the_pre_tokenizer_follows_its_metadata_name() -> Result<(), DataError> {
        // smollm cuts digits first, so the two spaces before them are one piece ("ĠĠ"); GPT-2's
        // regex gives the second space to the number (" 12"), and no merge joins "Ġ" and "1".
        let smollm = from_metadata(&metadata("smollm"), Path::new("m.gguf"))?;
        assert_eq!(ids(&smollm, "hello  12"), [15, 21, 10, 11]);
        let gpt2 = from_metadata(&metadata("gpt2"), Path::new("m.gguf"))?;
        assert_eq!(ids(&gpt2, "hello  12"), [15, 6, 6, 10, 11]);
        let llama3 = from_metadata(&metadata("llama-bpe"), Path::new("m.gguf"))?;
        assert_eq!(ids(&llama3, "hello world"), [15, 20]);
        let err = message(&metadata("mystery"));
        assert!(err.contains("tokenizer.ggml.pre is \"mystery\""), "{err}");
        Ok(())
    }

    #[test]
    fn bos_and_padding_follow_the_file() -> Result<(), DataError> {
        let mut m = metadata("smollm");
        m.insert("tokenizer.ggml.add_bos_token".into(), Value::Bool(true));
        m.insert("tokenizer.ggml.padding_token_id".into(), Value::U32(0));
        let tok = from_metadata(&m, Path::new("m.gguf"))?;
        assert_eq!(ids(&tok, "hello"), [0, 15]);
        assert_eq!(tok.pad_id, 0);
        Ok(())
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let mut m = metadata("smollm");
        m.remove("tokenizer.ggml.merges");
        let err = message(&m);
        assert_eq!(
            err,
            "tokenizer m.gguf: the GGUF metadata has no tokenizer.ggml.merges"
        );
        let mut m = metadata("smollm");
        m.insert("tokenizer.ggml.model".into(), Value::String("llama".into()));
        assert!(message(&m).contains("tokenizer.ggml.model is \"llama\""));
        let mut m = metadata("smollm");
        m.insert("tokenizer.ggml.eos_token_id".into(), Value::U32(99));
        assert!(message(&m).contains("tokenizer.ggml.eos_token_id is 99, outside"));
        m.insert(
            "tokenizer.ggml.eos_token_id".into(),
            Value::String("x".into()),
        );
        assert!(message(&m).contains("eos_token_id is a String, not an integer"));
        m.remove("tokenizer.ggml.eos_token_id");
        assert!(message(&m).contains("no id to pad with"));
    }

    /// [`metadata`] as a GGUF file without tensors, in the temp folder (the caller removes it).
    pub(crate) fn write_gguf(name: &str) -> std::io::Result<std::path::PathBuf> {
        let path = std::env::temp_dir().join(format!("pets-{name}-{}.gguf", std::process::id()));
        let m = metadata("smollm");
        let pairs: Vec<(&str, &Value)> = m.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let mut file = std::fs::File::create(&path)?;
        candle_core::quantized::gguf_file::write(&mut file, &pairs, &[])
            .map_err(std::io::Error::other)?;
        Ok(path)
    }

    #[test]
    fn reads_a_gguf_file() -> Result<(), Box<dyn std::error::Error>> {
        let path = write_gguf("reads")?;
        let tok = from_gguf_file(&path);
        std::fs::remove_file(&path)?;
        assert_eq!(ids(&tok?, "hello world"), [15, 20]);
        let err = from_gguf_file(Path::new("Cargo.toml"))
            .err()
            .map(|e| e.to_string());
        assert!(err
            .unwrap_or_default()
            .contains("Cargo.toml: not a GGUF file"));
        Ok(())
    }
}
