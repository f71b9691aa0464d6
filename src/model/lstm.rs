//! A bidirectional LSTM (Hochreiter & Schmidhuber 1997; Huang et al. 2015 "BiLSTM-CRF") in
//! PyTorch's layout (`weight_ih` (4H, in), `weight_hh` (4H, H), gate order i, f, g, o).
//! candle's `lstm` runs one direction; the backward direction here reverses each sequence within
//! its own length, so padding never flows into a real position. On the CPU the recurrence is one
//! fused op with its own backward pass through time (`kernels::lstm_recurrence`); elsewhere it is
//! composed from candle ops step by step.

use candle_core::{D, Device, Result as CResult, Tensor};

use super::ops::sigmoid;
use super::params::{Init, Params};

#[derive(Debug, Clone)]
struct Direction {
    w_ih: Tensor,
    w_hh: Tensor,
    // Kept apart and summed in each forward pass: a sum taken at load time would not follow the
    // optimizer's updates of the two parameters (the gradient check caught exactly that).
    b_ih: Tensor,
    b_hh: Tensor,
}

impl Direction {
    fn load(p: &Params, input: usize, hidden: usize) -> anyhow::Result<Self> {
        let a = 1.0 / (hidden as f64).sqrt();
        Ok(Self {
            w_ih: p.get((4 * hidden, input), "weight_ih", Init::Uniform(a))?,
            w_hh: p.get((4 * hidden, hidden), "weight_hh", Init::Uniform(a))?,
            b_ih: p.get(4 * hidden, "bias_ih", Init::Uniform(a))?,
            b_hh: p.get(4 * hidden, "bias_hh", Init::Uniform(a))?,
        })
    }

    /// (batch, time, input) -> (batch, time, hidden), left to right.
    fn run(&self, x: &Tensor) -> CResult<Tensor> {
        let (b, t, _) = x.dims3()?;
        let hidden = self.w_hh.dim(1)?;
        // Input projections of every step at once: (batch, time, 4H).
        let bias = (&self.b_ih + &self.b_hh)?;
        let xw = x
            .reshape((b * t, ()))?
            .matmul(&self.w_ih.t()?)?
            .broadcast_add(&bias)?
            .reshape((b, t, 4 * hidden))?;
        if super::kernels::applies(&xw) {
            return super::kernels::lstm_recurrence(&xw, &self.w_hh);
        }
        let mut h = Tensor::zeros((b, hidden), x.dtype(), x.device())?;
        let mut c = h.clone();
        let w_hh_t = self.w_hh.t()?;
        let mut outputs = Vec::with_capacity(t);
        for step in 0..t {
            let gates = xw
                .narrow(1, step, 1)?
                .squeeze(1)?
                .add(&h.matmul(&w_hh_t)?)?;
            let gate = |k: usize| gates.narrow(D::Minus1, k * hidden, hidden);
            let i = sigmoid(&gate(0)?)?;
            let f = sigmoid(&gate(1)?)?;
            let g = gate(2)?.tanh()?;
            let o = sigmoid(&gate(3)?)?;
            c = (f.mul(&c)? + i.mul(&g)?)?;
            h = o.mul(&c.tanh()?)?;
            outputs.push(h.clone());
        }
        Tensor::stack(&outputs, 1)
    }
}

/// Reverses each sequence's first `len` steps (padding stays in place): an involution.
fn reverse_within(x: &Tensor, lengths: &[usize]) -> CResult<Tensor> {
    let (b, t, d) = x.dims3()?;
    let idx: Vec<u32> = lengths
        .iter()
        .enumerate()
        .flat_map(|(i, &len)| {
            (0..t).map(move |s| (i * t + if s < len { len - 1 - s } else { s }) as u32)
        })
        .collect();
    let idx = Tensor::from_vec(idx, b * t, &Device::Cpu)?.to_device(x.device())?;
    x.reshape((b * t, d))?
        .index_select(&idx, 0)?
        .reshape((b, t, d))
}

/// A one-layer bidirectional LSTM; the output concatenates both directions (2H).
#[derive(Debug, Clone)]
pub struct BiLstm {
    forward: Direction,
    backward: Direction,
}

impl BiLstm {
    pub fn load(p: &Params, input: usize, hidden: usize) -> anyhow::Result<Self> {
        Ok(Self {
            forward: Direction::load(&p.pp("forward"), input, hidden)?,
            backward: Direction::load(&p.pp("backward"), input, hidden)?,
        })
    }

    /// (batch, time, input) with per-sequence `lengths` -> (batch, time, 2H).
    pub fn forward(&self, x: &Tensor, lengths: &[usize]) -> CResult<Tensor> {
        let fwd = self.forward.run(x)?;
        let bwd = reverse_within(&self.backward.run(&reverse_within(x, lengths)?)?, lengths)?;
        Tensor::cat(&[&fwd, &bwd], D::Minus1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    #[test]
    fn padding_does_not_reach_real_positions() {
        let p = Params::fresh(DType::F64, &Device::Cpu, 1);
        let lstm = BiLstm::load(&p, 3, 4).unwrap();
        let x = Tensor::rand(-1.0, 1.0, (1, 5, 3), &Device::Cpu).unwrap();
        // The same 3 real steps, padded with zeros or with noise: identical outputs there.
        let padded_zero = Tensor::cat(
            &[
                &x.narrow(1, 0, 3).unwrap(),
                &Tensor::zeros((1, 2, 3), DType::F64, &Device::Cpu).unwrap(),
            ],
            1,
        )
        .unwrap();
        let a = lstm
            .forward(&padded_zero, &[3])
            .unwrap()
            .narrow(1, 0, 3)
            .unwrap();
        let b = lstm.forward(&x, &[3]).unwrap().narrow(1, 0, 3).unwrap();
        let diff: f64 = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_keepdim(1)
            .unwrap()
            .max(2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()[0];
        assert!(diff < 1e-12, "{diff}");
    }

    #[test]
    fn reverse_within_is_an_involution() {
        let x = Tensor::arange(0f32, 12.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 3, 2))
            .unwrap();
        let r = reverse_within(&x, &[2, 3]).unwrap();
        let rows: Vec<Vec<Vec<f32>>> = r.to_vec3().unwrap();
        assert_eq!(
            rows[0],
            vec![vec![2.0, 3.0], vec![0.0, 1.0], vec![4.0, 5.0]]
        );
        let back: Vec<Vec<Vec<f32>>> = reverse_within(&r, &[2, 3]).unwrap().to_vec3().unwrap();
        assert_eq!(back, x.to_vec3::<f32>().unwrap());
    }
}
