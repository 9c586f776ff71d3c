//! Training text: tokenizers built from a text, and the corpora of the demo models, generated
//! from a seed (no downloaded text).
//!
//! - [`skip_trigrams`]: word-level sentences with planted skip-trigrams, the examples of the
//!   framework paper: "keep ... in mind", "keep ... at bay", "keep ... under wraps", and names
//!   completed from an earlier mention ("Ralph ... @R" -> "alph"), mixed with plain sentences
//!   that use the same words without the trigram.
//! - [`stories`]: stories in which invented names recur ("Mr and Mrs Dursley
//!   ... Mr Dursley was"): the names are new in every story, so only an induction head can
//!   predict their second mention.
//!
//! - [`repeated_random`]: a random sequence of tokens repeated, the shape `tinylens heads`
//!   scores heads on; `tinylens train --repeated-random` mixes these windows into any corpus
//!   ([`is_repeated_window`] says which).
//!
//! A corpus is a list of token pieces; its vocabulary is the sorted set of pieces, and
//! [`crate::tokenize::encode`] (greedy longest match) splits the joined text back into the same
//! pieces, so prompts typed as text give the tokens the model was trained on.

use std::collections::BTreeSet;

use anyhow::{bail, Result};

use crate::analysis::SplitMix;

/// How a text file is split into tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tokenizer {
    /// One token per character.
    Char,
    /// One token per byte (bytes beyond ASCII are shown as the Latin-1 character of that byte).
    Byte,
    /// Words with their leading space (" keep"), and every other character on its own.
    Word,
}

impl Tokenizer {
    /// Parses `char`, `byte` or `word`.
    pub fn from_name(name: &str) -> Result<Tokenizer> {
        Ok(match name {
            "char" => Tokenizer::Char,
            "byte" => Tokenizer::Byte,
            "word" => Tokenizer::Word,
            _ => bail!("unknown --tokenizer {name:?}: expected char, byte or word"),
        })
    }

    /// Splits `text` into pieces.
    pub fn pieces(self, text: &str) -> Vec<String> {
        match self {
            Tokenizer::Char => text.chars().map(String::from).collect(),
            Tokenizer::Byte => text.bytes().map(|b| char::from(b).to_string()).collect(),
            Tokenizer::Word => {
                let mut out = Vec::new();
                let chars: Vec<char> = text.chars().collect();
                let mut i = 0;
                let is_word = |c: char| c.is_alphanumeric() || c == '\'';
                while i < chars.len() {
                    let start = i;
                    if chars[i] == ' ' && chars.get(i + 1).is_some_and(|&c| is_word(c)) {
                        i += 1;
                    }
                    if is_word(chars[i]) {
                        while i < chars.len() && is_word(chars[i]) {
                            i += 1;
                        }
                    } else {
                        i += 1;
                    }
                    out.push(chars[start..i].iter().collect());
                }
                out
            }
        }
    }
}

/// A corpus as token ids with its vocabulary.
#[derive(Clone, Debug, PartialEq)]
pub struct Corpus {
    /// The text of each token id, sorted.
    pub vocab: Vec<String>,
    /// The corpus.
    pub tokens: Vec<u32>,
}

impl Corpus {
    /// Numbers `pieces` with the sorted set of distinct pieces.
    pub fn from_pieces(pieces: &[String]) -> Corpus {
        let vocab: Vec<String> = pieces
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let tokens = pieces
            .iter()
            .map(|p| vocab.binary_search(p).expect("piece is in the vocabulary") as u32)
            .collect();
        Corpus { vocab, tokens }
    }

    /// The corpus as text.
    pub fn text(&self) -> String {
        crate::tokenize::decode(&self.vocab, &self.tokens)
    }
}

/// A small helper over [`SplitMix`] for the generators.
struct Gen(SplitMix);

impl Gen {
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.0.below(items.len())]
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.0.below(hi - lo + 1)
    }
}

// ------------------------------------------------------------------------------------------------
// demo-1l: planted skip-trigrams
// ------------------------------------------------------------------------------------------------

