//! The encoder's `config.json` and the shape facts derived from it: dims, tensor inventory, counts.

use super::family::Family;
use super::BackboneError;
use crate::sites::{BackbonePart, Projection, Width};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The largest dimension `config.json` may give (see `BertConfig::check`).
const MAX_DIM: usize = 1 << 24;

/// The fields of a Hugging Face BERT `config.json` that pets uses (others are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    #[serde(default)]
    pub model_type: Option<String>,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_positions() -> usize {
    512
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_dropout() -> f64 {
    0.1
}

impl BertConfig {
    pub fn from_file(path: &Path) -> Result<BertConfig, BackboneError> {
        let err = |message: String| BackboneError::Config {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let config: BertConfig = serde_json::from_str(&text)
            .map_err(|e| err(format!("line {} column {}: {e}", e.line(), e.column())))?;
        config.check().map_err(err)?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        // Zero would divide by zero or build empty tensors; beyond 2^24 the parameter counts
        // (products of these) could overflow, and no BERT-family encoder comes near either.
        let dims = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ];
        if let Some((field, value)) = dims.iter().find(|(_, v)| !(1..=MAX_DIM).contains(v)) {
            return Err(format!("{field} {value} is out of range (1 to {MAX_DIM})"));
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !matches!(self.hidden_act.as_str(), "gelu" | "gelu_new" | "relu") {
            return Err(format!(
                "hidden_act {:?} is not supported (gelu, gelu_new, relu)",
                self.hidden_act
            ));
        }
        // Only BERT's layout is implemented: RoBERTa, for one, numbers positions from
        // padding_idx + 1 and would run silently wrong with BERT's position ids.
        if let Some(kind) = self.model_type.as_deref().filter(|k| *k != "bert") {
            return Err(format!(
                "model_type {kind:?} is not implemented: pets runs BERT encoders (model_type \"bert\")"
            ));
        }
        Ok(())
    }

    pub fn shape(&self) -> BackboneShape {
        BackboneShape {
            family: Family::Bert,
            layers: self.num_hidden_layers,
            hidden: self.hidden_size,
            heads: self.num_attention_heads,
            kv_heads: self.num_attention_heads,
            ffn: self.intermediate_size,
            vocab: self.vocab_size,
            max_positions: self.max_position_embeddings,
            type_vocab: self.type_vocab_size,
        }
    }
}

/// The dimensions that decide where modules fit and what they cost, and the family that names
/// the model's tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackboneShape {
    pub family: Family,
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    /// Heads of the keys and values (fewer than `heads` under grouped-query attention).
    pub kv_heads: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub type_vocab: usize,
}

impl BackboneShape {
    /// all-MiniLM-L6-v2 (`minilm-l6`, the default model): 22,565,376 parameters as run.
    pub const MINILM_L6: BackboneShape = BackboneShape {
        family: Family::Bert,
        layers: 6,
        hidden: 384,
        heads: 12,
        kv_heads: 12,
        ffn: 1536,
        vocab: 30522,
        max_positions: 512,
        type_vocab: 2,
    };

    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    /// The width of a point of [`Width`].
    pub fn width(&self, width: Width) -> usize {
        match width {
            Width::Hidden => self.hidden,
            Width::Ffn => self.ffn,
        }
    }

    /// (input, output) width of a projection.
    pub fn projection_dims(&self, p: Projection) -> (usize, usize) {
        match p {
            Projection::FfnIn => (self.hidden, self.ffn),
            Projection::FfnOut => (self.ffn, self.hidden),
            _ => (self.hidden, self.hidden),
        }
    }

    /// Every tensor of the model as run (checkpoint name, element count), in the family's order.
    pub fn tensor_inventory(&self) -> Vec<(String, usize)> {
        self.family.tensor_inventory(self)
    }

    /// Parameters of the encoder as run (the base of every percentage pets reports).
    pub fn backbone_params(&self) -> usize {
        self.tensor_inventory().iter().map(|(_, n)| n).sum()
    }

    /// Parameters of the backbone tensors that `parts` make trainable (a tensor counted once).
    pub fn unfrozen_params(&self, parts: &[BackbonePart]) -> usize {
        self.tensor_inventory()
            .iter()
            .filter(|(name, _)| parts.iter().any(|p| part_covers(*p, name)))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Whether a backbone part includes the tensor of this HF name.
pub fn part_covers(part: BackbonePart, name: &str) -> bool {
    match part {
        BackbonePart::All => true,
        BackbonePart::LayerNorms => name.contains("LayerNorm."),
        BackbonePart::Biases => name.ends_with(".bias"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minilm_l6() -> BackboneShape {
        BackboneShape::MINILM_L6
    }

    #[test]
    fn model_types_other_than_bert_are_refused_by_name() {
        let mut config = crate::backbone::tiny::tiny_config();
        for (kind, ok) in [(None, true), (Some("bert"), true), (Some("roberta"), false)] {
            config.model_type = kind.map(String::from);
            match (config.check(), ok) {
                (Ok(()), true) => {}
                (Err(e), false) => assert_eq!(
                    e,
                    "model_type \"roberta\" is not implemented: pets runs BERT encoders (model_type \"bert\")"
                ),
                (got, _) => panic!("{kind:?}: {got:?}"),
            }
        }
    }

    #[test]
    fn minilm_backbone_count_matches_reference() {
        assert_eq!(minilm_l6().backbone_params(), 22_565_376);
    }

    #[test]
    fn unfrozen_parts_are_counted_once() {
        let s = minilm_l6();
        let ln = (1 + 2 * s.layers) * 2 * s.hidden;
        assert_eq!(s.unfrozen_params(&[BackbonePart::LayerNorms]), ln);
        let linear_biases = s.layers * (4 * s.hidden + s.ffn + s.hidden);
        let ln_biases = (1 + 2 * s.layers) * s.hidden;
        assert_eq!(
            s.unfrozen_params(&[BackbonePart::Biases]),
            linear_biases + ln_biases
        );
        assert_eq!(
            s.unfrozen_params(&[BackbonePart::LayerNorms, BackbonePart::Biases]),
            ln + linear_biases
        );
        assert_eq!(s.unfrozen_params(&[BackbonePart::All]), s.backbone_params());
    }
}
