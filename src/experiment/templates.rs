//! `nerlab experiment new <template>`: an experiment file with one paper's design written in (its
//! languages, K values, variants and seeds), commented so that it can be read and edited before
//! anything runs. The sizes (seeds, K, languages, epochs, where the corpora are) are parameters;
//! every other setting is in the file, where the reader sees it, rather than in code.
//!
//! The four designs: `transfer-matrix` (source language x K x seed, each source trained once in a
//! stage), `maner` (MANER against plain fine-tuning, variant x language x seed), `polyglot`
//! (polyglot training then monolingual fine-tuning against monolingual training) and `ablation`
//! (seed 003's KoELECTRA + BiLSTM + CRF recipe on KLUE-NER, one trick removed per variant).

use std::fmt::Display;
use std::path::{Path, PathBuf};

/// A paper's design that `nerlab experiment new` can write out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    TransferMatrix,
    Maner,
    Polyglot,
    Ablation,
}

crate::choices!(named Template, "template":
    TransferMatrix = "transfer-matrix", Maner = "maner", Polyglot = "polyglot",
    Ablation = "ablation",
);

/// The sizes of a design: what a researcher scales to the machine at hand, the rest being the
/// paper's. Which fields a template reads: [`Template::uses_k`], [`Template::uses_languages`].
#[derive(Debug, Clone, PartialEq)]
pub struct Sizes {
    /// Seeds per setting (seeds 1..=n): the report averages over them.
    pub seeds: usize,
    /// transfer-matrix: K of the Korean K-shot fine-tuning (an axis). maner: training sentences per
    /// language (`data.max_sentences`, the paper's 100; an axis when several). Others: unused.
    pub k: Vec<usize>,
    /// WikiANN language codes (files `<data>/wikiann/xtreme-panx/{train,dev}-<lang>.tsv`):
    /// transfer-matrix's source languages, maner's and polyglot's languages. Ablation: unused.
    pub languages: Vec<String>,
    /// Epochs of every training stage in the file (none: each template's own per stage).
    pub epochs: Option<usize>,
    /// The root of the shared corpora, written into the file as it is given (a relative path is
    /// relative to where nerlab runs, as the experiment's `out` is).
    pub data: PathBuf,
}

impl Template {
    /// Every template, in the order `--help` lists them.
    pub const ALL: [Template; 4] = [
        Self::TransferMatrix,
        Self::Maner,
        Self::Polyglot,
        Self::Ablation,
    ];

    /// One line for `nerlab experiment new --help`.
    pub fn summary(self) -> &'static str {
        match self {
            Self::TransferMatrix => {
                "transfer to Korean through virtual label words: source language x K x seed"
            }
            Self::Maner => {
                "MANER against plain fine-tuning on 100 sentences: variant x language x seed"
            }
            Self::Polyglot => {
                "polyglot training then monolingual fine-tuning against monolingual training"
            }
            Self::Ablation => {
                "KoELECTRA + BiLSTM + CRF with FGM, R-Drop, MSD on KLUE-NER: one trick removed per variant"
            }
        }
    }

    /// Whether [`Sizes::k`] means anything here (so a command line can refuse `--k` otherwise).
    pub fn uses_k(self) -> bool {
        matches!(self, Self::TransferMatrix | Self::Maner)
    }

    /// Whether [`Sizes::languages`] means anything here (ablation is KLUE-NER, Korean only).
    pub fn uses_languages(self) -> bool {
        !matches!(self, Self::Ablation)
    }

    /// The paper's sizes, restricted to the corpora the shared data has.
    pub fn default_sizes(self) -> Sizes {
        let langs = |l: &[&str]| -> Vec<String> { l.iter().map(|s| (*s).to_string()).collect() };
        let (k, languages) = match self {
            // MultiCoNER I's ten languages besides Korean; WikiANN has every one.
            Self::TransferMatrix => (
                vec![1, 5, 10],
                langs(&["bn", "de", "en", "es", "fa", "hi", "nl", "ru", "tr", "zh"]),
            ),
            // The shared WikiANN languages with exactly 100 training sentences.
            Self::Maner => (vec![100], langs(&["gu", "jv", "my", "pa", "qu", "yo"])),
            Self::Polyglot => (Vec::new(), langs(&["ko", "en", "de", "es", "nl"])),
            Self::Ablation => (Vec::new(), Vec::new()),
        };
        Sizes {
            seeds: 3,
            k,
            languages,
            epochs: None,
            data: PathBuf::from("../shared/data"),
        }
    }

    /// Why `sizes` cannot make this design, in the words of the command line's flags.
    pub fn check(self, sizes: &Sizes) -> Result<(), String> {
        if sizes.seeds == 0 {
            return Err("--seeds: at least 1".into());
        }
        if sizes.epochs == Some(0) {
            return Err("--epochs: at least 1".into());
        }
        if self.uses_languages() {
            if sizes.languages.is_empty() {
                return Err(format!("{}: --languages needs at least one", self.name()));
            }
            if let Some(l) = sizes.languages.iter().find(|l| l.trim().is_empty()) {
                return Err(format!("--languages: {l:?} is not a language code"));
            }
            if let Some(l) = first_repeat(&sizes.languages) {
                return Err(format!("--languages: {l} is given twice"));
            }
        }
        if self == Self::Polyglot && sizes.languages.len() < 2 {
            return Err("polyglot: --languages needs two or more (one is monolingual)".into());
        }
        if self.uses_k() {
            if sizes.k.is_empty() {
                return Err(format!("{}: --k needs at least one value", self.name()));
            }
            if let Some(k) = first_repeat(&sizes.k) {
                return Err(format!("--k: {k} is given twice"));
            }
        }
        if self == Self::Maner && sizes.k.contains(&0) {
            return Err("maner: --k is a number of training sentences; 0 trains nothing".into());
        }
        Ok(())
    }

    /// The commented experiment file, named `name` (its runs go to `runs/<name>`; the comments
    /// call the file `<name>.toml`). Sizes should pass [`Template::check`] first: an empty list
    /// renders, and `nerlab experiment plan` then refuses it.
    pub fn render(self, name: &str, sizes: &Sizes) -> String {
        match self {
            Self::TransferMatrix => transfer_matrix(name, sizes),
            Self::Maner => maner(name, sizes),
            Self::Polyglot => polyglot(name, sizes),
            Self::Ablation => ablation(name, sizes),
        }
    }
}