/// The "keep" idioms: the preposition after the object, and the word it calls for.
pub const KEEP_IDIOMS: [(&str, &str); 3] =
    [(" in", " mind"), (" at", " bay"), (" under", " wraps")];

/// Names mentioned whole (" Ralph") and later completed after an `@` ("@R" -> "alph").
pub const NAMES: [(&str, &str, &str); 6] = [
    (" Ralph", "R", "alph"),
    (" Lloyd", "L", "loyd"),
    (" Cindy", "C", "indy"),
    (" Pike", "P", "ike"),
    (" Catherine", "C", "atherine"),
    (" Vera", "V", "era"),
];

const SUBJECTS: [&str; 6] = [" we", " they", " you", " i", " she", " he"];
const ADJECTIVES: [&str; 8] = [
    " old", " small", " red", " quiet", " new", " big", " strange", " good",
];
const NOUNS: [&str; 10] = [
    " plan", " dog", " map", " secret", " wolves", " box", " letter", " garden", " cat", " idea",
];
const PLACES: [&str; 6] = [
    " house", " station", " table", " river", " market", " bridge",
];
const VERBS: [&str; 6] = [" found", " liked", " moved", " saw", " painted", " opened"];

/// A noun phrase of one to four words: " it", " the plan", " the old red map", ...
fn noun_phrase(g: &mut Gen, out: &mut Vec<String>) {
    match g.0.below(6) {
        0 => out.push(" it".into()),
        1 => out.push(" them".into()),
        _ => {
            out.push(g.pick(&[" the", " this", " that", " our"]).into());
            for _ in 0..g.range(0, 2) {
                out.push(g.pick(&ADJECTIVES).into());
            }
            out.push(g.pick(&NOUNS).into());
        }
    }
}

/// One sentence of the skip-trigram corpus.
fn skip_trigram_sentence(g: &mut Gen, out: &mut Vec<String>, name: usize) {
    let subject = g.pick(&SUBJECTS);
    match g.0.below(10) {
        // The planted trigrams: " keep" ... " in" -> " mind", " at" -> " bay", " under" -> " wraps".
        0..=3 => {
            let (prep, word) = KEEP_IDIOMS[g.0.below(KEEP_IDIOMS.len())];
            out.push(subject.into());
            if g.chance(0.3) {
                out.push(g.pick(&[" will", " must", " should"]).into());
            }
            out.push(" keep".into());
            noun_phrase(g, out);
            out.push(prep.into());
            out.push(word.into());
        }
        // The same prepositions without "keep": they go on with " the".
        4..=6 => {
            out.push(subject.into());
            out.push(g.pick(&VERBS).into());
            noun_phrase(g, out);
            out.push(g.pick(&[" in", " at", " under"]).into());
            out.push(" the".into());
            out.push(g.pick(&PLACES).into());
        }
        // A name completed from its earlier mention: " Ralph" ... " @" "R" "alph".
        7 | 8 => {
            let (_, initial, rest) = NAMES[name];
            out.push(subject.into());
            out.push(g.pick(&[" wrote", " called", " thanked"]).into());
            out.push(" @".into());
            out.push(initial.into());
            out.push(rest.into());
        }
        // Plain sentences.
        _ => {
            out.push(" the".into());
            out.push(g.pick(&NOUNS).into());
            out.push(g.pick(&[" is", " was"]).into());
            out.push(g.pick(&ADJECTIVES).into());
        }
    }
    out.push(" .".into());
}

/// The demo-1l corpus: `n_tokens` (about) word-level tokens of paragraphs, each introducing a
/// name and then mixing the planted skip-trigrams with plain sentences.
pub fn skip_trigrams(seed: u64, n_tokens: usize) -> Corpus {
    let mut g = Gen(SplitMix(seed));
    let mut pieces: Vec<String> = Vec::with_capacity(n_tokens + 64);
    while pieces.len() < n_tokens {
        let name = g.0.below(NAMES.len());
        pieces.push("\n".into());
        pieces.push(NAMES[name].0.into());
        pieces.push(g.pick(&VERBS).into());
        noun_phrase(&mut g, &mut pieces);
        pieces.push(" .".into());
        for _ in 0..g.range(2, 4) {
            skip_trigram_sentence(&mut g, &mut pieces, name);
        }
    }
    Corpus::from_pieces(&pieces)
}

