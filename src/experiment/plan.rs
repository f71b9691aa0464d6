//! From an experiment file to its points: every combination of the axes, each a complete run
//! configuration with an identity. A point's identity is a hash of its resolved configuration
//! (without where it is written or how many threads train it) and of the contents of the local
//! corpora it reads, so a point is the same run whoever plans it, editing the file adds only the
//! points that changed, and a corpus edited in place makes new runs rather than mixing old ones in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::file::{ExperimentFile, ReportSpec, STAGE_PREFIX};
use super::report::SEED;
use crate::hash::fnv1a;
use crate::train::RunConfig;
use crate::train::config::Keep;

/// One point of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The value of every axis at this point (dotted key -> value as written, strings unquoted).
    /// A stage's axes are `<stage>.<axis>`.
    pub axes: BTreeMap<String, String>,
    /// 16 hex digits identifying the resolved configuration and its data.
    pub id: String,
    /// The run's folder name: the axis values and the identity.
    pub name: String,
    pub config: RunConfig,
    /// The earlier stage this point belongs to (none: the main stage).
    pub stage: Option<String>,
    /// The index of the stage point this one starts from (`init_from = "stage:NAME"`).
    pub needs: Option<usize>,
}

impl Point {
    pub fn dir(&self) -> PathBuf {
        self.config.out.join(&self.name)
    }
}

/// The plan of an experiment: its points, in a fixed order (earlier stages first).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub name: String,
    pub out: PathBuf,
    /// The axes, in the order points vary (the last fastest); a stage's axes first.
    pub axes: Vec<String>,
    pub points: Vec<Point>,
}

impl Plan {
    /// The main stage's points (those an experiment reports).
    pub fn main_points(&self) -> impl Iterator<Item = &Point> {
        self.points.iter().filter(|p| p.stage.is_none())
    }
}

/// The fingerprints read so far while planning, by path (each corpus is read once per plan).
type Fingerprints = BTreeMap<PathBuf, String>;

/// One axis setting: which keys it sets (a variant sets several) and its label.
type Setting = (String, Vec<(String, toml::Value)>);

/// Expands `file` into its points (see the module docs).
pub fn plan(file: &ExperimentFile) -> anyhow::Result<Plan> {
    let mut points: Vec<Point> = Vec::new();
    let mut seen = Fingerprints::new();
    let mut stage_points: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut stage_axes: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, stage) in &file.stages {
        let (axes, tables) = expand(&stage.base, &stage.grid, &stage.zip, &toml::Table::new())
            .with_context(|| format!("stages.{name}"))?;
        let prefixed = |a: &String| format!("{name}.{a}");
        stage_axes.insert(name, axes.iter().map(prefixed).collect());
        for (table, shown) in tables {
            let shown = shown
                .iter()
                .map(|(k, v)| (prefixed(k), v.clone()))
                .collect();
            stage_points.entry(name).or_default().push(points.len());
            let out = file.out.join(name);
            let p = point(file, &out, table, shown, None, &mut seen)?.in_stage(name);
            if p.config.train.keep == Keep::Scores {
                bail!(
                    "stages.{name}: train.keep = \"scores\" keeps no model, and the main stage \
                     starts from this stage's models; use \"best\""
                );
            }
            points.push(p);
        }
    }
    let (main_axes, tables) = expand(&file.base, &file.grid, &file.zip, &file.variants)?;
    let mut axes: Vec<String> = Vec::new();
    for (table, shown) in tables {
        let Some(stage) = stage_named(&table, file)? else {
            points.push(point(file, &file.out, table, shown, None, &mut seen)?);
            continue;
        };
        // A stage axis the main stage has too pairs with it: the main point with seed s starts
        // from the stage run of seed s (each seed its own chain), with `model.prompt = true` from
        // the stage's prompt run; other stage axes are crossed.
        let prefix = format!("{stage}.");
        let paired: Vec<&String> = stage_axes[stage]
            .iter()
            .filter(|a| {
                a.strip_prefix(&prefix)
                    .is_some_and(|k| shown.contains_key(k))
            })
            .collect();
        for a in &stage_axes[stage] {
            if !axes.contains(a) && !paired.contains(&a) {
                axes.push(a.clone());
            }
        }
        let matching: Vec<usize> = stage_points[stage]
            .iter()
            .copied()
            .filter(|&src| {
                paired
                    .iter()
                    .all(|a| points[src].axes.get(*a) == shown.get(&a[prefix.len()..]))
            })
            .collect();
        if matching.is_empty() {
            let want: Vec<String> = paired
                .iter()
                .map(|a| format!("{a} = {}", shown[&a[prefix.len()..]]))
                .collect();
            bail!(
                "{} at {shown:?}: no run of stage {stage} has {}",
                file.name,
                want.join(", ")
            );
        }
        for src in matching {
            let source_axes = &points[src].axes;
            let mut shown = shown.clone();
            shown.extend(
                source_axes
                    .iter()
                    .filter(|(k, _)| !paired.contains(k))
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            let source = (points[src].id.clone(), points[src].dir());
            let mut p = point(
                file,
                &file.out,
                table.clone(),
                shown,
                Some(source),
                &mut seen,
            )?;
            p.needs = Some(src);
            points.push(p);
        }
    }
    axes.extend(main_axes);
    check_report(&file.report, &axes, &points)?;
    let mut seen = BTreeMap::new();
    for p in &points {
        if let Some(other) = seen.insert(p.id.clone(), &p.axes) {
            bail!(
                "two points are the same run ({other:?} and {:?}): an axis changes nothing",
                p.axes
            );
        }
    }
    Ok(Plan {
        name: file.name.clone(),
        out: file.out.clone(),
        axes,
        points,
    })
}