fn first_repeat<T: PartialEq>(xs: &[T]) -> Option<&T> {
    xs.iter()
        .enumerate()
        .find(|&(i, x)| xs[..i].contains(x))
        .map(|(_, x)| x)
}

/// A TOML string literal (quoted and escaped).
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A corpus under the data root, as a TOML string.
fn corpus(data: &Path, rel: &str) -> String {
    q(&data.join(rel).to_string_lossy())
}

/// A WikiANN (XTREME's Rahimi splits) file, as a TOML string.
fn wikiann(s: &Sizes, split: &str, lang: &str) -> String {
    corpus(&s.data, &format!("wikiann/xtreme-panx/{split}-{lang}.tsv"))
}

/// `[1, 5, 10]`.
fn list<T: Display>(xs: &[T]) -> String {
    let items: Vec<String> = xs.iter().map(ToString::to_string).collect();
    format!("[{}]", items.join(", "))
}

fn seeds(s: &Sizes) -> String {
    list(&(1..=s.seeds).collect::<Vec<_>>())
}

/// A TOML list written one entry a line, each with its language as a comment.
fn lines_by_language(s: &Sizes, entry: impl Fn(&str) -> String) -> String {
    let mut out = String::from("[\n");
    for l in &s.languages {
        out.push_str(&format!("  {},  # {l}\n", entry(l.as_str())));
    }
    out.push(']');
    out
}

/// How to run the file, the same in every template.
fn how_to_run(name: &str) -> String {
    format!(
        r#"# Run it from the folder the paths in this file are relative to (where `out` goes):
#   every run and its folder, nothing trained:  nerlab experiment plan {name}.toml
#   train what is missing (again: resume):      nerlab experiment run {name}.toml --jobs 2
#   planned, running, failed, done:             nerlab experiment status {name}.toml
#   mean, sd, 95 % interval over the seeds:     nerlab experiment report {name}.toml
#     (report.md, results.json and results.csv in `out`)
# --jobs 2 trains two runs at once, the cores shared out (--threads N per run). Ctrl-C stops every
# run at a checkpoint. A run is identified by its resolved configuration and data: editing this
# file later trains only the runs that changed. With a GPU, add device = "cuda:0" to [base] and to
# every [stages.*.base]."#
    )
}

/// The label words of WikiANN's types: each prompt token starts as the mean embedding of its
/// word's pieces (O takes nerlab's "other").
const WIKIANN_LABEL_WORDS: &str = r#"{ PER = "person", LOC = "location", ORG = "organization" }"#;

fn transfer_matrix(name: &str, s: &Sizes) -> String {
    format!(
        "{}{}",
        transfer_matrix_notes(name, s),
        transfer_matrix_body(name, s)
    )
}

