//! Inference on a trained model, shared by the worker, the workbench, the command line and the
//! trainer: finding and loading a run's model ([`load_model`]), splitting raw text into the units
//! a model tags ([`tokenize`]), tagging with confidences ([`tag_texts`]), the attention of a text
//! ([`attention_of_text`]), what an alignment loses before training ([`round_trip`]), and scoring a model, or its saved predictions, on a corpus
//! ([`evaluate`], [`score_saved_predictions`]).
//!
//! Layers: this module sits below `worker`, `ui` and `cli`, and above `model`, `metrics` and
//! `data`; it never imports from the layers above it.

mod alignment;
mod eval;
mod model_dir;
mod text;

pub use alignment::{RoundTrip, alignments_for, round_trip};
pub use eval::{SavedScore, evaluate, score_saved_predictions};
pub use model_dir::{
    OpenOptions, Opened, TorchOptions, has_model, load_model, model_dir, open_model, tokenizer_of,
};
pub use text::{TaggedText, TextSpan, attention_of_text, tag_texts, tokenize};