/// The report's axes (rows, columns, plots_by, the baseline's keys) must be axes of the plan other
/// than the seed (results are grouped over seeds), and the baseline a setting some point has.
fn check_report(spec: &ReportSpec, axes: &[String], points: &[Point]) -> anyhow::Result<()> {
    let named = (spec.rows.iter().map(|a| ("rows", a)))
        .chain(spec.columns.iter().map(|a| ("columns", a)))
        .chain(spec.plots_by.iter().map(|a| ("plots_by", a)))
        .chain(spec.baseline.keys().map(|a| ("baseline", a)));
    for (key, axis) in named {
        if axis == SEED || !axes.contains(axis) {
            let known: Vec<&str> = (axes.iter())
                .filter(|a| *a != SEED)
                .map(String::as_str)
                .collect();
            bail!(
                "[report] {key} names {axis:?}, which is not an axis the results vary over \
                 (those are: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
    }
    for (axis, value) in &spec.baseline {
        let mut values: Vec<&str> = Vec::new();
        for v in points.iter().filter_map(|p| p.axes.get(axis)) {
            if !values.contains(&v.as_str()) {
                values.push(v);
            }
        }
        if !values.contains(&value.as_str()) {
            bail!(
                "[report] baseline {axis} = {value:?} is no run's setting; {axis} takes {}",
                values.join(", ")
            );
        }
    }
    Ok(())
}

/// The stage a resolved main-stage table starts from (`init_from = "stage:NAME"`), checked.
fn stage_named<'f>(
    table: &toml::Table,
    file: &'f ExperimentFile,
) -> anyhow::Result<Option<&'f str>> {
    let Some(toml::Value::String(from)) = table.get("init_from") else {
        return Ok(None);
    };
    let Some(name) = from.strip_prefix(STAGE_PREFIX) else {
        return Ok(None);
    };
    match file.stages.get_key_value(name) {
        Some((k, _)) => Ok(Some(k.as_str())),
        None => bail!(
            "init_from = \"{from}\": the file has no [stages.{name}] (stages: {})",
            file.stages.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Every resolved table of a base varied by variants, zipped lists and a grid, with the axis
/// values of each; and the axes, in the order they vary.
#[allow(clippy::type_complexity)]
fn expand(
    base: &toml::Table,
    grid: &toml::Table,
    zip: &toml::Table,
    variants: &toml::Table,
) -> anyhow::Result<(Vec<String>, Vec<(toml::Table, BTreeMap<String, String>)>)> {
    let mut axes: Vec<(String, Vec<Setting>)> = Vec::new();
    // Zipped lists (languages, say) vary slowest, then the variants (the arms of a comparison sit
    // together), then the grid; the seed varies fastest, so the seeds of one setting sit together.
    let mut lists = lists_of(grid, "grid")?;
    lists.sort_by_key(|(k, _)| k == SEED);
    let mut zipped_seed = None;
    if !zip.is_empty() {
        let z = zipped(zip)?;
        if z.0 != SEED {
            axes.push(z);
        } else if lists.iter().any(|(k, _)| k == SEED) {
            bail!("seed is in [zip] and in [grid]: give it in one of them");
        } else {
            zipped_seed = Some(z);
        }
    }
    if !variants.is_empty() {
        let mut settings = Vec::new();
        for (name, v) in variants {
            let toml::Value::Table(t) = v else {
                bail!("variants.{name}: expected a table of keys to set");
            };
            settings.push((name.clone(), flatten(t)));
        }
        axes.push(("variant".into(), settings));
    }
    for (key, values) in lists {
        let settings = values
            .into_iter()
            .map(|v| (show(&v), vec![(key.clone(), v)]))
            .collect();
        axes.push((key, settings));
    }
    axes.extend(zipped_seed);
    let mut out = Vec::new();
    for combo in combinations(&axes) {
        let mut table = base.clone();
        let mut shown = BTreeMap::new();
        for (axis, (label, sets)) in axes.iter().zip(&combo) {
            shown.insert(axis.0.clone(), label.clone());
            for (key, value) in sets.iter() {
                set_dotted(&mut table, key, value.clone())
                    .with_context(|| format!("setting {key} for {}", axis.0))?;
            }
        }
        out.push((table, shown));
    }
    Ok((axes.into_iter().map(|(k, _)| k).collect(), out))
}

/// The `[zip]` lists as one axis: the i-th value of every list together.
fn zipped(zip: &toml::Table) -> anyhow::Result<(String, Vec<Setting>)> {
    let lists = lists_of(zip, "zip")?;
    let n = lists[0].1.len();
    if let Some((k, l)) = lists.iter().find(|(_, l)| l.len() != n) {
        bail!("zip: {k} has {} values but {} has {n}", l.len(), lists[0].0);
    }
    // With `seed` among them the lists are the seed axis, each seed setting its other keys (a
    // K-shot sample per seed: `seed = [1, 2, 3]` beside `"data.sample_seed" = [1, 2, 3]`), and
    // the report averages over it as over any seed axis. A key that is not a run setting (no
    // dot, not a top-level key: `language = ["gu", "jv"]`) names the axis and labels its
    // entries, setting nothing.
    let names = name_keys(&lists)?;
    let with_seed = lists
        .iter()
        .position(|(k, _)| k == SEED)
        .or(names.first().copied());
    if names.len() > 1 {
        bail!(
            "zip: {} and {} both name the axis; keep one",
            lists[names[0]].0,
            lists[names[1]].0
        );
    }
    if with_seed.is_some() && !names.is_empty() && lists.iter().any(|(k, _)| k == SEED) {
        bail!(
            "zip: seed is the axis; {} cannot name it",
            lists[names[0]].0
        );
    }
    let label = match with_seed {
        Some(j) => lists[j].0.clone(),
        None => lists
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join("+"),
    };
    let settings = (0..n)
        .map(|i| {
            let shown = match with_seed {
                Some(j) => show(&lists[j].1[i]),
                None => lists
                    .iter()
                    .map(|(_, l)| show(&l[i]))
                    .collect::<Vec<_>>()
                    .join("+"),
            };
            let sets: Vec<(String, toml::Value)> = lists
                .iter()
                .enumerate()
                .filter(|(j, _)| !names.contains(j))
                .map(|(_, (k, l))| (k.clone(), l[i].clone()))
                .collect();
            (shown, sets)
        })
        .collect();
    Ok((label, settings))
}

/// The positions of the `[zip]` keys that name its axis rather than set a run's key: no dot,
/// not `seed`, not a top-level key of a run (and not one misspelt: that is refused).
fn name_keys(lists: &[(String, Vec<toml::Value>)]) -> anyhow::Result<Vec<usize>> {
    let top: Vec<String> = crate::train::config::known_keys()
        .into_iter()
        .filter(|k| !k.contains('.'))
        .collect();
    let mut out = Vec::new();
    for (i, (k, _)) in lists.iter().enumerate() {
        if k.contains('.') || top.contains(k) {
            continue;
        }
        if let Some(near) = top.iter().find(|t| strsim::levenshtein(t, k) <= 1) {
            bail!("zip: {k} is neither a run's key nor a name for the axis; did you mean {near}?");
        }
        out.push(i);
    }
    Ok(out)
}

/// Every combination of the axes' settings, the last axis fastest.
fn combinations(axes: &[(String, Vec<Setting>)]) -> Vec<Vec<&Setting>> {
    let mut out: Vec<Vec<&Setting>> = vec![Vec::new()];
    for (_, settings) in axes {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                settings.iter().map(move |s| {
                    let mut p = prefix.clone();
                    p.push(s);
                    p
                })
            })
            .collect();
    }
    out
}

/// A table's keys as dotted paths with their lists of values.
fn lists_of(t: &toml::Table, section: &str) -> anyhow::Result<Vec<(String, Vec<toml::Value>)>> {
    flatten(t)
        .into_iter()
        .map(|(k, v)| match v {
            toml::Value::Array(a) if !a.is_empty() => Ok((k, a)),
            _ => bail!("{section}.{k}: expected a non-empty list of values"),
        })
        .collect()
}

/// A table's leaves as (dotted key, value); a quoted key `"model.head"` is already dotted.
fn flatten(t: &toml::Table) -> Vec<(String, toml::Value)> {
    let mut out = Vec::new();
    for (k, v) in t {
        match v {
            toml::Value::Table(inner) => {
                out.extend(
                    flatten(inner)
                        .into_iter()
                        .map(|(ik, iv)| (format!("{k}.{ik}"), iv)),
                );
            }
            _ => out.push((k.clone(), v.clone())),
        }
    }
    out
}

/// Sets `a.b.c = value` in a table, creating the tables on the way.
fn set_dotted(t: &mut toml::Table, key: &str, value: toml::Value) -> anyhow::Result<()> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or(key);
    let mut here = t;
    for p in parts {
        let next = here
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        here = match next {
            toml::Value::Table(inner) => inner,
            _ => bail!("{p} is a value, not a table of keys"),
        };
    }
    here.insert(last.to_string(), value);
    Ok(())
}