/// The header of the transfer-matrix file: the design, the data, the model, the parameters.
fn transfer_matrix_notes(name: &str, s: &Sizes) -> String {
    let (n_src, n_k) = (s.languages.len(), s.k.len());
    let n_main = n_src * n_k * s.seeds;
    let data = s.data.display();
    let mc2 = corpus(&s.data, "multiconer2/EN-English/en-train90.conll");
    format!(
        r#"# {name}: transfer to Korean through virtual label words, source language x K x seed.
# Written by `nerlab experiment new transfer-matrix`: edit anything, then run it (below).
#
# The design. A multilingual masked language model learns NER on one source language with one
# added token per entity type and one for O ("virtual label words" such as [PER], each initialized
# from the mean embedding of its label word's pieces), predicted through the MLM head
# (model.prompt = true, model.label_words; EntLM's label-word prediction, Ma et al., NAACL 2022).
# A token means the same type in every language, so each source run is then fine-tuned on K
# examples of every type of Korean (greedy K-shot sampling: every type at least K mentions) and
# scored on Korean dev. Stage `source` trains each source language once; the main stage fine-tunes
# every source run for every K and seed. The report is the transfer matrix: a row per source, a
# column per K, mean +- sd over the seeds. (No paper on virtual label words for transfer to Korean
# could be read where nerlab was written, docs/METHODS.md: the settings below are nerlab's choices.)
#
# The data. The design's sources are the ten languages of MultiCoNER I besides Korean (bn de en es
# fa hi nl ru tr zh), its Korean the target. MultiCoNER I is not in the shared corpora (only
# MultiCoNER II's en and hi, with no Korean), so the sources and the target here are WikiANN's
# (Rahimi splits under DATA/wikiann/xtreme-panx: all ten languages and Korean; PER, LOC, ORG). To add
# a source, add a line to "data.train" in [stages.source.grid]: a list of one corpus file, a Hub
# dataset ("hf:<repo>:<config>/<split>", "wikiann:<lang>/train") or several corpora (mixed). The
# shared MultiCoNER II has 33 fine types that share no code with WikiANN's PER, LOC, ORG, so only
# its encoder carries over, not its label tokens (init_head = "remap" keeps the tokens of the types
# both sides have); its English would be the line
#   [{mc2}],
# With MultiCoNER I itself, point the main stage's data.train and data.dev at its Korean files too.
#
# The model. The design needs a multilingual masked LM with its pretrained MLM head: on a machine
# that reaches the Hugging Face Hub, set model.source = "xlmr-base" (or "xlmr-large") in both
# stages and delete model.fresh_mlm_head. Offline nerlab reaches multilingual-e5-small ("e5-small":
# ../shared/models/obtain.sh puts it in ~/.cache/ner-models), which ships without an MLM head:
# fresh_mlm_head = true trains a freshly initialized one, so expect the mechanics, not the design's
# numbers. model.source = "char" (nerlab's character model, nothing to download) runs the whole
# grid quickly as a check of the file, but shares nothing between scripts.
#
# Parameters (nerlab experiment new transfer-matrix --seeds 3 --k 1,5,10 --languages en,hi
#             --epochs N --data DIR):
#   sources  [stages.source.grid] "data.train": one list of corpora per source run; --languages
#            gives WikiANN's DATA/wikiann/xtreme-panx/train-<lang>.tsv
#   K        [grid] "data.k_shot": mentions of each type in the Korean sample; 0 adds a zero-shot
#            column (the source run scored on Korean dev, nothing trained)
#   seeds    [grid] seed: every fine-tuning repeated; the report averages over them
#   epochs   train.epochs of each stage
#   DATA     the root of the shared corpora: {data}
# This file: {n_src} source runs, then {n_src} sources x {n_k} K x {seeds_n} seeds = {n_main} fine-tuning runs.
#
"#,
        seeds_n = s.seeds,
    )
}

/// The stages and the report of the transfer-matrix file.
fn transfer_matrix_body(name: &str, s: &Sizes) -> String {
    let ko_train = wikiann(s, "train", "ko");
    let ko_dev = wikiann(s, "dev", "ko");
    let sources = lines_by_language(s, |l| format!("[{}]", wikiann(s, "train", l)));
    let source_epochs = s.epochs.unwrap_or(3);
    let main_epochs = s.epochs.unwrap_or(20);
    format!(
        r#"{run}

name = {name_q}
out = {out_q}

# Stage `source`: one run per source language, its best checkpoint chosen on Korean dev (so its
# report is also the source's zero-shot score on Korean). A complete run configuration of its own:
# nothing in [base] below applies to it.
[stages.source.base]
seed = 1
data.dev = {ko_dev}
data.max_sentences = 0          # every sentence of the source; e.g. 2000 for a quick pass on a CPU
model.source = "e5-small"
model.prompt = true
model.fresh_mlm_head = true
model.label_words = {label_words}
train.epochs = {source_epochs}
train.batch_size = 16
train.lr = 5e-5
train.warmup_ratio = 0.1

[stages.source.grid]
# One source run per entry. (seed = [1, 2, 3] here would train each source once per seed, and
# the main stage's seed s would fine-tune the source run of seed s: a stage axis the main stage
# has too pairs with it.)
"data.train" = {sources}

# The main stage: every point starts from a run of stage `source` (its best model) and is
# fine-tuned on a K-shot sample of Korean.
[base]
init_from = "stage:source"
init_head = "remap"             # types both label sets have keep their trained label tokens
data.train = [{ko_train}]
data.dev = {ko_dev}
data.sample_seed = 0            # draws the K-shot sample: one support set for every seed; to vary
                                # it too, add "data.sample_seed" = [1, 2, 3] to [grid]
model.source = "e5-small"
model.prompt = true
model.fresh_mlm_head = true
model.label_words = {label_words}
# A K-shot sample is a few sentences: many short epochs.
train.epochs = {main_epochs}
train.batch_size = 4
train.lr = 5e-5
train.warmup_ratio = 0.1
train.eval_every = 0            # Korean dev (10,000 sentences) at every epoch's end; on a CPU,
                                # evaluate every N steps instead, or train fewer epochs

[grid]
"data.k_shot" = {k}
seed = {seeds}

[report]
rows = ["source.data.train"]    # a stage's axes appear in the main stage as "<stage>.<axis>"
columns = ["data.k_shot"]
metric = "dev.micro.f1"         # a path into each run's report.json (dev.macro.f1, ...)
"#,
        run = how_to_run(name),
        name_q = q(name),
        out_q = q(&format!("runs/{name}")),
        label_words = WIKIANN_LABEL_WORDS,
        k = list(&s.k),
        seeds = seeds(s),
    )
}