// ------------------------------------------------------------------------------------------------
// demo-2l: stories with recurring invented names
// ------------------------------------------------------------------------------------------------

const CONSONANTS: &str = "bdfgklmnprstvz";
const VOWELS: &str = "aeiou";

/// An invented name: a capital consonant, then two to four consonant-vowel syllables, the
/// last consonant optional ("Dovakemu", "Tisuran"): every letter after the first few is a
/// fresh choice, so no statistics of names in general can predict it, only an earlier mention.
pub fn invented_name(rng: &mut SplitMix) -> String {
    let c: Vec<char> = CONSONANTS.chars().collect();
    let v: Vec<char> = VOWELS.chars().collect();
    let mut name = String::new();
    name.push(c[rng.below(c.len())].to_ascii_uppercase());
    name.push(v[rng.below(v.len())]);
    for _ in 0..1 + rng.below(3) {
        name.push(c[rng.below(c.len())]);
        name.push(v[rng.below(v.len())]);
    }
    if rng.below(2) == 0 {
        name.push(c[rng.below(c.len())]);
    }
    name
}

/// Words of the telegrams in the stories.
const TELEGRAM_WORDS: [&str; 24] = [
    "come", "home", "stop", "drills", "Drive", "number", "cat", "fence", "son", "sister", "was",
    "normal", "firm", "tie", "neck", "high", "chair", "about", "met", "parked", "at", "and", "the",
    "proud",
];

/// One story: a family with an invented surname, a child, a relative, a street and a firm,
/// each named several times.
pub fn story(rng: &mut SplitMix) -> String {
    story_with_names(rng).0
}

/// [`story`], and its invented names: surname, child, relative, street, firm.
pub fn story_with_names(rng: &mut SplitMix) -> (String, [String; 5]) {
    let surname = invented_name(rng);
    let child = invented_name(rng);
    let relative = invented_name(rng);
    let street = invented_name(rng);
    let firm = invented_name(rng);
    let mut g = Gen(SplitMix(rng.next_u64()));
    let number = g.range(2, 9);
    let mut s = format!(
        "Mr and Mrs {surname}, of number {number}, {street} Drive, were proud to say that they \
         were perfectly normal. "
    );
    let sentences = [
        format!("Mr {surname} was the director of a firm called {firm}, which made drills. "),
        format!("Mrs {surname} had a sister called {relative}. "),
        format!("The {surname}s had a small son called {child}. "),
        format!("{relative} never came to {street} Drive. "),
        format!("Mr {surname} met {relative} at {firm}. "),
        format!("{child} was in his high chair, screaming at {relative}. "),
        format!("Nobody at {firm} knew about {child}. "),
        format!("Mr {surname} drove to {firm} and parked. "),
        format!("Mrs {surname} told Mr {surname} about {relative}. "),
        format!("The cat on {street} Drive watched Mr {surname}. "),
        format!("{relative} and {child} waved. "),
    ];
    let n = g.range(4, 7);
    let guests_at = g.0.below(n);
    let telegram_at = g.0.below(n);
    for i in 0..n {
        s.push_str(&sentences[g.0.below(sentences.len())]);
        if i == guests_at {
            // A list of new names that comes back in the same order.
            let guests: Vec<String> = (0..g.range(3, 4)).map(|_| invented_name(rng)).collect();
            let list = guests.join(" ");
            s.push_str(&format!(
                "The guests were {list}. Mrs {surname} wrote down {list}. She read out {list}. \
                 {child} sang {list}, {list}. "
            ));
        }
        if i == telegram_at {
            // A telegram of random words, read twice: any token can come back.
            let words: Vec<String> = (0..g.range(10, 16))
                .map(|_| match g.0.below(3) {
                    0 => invented_name(rng),
                    _ => TELEGRAM_WORDS[g.0.below(TELEGRAM_WORDS.len())].to_string(),
                })
                .collect();
            let t = words.join(" ");
            s.push_str(&format!(
                "The telegram said {t}. Mr {surname} read it again: {t}. And again: {t}. "
            ));
        }
    }
    s.push('\n');
    (s, [surname, child, relative, street, firm])
}

