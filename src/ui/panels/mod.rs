//! One file per panel. Each has a persisted `*State` (its view state) and a
//! `ui(state, ui, &PanelCtx) -> Vec<Action>` that lays out from the run store and returns what the
//! app should do; actions are applied after layout.

pub mod attention;
pub mod calibration;
pub mod confusion;
pub mod curves;
pub mod errors;
pub mod experiment;
pub mod experiments;
pub mod launcher;
pub mod tagger;
