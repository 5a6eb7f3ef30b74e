//! `slipway stages list`: the stages of the project in the local store or in `--repo`.

use super::ProjectArgs;
use crate::engine::repo::{Role, StageRepo, StageTag};
use crate::engine::state::rfc3339;
use crate::project::Project;
use anyhow::Context;
use clap::{Args, Subcommand};
use slipway_storage::image::Manifest;
use slipway_storage::store::Store;

#[derive(Debug, Subcommand)]
pub enum StagesCommand {
    /// List stages: digest, creation time, size (compressed layers) and stage ID.
    #[command(args_override_self = true)]
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
}

struct Row {
    tag: StageTag,
    size: u64,
}

pub fn run(cmd: StagesCommand, storage_root: &Option<std::path::PathBuf>) -> anyhow::Result<u8> {
    let StagesCommand::List(args) = cmd;
    args.project.check()?;
    let project = Project::load(&args.project.dir()?, args.project.config.as_deref(), &args.project.env)?;
    args.project.check_project(&project, false)?;
    let settings = args.project.settings()?;
    let size = |m: &Manifest| m.layers.iter().map(|l| l.size).sum::<u64>();
    let mut rows = Vec::new();
    match &settings.repo {
        Some(r) => {
            let repo = StageRepo::parse(r, Role::Primary)?;
            let client = crate::engine::registry_client(&settings)?;
            for tag in repo.tags(&client, true)?.iter().filter_map(|t| StageTag::parse(t)) {
                let raw = client
                    .get_manifest(&repo.tagged(&tag.tag())?)
                    .with_context(|| format!("reading stage {}", tag.tag()))?;
                let m: Manifest = serde_json::from_slice(&raw.bytes)?;
                rows.push(Row { size: size(&m), tag });
            }
        }
        None => {
            let store = Store::open(&args.project.storage_root(storage_root)?)?;
            for s in store.stages(&project.name, None)? {
                let m = store.manifest(&s.record.manifest)?;
                rows.push(Row {
                    size: size(&m),
                    tag: StageTag { digest: s.digest.clone(), timestamp_ms: s.timestamp_ms },
                });
            }
        }
    }
    rows.sort_by_key(|r| r.tag.timestamp_ms);
    println!("{:<56}  {:<20}  {:>10}  ID", "DIGEST", "CREATED", "SIZE");
    for r in &rows {
        println!(
            "{:<56}  {:<20}  {:>10}  {}",
            r.tag.digest,
            rfc3339((r.tag.timestamp_ms / 1000) as i64),
            human_size(r.size),
            r.tag.tag()
        );
    }
    Ok(0)
}

fn human_size(b: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{b} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::human_size(512), "512 B");
        assert_eq!(super::human_size(1536), "1.5 KiB");
        assert_eq!(super::human_size(500 * 1024 * 1024), "500.0 MiB");
    }
}
