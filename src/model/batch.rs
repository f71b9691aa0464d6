//! Model inputs: one [`Example`] per window of a sentence (special tokens added, units located),
//! and [`Batch`]es of examples padded to a common length.

use candle_core::{DType, Device, Tensor};

use super::align::{Alignment, windows};
use super::tokenize::Specials;
use crate::rng::SplitMix64;

/// One window of one sentence, ready for the encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub sentence: usize,
    pub window: usize,
    /// `[CLS] content [SEP]`.
    pub ids: Vec<u32>,
    /// Positions in `ids` of this window's units.
    pub units: Vec<usize>,
    /// Index of each unit among the sentence's units.
    pub unit_ids: Vec<usize>,
    /// Class of each unit (training only; `None` = not trained on).
    pub targets: Vec<Option<u32>>,
    /// Spans in `ids` of each word's pieces (for word masking, MANER's baseline 2).
    pub word_spans: Vec<(usize, usize)>,
}

/// Splits an aligned sentence into windows of at most `max_tokens` (special tokens included).
pub fn examples(
    sentence: usize,
    a: &Alignment,
    targets: &[Option<u32>],
    specials: Specials,
    max_tokens: usize,
) -> Vec<Example> {
    let content = max_tokens.saturating_sub(2).max(1);
    // Word spans: from each unit to the next unit (the marker or first piece starts a word).
    let mut spans = Vec::with_capacity(a.units.len());
    for (k, &u) in a.units.iter().enumerate() {
        let end = a.units.get(k + 1).copied().unwrap_or(a.ids.len());
        spans.push((u, end));
    }
    windows(a.ids.len(), content)
        .into_iter()
        .enumerate()
        .map(|(w, (start, end))| {
            let mut ids = Vec::with_capacity(end - start + 2);
            ids.push(specials.cls);
            ids.extend_from_slice(&a.ids[start..end]);
            ids.push(specials.sep);
            let inside: Vec<usize> = (0..a.units.len())
                .filter(|&k| (start..end).contains(&a.units[k]))
                .collect();
            Example {
                sentence,
                window: w,
                units: inside.iter().map(|&k| a.units[k] - start + 1).collect(),
                targets: inside
                    .iter()
                    .map(|&k| targets.get(k).copied().flatten())
                    .collect(),
                word_spans: inside
                    .iter()
                    .map(|&k| (spans[k].0 - start + 1, spans[k].1.min(end) - start + 1))
                    .collect(),
                unit_ids: inside,
                ids,
            }
        })
        .collect()
}

/// An example's ids and unit positions, as given or after word masking.
type Row<'a> = (std::borrow::Cow<'a, [u32]>, std::borrow::Cow<'a, [usize]>);

/// The ids of `e` with each word, with probability `p`, replaced by a single `mask_id`, and
/// where its units then are (one draw of `rng` per word, in order).
fn mask_whole_words(
    e: &Example,
    p: f64,
    mask_id: u32,
    rng: &mut SplitMix64,
) -> (Vec<u32>, Vec<usize>) {
    let mut ids = Vec::with_capacity(e.ids.len());
    let mut units = e.units.clone();
    let mut next = 0;
    for (k, &(a, z)) in e.word_spans.iter().enumerate() {
        ids.extend_from_slice(&e.ids[next..a]);
        if rng.unit_f64() < p {
            units[k] = ids.len();
            ids.push(mask_id);
        } else {
            units[k] = ids.len() + e.units[k].saturating_sub(a);
            ids.extend_from_slice(&e.ids[a..z]);
        }
        next = z;
    }
    ids.extend_from_slice(&e.ids[next..]);
    (ids, units)
}

/// A padded batch on a device.
#[derive(Debug, Clone)]
pub struct Batch {
    /// (batch, seq) token ids.
    pub ids: Tensor,
    /// (batch, seq), 1 for tokens and 0 for padding.
    pub mask: Tensor,
    /// (batch * units) flat positions of units in (batch * seq); padding units point at 0.
    pub unit_index: Tensor,
    /// (batch, units), 1 for real units.
    pub unit_mask: Tensor,
    /// Units per example.
    pub lengths: Vec<usize>,
    /// Class per unit (0 where not trained on; see `unit_weight`).
    pub targets: Vec<Vec<u32>>,
    /// (batch, units), 1 where a unit has a training target.
    pub unit_weight: Tensor,
    pub seq_len: usize,
    pub max_units: usize,
}