/// The tail the per-language designs share: dev and train corpora zipped by language, the grid,
/// and a report of languages by variant against `baseline`.
fn languages_and_report(dev: &str, train: &str, grid: &str, baseline: &str) -> String {
    format!(
        r#"[zip]
"data.dev" = {dev}
"data.train" = {train}

[grid]
{grid}

[report]
rows = ["data.dev+data.train"]  # the [zip] axis: its keys joined by "+", in sorted order
columns = ["variant"]
metric = "dev.micro.f1"
baseline = {{ variant = "{baseline}" }}
"#
    )
}

fn maner(name: &str, s: &Sizes) -> String {
    let n_sizes = s.k.len().max(1);
    let n_runs = 2 * s.languages.len() * n_sizes * s.seeds;
    let (sizes_in_base, sizes_in_grid, sizes_count) = match s.k.as_slice() {
        [one] => (
            format!(
                "data.max_sentences = {one}         # a random sample of each language's training sentences\n"
            ),
            String::new(),
            String::new(),
        ),
        many => (
            String::new(),
            if many.is_empty() {
                String::new()
            } else {
                format!(
                    "\"data.max_sentences\" = {}   # training sentences per language (a random sample)\n",
                    list(many)
                )
            },
            format!(" x {} sizes", many.len()),
        ),
    };
    let train = lines_by_language(s, |l| format!("[{}]", wikiann(s, "train", l)));
    let dev = lines_by_language(s, |l| wikiann(s, "dev", l));
    let tail = languages_and_report(
        &dev,
        &train,
        &format!("{sizes_in_grid}seed = {}", seeds(s)),
        "baseline",
    );
    let epochs = s.epochs.unwrap_or(10);
    let data = s.data.display();
    format!(
        r#"# {name}: MANER against plain fine-tuning on 100-sentence languages, variant x language x seed.
# Written by `nerlab experiment new maner`: edit anything, then run it (below).
#
# The paper. Sonkar, Wang and Baraniuk, "MANER: Mask Augmented Named Entity Recognition for Extreme
# Low-Resource Languages" (SustaiNLP 2023, arXiv:2212.09723): "we prepend a [mask] token to every
# word in a sentence and predict the named entity for each word from its preceding [mask] token",
# on WikiANN languages with as few as 100 training sentences. Here: variant `maner`
# (model.marker = "mask": a word's label is read at its mask) against `baseline` (plain
# fine-tuning: at the word's first piece), for every language and seed, on 100 training sentences
# (data.max_sentences). The report: a row per language, a column per variant, each compared with
# `baseline` by Almost Stochastic Order over the seeds. The paper's controls are further variants,
# written below as comments.
#
# The data. The shared WikiANN (Rahimi splits, DATA/wikiann/xtreme-panx) has six languages with
# exactly 100 training and 100 dev sentences: gu jv my pa qu yo. The paper covers 100 languages;
# only its abstract could be read where nerlab was written, so its language list and splits are not
# checked. Add a language as one more entry of both [zip] lists, at the same position: files, or
# the Hub's ["wikiann:<lang>/train"] with "wikiann:<lang>/dev".
#
# The model. The `maner` preset trains it as nerlab's issue read the paper: XLM-R large, lr 5e-6,
# 30 epochs (not checked against the paper itself, docs/METHODS.md). On a machine that reaches the
# Hugging Face Hub set model.source = "xlmr-large", train.lr = 5e-6, train.epochs = 30. Offline: 
# multilingual-e5-small (XLM-R's vocabulary and <mask>; ../shared/models/obtain.sh), as the
# `maner-cpu` preset trains it: lr 5e-5, 10 epochs, batch 8 (the batch size is nerlab's choice).
#
# Parameters (nerlab experiment new maner --seeds 3 --k 100 --languages yo,jv --epochs N --data DIR):
#   languages  [zip] "data.dev" and "data.train", taken together (the i-th entry of each)
#   K          training sentences per language (data.max_sentences; the paper's 100); several
#              values make it an axis of [grid]
#   seeds      [grid] seed; the report averages over them (the 100 sentences are drawn with
#              data.sample_seed, the same for every seed)
#   epochs     train.epochs
#   DATA       the root of the shared corpora: {data}
# This file: 2 variants x {n_lang} languages{sizes_count} x {seeds_n} seeds = {n_runs} runs.
#
{run}

name = {name_q}
out = {out_q}

[base]
{sizes_in_base}data.sample_seed = 0
model.source = "e5-small"
model.head = "softmax"
train.epochs = {epochs}
train.batch_size = 8
train.lr = 5e-5
train.bucket = false            # a plain random sampler: 100 sentences need no length buckets
train.eval_every = 0            # evaluate at every epoch's end

[variants.maner]
"model.marker" = "mask"         # the tokenizer's mask before every word; the label is read there

[variants.baseline]
"model.marker" = "none"         # plain input: a word's label at its first piece

# The paper's controls, as further variants (uncomment a pair of lines to add one):
# [variants.fresh-marker]
# "model.marker" = "fresh"      # an untrained added token before every word instead of the mask
# [variants.word-mask]
# "model.word_mask_prob" = 0.15 # baseline 2: each word replaced by one mask with this probability
#                               # (0.15 is nerlab's choice; the paper's could not be read)

{tail}"#,
        run = how_to_run(name),
        name_q = q(name),
        out_q = q(&format!("runs/{name}")),
        n_lang = s.languages.len(),
        seeds_n = s.seeds,
    )
}

