//! A model scored on a corpus: the report the trainer writes at every evaluation, `nerlab eval`
//! prints and the workbench shows, and the same report recomputed from a run's saved dev
//! predictions.

use std::path::Path;

use crate::data::{Corpus, ReadOptions, TagView};
use crate::metrics::{ScoreOptions, ScoreReport, score};
use crate::model::ner::NerModel;
use crate::train::run_dir::RunDir;

/// Dev (or other) evaluation: predictions, their confidences, and the full score report.
pub fn evaluate(
    model: &NerModel,
    corpus: &Corpus,
    batch_size: usize,
) -> anyhow::Result<(ScoreReport, Vec<Vec<String>>)> {
    let tokens: Vec<Vec<String>> = corpus.sentences.iter().map(|s| s.tokens.clone()).collect();
    let tagged = model.tag_as(&tokens, batch_size, model.align_for(corpus.format))?;
    let pred: Vec<Vec<String>> = tagged.iter().map(|t| t.tags.clone()).collect();
    let gold = corpus.view();
    let pv = corpus.view_of(pred.iter().map(Vec::as_slice));
    let conf: Vec<Vec<f64>> = gold
        .positions
        .iter()
        .zip(&tagged)
        .map(|(pos, t)| pos.iter().map(|&i| f64::from(t.confidence[i])).collect())
        .collect();
    Ok((
        score(&gold.tags, &pv.tags, Some(&conf), &options(corpus))?,
        pred,
    ))
}

/// A run's saved dev predictions scored against the gold corpus, with both sides in the scoring
/// view (where spans and error cases are).
#[derive(Debug, Clone)]
pub struct SavedScore {
    pub report: ScoreReport,
    pub gold: TagView,
    pub pred: TagView,
}

/// Re-scores the dev predictions a run wrote with its best model (`dev-predictions.*`, in the
/// corpus's own format) against `gold`, so the error cases are at hand; the calibration is the
/// one the run saved (`dev-calibration.json`), since saved tags carry no confidences.
pub fn score_saved_predictions(run_dir: &Path, gold: &Corpus) -> anyhow::Result<SavedScore> {
    let run = RunDir::open(run_dir)?;
    let pred_file = run
        .dev_predictions()
        .ok_or_else(|| anyhow::anyhow!("no dev predictions yet"))?;
    let pred = crate::data::read(&pred_file, &ReadOptions::for_predictions(gold))?;
    gold.check_same_tokens(&pred)?;
    let gv = gold.view();
    let pv = gold.view_of(pred.sentences.iter().map(|s| s.tags.as_slice()));
    let mut report = score(&gv.tags, &pv.tags, None, &options(gold))?;
    report.calibration = run.dev_calibration();
    Ok(SavedScore {
        report,
        gold: gv,
        pred: pv,
    })
}

/// How a corpus is scored: its own scheme, and character F1 where the format defines it.
fn options(corpus: &Corpus) -> ScoreOptions {
    ScoreOptions {
        scheme: corpus.scheme,
        char_level: corpus.format.char_level(),
        ..ScoreOptions::default()
    }
}