/// Splits story text into tokens: words with their leading space (" were"), punctuation on its
/// own, and invented names into syllables (" Kavotus" -> " Ka" "vo" "tu" "s"), the way a BPE
/// tokenizer splits a rare name into pieces. Matching one syllable then says much more than
/// matching one character, which is what lets a two-layer model find the earlier mention.
pub fn story_pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for piece in Tokenizer::Word.pieces(text) {
        match name_syllables(&piece) {
            Some(parts) => out.extend(parts),
            None => out.push(piece),
        }
    }
    out
}

/// `" Kavotun"` -> `[" Ka", "vo", "tu", "n"]` when the word has the shape of an invented name
/// (a capital consonant, vowel, then consonant-vowel pairs and up to two final consonants).
fn name_syllables(word: &str) -> Option<Vec<String>> {
    let (space, rest) = match word.strip_prefix(' ') {
        Some(rest) => (" ", rest),
        None => ("", word),
    };
    let chars: Vec<char> = rest.chars().collect();
    let consonant = |c: char| CONSONANTS.contains(c);
    let vowel = |c: char| VOWELS.contains(c);
    if chars.len() < 2
        || !chars[0].is_ascii_uppercase()
        || !consonant(chars[0].to_ascii_lowercase())
        || !vowel(chars[1])
    {
        return None;
    }
    let mut parts = vec![format!("{space}{}{}", chars[0], chars[1])];
    let mut i = 2;
    while i + 1 < chars.len() && consonant(chars[i]) && vowel(chars[i + 1]) {
        parts.push(chars[i..i + 2].iter().collect());
        i += 2;
    }
    let finals = chars.len() - i;
    if finals > 2 || !chars[i..].iter().all(|&c| consonant(c)) {
        return None;
    }
    parts.extend(chars[i..].iter().map(|c| c.to_string()));
    Some(parts)
}

/// The demo-2l corpus: stories, about `n_tokens` tokens of [`story_pieces`]. The vocabulary
/// holds every syllable a name can have, seen in this corpus or not.
pub fn stories(seed: u64, n_tokens: usize) -> Corpus {
    let mut rng = SplitMix(seed);
    let mut pieces = Vec::with_capacity(n_tokens + 512);
    while pieces.len() < n_tokens {
        pieces.extend(story_pieces(&story(&mut rng)));
    }
    let mut corpus = Corpus::from_pieces(&pieces);
    let vocab: Vec<String> = corpus
        .vocab
        .iter()
        .cloned()
        .chain(name_alphabet())
        .chain((2..=9).map(|n| format!(" {n}")))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for t in &mut corpus.tokens {
        let piece = &corpus.vocab[*t as usize];
        *t = vocab
            .binary_search(piece)
            .expect("piece is in the vocabulary") as u32;
    }
    corpus.vocab = vocab;
    corpus
}

