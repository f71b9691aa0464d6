//! Finite differences against the backward pass (candle's autograd for the heads, the encoder's
//! hand-derived one, `model/tape.rs`), in f64, on tiny models: encoder + CRF, encoder + BiLSTM +
//! CRF, and prompt label words through the MLM head; with dropout off and with dropout on (the
//! same masks replayed). Every parameter must also receive a gradient: a fused op without a
//! backward pass (candle's `layer_norm`, `softmax_last_dim`) would leave some at zero. And the
//! hand-derived encoder backward must equal candle's autograd on the same model.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use candle_core::{DType, Device, Tensor, Var};
use nerlab::model::align::AlignMode;
use nerlab::model::backbone::{Backbone, CharModelSize};
use nerlab::model::ner::{HeadKind, ModelSpec, NerModel, bio_labels};
use nerlab::model::tokenize::CharVocab;
use nerlab::rng::SplitMix64;

fn tiny_model(spec: ModelSpec) -> (NerModel, Vec<Vec<String>>, Vec<Vec<String>>) {
    tiny_model_with(spec, 0.2)
}

/// Gradients are taken in training passes; "without dropout" means every dropout at zero.
fn tiny_model_with(
    spec: ModelSpec,
    dropout: f64,
) -> (NerModel, Vec<Vec<String>>, Vec<Vec<String>>) {
    let sentences = ["Kim went to Seoul", "Samsung hired Lee Park"];
    let tags = ["B-PER O O B-LOC", "B-ORG O B-PER I-PER"];
    let toks: Vec<Vec<String>> = sentences
        .iter()
        .map(|s| s.split(' ').map(String::from).collect())
        .collect();
    let tags: Vec<Vec<String>> = tags
        .iter()
        .map(|s| s.split(' ').map(String::from).collect())
        .collect();
    let vocab = CharVocab::build(sentences.iter().copied(), 1);
    let size = CharModelSize {
        hidden: 8,
        layers: 2,
        heads: 2,
        intermediate: 12,
        max_positions: 40,
        dropout,
    };
    let backbone = Backbone::char(vocab, size, DType::F64, &Device::Cpu, 7).unwrap();
    let labels = bio_labels(tags.iter().flatten().map(String::as_str));
    let model = NerModel::new(backbone, spec, labels, AlignMode::Words).unwrap();
    (model, toks, tags)
}

fn loss_value(
    model: &NerModel,
    batch: &nerlab::model::batch::Batch,
    train: bool,
    rng_state: u64,
) -> f64 {
    model.encoder().dropout_rng().set_state(rng_state);
    let v = model
        .loss(batch, train)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    // No backward pass follows: forget what the forward pass recorded for one.
    model.encoder().discard_pending();
    v
}

fn set_element(var: &Var, index: usize, value: f64) {
    let shape = var.shape().clone();
    let mut v: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
    v[index] = value;
    var.set(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap())
        .unwrap();
}

