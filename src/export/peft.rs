//! Hugging Face PEFT files for LoRA-only designs: `adapter_config.json` and
//! `adapter_model.safetensors` under PEFT's key names, loadable with `PeftModel.from_pretrained`
//! on a transformers `BertModel`.

use super::merge::LoraSite;
use super::ExportError;
use crate::spec::{Design, Projection};
use candle_core::Tensor;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// The fields of PEFT's `LoraConfig` that decide how the adapter is rebuilt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeftConfig {
    pub peft_type: &'static str,
    pub task_type: &'static str,
    pub base_model_name_or_path: String,
    pub r: usize,
    pub lora_alpha: f64,
    /// Short names (`query`) when they pick exactly the adapted projections, else full paths.
    pub target_modules: Vec<String>,
    pub lora_dropout: f64,
    pub bias: &'static str,
    pub fan_in_fan_out: bool,
    pub use_rslora: bool,
    pub use_dora: bool,
    pub modules_to_save: Option<Vec<String>>,
    pub layers_to_transform: Option<Vec<usize>>,
    pub layers_pattern: Option<String>,
    /// Per-module rank and alpha where they differ from `r` and `lora_alpha`; PEFT matches a
    /// key against the end of a module's path.
    pub rank_pattern: BTreeMap<String, usize>,
    pub alpha_pattern: BTreeMap<String, f64>,
    pub init_lora_weights: bool,
    pub inference_mode: bool,
}

/// PEFT's name for a state-dict key of the LoRA on `site` (`part` is `lora_A` or `lora_B`).
pub fn peft_key(site: &LoraSite, part: &str) -> String {
    format!("base_model.model.{}.{part}.weight", site.hf_module())
}

/// The adapter config and PEFT-named tensors for `sites`, taken from pets' `tensors`.
pub fn peft_files(
    design: &Design,
    sites: &[LoraSite],
    layers: usize,
    tensors: &HashMap<String, Tensor>,
    base_model: String,
) -> Result<(PeftConfig, HashMap<String, Tensor>), ExportError> {
    let blocked = |module: &str, reason: String| ExportError::NotLoraOnly {
        design: design.name.clone(),
        module: module.to_string(),
        purpose: "exported in PEFT format",
        reason,
    };
    if !design.unfreeze.is_empty() {
        return Err(ExportError::UnfrozenBackbone {
            design: design.name.clone(),
            parts: format!("{:?}", design.unfreeze),
        });
    }
    let Some(first) = sites.first() else {
        let reason = "the design has no LoRA module".to_string();
        return Err(blocked(&design.name, reason));
    };
    // The most common (r, alpha) becomes the default; the rest go in the patterns.
    let mut votes: Vec<((usize, f64), usize)> = Vec::new();
    for site in sites {
        match votes.iter_mut().find(|(k, _)| *k == (site.r, site.alpha)) {
            Some((_, n)) => *n += 1,
            None => votes.push(((site.r, site.alpha), 1)),
        }
    }
    let (r, lora_alpha) = votes
        .iter()
        .fold(((first.r, first.alpha), 0), |best, v| {
            if v.1 > best.1 {
                *v
            } else {
                best
            }
        })
        .0;
    let (mut rank_pattern, mut alpha_pattern) = (BTreeMap::new(), BTreeMap::new());
    for site in sites.iter().filter(|s| (s.r, s.alpha) != (r, lora_alpha)) {
        // Without the leading `encoder.`: PEFT matches patterns as `.*\.{key}$` in older
        // releases, which needs a dot before the key.
        let path = site.family.projection_path(site.projection);
        let key = format!("layer.{}.{path}", site.layer);
        rank_pattern.insert(key.clone(), site.r);
        alpha_pattern.insert(key, site.alpha);
    }
    let mut out = HashMap::new();
    for site in sites {
        for part in ["lora_A", "lora_B"] {
            let name = format!("{}.{part}.weight", site.store_prefix());
            let tensor = tensors
                .get(&name)
                .ok_or_else(|| ExportError::MissingTensor {
                    path: "the trained tensors".into(),
                    tensor: name.clone(),
                })?;
            out.insert(peft_key(site, part), tensor.clone());
        }
    }
    let config = PeftConfig {
        peft_type: "LORA",
        task_type: "FEATURE_EXTRACTION",
        base_model_name_or_path: base_model,
        r,
        lora_alpha,
        target_modules: target_modules(sites, layers),
        lora_dropout: 0.0,
        bias: "none",
        fan_in_fan_out: false,
        use_rslora: false,
        use_dora: false,
        modules_to_save: None,
        layers_to_transform: None,
        layers_pattern: None,
        rank_pattern,
        alpha_pattern,
        init_lora_weights: true,
        inference_mode: true,
    };
    Ok((config, out))
}

/// PEFT matches a target name against the end of each module path. Short names work when each
/// adapted projection is adapted in every layer and its suffix is unambiguous (`output.dense`
/// also ends `attention.output.dense`); otherwise every module is listed by its full path.
fn target_modules(sites: &[LoraSite], layers: usize) -> Vec<String> {
    let mut projections: Vec<Projection> = Vec::new();
    for site in sites {
        if !projections.contains(&site.projection) {
            projections.push(site.projection);
        }
    }
    let every_layer = projections
        .iter()
        .all(|p| sites.iter().filter(|s| s.projection == *p).count() == layers);
    if every_layer && !projections.contains(&Projection::FfnOut) {
        let short = |p: &Projection| match p {
            Projection::Query => "query",
            Projection::Key => "key",
            Projection::Value => "value",
            other => sites[0].family.projection_path(*other),
        };
        return projections.iter().map(|p| short(p).to_string()).collect();
    }
    let mut full: Vec<String> = sites.iter().map(LoraSite::hf_module).collect();
    full.sort();
    full
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(layer: usize, projection: Projection) -> LoraSite {
        LoraSite {
            module: "m".into(),
            layer,
            projection,
            family: crate::backbone::family::Family::Bert,
            r: 4,
            alpha: 8.0,
        }
    }

    #[test]
    fn short_target_names_only_when_they_pick_exactly_the_adapted_projections() {
        let qv: Vec<LoraSite> = (0..2)
            .flat_map(|l| [site(l, Projection::Query), site(l, Projection::Value)])
            .collect();
        assert_eq!(target_modules(&qv, 2), ["query", "value"]);
        let dense = [site(0, Projection::FfnIn), site(1, Projection::FfnIn)];
        assert_eq!(target_modules(&dense, 2), ["intermediate.dense"]);
        // `output.dense` would also catch `attention.output.dense`.
        let ffn_out = [site(0, Projection::FfnOut), site(1, Projection::FfnOut)];
        assert_eq!(
            target_modules(&ffn_out, 2),
            [
                "encoder.layer.0.output.dense",
                "encoder.layer.1.output.dense"
            ]
        );
        // A layer subset needs full paths too.
        let some = [site(1, Projection::Query)];
        assert_eq!(
            target_modules(&some, 2),
            ["encoder.layer.1.attention.self.query"]
        );
        assert_eq!(
            peft_key(&some[0], "lora_A"),
            "base_model.model.encoder.layer.1.attention.self.query.lora_A.weight"
        );
    }
}