impl Batch {
    /// Pads `examples`. With `mask_words = Some((p, mask_id, rng))`, each word is replaced, with
    /// probability `p`, by one mask token however many pieces it has (MANER's "baseline 2"), and
    /// its unit moves onto that mask.
    pub fn new(
        examples: &[&Example],
        pad: u32,
        device: &Device,
        dtype: DType,
        mask_words: Option<(f64, u32, &mut SplitMix64)>,
    ) -> candle_core::Result<Self> {
        let mut masker = mask_words;
        let rows: Vec<Row<'_>> = examples
            .iter()
            .map(|e| match masker.as_mut() {
                Some((p, mask_id, rng)) => {
                    let (ids, units) = mask_whole_words(e, *p, *mask_id, rng);
                    (ids.into(), units.into())
                }
                None => (e.ids.as_slice().into(), e.units.as_slice().into()),
            })
            .collect();
        let b = examples.len();
        let s = rows.iter().map(|(ids, _)| ids.len()).max().unwrap_or(1);
        let u = examples
            .iter()
            .map(|e| e.units.len())
            .max()
            .unwrap_or(0)
            .max(1);
        let mut ids = vec![pad; b * s];
        let mut mask = vec![0f32; b * s];
        let mut unit_index = vec![0u32; b * u];
        let mut unit_mask = vec![0f32; b * u];
        let mut unit_weight = vec![0f32; b * u];
        let mut targets = Vec::with_capacity(b);
        for (i, (e, (row, units))) in examples.iter().zip(&rows).enumerate() {
            ids[i * s..i * s + row.len()].copy_from_slice(row);
            mask[i * s..i * s + row.len()]
                .iter_mut()
                .for_each(|m| *m = 1.0);
            let mut t = Vec::with_capacity(units.len());
            for (k, (&pos, target)) in units.iter().zip(&e.targets).enumerate() {
                unit_index[i * u + k] = (i * s + pos) as u32;
                unit_mask[i * u + k] = 1.0;
                unit_weight[i * u + k] = f32::from(u8::from(target.is_some()));
                t.push(target.unwrap_or(0));
            }
            targets.push(t);
        }
        Ok(Self {
            ids: Tensor::from_vec(ids, (b, s), device)?,
            mask: Tensor::from_vec(mask, (b, s), device)?.to_dtype(dtype)?,
            unit_index: Tensor::from_vec(unit_index, b * u, device)?,
            unit_mask: Tensor::from_vec(unit_mask, (b, u), device)?.to_dtype(dtype)?,
            unit_weight: Tensor::from_vec(unit_weight, (b, u), device)?.to_dtype(dtype)?,
            lengths: examples.iter().map(|e| e.units.len()).collect(),
            targets,
            seq_len: s,
            max_units: u,
        })
    }

    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::align::Source;

    const SPECIALS: Specials = Specials {
        cls: 1,
        sep: 2,
        pad: 0,
        unk: 3,
        mask: Some(4),
    };

    fn alignment(n: usize) -> Alignment {
        Alignment {
            ids: (10..10 + n as u32).collect(),
            units: (0..n).step_by(2).collect(),
            unit_tags: vec![],
            sources: vec![Source::Space],
        }
    }

    #[test]
    fn windows_keep_every_unit() {
        let a = alignment(20);
        let targets: Vec<Option<u32>> = (0..10).map(Some).collect();
        let ex = examples(0, &a, &targets, SPECIALS, 10);
        assert!(
            ex.iter()
                .all(|e| e.ids.len() <= 10 && e.ids[0] == 1 && *e.ids.last().unwrap() == 2)
        );
        let mut seen: Vec<usize> = ex.iter().flat_map(|e| e.unit_ids.clone()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        for e in &ex {
            for (&pos, &k) in e.units.iter().zip(&e.unit_ids) {
                assert_eq!(e.ids[pos], a.ids[a.units[k]]);
            }
        }
    }

    #[test]
    fn batch_pads_and_masks_words() {
        let a = alignment(6);
        let e1 = examples(0, &a, &[Some(1), None, Some(2)], SPECIALS, 64).remove(0);
        let e2 = examples(1, &alignment(2), &[Some(5)], SPECIALS, 64).remove(0);
        let b = Batch::new(&[&e1, &e2], 0, &Device::Cpu, DType::F32, None).unwrap();
        assert_eq!((b.seq_len, b.max_units), (8, 3));
        assert_eq!(
            b.unit_weight.to_vec2::<f32>().unwrap(),
            vec![vec![1.0, 0.0, 1.0], vec![1.0, 0.0, 0.0]]
        );
        let mut rng = SplitMix64::new(1);
        let masked = Batch::new(
            &[&e1],
            0,
            &Device::Cpu,
            DType::F32,
            Some((1.0, 4, &mut rng)),
        )
        .unwrap();
        // One mask per word (not per piece), each word's unit on its mask.
        let row: Vec<Vec<u32>> = masked.ids.to_vec2().unwrap();
        assert_eq!(row[0], vec![1, 4, 4, 4, 2]);
        assert_eq!(masked.unit_index.to_vec1::<u32>().unwrap(), vec![1, 2, 3]);
        // Unmasked words keep their pieces; the units follow the shorter sequence.
        let mut rng = SplitMix64::new(7);
        let half = Batch::new(
            &[&e1],
            0,
            &Device::Cpu,
            DType::F32,
            Some((0.5, 4, &mut rng)),
        )
        .unwrap();
        let ids: Vec<u32> = half.ids.to_vec2::<u32>().unwrap().remove(0);
        let units = half.unit_index.to_vec1::<u32>().unwrap();
        let masked_words = ids.iter().filter(|&&t| t == 4).count();
        assert_eq!(ids.len(), 8 - masked_words);
        for (k, &pos) in units.iter().enumerate() {
            let t = ids[pos as usize];
            assert!(
                t == 4 || t == a.ids[a.units[k]],
                "unit {k} at {pos}: {ids:?}"
            );
        }
    }
}
