//! The study plan (RON): sections of designs × budgets × seeds on a task, and the paper's
//! findings as pairwise claims between labelled designs; expanded into concrete runs.

use super::ScienceError;
use crate::backbone::config::BackboneShape;
use crate::methods::fit::{fit_to_budget, Fit};
use crate::spec::{parse_ron, Design};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// A known model name or an HF-style folder, as `pets train --model`.
    pub model: String,
    pub sections: Vec<Section>,
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// The paper's Table 2 rows and the label of our run standing for each.
    #[serde(default)]
    pub paper: Vec<PaperRow>,
}

/// One row of He et al.'s Table 2 (RoBERTa-base, median of 5 seeds) beside one of our entries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperRow {
    pub method: String,
    pub percent: f64,
    pub mnli: f64,
    pub sst2: f64,
    /// Our entry on the first section's task, if the plan has one.
    pub ours: Option<String>,
}

/// Designs trained on one task, each at every budget (or as written when `budgets` is empty),
/// with every seed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    pub name: String,
    /// A built-in task name, or a CSV/TSV/JSONL file with the two columns below.
    pub task: String,
    #[serde(default)]
    pub text_column: Option<String>,
    #[serde(default)]
    pub label_column: Option<String>,
    pub epochs: usize,
    pub seeds: Vec<u64>,
    /// Percentages of the backbone's parameters; empty keeps each design's own widths.
    #[serde(default)]
    pub budgets: Vec<f64>,
    /// Design files relative to the plan's folder, without `.ron`.
    pub designs: Vec<String>,
}

/// One of the paper's findings as a claim that `better` beats `worse` (labels of runs on `task`,
/// as in the report: `lora@0.5%`, or the design's name for one run as written).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    pub number: u32,
    pub claim: String,
    #[serde(default = "default_task")]
    pub task: String,
    pub better: String,
    pub worse: String,
    /// A claim of a tie (MAM matches full fine-tuning): reproduced when neither side is ahead.
    #[serde(default)]
    pub tie: bool,
}

fn default_task() -> String {
    "mr".into()
}

/// One design at one size on one task: what the report aggregates over seeds.
#[derive(Debug, Clone)]
pub struct Entry {
    pub section: String,
    pub task: String,
    pub columns: Option<(String, String)>,
    /// `name@budget%`, or the design's name when trained as written.
    pub label: String,
    pub preset: String,
    pub budget: Option<f64>,
    pub design: Design,
    pub epochs: usize,
    pub seeds: Vec<u64>,
}

/// A design the plan asks for that cannot be built at a budget (too small for its fixed parts).
#[derive(Debug, Clone)]
pub struct Skipped {
    pub section: String,
    pub label: String,
    pub reason: String,
}

impl Plan {
    pub fn from_file(path: &Path) -> Result<Plan, ScienceError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScienceError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(parse_ron(&text, &path.display().to_string())?)
    }

    /// Every entry of every section (designs read relative to `root`), and what could not be
    /// fitted to its budget.
    pub fn entries(
        &self,
        root: &Path,
        shape: &BackboneShape,
    ) -> Result<(Vec<Entry>, Vec<Skipped>), ScienceError> {
        let mut entries = Vec::new();
        let mut skipped = Vec::new();
        for section in &self.sections {
            for stem in &section.designs {
                let path: PathBuf = root.join(format!("{stem}.ron"));
                let design = Design::from_file(&path)?;
                let sizes: Vec<Option<f64>> = match section.budgets.is_empty() {
                    true => vec![None],
                    false => section.budgets.iter().copied().map(Some).collect(),
                };
                for budget in sizes {
                    let label = label(&design.name, budget);
                    let design = match budget {
                        None => design.clone(),
                        Some(percent) => {
                            let limit = (shape.backbone_params() as f64 * percent / 100.0) as usize;
                            match fit_to_budget(&design, shape, limit, Fit::Scale) {
                                Some(mut d) => {
                                    d.name = label.clone();
                                    d
                                }
                                None => {
                                    skipped.push(Skipped {
                                        section: section.name.clone(),
                                        label,
                                        reason: format!(
                                            "its narrowest version is over {percent}% \
                                             ({limit} parameters) or it has no width"
                                        ),
                                    });
                                    continue;
                                }
                            }
                        }
                    };
                    entries.push(Entry {
                        section: section.name.clone(),
                        task: section.task.clone(),
                        columns: match (&section.text_column, &section.label_column) {
                            (None, None) => None,
                            (t, l) => Some((
                                t.clone().unwrap_or_else(|| "text".into()),
                                l.clone().unwrap_or_else(|| "label".into()),
                            )),
                        },
                        label,
                        preset: design_stem(stem),
                        budget,
                        design,
                        epochs: section.epochs,
                        seeds: section.seeds.clone(),
                    });
                }
            }
        }
        self.check_findings(&entries, &skipped)?;
        Ok((entries, skipped))
    }

    /// A finding must name entries the plan trains (or knowingly skips), so typos fail early.
    fn check_findings(&self, entries: &[Entry], skipped: &[Skipped]) -> Result<(), ScienceError> {
        for f in &self.findings {
            for label in [&f.better, &f.worse] {
                let known = entries
                    .iter()
                    .any(|e| &e.label == label && e.task == f.task)
                    || skipped.iter().any(|s| &s.label == label);
                if !known {
                    return Err(ScienceError::UnknownLabel {
                        finding: f.number,
                        label: label.clone(),
                        task: f.task.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// The report's name for a design at a budget.
pub fn label(name: &str, budget: Option<f64>) -> String {
    match budget {
        Some(b) => format!("{name}@{b}%"),
        None => name.to_string(),
    }
}

fn design_stem(stem: &str) -> String {
    Path::new(stem)
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| stem.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("search_spaces")
    }

    #[test]
    fn the_committed_plan_expands_and_its_findings_name_real_entries() {
        let plans = root().join("plans");
        let plan = Plan::from_file(&plans.join("unified-view.ron")).expect("plan parses");
        let (entries, skipped) = plan
            .entries(&plans, &BackboneShape::MINILM_L6)
            .expect("expands");
        let labels: Vec<&str> = entries.iter().map(|e| e.label.as_str()).collect();
        for want in ["lora@0.5%", "mam@5%", "prefix@0.1%", "full_finetune"] {
            assert!(labels.contains(&want), "{want} missing from {labels:?}");
        }
        assert!(skipped.iter().any(|s| s.label == "houlsby@0.1%"));
        assert!(entries.iter().all(|e| !e.seeds.is_empty() && e.epochs > 0));
    }

    #[test]
    fn a_finding_with_an_unknown_label_is_an_error_naming_it() {
        let text = r#"Plan(model: "minilm-l6", sections: [
            Section(name: "a", task: "mr", epochs: 1, seeds: [0], budgets: [0.5], designs: ["presets/lora"]),
        ], findings: [Finding(number: 4, claim: "x", better: "lora@0.5%", worse: "lora@9%")])"#;
        let plan: Plan = parse_ron(text, "plan.ron").expect("parses");
        let err = plan
            .entries(&root(), &BackboneShape::MINILM_L6)
            .expect_err("unknown label");
        assert!(err.to_string().contains("lora@9%"), "{err}");
    }

    #[test]
    fn unknown_fields_are_rejected_with_a_location() {
        let err = parse_ron::<Plan>("Plan(model: \"m\", sections: [], colour: 1)", "plan.ron")
            .expect_err("unknown field");
        assert!(err.to_string().contains("plan.ron:1:"), "{err}");
    }
}
