//! `slipway stages list|delete`: the stages of the project in its stage storage, the
//! local store or `--repo`.

use super::ProjectArgs;
use crate::engine::state::rfc3339;
use crate::engine::storage::layered::Layered;
use crate::engine::storage::local::LocalStorage;
use crate::engine::storage::registry::{RegistryStorage, Role};
use crate::engine::storage::{StageId, StageStorage};
use crate::engine::{Log, Puller};
use crate::project::Project;
use anyhow::Context;
use clap::{Args, Subcommand};
use slipway_storage::store::Store;

#[derive(Debug, Subcommand)]
pub enum StagesCommand {
    /// List stages: digest, creation time, size (compressed layers) and stage ID.
    #[command(args_override_self = true)]
    List(ListArgs),
    /// Delete stages by ID: the local record, and with --repo the stage's manifest in
    /// the repository (the registry must allow deletes). Blobs and layers stay.
    #[command(args_override_self = true)]
    Delete(DeleteArgs),
}

impl StagesCommand {
    pub fn project(&self) -> &ProjectArgs {
        match self {
            StagesCommand::List(a) => &a.project,
            StagesCommand::Delete(a) => &a.project,
        }
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Stage IDs, DIGEST-TIMESTAMP_MS (as `stages list` prints them).
    #[arg(required = true, value_name = "STAGE_ID")]
    pub ids: Vec<String>,

    #[command(flatten)]
    pub project: ProjectArgs,
}

pub fn run(cmd: StagesCommand, storage_root: &Option<std::path::PathBuf>) -> anyhow::Result<u8> {
    let args = cmd.project();
    args.check()?;
    // `None`: list.
    let delete = match &cmd {
        StagesCommand::List(_) => None,
        StagesCommand::Delete(d) => Some(
            d.ids
                .iter()
                .map(|i| StageId::parse(i).with_context(|| format!("{i:?} is not a stage ID (DIGEST-TIMESTAMP_MS)")))
                .collect::<anyhow::Result<Vec<_>>>()?,
        ),
    };
    let project = Project::load(&args.dir()?, args.config.as_deref(), &args.env, &args.source_mode())?;
    args.check_project(&project, false)?;
    let settings = args.settings();
    let store = Store::open(&args.storage_root(storage_root)?)?;
    let log = Log::new(true).quiet(args.log.quiet());
    let local = LocalStorage { store: &store, project: &project.name, log: &log };
    let Some(repo) = &settings.repo else { return act(&local, delete.as_deref()) };
    let client = crate::engine::registry_client(&settings)?;
    let puller = Puller { client: &client, store: &store, log: &log };
    let layered = Layered {
        client: &client,
        local,
        primary: RegistryStorage::new(repo, Role::Primary, &puller, &settings.lock_dir)?,
        secondary: Vec::new(),
        cache: Vec::new(),
        final_repo: None,
        grace: settings.publish_grace,
    };
    act(&layered, delete.as_deref())
}

fn act(storage: &dyn StageStorage, delete: Option<&[StageId]>) -> anyhow::Result<u8> {
    if let Some(ids) = delete {
        for id in ids {
            storage.delete(id)?;
            println!("Deleted stage {id} from {}", storage.name());
        }
        return Ok(0);
    }
    println!("{:<56}  {:<20}  {:>10}  ID", "DIGEST", "CREATED", "SIZE");
    for r in storage.list()? {
        println!(
            "{:<56}  {:<20}  {:>10}  {}",
            r.id.digest,
            rfc3339((r.id.timestamp_ms / 1000) as i64),
            human_size(r.manifest.layers.iter().map(|l| l.size).sum()),
            r.id
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
