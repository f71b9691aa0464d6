//! The research methods as their papers define them (docs/METHODS.md): a two-stage run judges
//! each stage separately and keeps both bests; a run starts from another run's model, keeping or
//! re-mapping its head; K-shot sampling reaches the target stage, with zero-shot meaning "only
//! evaluate"; what was sampled is written down. On the character model and the built-in demo
//! corpus, one thread, so every number is reproducible.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use common::{nerlab, stderr, stdout};
use nerlab::model::align::AlignMode;
use nerlab::model::backbone::{Backbone, CharModelSize};
use nerlab::model::ner::{InitHead, ModelSpec, NerModel};
use nerlab::model::tokenize::CharVocab;

/// The run's top-level keys come first, then the configuration a test gives, then the model.
const TOP: &str = "seed = 5\nthreads = 1\n";
const MODEL: &str = r#"
[model]
source = "char"
head = "crf"
[model.char]
hidden = 32
layers = 1
heads = 2
intermediate = 64
max_positions = 256
dropout = 0.1
"#;

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nerlab-methods-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Trains `config` (its top-level keys first, then its tables; the small model is added) as run
/// `name` under `out`.
fn train(out: &Path, name: &str, config: &str) -> PathBuf {
    let path = out.join(format!("{name}.toml"));
    std::fs::write(&path, format!("{TOP}{config}\n{MODEL}")).unwrap();
    let o = nerlab(&[
        "train",
        "--quiet",
        "--config",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--name",
        name,
    ]);
    assert!(o.status.success(), "{name}: {}", stderr(&o));
    out.join(name)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `nerlab eval` of a run or model folder on the demo dev corpus: its micro F1.
fn eval_f1(model: &Path) -> f64 {
    let o = nerlab(&[
        "eval",
        "--run",
        model.to_str().unwrap(),
        "--data",
        "builtin:demo/dev",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    r["micro"]["f1"].as_f64().unwrap()
}

const TWO_STAGES: &str = r#"
[data]
train = ["builtin:demo/train"]
dev = "builtin:demo/dev"
[train]
epochs = 2
batch_size = 16
lr = 0.003
[finetune]
train = ["builtin:demo/train"]
k_shot = 4
epochs = 3
lr = 0.002
"#;

#[test]
fn a_two_stage_run_judges_each_stage_separately() {
    let out = out_dir("two-stage");
    let run = train(&out, "two", TWO_STAGES);
    let report = json(&run.join("report.json"));
    let stages = report["stages"].as_array().expect("a section per stage");
    assert_eq!(stages.len(), 2, "{report:#}");
    let (s1, s2) = (&stages[0], &stages[1]);
    assert_eq!(
        (s1["stage"].as_u64(), s2["stage"].as_u64()),
        (Some(1), Some(2))
    );
    let stage1_steps = s1["steps"].as_u64().unwrap();
    let best2 = s2["best_step"].as_u64().unwrap();
    assert!(
        best2 > stage1_steps,
        "the final best comes from the fine-tuning stage: best step {best2}, stage 1 ended at {stage1_steps}"
    );
    assert!(s1["best_step"].as_u64().unwrap() <= stage1_steps);
    // The top level is the final stage's.
    assert_eq!(report["best_step"], s2["best_step"]);
    assert_eq!(report["dev"]["micro"], s2["dev"]["micro"]);
    // best/ is the final stage's best and scores exactly what that stage reported; the first
    // stage's best is kept and scores what the first stage reported.
    let f2 = s2["dev"]["micro"]["f1"].as_f64().unwrap();
    assert_eq!(eval_f1(&run), f2);
    let kept = run.join("stage1-best");
    assert!(kept.join("nerlab-model.json").exists());
    assert_eq!(eval_f1(&kept), s1["dev"]["micro"]["f1"].as_f64().unwrap());
    // Each stage's evaluations are marked with it, and each stage has its own best.
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let evals: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "eval")
        .collect();
    for stage in [1, 2] {
        let of: Vec<_> = evals.iter().filter(|v| v["stage"] == stage).collect();
        assert!(!of.is_empty(), "stage {stage} evaluated");
        assert!(
            of[0]["best"].as_bool().unwrap(),
            "a stage's first evaluation is its best so far"
        );
    }
    // The target stage's 4-shot sample is written down and holds K mentions of every type.
    let samples = json(&run.join("samples.json"));
    let target: Vec<_> = samples
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["stage"] == 2)
        .collect();
    assert_eq!(target.len(), 1, "{samples:#}");
    let mentions = target[0]["mentions"].as_object().unwrap();
    assert!(!mentions.is_empty());
    for (ty, n) in mentions {
        assert!(
            n.as_u64().unwrap() >= 4,
            "{ty}: {n} mentions in a 4-shot sample"
        );
    }
    let ids = target[0]["ids"].as_array().unwrap();
    assert_eq!(ids.len(), target[0]["indices"].as_array().unwrap().len());
    assert!(ids.len() < target[0]["of"].as_u64().unwrap() as usize);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn zero_shot_from_another_run_only_evaluates_it() {
    let out = out_dir("zero-shot");
    let source = train(
        &out,
        "source",
        "[data]\ntrain = [\"builtin:demo/train\"]\ndev = \"builtin:demo/dev\"\n[train]\nepochs = 2\nlr = 0.003\n",
    );
    let zero = train(
        &out,
        "zero",
        &format!(
            "init_from = {:?}\n[data]\ntrain = [\"builtin:demo/train\"]\ndev = \"builtin:demo/dev\"\nk_shot = 0\n[train]\nepochs = 2\n",
            source.display().to_string()
        ),
    );
    let report = json(&zero.join("report.json"));
    assert_eq!(report["steps"], 0, "zero-shot trains nothing: {report:#}");
    let source_report = json(&source.join("report.json"));
    assert_eq!(report["dev"]["micro"], source_report["dev"]["micro"]);
    // A zero-shot run without a model to start from is refused before anything starts.
    let path = out.join("bad.toml");
    std::fs::write(&path, "[data]\nk_shot = 0\n").unwrap();
    let o = nerlab(&[
        "train",
        "--quiet",
        "--config",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("data.k_shot: 0 is zero-shot"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&out).unwrap();
}

fn labels(types: &[&str]) -> Vec<String> {
    let mut l = vec!["O".to_string()];
    for t in types {
        l.push(format!("B-{t}"));
        l.push(format!("I-{t}"));
    }
    l
}

fn saved_model(dir: &Path) -> NerModel {
    let vocab = CharVocab::build(["서울 시청 김철수"].into_iter(), 1);
    let size = CharModelSize {
        hidden: 16,
        layers: 1,
        heads: 2,
        intermediate: 32,
        max_positions: 64,
        dropout: 0.0,
    };
    let backbone = Backbone::char(vocab, size, DType::F32, &Device::Cpu, 9).unwrap();
    let spec = ModelSpec {
        head: nerlab::model::ner::HeadKind::Crf,
        ..ModelSpec::default()
    };
    let m = NerModel::new(backbone, spec, labels(&["LC", "PS"]), AlignMode::Words).unwrap();
    m.save(dir).unwrap();
    m
}

/// The rows of parameter `name` of `m`, by class.
fn rows(m: &NerModel, name: &str) -> Vec<Vec<f32>> {
    let (_, v) = m
        .params()
        .vars()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name}"));
    v.as_tensor()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap()
}

#[test]
fn init_from_keeps_or_remaps_the_head_by_label() {
    let dir = out_dir("init-from");
    let source = saved_model(&dir);
    let spec = source.spec.clone();
    let init = |labels: Vec<String>, head| {
        NerModel::init_from(
            &dir,
            spec.clone(),
            labels,
            AlignMode::Words,
            head,
            DType::F32,
            &Device::Cpu,
            1,
        )
    };
    // Remap: LC keeps its trained rows at its new place; OG is new.
    let remapped = init(labels(&["LC", "OG"]), InitHead::Remap).unwrap();
    assert_eq!(remapped.labels, labels(&["LC", "OG"]));
    let (old, new) = (
        rows(&source, "ner.proj.weight"),
        rows(&remapped, "ner.proj.weight"),
    );
    for label in ["O", "B-LC", "I-LC"] {
        let i = source.labels.iter().position(|l| l == label).unwrap();
        let j = remapped.labels.iter().position(|l| l == label).unwrap();
        assert_eq!(old[i], new[j], "{label}");
    }
    let b_og = remapped.labels.iter().position(|l| l == "B-OG").unwrap();
    assert!(!old.contains(&new[b_og]), "a new label starts fresh");
    let (t_old, t_new) = (
        rows(&source, "ner.crf.transitions"),
        rows(&remapped, "ner.crf.transitions"),
    );
    assert_eq!(t_new[1][2], t_old[1][2], "B-LC -> I-LC transition kept");
    // The encoder is the source's.
    assert_eq!(
        rows(&source, "embeddings.word_embeddings.weight"),
        rows(&remapped, "embeddings.word_embeddings.weight")
    );
    // Keep: the saved label set; a type it lacks is refused by name.
    let kept = init(labels(&["PS"]), InitHead::Keep).unwrap();
    assert_eq!(kept.labels, source.labels);
    assert_eq!(rows(&kept, "ner.proj.weight"), old);
    let err = format!("{:#}", init(labels(&["OG"]), InitHead::Keep).unwrap_err());
    assert!(err.contains("no label B-OG"), "{err}");
    // Fresh: only the encoder.
    let fresh = init(labels(&["LC", "PS"]), InitHead::Fresh).unwrap();
    assert_ne!(rows(&fresh, "ner.proj.weight"), old);
    std::fs::remove_dir_all(&dir).unwrap();
}