/// A value as a person reads it in a table (strings without quotes).
fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The point of `table`, a resolved base with its axes set, written under `out`; `source` is the
/// stage run it starts from (its identity and folder).
fn point(
    file: &ExperimentFile,
    out: &Path,
    table: toml::Table,
    axes: BTreeMap<String, String>,
    source: Option<(String, PathBuf)>,
    seen: &mut Fingerprints,
) -> anyhow::Result<Point> {
    let text = toml::to_string(&table)?;
    let mut config = RunConfig::from_toml(&text)
        .map_err(|e| anyhow::anyhow!("{} at {axes:?}: {e:#}", file.name))?;
    // Where a run is written, and the threads and device that train it, are not the run.
    let mut what = config.clone();
    what.name = None;
    what.out = PathBuf::new();
    what.threads = None;
    what.device = RunConfig::default().device;
    // Nor what it keeps on disk once it has ended.
    what.train.keep = Keep::default();
    if let Some((id, _)) = &source {
        what.init_from = Some(format!("{STAGE_PREFIX}{id}"));
    }
    let mut identity = what.to_toml()?;
    let corpora = what
        .data
        .sources()
        .chain(what.finetune.iter().flat_map(|f| &f.train))
        // A range (`dev.tsv[:1000]`) is in the configuration; the file's contents are hashed.
        .map(|s| crate::train::sources::local_path(s).unwrap_or_else(|| PathBuf::from(s)));
    // A run to start from is its trained model, not its folder (whose status changes).
    let model = what
        .init_from
        .iter()
        .filter(|_| source.is_none())
        .map(|p| crate::infer::model_dir(Path::new(p)));
    for path in corpora.chain(model) {
        identity.push('\n');
        let print = seen
            .entry(path.clone())
            .or_insert_with(|| fingerprint(&path));
        identity.push_str(print);
    }
    let id = format!("{:016x}", fnv1a(identity.as_bytes()));
    let name = format!("{}{}", slug(&axes), &id[..8]);
    config.out = out.to_path_buf();
    config.name = Some(name.clone());
    if let Some((_, dir)) = &source {
        config.init_from = Some(dir.display().to_string());
    }
    // A stage's run need not exist yet when the plan is made.
    let errors = config.validate();
    if let Some(e) = errors
        .iter()
        .find(|e| !(source.is_some() && e.field == "init_from"))
    {
        bail!("{} at {axes:?}: {}: {}", file.name, e.field, e.reason);
    }
    Ok(Point {
        axes,
        id,
        name,
        config,
        stage: None,
        needs: None,
    })
}