fn check(mut spec: ModelSpec, dropout: bool) {
    let name = format!("{:?} prompt={} dropout={dropout}", spec.head, spec.prompt);
    if !dropout {
        spec.head_dropout = 0.0;
    }
    let (model, toks, tags) = tiny_model_with(spec, if dropout { 0.2 } else { 0.0 });
    let train = true;
    let mut examples = Vec::new();
    for (i, (t, g)) in toks.iter().zip(&tags).enumerate() {
        examples.extend(model.encode(i, t, Some(g)).unwrap().1);
    }
    let refs: Vec<_> = examples.iter().collect();
    let batch = model.batch(&refs, None).unwrap();
    let state = 12345;
    model.encoder().dropout_rng().set_state(state);
    let loss = model.loss(&batch, train).unwrap();
    let grads = model.backward(&loss).unwrap();

    let vars = model.params().vars();
    let mut rng = SplitMix64::new(3);
    let mut without_grad = Vec::new();
    let mut checked = 0;
    for (pname, var) in &vars {
        let g: Vec<f64> = match grads.get(var.as_tensor()) {
            Some(g) => g.flatten_all().unwrap().to_vec1().unwrap(),
            None => vec![0.0; var.elem_count()],
        };
        if g.iter().all(|&x| x == 0.0) {
            without_grad.push(pname.clone());
            continue;
        }
        // The element with the largest gradient, and two at random.
        let largest = (0..g.len())
            .max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs()))
            .unwrap();
        for idx in [largest, rng.below(g.len()), rng.below(g.len())] {
            let x: f64 = var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()[idx];
            let eps = 1e-6;
            set_element(var, idx, x + eps);
            let up = loss_value(&model, &batch, train, state);
            set_element(var, idx, x - eps);
            let down = loss_value(&model, &batch, train, state);
            set_element(var, idx, x);
            let numeric = (up - down) / (2.0 * eps);
            let analytic = g[idx];
            let tol = 1e-6 + 1e-4 * numeric.abs().max(analytic.abs());
            assert!(
                (numeric - analytic).abs() <= tol,
                "{name}: {pname}[{idx}]: finite difference {numeric} vs backward {analytic}"
            );
            checked += 1;
        }
    }
    assert!(
        without_grad.is_empty(),
        "{name}: {} of {} parameter tensors got no gradient: {without_grad:?}",
        without_grad.len(),
        vars.len()
    );
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "{name}: {} tensors, {checked} elements agree",
        vars.len()
    );
}

#[test]
fn encoder_and_crf() {
    let spec = ModelSpec {
        head: HeadKind::Crf,
        ..ModelSpec::default()
    };
    check(spec.clone(), false);
    check(spec, true);
}

#[test]
fn encoder_bilstm_crf() {
    let spec = ModelSpec {
        head: HeadKind::BilstmCrf,
        lstm_hidden: 4,
        ..ModelSpec::default()
    };
    check(spec, false);
}

#[test]
fn prompt_label_words_through_the_mlm_head() {
    let spec = ModelSpec {
        prompt: true,
        ..ModelSpec::default()
    };
    check(spec.clone(), false);
    check(spec, true);
}

#[test]
fn softmax_with_multi_sample_dropout() {
    let spec = ModelSpec {
        msd_samples: 3,
        head_dropout: 0.3,
        ..ModelSpec::default()
    };
    check(spec, true);
}

/// The row-sparse embedding path gives exactly the dense gradient's rows.
#[test]
fn sparse_embedding_rows_equal_the_dense_gradient() {
    let (mut model, toks, tags) = tiny_model(ModelSpec::default());
    let mut examples = Vec::new();
    for (i, (t, g)) in toks.iter().zip(&tags).enumerate() {
        examples.extend(model.encode(i, t, Some(g)).unwrap().1);
    }
    let refs: Vec<_> = examples.iter().collect();
    let batch = model.batch(&refs, None).unwrap();
    let emb = model.word_embedding_var().unwrap();

    model.encoder().dropout_rng().set_state(99);
    let dense = model.backward(&model.loss(&batch, true).unwrap()).unwrap();
    let dense: Vec<Vec<f64>> = dense.get(emb.as_tensor()).unwrap().to_vec2().unwrap();

    model.backbone.encoder.set_sparse_embedding(true);
    model.encoder().dropout_rng().set_state(99);
    let store = model.backward(&model.loss(&batch, true).unwrap()).unwrap();
    assert!(
        store.get(emb.as_tensor()).is_none(),
        "the matrix stays out of the graph"
    );
    let sparse = model.encoder().take_sparse();
    assert_eq!(sparse.len(), 1);
    let rows: Vec<Vec<f64>> = store
        .get(sparse[0].var.as_tensor())
        .unwrap()
        .to_vec2()
        .unwrap();
    for (k, &row) in sparse[0].rows.iter().enumerate() {
        assert_eq!(rows[k], dense[row as usize], "row {row}");
    }
    // Rows not in the batch have no gradient.
    let untouched = (0..dense.len()).filter(|r| !sparse[0].rows.contains(&(*r as u32)));
    for r in untouched {
        assert!(dense[r].iter().all(|&x| x == 0.0));
    }
}

