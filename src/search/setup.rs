//! A study made ready to run, the same for `pets search` and `pets worker`: everything the user
//! typed is checked before the data loads and before any store is touched (a refused command
//! leaves no study behind that the corrected one would clash with); then the task is prepared and
//! the rungs, the baselines fitted to the budget and the report context are derived from it.

use super::fidelity::{schedule, schedule_at, Rung};
use super::generations::Layout;
use super::plan::StudyPlan;
use super::report::ReportContext;
use super::sampler::check_feasible;
use super::study::{determinism, settings_fingerprint, Protocol, SearchSettings};
use super::{SearchError, SearchSpace};
use crate::backbone::config::{BackboneShape, BertConfig};
use crate::methods::fit::{fit_to_budget, Fit};
use crate::run::{PreparedTask, RunSettings};
use crate::spec::Design;

pub struct PreparedStudy {
    pub space: SearchSpace,
    pub task: PreparedTask,
    pub shape: BackboneShape,
    /// Trainable parameters a design may have (the budget as a count).
    pub budget_params: usize,
    pub rungs: Vec<Rung>,
    /// Presets fitted to the budget, by name (presets that cannot fit are left out).
    pub baselines: Vec<(String, Design)>,
    pub steps_per_epoch: usize,
    /// The settings stored with the study: every process working on it must share them.
    pub protocol: serde_json::Value,
    pub report: ReportContext,
}

impl PreparedStudy {
    pub fn prepare(
        s: &SearchSettings,
        run: &RunSettings,
        cache: &crate::assets::Cache,
    ) -> crate::Result<PreparedStudy> {
        s.check()?;
        for (setting, value) in [
            ("epochs", Some(run.train.epochs)),
            ("max_steps", run.train.max_steps),
        ] {
            if value == Some(0) {
                let expected = "expected at least 1".to_string();
                let value = "0".to_string();
                return Err(SearchError::Setting {
                    setting,
                    value,
                    expected,
                }
                .into());
            }
        }
        let space = SearchSpace::from_file(&s.space)?;
        let budget = s.budget;
        let presets = s
            .baselines
            .iter()
            .map(|name| {
                let path = s.presets_dir.join(format!("{name}.ron"));
                Ok((name.clone(), Design::from_file(&path)?))
            })
            .collect::<crate::Result<Vec<_>>>()?;
        let task = PreparedTask::prepare(run, cache)?;
        let shape = BertConfig::from_file(&task.model_dir.join("config.json"))?.shape();
        let budget_params = budget.limit(shape.backbone_params());
        check_feasible(&space, shape, budget_params)?;
        let steps_per_epoch = task.train.len().div_ceil(run.train.batch_size);
        let full_steps = full_fidelity(run, steps_per_epoch);
        let rungs = if s.rung_at.is_empty() {
            s.check_rungs(full_steps)?;
            schedule(full_steps, s.initial, s.eta, s.rungs)
        } else {
            schedule_at(full_steps, steps_per_epoch, s.initial, s.eta, &s.rung_at)?
        };
        let mut baselines = Vec::new();
        for (name, preset) in presets {
            match fit_to_budget(&preset, &shape, budget_params, Fit::ShrinkOnly) {
                Some(design) => baselines.push((name, design)),
                None => crate::progress::note(&format!(
                    "baseline {name}: no width fits the budget of {budget_params} parameters; skipped"
                )),
            }
        }
        let mut protocol = serde_json::to_value(Protocol::of(run)).unwrap_or_default();
        protocol["search"] = settings_fingerprint(s);
        // What decides the trials' run fingerprints beyond the protocol: a resumed study reuses
        // its finished trials only on the same weights, split and baseline designs.
        protocol["inputs"] = serde_json::json!({
            "task": task.inputs.task,
            "model_sha256": task.inputs.model_sha256,
            "split_sha256": task.inputs.split_sha256,
        });
        let baseline_designs: serde_json::Map<String, serde_json::Value> = baselines
            .iter()
            .map(|(name, design)| (name.clone(), super::canonical(design).into()))
            .collect();
        protocol["baseline_designs"] = serde_json::Value::Object(baseline_designs);
        let layout = layout(s);
        let steps: Vec<String> = rungs.iter().map(|r| r.steps.to_string()).collect();
        let bracket = |size: usize| {
            let sizes: Vec<String> = layout.bracket(size).iter().map(|n| n.to_string()).collect();
            sizes.join(" → ")
        };
        let limits = s.limits();
        let budget_text = match (limits.trials, limits.timeout) {
            (Some(n), None) => format!("{n} search trials"),
            (None, Some(t)) => format!("{} of wall time", super::limits::describe(t)),
            (Some(n), Some(t)) => format!(
                "{n} search trials or {} of wall time, whichever ends first",
                super::limits::describe(t)
            ),
            (None, None) => "no limit".into(),
        };
        let generations = format!(
            "Search: generation 0 of {} designs (rungs {}), then generations of {} ({}), at {} steps, promotion {}; budget {budget_text}{}; confirmation: the {} most accurate front designs and every baseline over {} seeds (seeds {}–{}).",
            s.initial,
            bracket(s.initial),
            s.population,
            bracket(s.population),
            steps.join(" → "),
            s.promotion,
            layout.generations().map_or(String::new(), |g| format!(" ({g} generations)")),
            s.confirm_top,
            s.confirm_seeds,
            run.train.seed,
            run.train.seed + s.confirm_seeds.max(1) as u64 - 1,
        );
        let report = ReportContext {
            study: s.study.clone(),
            model: run.model.clone(),
            task: task.dataset.name.clone(),
            budget_params,
            backbone_params: shape.backbone_params(),
            command: s.command.clone(),
            sampler: s.sampler.to_string(),
            notes: vec![
                format!(
                    "Protocol: {} train / {} dev, max length {}, batch {}, full fidelity {} epochs{} ({} steps).",
                    task.train.len(),
                    task.dev.len(),
                    run.max_len,
                    run.train.batch_size,
                    run.train.epochs,
                    run.train
                        .max_steps
                        .map_or(String::new(), |n| format!(" cut to --max-steps {n}")),
                    full_steps,
                ),
                generations,
                determinism(s.promotion),
            ],
            // Set by the worker, which knows the store and the run folders.
            export_args: Vec::new(),
        };
        Ok(PreparedStudy {
            space,
            task,
            shape,
            budget_params,
            rungs,
            baselines,
            steps_per_epoch,
            protocol,
            report,
        })
    }