/// Every piece a name can be split into: " Ka", "vo", "n".
pub fn name_alphabet() -> Vec<String> {
    let mut out = Vec::new();
    for c in CONSONANTS.chars() {
        out.push(c.to_string());
        for v in VOWELS.chars() {
            out.push(format!(" {}{v}", c.to_ascii_uppercase()));
            out.push(format!("{c}{v}"));
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// Repeated random sequences, mixed into any corpus
// ------------------------------------------------------------------------------------------------

/// Whether training window `k` (counted over the whole run: window `j` of step `s` is
/// `s * batch + j`) is a repeated random sequence when a `fraction` of them are: exactly
/// `floor(n * fraction)` of the first `n` windows are, spread evenly over the run.
pub fn is_repeated_window(k: u64, fraction: f64) -> bool {
    ((k + 1) as f64 * fraction).floor() > (k as f64 * fraction).floor()
}

/// The shortest and longest period of a [`repeated_random`] window of `len` tokens: from an
/// eighth of the window (at least 2) to half of it, so every window holds at least two copies
/// and the period, drawn anew each time, cannot be found from positions alone.
pub fn repeat_periods(len: usize) -> (usize, usize) {
    let longest = (len / 2).max(1);
    ((len / 8).max(2).min(longest), longest)
}

/// A window of `len` tokens: a period of random tokens of `0..d_vocab` (its length drawn from
/// [`repeat_periods`]) repeated until the window is full, so `w[i] == w[i - period]`. Only an
/// induction head predicts the copies; a previous-token head is what it needs.
pub fn repeated_random(rng: &mut SplitMix, len: usize, d_vocab: usize) -> Vec<u32> {
    let (shortest, longest) = repeat_periods(len);
    let period = shortest + rng.below(longest - shortest + 1);
    let first: Vec<u32> = (0..period).map(|_| rng.below(d_vocab) as u32).collect();
    first.iter().copied().cycle().take(len).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::encode;

    #[test]
    fn generated_text_encodes_back_to_the_same_tokens() {
        for corpus in [skip_trigrams(3, 2000), stories(3, 3000)] {
            let text = corpus.text();
            assert_eq!(encode(&corpus.vocab, &text).unwrap(), corpus.tokens);
        }
    }

    #[test]
    fn corpora_are_deterministic_for_a_seed() {
        assert_eq!(skip_trigrams(7, 500), skip_trigrams(7, 500));
        assert_ne!(skip_trigrams(7, 500), skip_trigrams(8, 500));
        assert_eq!(stories(7, 500), stories(7, 500));
    }

    #[test]
    fn repeated_windows_are_the_asked_fraction_spread_evenly() {
        for (fraction, n, expected) in [(0.0, 1000, 0), (0.25, 1000, 250), (0.3, 10, 3)] {
            let count = (0..n).filter(|&k| is_repeated_window(k, fraction)).count();
            assert_eq!(count, expected, "fraction {fraction} of {n}");
        }
        // A quarter: one window in four, not a run of them.
        let quarter: Vec<bool> = (0..8).map(|k| is_repeated_window(k, 0.25)).collect();
        assert_eq!(
            quarter,
            [false, false, false, true, false, false, false, true]
        );
        assert!((0..100).all(|k| is_repeated_window(k, 1.0)));
    }

    #[test]
    fn repeated_random_windows_repeat_their_period() {
        let mut rng = SplitMix(9);
        let (shortest, longest) = repeat_periods(65);
        assert_eq!((shortest, longest), (8, 32));
        let mut periods = BTreeSet::new();
        for _ in 0..50 {
            let w = repeated_random(&mut rng, 65, 233);
            assert_eq!(w.len(), 65);
            assert!(w.iter().all(|&t| t < 233));
            // The shortest shift under which the window equals itself is its period.
            let period = (1..=longest)
                .find(|&p| (p..w.len()).all(|i| w[i] == w[i - p]))
                .expect("the window repeats");
            assert!((shortest..=longest).contains(&period), "period {period}");
            periods.insert(period);
        }
        assert!(periods.len() > 5, "periods drawn: {periods:?}");
        assert_eq!(repeat_periods(4), (2, 2));
    }

    #[test]
    fn tokenizers_split_as_documented() {
        let p = Tokenizer::Word.pieces("keep it, in mind");
        assert_eq!(p, ["keep", " it", ",", " in", " mind"]);
        assert_eq!(Tokenizer::Char.pieces("ab"), ["a", "b"]);
        assert_eq!(Tokenizer::Byte.pieces("a\u{e9}").len(), 3);
    }
}
