//! A batch too large for memory is refused before the first step: the activations a training step
//! keeps for its backward pass are estimated from the largest batch the stage will form and
//! compared with the memory the system still has. Running out instead would end the process
//! without a word (Rust aborts on a failed allocation), losing everything since the last
//! checkpoint.

use crate::model::EncoderConfig;

/// Bytes a training step's activations take, about: per layer and token the projections, norms,
/// dropout masks and the feed-forward's two intermediate tensors; per layer and sequence the
/// attention scores, their softmax and its dropout mask; all f32.
pub fn activation_bytes(c: &EncoderConfig, batch: usize, longest: usize) -> u64 {
    let tokens = (batch * longest) as u64;
    let per_token = 16 * c.hidden_size as u64 + 2 * c.intermediate_size as u64;
    let attention = 3 * c.num_attention_heads as u64 * (longest * longest) as u64 * batch as u64;
    (tokens * per_token + attention) * c.num_hidden_layers as u64 * 4
}

/// Memory the system can still give (`MemAvailable`), if it says.
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Fails when `needed` exceeds `available`, with the numbers and what to change.
pub fn check(
    batch: usize,
    longest: usize,
    needed: u64,
    available: Option<u64>,
) -> anyhow::Result<()> {
    use crate::train::run_dir::space::human;
    match available {
        Some(free) if needed > free => anyhow::bail!(
            "a batch of {batch} sentences of up to {longest} sub-words needs about {} for its \
             activations, and {} of memory are available: lower --batch-size (--grad-accum keeps \
             the effective batch) or --max-length",
            human(needed),
            human(free)
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e5_small() -> EncoderConfig {
        serde_json::from_value(serde_json::json!({
            "model_type": "bert", "vocab_size": 250037, "hidden_size": 384,
            "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 1536,
            "max_position_embeddings": 512
        }))
        .unwrap()
    }

    #[test]
    fn a_batch_too_large_for_memory_is_refused_with_the_numbers() {
        let c = e5_small();
        // Batches of 16 WikiANN sentences (about 40 sub-words) take a few hundred MB.
        let usual = activation_bytes(&c, 16, 40);
        assert!(usual < 1_000_000_000, "{usual}");
        assert!(check(16, 40, usual, Some(8_000_000_000)).is_ok());
        // 4,096 sentences of 512 sub-words do not fit in 24 GB.
        let huge = activation_bytes(&c, 4096, 512);
        let e = check(4096, 512, huge, Some(24_000_000_000))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("a batch of 4096 sentences of up to 512 sub-words needs about "),
            "{e}"
        );
        assert!(
            e.contains("24.0 GB of memory are available: lower --batch-size"),
            "{e}"
        );
        assert!(check(4096, 512, huge, None).is_ok());
    }
}
