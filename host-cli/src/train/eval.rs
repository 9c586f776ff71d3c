//! Does a model complete a repeated invented name? Measured on fresh stories (a seed the
//! training corpus did not use) with the kernel, on the blob the model becomes.

use std::fmt;

use anyhow::Result;
use tinylens::Model;

use super::corpus::story_with_names;
use crate::analysis::SplitMix;
use crate::blobio::blob_from_params;
use crate::params::Params;
use crate::tokenize::encode;

/// Name completion on fresh stories.
#[derive(Clone, Debug, PartialEq)]
pub struct NameCompletion {
    /// Stories read.
    pub stories: usize,
    /// Repeated mentions scored (a name whose earlier mention is in the same context window).
    pub mentions: usize,
    /// Mentions whose whole second half was predicted right, character by character.
    pub mentions_right: usize,
    /// Tokens (syllables) of second halves scored.
    pub chars: usize,
    /// Of those, predicted right (the argmax of the logits is the next character).
    pub chars_right: usize,
}

impl fmt::Display for NameCompletion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
        write!(
            f,
            "name completion on {} fresh stories (kernel, f32 blob): the second half of a \
             repeated invented name is predicted for {:.1}% of its syllables ({}/{}), and \
             entirely for {:.1}% of the mentions ({}/{})",
            self.stories,
            pct(self.chars_right, self.chars),
            self.chars_right,
            self.chars,
            pct(self.mentions_right, self.mentions),
            self.mentions_right,
            self.mentions
        )
    }
}

/// Scores `params` on `n` stories generated from `seed`: for every mention of an invented name
/// whose earlier mention fits in the same `n_ctx` window ending at it, the predictions of the
/// tokens of its second half (the syllables after the first half), each given the true text
/// before it.
pub fn name_completion(params: &Params, seed: u64, n: usize) -> Result<NameCompletion> {
    let blob = blob_from_params(params)?;
    let aligned = tinylens::writer::AlignedBytes::new(&blob);
    let model = Model::from_blob(aligned.as_bytes())?;
    let vocab = params.vocab.clone().unwrap_or_default();
    let n_ctx = params.config.n_ctx;
    let mut rng = SplitMix(seed);
    let mut r = NameCompletion {
        stories: n,
        mentions: 0,
        mentions_right: 0,
        chars: 0,
        chars_right: 0,
    };
    for _ in 0..n {
        let (text, names) = story_with_names(&mut rng);
        let tokens = encode(&vocab, &text)?;
        for name in &names {
            let pieces = encode(&vocab, &format!(" {name}"))?;
            let at: Vec<usize> = (0..tokens.len().saturating_sub(pieces.len() - 1))
                .filter(|&i| tokens[i..i + pieces.len()] == pieces[..])
                .collect();
            for pair in at.windows(2) {
                let (first, p) = (pair[0], pair[1]);
                let end = p + pieces.len();
                let start = end.saturating_sub(n_ctx);
                if first < start {
                    continue;
                }
                let predicted = greedy_predictions(&model, &tokens[start..end])?;
                let mut all = true;
                for i in pieces.len() / 2..pieces.len() {
                    let right = predicted[p + i - 1 - start] == tokens[p + i];
                    r.chars += 1;
                    r.chars_right += usize::from(right);
                    all &= right;
                }
                r.mentions += 1;
                r.mentions_right += usize::from(all);
            }
        }
    }
    Ok(r)
}

/// The argmax of the logits at every position of `tokens`, run token by token on the KV cache.
pub fn greedy_predictions(model: &Model<'_>, tokens: &[u32]) -> Result<Vec<u32>> {
    let mut arena = vec![0.0f32; model.config().state_len()];
    let mut decoder = tinylens::Decoder::new(model, &mut arena)?;
    let mut out = Vec::with_capacity(tokens.len());
    out.push(tinylens::argmax(decoder.prefill(&tokens[..1])?));
    for &t in &tokens[1..] {
        out.push(tinylens::argmax(decoder.step(t)?));
    }
    Ok(out)
}