fn polyglot(name: &str, s: &Sizes) -> String {
    let n_lang = s.languages.len();
    let n_runs = 3 * n_lang * s.seeds;
    let all_train = lines_by_language(s, |l| wikiann(s, "train", l));
    let train = lines_by_language(s, |l| format!("[{}]", wikiann(s, "train", l)));
    let dev = lines_by_language(s, |l| wikiann(s, "dev", l));
    let tail = languages_and_report(&dev, &train, &format!("seed = {}", seeds(s)), "monolingual");
    let first = s.languages.first().map_or("", String::as_str);
    let first_dev = wikiann(s, "dev", first);
    let epochs = s.epochs.unwrap_or(3);
    let data = s.data.display();
    format!(
        r#"# {name}: polyglot training then monolingual fine-tuning, against monolingual training:
# variant x language x seed. Written by `nerlab experiment new polyglot`: edit anything, then run it.
#
# The paper. Mueller, Andrews and Dredze, "Sources of Transfer in Multilingual Named Entity
# Recognition" (ACL 2020): "naive training of NER models using annotated data drawn from multiple
# languages consistently underperforms models trained on monolingual data alone [...] polyglot
# models are fine-tuned on monolingual data to consistently and significantly outperform their
# monolingual counterparts." Three variants, for every language and seed:
#   monolingual   trained on the language alone (the baseline)
#   polyglot      the polyglot model scored on the language's dev as it is (data.k_shot = 0 trains
#                 nothing: an evaluation, and its seeds give one number)
#   polyglot-ft   the polyglot model fine-tuned on the language, on the monolingual schedule
# Stage `polyglot` trains one model on every language together, once; both polyglot variants start
# from its best checkpoint. (One run can also do both steps: [finetune] in a run configuration,
# docs/METHODS.md. Here the polyglot model is shared by every language rather than trained again
# for each.) The report: a row per language, a column per variant, each compared with `monolingual`
# by Almost Stochastic Order over the seeds.
#
# The data. WikiANN (Rahimi splits, DATA/wikiann/xtreme-panx: 20 languages, PER, LOC, ORG). Only
# the paper's abstract could be read where nerlab was written: its languages and encoders are not
# checked. To add a language by hand, add its training file to the stage's data.train and one more
# entry to both [zip] lists, at the same position. The polyglot model keeps the checkpoint that is
# best on the first language's dev ({first}).
#
# The model. multilingual-e5-small (offline; ../shared/models/obtain.sh). On a machine that reaches
# the Hugging Face Hub, a multilingual encoder such as "xlmr-base" or "mbert": set model.source in
# both [stages.polyglot.base] and [base].
#
# Parameters (nerlab experiment new polyglot --seeds 3 --languages ko,en,de --epochs N --data DIR):
#   languages  the stage's data.train (all of them together) and the [zip] lists (one each)
#   seeds      [grid] seed of the main stage; the polyglot model is one run (seed 1)
#   epochs     train.epochs of both stages
#   DATA       the root of the shared corpora: {data}
# data.max_sentences caps every language's training corpus, in the stage and in [base] alike.
# This file: 1 polyglot run, then 3 variants x {n_lang} languages x {seeds_n} seeds = {n_runs} runs.
#
{run}

name = {name_q}
out = {out_q}

# Stage `polyglot`: every language together, one run. A complete run configuration of its own:
# nothing in [base] below applies to it.
[stages.polyglot.base]
seed = 1
data.train = {all_train}
data.dev = {first_dev}
data.max_sentences = 0          # sentences per language (0: all); e.g. 2000 for a CPU, in [base] too
model.source = "e5-small"
train.epochs = {epochs}
train.batch_size = 16
train.lr = 5e-5
train.warmup_ratio = 0.1

[base]
data.max_sentences = 0
model.source = "e5-small"
train.epochs = {epochs}
train.batch_size = 16
train.lr = 5e-5
train.warmup_ratio = 0.1

[variants.monolingual]
# Nothing to set: the language's own corpus, from the pretrained encoder.

[variants.polyglot]
init_from = "stage:polyglot"
"data.k_shot" = 0

[variants.polyglot-ft]
init_from = "stage:polyglot"

{tail}"#,
        run = how_to_run(name),
        name_q = q(name),
        out_q = q(&format!("runs/{name}")),
        seeds_n = s.seeds,
    )
}