impl Point {
    fn in_stage(mut self, stage: &str) -> Self {
        self.stage = Some(stage.to_string());
        self
    }
}

/// What identifies a local corpus's contents: its size and a hash of its bytes (a folder: of
/// every file in it, by name). Anything else (a preset, `builtin:`, the Hub) is its name.
fn fingerprint(path: &Path) -> String {
    let file = |p: &Path| -> Option<String> {
        let bytes = std::fs::read(p).ok()?;
        Some(format!("{} {:016x}", bytes.len(), fnv1a(&bytes)))
    };
    if path.is_file() {
        return file(path).unwrap_or_default();
    }
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        entries.sort();
        return entries
            .iter()
            .filter_map(|p| Some(format!("{}:{}", p.file_name()?.to_string_lossy(), file(p)?)))
            .collect::<Vec<_>>()
            .join(",");
    }
    String::new()
}

/// A folder-name prefix from the axis values: `head-crf_seed-1_`.
fn slug(axes: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (k, v) in axes {
        let key = k.rsplit('.').next().unwrap_or(k);
        let value: String = v
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .take(32)
            .collect();
        out.push_str(&format!("{key}-{value}_"));
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn file(text: &str) -> ExperimentFile {
        toml::from_str(text).unwrap()
    }

    /// Why planning `text` fails, with its causes.
    fn plan_err(text: &str) -> String {
        format!("{:#}", plan(&file(text)).unwrap_err())
    }

    /// An experiment file of the character model with `rest` after its `[base]`.
    fn char_model(rest: &str) -> String {
        format!("name = \"t\"\nout = \"runs/t\"\n[base]\nmodel.source = \"char\"\n{rest}")
    }

    const DEMO: &str = r#"
name = "demo-heads"
out = "runs/demo-heads"
[base]
data.train = ["builtin:demo/train"]
data.dev = "builtin:demo/dev"
model.source = "char"
train.epochs = 3
[grid]
"model.head" = ["softmax", "crf"]
seed = [1, 2]
[report]
rows = ["model.head"]
metric = "dev.micro.f1"
"#;

    #[test]
    fn a_grid_is_every_combination_with_the_seed_fastest() {
        let p = plan(&file(DEMO)).unwrap();
        assert_eq!(p.axes, ["model.head", "seed"]);
        let seen: Vec<(String, u64)> = p
            .points
            .iter()
            .map(|pt| {
                (
                    serde_json::to_value(pt.config.model.head)
                        .unwrap()
                        .as_str()
                        .unwrap()
                        .to_string(),
                    pt.config.seed,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("softmax".into(), 1),
                ("softmax".into(), 2),
                ("crf".into(), 1),
                ("crf".into(), 2)
            ]
        );
        let pt = &p.points[2];
        assert_eq!(pt.config.train.epochs, 3);
        assert_eq!(pt.config.out, PathBuf::from("runs/demo-heads"));
        assert!(pt.name.starts_with("head-crf_seed-1_"), "{}", pt.name);
        // The same file plans the same identities; a changed base changes every one.
        assert_eq!(plan(&file(DEMO)).unwrap(), p);
        let edited = plan(&file(&DEMO.replace("train.epochs = 3", "train.epochs = 4"))).unwrap();
        assert!(
            edited
                .points
                .iter()
                .all(|e| p.points.iter().all(|q| q.id != e.id))
        );
        // Adding a seed adds points and keeps the others.
        let more = plan(&file(&DEMO.replace("seed = [1, 2]", "seed = [1, 2, 3]"))).unwrap();
        assert_eq!(more.points.len(), 6);
        assert!(
            p.points
                .iter()
                .all(|q| more.points.iter().any(|m| m.id == q.id))
        );
    }

    #[test]
    fn variants_and_zipped_lists_set_several_keys() {
        let f = file(&char_model(
            r#"
[variants.plain]
"model.head" = "softmax"
[variants.all-tricks]
"model.head" = "crf"
train.fgm_epsilon = 1.0
[zip]
"train.lr" = [0.001, 0.002]
"train.epochs" = [2, 4]
"#,
        ));
        let p = plan(&f).unwrap();
        assert_eq!(p.points.len(), 4);
        let t = &p
            .points
            .iter()
            .find(|q| q.axes["variant"] == "all-tricks")
            .unwrap()
            .config;
        assert_eq!(t.train.fgm_epsilon, 1.0);
        let lrs: Vec<(f64, usize)> = p
            .points
            .iter()
            .map(|q| (q.config.train.lr, q.config.train.epochs))
            .collect();
        assert!(lrs.contains(&(0.002, 4)) && !lrs.contains(&(0.002, 2)));
    }

    #[test]
    fn seed_zipped_with_other_keys_is_the_seed_axis() {
        let text = char_model(
            r#"
[grid]
"data.k_shot" = [1, 2]
[zip]
seed = [1, 2, 3]
"data.sample_seed" = [11, 12, 13]
"#,
        );
        let p = plan(&file(&text)).unwrap();
        assert_eq!(p.axes, ["data.k_shot", "seed"]);
        let got: Vec<(String, String, u64, u64)> = p
            .points
            .iter()
            .map(|q| {
                let c = &q.config;
                (
                    q.axes["data.k_shot"].clone(),
                    q.axes["seed"].clone(),
                    c.seed,
                    c.data.sample_seed,
                )
            })
            .collect();
        assert_eq!(got[0], ("1".into(), "1".into(), 1, 11));
        assert_eq!(got[2], ("1".into(), "3".into(), 3, 13));
        assert_eq!(got[3], ("2".into(), "1".into(), 1, 11));
        let both = text.replace("[grid]\n", "[grid]\nseed = [4]\n");
        let e = plan_err(&both);
        assert!(e.contains("seed is in [zip] and in [grid]"), "{e}");
    }

    #[test]
    fn a_report_that_names_no_axis_is_refused() {
        for (line, bad) in [
            ("rows = [\"model.hed\"]", "rows names \"model.hed\""),
            ("columns = [\"seed\"]", "columns names \"seed\""),
            ("plots_by = [\"variant\"]", "plots_by names \"variant\""),
            (
                "baseline = { \"train.lr\" = \"0.1\" }",
                "baseline names \"train.lr\"",
            ),
        ] {
            let text = DEMO.replace("[report]\n", &format!("[report]\n{line}\n"));
            let text = text.replace("rows = [\"model.head\"]\n", "");
            let e = plan_err(&text);
            assert!(
                e.contains(bad) && e.contains("those are: model.head"),
                "{e}"
            );
        }
        let typo = "[report]\nbaseline = { \"model.head\" = \"sofmax\" }\n";
        let e = plan_err(&DEMO.replace("[report]\n", typo));
        assert!(
            e.contains("baseline model.head = \"sofmax\" is no run's setting; model.head takes softmax, crf"),
            "{e}"
        );
    }

    #[test]
    fn a_zip_key_that_is_no_setting_names_the_axis() {
        let text = char_model(
            r#"
[zip]
language = ["demo", "demo-50"]
"data.dev" = ["builtin:demo/dev", "builtin:demo/dev[:50]"]
[grid]
seed = [1]
"#,
        );
        let p = plan(&file(&text)).unwrap();
        assert_eq!(p.axes, ["language", "seed"]);
        let labels: Vec<(&str, &str)> = p
            .points
            .iter()
            .map(|q| {
                (
                    q.axes["language"].as_str(),
                    q.config.data.dev.as_deref().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            labels,
            [
                ("demo", "builtin:demo/dev"),
                ("demo-50", "builtin:demo/dev[:50]")
            ]
        );
        assert!(p.points[0].name.starts_with("language-demo_seed-1_"));
        let e = plan_err(&text.replace("language", "sed"));
        assert!(e.contains("did you mean seed?"), "{e}");
        let two = text.replace("[grid]", "lang = [\"a\", \"b\"]\n[grid]");
        let e = plan_err(&two);
        assert!(e.contains("both name the axis"), "{e}");
    }

    pub(crate) const STAGED: &str = r#"
name = "transfer"
out = "runs/transfer"
[stages.source.base]
data.train = ["builtin:demo/train"]
data.dev = "builtin:demo/dev"
model.source = "char"
[stages.source.grid]
"train.epochs" = [1, 2]
[base]
init_from = "stage:source"
data.train = ["builtin:demo/train"]
data.dev = "builtin:demo/dev"
model.source = "char"
[grid]
"data.k_shot" = [1, 2]
seed = [1, 2]
"#;

    #[test]
    fn a_stage_trains_once_and_every_main_point_starts_from_one_of_its_runs() {
        let p = plan(&file(STAGED)).unwrap();
        assert_eq!(p.axes, ["source.train.epochs", "data.k_shot", "seed"]);
        assert_eq!(p.points.len(), 2 + 2 * 2 * 2);
        let (stage, main): (Vec<&Point>, Vec<&Point>) =
            p.points.iter().partition(|q| q.stage.is_some());
        assert_eq!(stage.len(), 2);
        assert!(
            stage
                .iter()
                .all(|q| q.dir().starts_with("runs/transfer/source"))
        );
        assert_eq!(main.len(), p.main_points().count());
        for q in main {
            let src = &p.points[q.needs.unwrap()];
            assert_eq!(src.stage.as_deref(), Some("source"));
            assert_eq!(
                q.config.init_from.as_deref(),
                Some(src.dir().display().to_string().as_str())
            );
            assert_eq!(
                q.axes["source.train.epochs"],
                src.axes["source.train.epochs"]
            );
        }
        // Where the experiment is written is not part of any identity.
        let moved = plan(&file(&STAGED.replace("runs/transfer", "elsewhere"))).unwrap();
        let ids = |p: &Plan| p.points.iter().map(|q| q.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&moved), ids(&p));
        let e = plan_err(&STAGED.replace("stage:source", "stage:sorce"));
        assert!(e.contains("no [stages.sorce] (stages: source)"), "{e}");
        // What a run keeps once ended is not the run; a stage must keep its models.
        let scores = STAGED.replace("[base]\n", "[base]\ntrain.keep = \"scores\"\n");
        assert_eq!(ids(&plan(&file(&scores)).unwrap()), ids(&p));
        let stage_scores = STAGED.replace(
            "[stages.source.grid]",
            "train.keep = \"scores\"\n[stages.source.grid]",
        );
        let e = plan_err(&stage_scores);
        assert!(
            e.contains("stages.source: train.keep = \"scores\" keeps no model"),
            "{e}"
        );
        // A sentence range is part of a run: another range, another run.
        let ranged = STAGED.replace("\"builtin:demo/dev\"", "\"builtin:demo/dev[:50]\"");
        let ranged_ids = ids(&plan(&file(&ranged)).unwrap());
        assert!(ranged_ids.iter().all(|i| !ids(&p).contains(i)));
    }

    #[test]
    fn a_stage_seed_axis_pairs_with_the_main_seed() {
        let text = STAGED
            .replace("\"train.epochs\" = [1, 2]", "seed = [1, 2]")
            .replace("\"data.k_shot\" = [1, 2]\n", "");
        let p = plan(&file(&text)).unwrap();
        assert_eq!(p.axes, ["seed"]);
        assert_eq!(p.points.len(), 2 + 2);
        for q in p.main_points() {
            let src = &p.points[q.needs.unwrap()];
            assert_eq!(src.config.seed, q.config.seed);
            assert!(!q.axes.contains_key("source.seed"));
        }
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let e = plan_err("name = \"x\"\nout = \"o\"\n[grid]\n\"train.epochz\" = [1]\n");
        assert!(
            e.contains("unknown key train.epochz; did you mean train.epochs?"),
            "{e}"
        );
        let e = plan_err("name = \"x\"\nout = \"o\"\n[grid]\nseed = 3\n");
        assert!(e.contains("grid.seed: expected a non-empty list"), "{e}");
        let e = plan_err("name = \"x\"\nout = \"o\"\n[zip]\nseed = [1, 2]\n\"train.lr\" = [0.1]\n");
        assert!(e.contains("has 1 values but"), "{e}");
        // Threads change how fast a run trains, not the run: two such points are one.
        let e = plan_err("name = \"x\"\nout = \"o\"\n[grid]\nthreads = [1, 2]\n");
        assert!(e.contains("are the same run"), "{e}");
    }
}
