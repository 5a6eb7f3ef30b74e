//! `slipway slugify -f FORMAT STRING`: werf's slugs, printed as werf prints them.

use super::flags::LogArgs;
use clap::Args;

#[derive(Debug, Args)]
pub struct SlugifyArgs {
    /// The string to slug.
    pub string: String,

    /// r|helm-release: suitable for Helm Release; ns|kubernetes-namespace: suitable for
    /// Kubernetes Namespace; tag|docker-tag: suitable for Docker Tag.
    #[arg(short = 'f', long, default_value = "")]
    pub format: String,

    #[command(flatten)]
    pub log: LogArgs,
}

/// The slug of `s` in werf's `format`.
pub fn slugify(format: &str, s: &str) -> anyhow::Result<String> {
    Ok(match format {
        "helm-release" | "r" => crate::slug::helm_release(s),
        "kubernetes-namespace" | "ns" => crate::slug::kubernetes_namespace(s),
        "docker-tag" | "tag" => crate::slug::docker_tag_slug(s),
        "" => anyhow::bail!("--format FORMAT argument required"),
        other => anyhow::bail!("unknown format {other:?}"),
    })
}

pub fn run(args: SlugifyArgs) -> anyhow::Result<u8> {
    args.log.check()?;
    println!("{}", slugify(&args.format, &args.string)?);
    Ok(0)
}