/// The encoder's hand-derived backward pass gives candle's autograd gradients, for every
/// parameter, with dropout on, for each head and method.
#[test]
fn taped_encoder_backward_equals_candles_autograd() {
    let specs = [
        ModelSpec::default(),
        ModelSpec {
            head: HeadKind::Crf,
            ..ModelSpec::default()
        },
        ModelSpec {
            prompt: true,
            ..ModelSpec::default()
        },
        ModelSpec {
            msd_samples: 2,
            head_dropout: 0.3,
            ..ModelSpec::default()
        },
    ];
    for spec in specs {
        for sparse in [false, true] {
            let (mut model, toks, tags) = tiny_model(spec.clone());
            model.backbone.encoder.set_sparse_embedding(sparse);
            let mut examples = Vec::new();
            for (i, (t, g)) in toks.iter().zip(&tags).enumerate() {
                examples.extend(model.encode(i, t, Some(g)).unwrap().1);
            }
            let refs: Vec<_> = examples.iter().collect();
            let batch = model.batch(&refs, None).unwrap();
            let grads = |model: &NerModel| {
                model.encoder().dropout_rng().set_state(4242);
                let loss = model.loss(&batch, true).unwrap();
                let store = model.backward(&loss).unwrap();
                let sparse: Vec<(Vec<u32>, Vec<Vec<f64>>)> = model
                    .encoder()
                    .take_sparse()
                    .into_iter()
                    .map(|s| {
                        (
                            s.rows.clone(),
                            store.get(s.var.as_tensor()).unwrap().to_vec2().unwrap(),
                        )
                    })
                    .collect();
                let dense: Vec<(String, Option<Vec<f64>>)> = model
                    .params()
                    .vars()
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.clone(),
                            store
                                .get(v.as_tensor())
                                .map(|g| g.flatten_all().unwrap().to_vec1().unwrap()),
                        )
                    })
                    .collect();
                (loss.to_scalar::<f64>().unwrap(), dense, sparse)
            };
            let taped = grads(&model);
            model.backbone.encoder.set_taped(false);
            let reference = grads(&model);
            let name = format!(
                "{:?} prompt={} msd={} sparse={sparse}",
                spec.head, spec.prompt, spec.msd_samples
            );
            assert!(
                (taped.0 - reference.0).abs() < 1e-12,
                "{name}: loss {} vs {}",
                taped.0,
                reference.0
            );
            for ((n, a), (_, b)) in taped.1.iter().zip(&reference.1) {
                match (a, b) {
                    (Some(a), Some(b)) => {
                        for (x, y) in a.iter().zip(b) {
                            assert!(
                                (x - y).abs() <= 1e-10 + 1e-8 * y.abs(),
                                "{name}: {n}: {x} vs {y}"
                            );
                        }
                    }
                    (None, None) => {}
                    _ => panic!("{name}: {n}: gradient present on one side only"),
                }
            }
            assert_eq!(taped.2.len(), reference.2.len(), "{name}");
            for ((ra, ga), (rb, gb)) in taped.2.iter().zip(&reference.2) {
                // The taped pass skips padding, so the padding id's row may be missing from its
                // rows; the reference must then give that row a zero gradient.
                for (row, gr) in rb.iter().zip(gb) {
                    match ra.iter().position(|r| r == row) {
                        Some(k) => {
                            for (x, y) in ga[k].iter().zip(gr) {
                                assert!(
                                    (x - y).abs() <= 1e-10 + 1e-8 * y.abs(),
                                    "{name}: embedding row {row}: {x} vs {y}"
                                );
                            }
                        }
                        None => assert!(
                            gr.iter().all(|&y| y == 0.0),
                            "{name}: row {row} has a gradient only in the reference"
                        ),
                    }
                }
                assert!(
                    ra.iter().all(|r| rb.contains(r)),
                    "{name}: rows {ra:?} vs {rb:?}"
                );
            }
        }
    }
}
