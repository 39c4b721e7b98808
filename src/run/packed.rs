//! Several designs trained as one pack ([`crate::pack`]) on a prepared task: one encoder loaded
//! for all, each design's run folder and metrics as [`super::train_design`] gives them.

use super::RunSettings;
use super::{load_encoder, run_metrics, train_design, write_run, PreparedTask, RunMetrics};
use crate::model::AdaptedModel;
use crate::pack::{evaluate_packed, train_packed, unpackable_reason, Pack};
use crate::spec::Design;
use std::path::PathBuf;

/// One design of a pack: what it is, how it trains (the batching settings of all must agree:
/// epochs, batch size, seed, step limit) and where its run folder goes.
pub struct PackedRun {
    pub design: Design,
    pub settings: RunSettings,
    pub out: Option<PathBuf>,
}

/// Trains `runs` together on `task`, one result per run in order: a design's own failure (it
/// does not compile, its loss is not finite) is its result alone. A design that cannot share the
/// frozen model (it unfreezes backbone parts, or dropout is on) trains by itself. The outer error
/// is one no design is to blame for (the device, the model's files).
pub fn train_designs_packed(
    runs: &[PackedRun],
    task: &PreparedTask,
) -> crate::Result<Vec<crate::Result<(RunMetrics, AdaptedModel)>>> {
    let mut results: Vec<Option<crate::Result<(RunMetrics, AdaptedModel)>>> =
        runs.iter().map(|_| None).collect();
    let Some(first) = runs.first() else {
        return Ok(Vec::new());
    };
    let encoder = load_encoder(task, &first.settings)?;
    let classes = task.dataset.label_names.len();
    let mut packed: Vec<(usize, AdaptedModel)> = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        match AdaptedModel::build(
            encoder.clone(),
            &run.design,
            classes,
            run.settings.train.seed,
        ) {
            Ok(model) if unpackable_reason(&model).is_none() => packed.push((i, model)),
            Ok(model) => {
                drop(model);
                results[i] = Some(train_design(
                    &run.design,
                    task,
                    &run.settings,
                    run.out.as_deref(),
                ));
            }
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    if !packed.is_empty() {
        let (slots, models): (Vec<usize>, Vec<AdaptedModel>) = packed.into_iter().unzip();
        let configs: Vec<_> = slots
            .iter()
            .map(|&i| {
                let mut config = runs[i].settings.train.clone();
                config.lr = runs[i].settings.learning_rate(&runs[i].design);
                config
            })
            .collect();
        let mut pack = Pack::new(models)?;
        let device = &first.settings.device;
        let outcome = train_packed(
            &mut pack,
            &configs,
            &task.train,
            &task.dev,
            task.pad_id,
            device,
        )?;
        // The survivors' test split, with their best-dev weights, in one more packed pass.
        let survivors: Vec<usize> = (0..slots.len())
            .filter(|&m| outcome.members[m].is_ok())
            .collect();
        let failed: Vec<usize> = (0..slots.len())
            .filter(|m| !survivors.contains(m))
            .collect();
        pack.remove(&failed)?;
        let batch = configs[0].eval_batch_size;
        let tests = match task.test.is_empty() || survivors.is_empty() {
            true => Vec::new(),
            false => evaluate_packed(&pack, &task.test, task.pad_id, device, batch)?,
        };
        let models = pack.into_models();
        let mut tests = tests.into_iter();
        for ((m, model), member) in models.into_iter().enumerate().zip(outcome.members) {
            let i = slots[m];
            let run = &runs[i];
            results[i] = Some(match member {
                Err(e) => Err(e.into()),
                Ok(trained) => {
                    let test = tests.next().map(|eval| {
                        let correct = eval.correct(&task.test);
                        (eval, correct)
                    });
                    let metrics = run_metrics(
                        &run.design,
                        task,
                        &run.settings,
                        &configs[m],
                        trained,
                        &model,
                        test,
                    );
                    match &run.out {
                        Some(dir) => {
                            write_run(dir, &run.design, &metrics, &model).map(|()| (metrics, model))
                        }
                        None => Ok((metrics, model)),
                    }
                }
            });
        }
    }
    Ok(results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| Err(crate::Error::Internal("a packed run gave no result".into())))
        })
        .collect())
}