fn ablation(name: &str, s: &Sizes) -> String {
    let n_runs = 6 * s.seeds;
    let epochs = s.epochs.unwrap_or(3);
    let klue_path = s.data.join("klue-ner/klue-ner-v1.1_dev.tsv");
    let klue_dev_q = q(&klue_path.to_string_lossy());
    let klue_dev = klue_path.display();
    let data = s.data.display();
    format!(
        r#"# {name}: ablation of KoELECTRA + BiLSTM + CRF with FGM, R-Drop and multi-sample dropout on
# KLUE-NER, one character per unit: variant x seed.
# Written by `nerlab experiment new ablation`: edit anything, then run it (below).
#
# The recipe. `nerlab train --preset klue-koelectra-bilstm-crf` (seed 003's recipe, docs/METHODS.md):
# KoELECTRA-base v3, a BiLSTM of 256 per direction, a CRF, FGM on the word embeddings (epsilon
# 0.5), R-Drop (alpha 0.5, the KL's two directions summed), multi-sample dropout over 5 masks
# averaging the logits, every character of KLUE its own unit. [base] sets each of the preset's keys,
# so the file reads on its own. Six variants, each taking one piece away from `full`:
#   full        everything (the baseline)
#   no-fgm      train.fgm_epsilon = 0
#   no-rdrop    train.rdrop_alpha = 0
#   no-msd      one dropout sample (model.msd_samples = 1)
#   no-crf      the BiLSTM then a softmax layer (head "bilstm"; "softmax" would drop the BiLSTM too)
#   no-bilstm   the CRF straight on the encoder (head "crf")
# The report: a row per variant, each compared with `full` by Almost Stochastic Order over seeds.
#
# The data. KLUE-NER's train split is not in the shared corpora: data.train is the Hub's
# klue-ner/train; data.dev is the shared KLUE-NER v1.1 dev. Without the Hub, split the shared dev as
# docs/METHODS.md does, and train and score on the two parts (never on the same sentences):
#   awk 'BEGIN{{RS="";ORS="\n\n"}} NR<=4000' {klue_dev} > klue-train4000.tsv
#   awk 'BEGIN{{RS="";ORS="\n\n"}} NR>4000 && NR<=4500' {klue_dev} > klue-held500.tsv
# then data.train = ["klue-train4000.tsv"] and data.dev = "klue-held500.tsv".
#
# The model. The recipe's KoELECTRA-base v3 comes from the Hugging Face Hub only: where the Hub is
# reachable, set model.source = "koelectra-base-v3". Offline this file uses multilingual-e5-small
# (../shared/models/obtain.sh); on a small run with one character per unit it still predicted only
# O (docs/METHODS.md), so give it the whole train split and its epochs before reading the ablation.
#
# The metric: KLUE's entity-level macro F1 (dev.macro.f1); KLUE's character-level macro F1 is
# dev.char.macro_f1_with_o.
#
# Parameters (nerlab experiment new ablation --seeds 3 --epochs N --data DIR):
#   seeds      [grid] seed; the report averages over them
#   epochs     train.epochs (the recipe gives none; the preset keeps 3)
#   DATA       the root of the shared corpora: {data}
# This file: 6 variants x {seeds_n} seeds = {n_runs} runs.
#
{run}

name = {name_q}
out = {out_q}

[base]
data.train = ["klue-ner/train"]
data.dev = {klue_dev_q}
model.source = "e5-small"
model.head = "bilstm-crf"
model.lstm_hidden = 256
model.msd_samples = 5
model.msd_average = "logits"
model.max_length = 128
model.char_units = "characters"
train.fgm_epsilon = 0.5
train.rdrop_alpha = 0.5
train.rdrop_kl = "sum"
train.lr = 3e-5
train.head_lr = 1e-3
train.warmup_ratio = 0.1
train.clip_norm = 1.0
train.batch_size = 32
train.epochs = {epochs}

[variants.full]
# Nothing to take away.

[variants.no-fgm]
"train.fgm_epsilon" = 0.0

[variants.no-rdrop]
"train.rdrop_alpha" = 0.0

[variants.no-msd]
"model.msd_samples" = 1

[variants.no-crf]
"model.head" = "bilstm"

[variants.no-bilstm]
"model.head" = "crf"

[grid]
seed = {seeds}

[report]
rows = ["variant"]
metric = "dev.macro.f1"
baseline = {{ variant = "full" }}
"#,
        run = how_to_run(name),
        name_q = q(name),
        out_q = q(&format!("runs/{name}")),
        seeds = seeds(s),
        seeds_n = s.seeds,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{ExperimentFile, Plan, plan};

    /// A data root holding every corpus the templates name for `langs` (WikiANN train and dev,
    /// KLUE dev), one sentence each: planning checks that local corpora exist and hashes their
    /// bytes, and reads nothing else, so the tests need neither ../shared/data nor a model.
    fn fake_data(tag: &str, langs: &[&str]) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("nerlab-templates-{}-{tag}", std::process::id()));
        let panx = root.join("wikiann/xtreme-panx");
        std::fs::create_dir_all(&panx).unwrap();
        for l in langs.iter().chain(&["ko"]) {
            for split in ["train", "dev"] {
                std::fs::write(
                    panx.join(format!("{split}-{l}.tsv")),
                    format!("{l}{split}\tB-LOC\n"),
                )
                .unwrap();
            }
        }
        std::fs::create_dir_all(root.join("klue-ner")).unwrap();
        std::fs::write(
            root.join("klue-ner/klue-ner-v1.1_dev.tsv"),
            "## klue-ner-v1_dev_00000\t<서울:LC>\n서\tB-LC\n울\tI-LC\n",
        )
        .unwrap();
        root
    }

    /// Tiny sizes over a fake data root, checked as the command line would.
    fn sizes(t: Template, data: &Path, seeds: usize, k: &[usize], langs: &[&str]) -> Sizes {
        let s = Sizes {
            seeds,
            k: k.to_vec(),
            languages: langs.iter().map(|l| (*l).to_string()).collect(),
            epochs: None,
            data: data.to_path_buf(),
        };
        assert_eq!(t.check(&s), Ok(()), "{t}");
        s
    }

    /// Renders, parses as an experiment file, plans; checks the header and that every axis the
    /// report names exists.
    fn planned(t: Template, s: &Sizes) -> (String, Plan) {
        let text = t.render("tiny", s);
        assert!(text.starts_with("# tiny: "), "{t}: the header comes first");
        assert!(
            text.contains("nerlab experiment run tiny.toml --jobs 2")
                && text.contains("nerlab experiment report tiny.toml"),
            "{t}: the header says how to run it"
        );
        let file: ExperimentFile =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{t}: {e}\n{text}"));
        assert_eq!(file.name, "tiny");
        let p = plan(&file).unwrap_or_else(|e| panic!("{t}: {e:#}"));
        for axis in file.report.rows.iter().chain(&file.report.columns) {
            assert!(
                p.axes.contains(axis),
                "{t}: report axis {axis} not in {:?}",
                p.axes
            );
        }
        for axis in file.report.baseline.keys() {
            assert!(p.axes.contains(axis), "{t}: baseline axis {axis}");
        }
        (text, p)
    }

    #[test]
    fn names_round_trip_and_every_default_renders_an_experiment_file() {
        for t in Template::ALL {
            assert_eq!(t.name().parse::<Template>(), Ok(t));
            let s = t.default_sizes();
            assert_eq!(t.check(&s), Ok(()), "{t}");
            assert_eq!(s.data, PathBuf::from("../shared/data"));
            let text = t.render(t.name(), &s);
            let file: ExperimentFile =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{t}: {e}\n{text}"));
            assert_eq!(file.out, PathBuf::from(format!("runs/{}", t.name())));
        }
        let err = "transfer".parse::<Template>().unwrap_err();
        assert!(
            err.contains("expected transfer-matrix, maner, polyglot or ablation"),
            "{err}"
        );
        assert_eq!(
            Template::TransferMatrix.default_sizes().languages.join(" "),
            "bn de en es fa hi nl ru tr zh"
        );
    }

    #[test]
    fn sizes_that_cannot_make_the_design_are_refused() {
        let t = Template::Maner;
        let ok = t.default_sizes();
        let with = |f: &dyn Fn(&mut Sizes)| {
            let mut s = ok.clone();
            f(&mut s);
            t.check(&s).unwrap_err()
        };
        assert!(with(&|s| s.seeds = 0).contains("--seeds"));
        assert!(with(&|s| s.k = vec![0]).contains("0 trains nothing"));
        assert!(
            with(&|s| s.languages = vec!["yo".into(), "yo".into()]).contains("yo is given twice")
        );
        let mut one = Template::Polyglot.default_sizes();
        one.languages.truncate(1);
        assert!(
            Template::Polyglot
                .check(&one)
                .unwrap_err()
                .contains("two or more")
        );
        assert!(!Template::Ablation.uses_k() && !Template::Ablation.uses_languages());
    }

    // Depends on the experiment stages ([stages.NAME], init_from = "stage:NAME") being
    // implemented alongside this file: if it fails to plan, check the stage syntax first.
    #[test]
    fn transfer_matrix_trains_each_source_once_then_every_k_and_seed() {
        let data = fake_data("tm", &["en", "hi"]);
        let s = sizes(
            Template::TransferMatrix,
            &data,
            2,
            &[1, 5, 10],
            &["en", "hi"],
        );
        let (_, p) = planned(Template::TransferMatrix, &s);
        // 2 sources, then 2 sources x 3 K x 2 seeds.
        assert_eq!(p.points.len(), 2 + 2 * 3 * 2);
        let main: Vec<_> = p
            .points
            .iter()
            .filter(|q| q.axes.contains_key("data.k_shot"))
            .collect();
        assert_eq!(main.len(), 12);
        assert!(
            main.iter()
                .all(|q| q.axes.contains_key("source.data.train"))
        );
        assert!(
            main.iter()
                .all(|q| q.config.model.prompt && q.config.init_from.is_some())
        );
        assert!(main[0].config.data.train[0].ends_with("train-ko.tsv"));
        let sources: Vec<_> = p
            .points
            .iter()
            .filter(|q| !q.axes.contains_key("data.k_shot"))
            .collect();
        assert_eq!(sources.len(), 2);
        assert!(sources[1].config.data.train[0].ends_with("train-hi.tsv"));
        assert_eq!(sources[0].config.train.epochs, 3);
        assert_eq!(main[0].config.train.epochs, 20);
        std::fs::remove_dir_all(&data).unwrap();
    }

    #[test]
    fn maner_is_variant_by_language_by_seed_on_100_sentences() {
        use crate::model::align::Marker;
        let data = fake_data("maner", &["yo", "jv"]);
        let s = sizes(Template::Maner, &data, 2, &[100], &["yo", "jv"]);
        let (text, p) = planned(Template::Maner, &s);
        assert!(text.contains("data.max_sentences = 100"));
        assert_eq!(p.points.len(), 2 * 2 * 2);
        for q in &p.points {
            let c = &q.config;
            assert_eq!(c.data.max_sentences, 100);
            let lang = if c.data.dev.as_deref().unwrap_or("").ends_with("dev-yo.tsv") {
                "yo"
            } else {
                "jv"
            };
            assert!(
                c.data.train[0].ends_with(&format!("train-{lang}.tsv")),
                "zipped by language"
            );
            let marker = if q.axes["variant"] == "maner" {
                Marker::Mask
            } else {
                Marker::None
            };
            assert_eq!(c.model.marker, marker);
        }
        // Several sizes become an axis.
        let mut two = s.clone();
        two.k = vec![50, 100];
        two.epochs = Some(2);
        let (_, p) = planned(Template::Maner, &two);
        assert_eq!(p.points.len(), 2 * 2 * 2 * 2);
        assert!(p.axes.contains(&"data.max_sentences".to_string()));
        assert!(p.points.iter().all(|q| q.config.train.epochs == 2));
        std::fs::remove_dir_all(&data).unwrap();
    }

    // Depends on the experiment stages, as the transfer matrix's test does.
    #[test]
    fn polyglot_shares_one_polyglot_run_between_languages() {
        let data = fake_data("poly", &["ko", "en"]);
        let s = sizes(Template::Polyglot, &data, 2, &[], &["ko", "en"]);
        let (_, p) = planned(Template::Polyglot, &s);
        // 1 polyglot run, then 3 variants x 2 languages x 2 seeds.
        assert_eq!(p.points.len(), 1 + 3 * 2 * 2);
        let stage: Vec<_> = p
            .points
            .iter()
            .filter(|q| !q.axes.contains_key("variant"))
            .collect();
        assert_eq!(stage.len(), 1);
        assert_eq!(stage[0].config.data.train.len(), 2);
        for q in p.points.iter().filter(|q| q.axes.contains_key("variant")) {
            let v = q.axes["variant"].as_str();
            assert_eq!(q.config.init_from.is_some(), v != "monolingual", "{v}");
            assert_eq!(q.config.data.k_shot.is_zero(), v == "polyglot", "{v}");
            assert_eq!(q.config.data.train.len(), 1);
        }
        std::fs::remove_dir_all(&data).unwrap();
    }

    #[test]
    fn ablation_full_is_the_preset_and_each_variant_removes_one_piece() {
        use crate::model::ner::HeadKind;
        let data = fake_data("ablation", &[]);
        let s = sizes(Template::Ablation, &data, 2, &[], &[]);
        let (_, p) = planned(Template::Ablation, &s);
        assert_eq!(p.points.len(), 6 * 2);
        let of = |v: &str| {
            &p.points
                .iter()
                .find(|q| q.axes["variant"] == v)
                .unwrap_or_else(|| panic!("no variant {v}"))
                .config
        };
        // `full` sets every key of the preset (only the model and the dev corpus differ).
        let mut preset = crate::train::RunConfig::default();
        crate::train::sources::apply_preset("klue-koelectra-bilstm-crf", &mut preset).unwrap();
        preset.model.source = "e5-small".into();
        let full = of("full");
        assert_eq!(full.model, preset.model);
        assert_eq!(full.train, preset.train);
        assert_eq!(full.data.train, preset.data.train);
        assert_eq!(of("no-fgm").train.fgm_epsilon, 0.0);
        assert_eq!(of("no-rdrop").train.rdrop_alpha, 0.0);
        assert_eq!(of("no-msd").model.msd_samples, 1);
        assert_eq!(of("no-crf").model.head, HeadKind::Bilstm);
        assert_eq!(of("no-bilstm").model.head, HeadKind::Crf);
        assert_eq!(of("no-crf").train, full.train);
        std::fs::remove_dir_all(&data).unwrap();
    }
}