    /// The study's planner: what runs next, decided from its trials alone.
    pub fn plan(&self, s: &SearchSettings, run: &RunSettings) -> StudyPlan<'_> {
        StudyPlan {
            space: &self.space,
            shape: self.shape,
            budget_params: self.budget_params,
            steps: self.rungs.iter().map(|r| r.steps).collect(),
            layout: layout(s),
            promotion: s.promotion,
            limits: s.limits(),
            baselines: self.baselines.clone(),
            sampler: s.sampler,
            search_seed: s.seed,
            population: s.population,
            train_seed: run.train.seed,
            confirm_top: s.confirm_top,
            confirm_seeds: s.confirm_seeds,
        }
    }
}

/// The generations the settings lay out.
fn layout(s: &SearchSettings) -> Layout {
    Layout {
        initial: s.initial,
        population: s.population,
        eta: s.eta,
        rungs: s.rungs,
        trials: s.limits().trials,
    }
}

/// Full fidelity in optimizer steps: `epochs` over the training split, cut to `--max-steps`.
pub fn full_fidelity(run: &RunSettings, steps_per_epoch: usize) -> usize {
    let steps = run.train.epochs * steps_per_epoch;
    run.train.max_steps.map_or(steps, |n| n.min(steps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_steps_caps_full_fidelity() {
        let mut run = crate::search::study::Protocol {
            model: "m".into(),
            task: crate::data::TaskSource::Builtin("mr".into()),
            max_len: 64,
            epochs: 2,
            batch_size: 32,
            lr: None,
            weight_decay: 0.01,
            seed: 0,
            dropout: 0.0,
            max_steps: None,
            test: crate::data::TestSplit::none(),
        }
        .settings(candle_core::Device::Cpu);
        assert_eq!(full_fidelity(&run, 120), 240);
        run.train.max_steps = Some(30);
        assert_eq!(full_fidelity(&run, 120), 30);
        // Rungs derive from the cut: 30 / 3 = 10 steps, then 30.
        let rungs = schedule(full_fidelity(&run, 120), 6, 3, 2);
        assert_eq!(rungs.iter().map(|r| r.steps).collect::<Vec<_>>(), [10, 30]);
        run.train.max_steps = Some(1000);
        assert_eq!(full_fidelity(&run, 120), 240);
    }
}
