//! `slipway config render [IMAGE...]`, `config list`, `config graph [IMAGE...]`: werf's
//! `cmd/werf/config` commands, printing what werf prints for the same werf.yaml.
//!
//! - `render` prints the rendered werf.yaml as it is; with image names, the raw
//!   documents of the selected images joined by `---\n` (werf's `renderSpecificImages`).
//! - `list` prints one image name a line, `~` for the nameless image.
//! - `graph` prints werf's `[]imageGraph` through yaml.v2 (`image`, `dependsOn` with
//!   `from`, `import`, `dependencies`, empty ones omitted), trimmed, plus a newline.
//!
//! Image arguments are werf's patterns (`filepath.Match`, `!` to exclude). werf keeps the
//! selected names in a Go map, so its order varies from run to run; slipway prints
//! werf's config order (Dockerfile images first, then Stapel images and artifacts, each
//! in document order).

use super::ProjectArgs;
use crate::config::{BaseImage, Image, ImageKind, ImageRef, WerfConfig};
use crate::project::Project;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the rendered werf.yaml (or the documents of the given images).
    Render(RenderArgs),
    /// List the images of werf.yaml.
    List(ListArgs),
    /// Print the images' dependency graph.
    Graph(GraphArgs),
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Images to print (patterns; `!PATTERN` excludes).
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Show only final images.
    #[arg(long, env = "WERF_FINAL_IMAGES_ONLY")]
    pub final_images_only: bool,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Show only final images.
    #[arg(long, env = "WERF_FINAL_IMAGES_ONLY")]
    pub final_images_only: bool,
    /// Images to show (patterns; `!PATTERN` excludes).
    pub images: Vec<String>,
}

pub fn run(cmd: ConfigCommand) -> anyhow::Result<u8> {
    let load = |p: &ProjectArgs| Project::load(&p.dir()?, p.config.as_deref(), &p.env, &p.source_mode());
    let out = match cmd {
        ConfigCommand::Render(a) => {
            let project = load(&a.project)?;
            render(&project.rendered, &project.config, &a.images)?
        }
        ConfigCommand::List(a) => list(&load(&a.project)?.config, a.final_images_only)?,
        ConfigCommand::Graph(a) => graph(&load(&a.project)?.config, &a.images, a.final_images_only)?,
    };
    print!("{out}");
    Ok(0)
}

/// `config render`: the whole rendered text, or the selected images' documents.
pub fn render(rendered: &str, config: &WerfConfig, patterns: &[String]) -> anyhow::Result<String> {
    if patterns.is_empty() {
        return Ok(rendered.to_owned());
    }
    let docs: Vec<&str> =
        select(config, patterns, false)?.iter().filter_map(|i| crate::config::raw_doc(rendered, i.line)).collect();
    Ok(docs.join("---\n"))
}

/// `config list`.
pub fn list(config: &WerfConfig, final_only: bool) -> anyhow::Result<String> {
    Ok(select(config, &[], final_only)?.iter().map(|i| format!("{}\n", shown(&i.name))).collect())
}

/// `config graph`.
pub fn graph(config: &WerfConfig, patterns: &[String], final_only: bool) -> anyhow::Result<String> {
    let images = select(config, patterns, final_only)?;
    if images.is_empty() {
        return Ok("[]\n".to_owned());
    }
    let mut out = String::new();
    for image in images {
        let (from, imports, deps) = depends_on(config, image);
        let mut lines: Vec<String> = Vec::new();
        if !image.name.is_empty() {
            lines.push(format!("image: {}", crate::config::yaml_string(&image.name, 2)));
        }
        if from.is_some() || !imports.is_empty() || !deps.is_empty() {
            lines.push("dependsOn:".to_owned());
            if let Some(from) = from {
                lines.push(format!("  from: {}", crate::config::yaml_string(from, 4)));
            }
            for (key, names) in [("import", &imports), ("dependencies", &deps)] {
                if !names.is_empty() {
                    lines.push(format!("  {key}:"));
                    lines.extend(names.iter().map(|n| format!("  - {}", crate::config::yaml_string(n, 4))));
                }
            }
        }
        match lines.split_first() {
            None => out.push_str("- {}\n"),
            Some((first, rest)) => {
                out.push_str(&format!("- {first}\n"));
                for line in rest {
                    out.push_str(&format!("  {line}\n"));
                }
            }
        }
    }
    Ok(out)
}

/// werf's `updateDependencies`: (from, imports, dependencies).
fn depends_on<'a>(config: &WerfConfig, image: &'a Image) -> (Option<&'a str>, Vec<&'a str>, Vec<&'a str>) {
    let mut deps: Vec<&str> = Vec::new();
    let (from, imports, list) = match &image.kind {
        ImageKind::Dockerfile(d) => (None, Vec::new(), &d.dependencies),
        ImageKind::Stapel(s) => {
            let from = match &s.from {
                BaseImage::Werf(name) if config.images.iter().any(|i| &i.name == name) => Some(name.as_str()),
                _ => None,
            };
            let imports = s
                .import
                .iter()
                .filter_map(|i| match &i.from {
                    ImageRef::Werf(name) => Some(name.as_str()),
                    ImageRef::External(_) => None,
                })
                .collect();
            (from, imports, &s.dependencies)
        }
    };
    for d in list {
        if !deps.contains(&d.image.as_str()) {
            deps.push(&d.image);
        }
    }
    (from, imports, deps)
}

fn shown(name: &str) -> &str {
    if name.is_empty() { "~" } else { name }
}

/// werf's `NewImagesToProcess`: include patterns (each must match something), then
/// `!` exclusions, then `final` when asked; in werf's config order.
pub fn select<'a>(config: &'a WerfConfig, patterns: &[String], final_only: bool) -> anyhow::Result<Vec<&'a Image>> {
    let mut include = Vec::new();
    let mut exclude = Vec::new();
    for p in patterns {
        if p.contains("**") {
            anyhow::bail!("recursive glob (**) not supported");
        }
        if p.len() > 100 {
            anyhow::bail!("pattern too long");
        }
        if p.contains(['&', '|', '$']) {
            anyhow::bail!("special characters not allowed");
        }
        match p.strip_prefix('!') {
            Some(x) => exclude.push(x),
            None => include.push(p.as_str()),
        }
    }
    let matches = |pattern: &str, name: &str| {
        crate::context::glob::matches(pattern, name).map_err(|e| anyhow::anyhow!("invalid pattern {pattern:?}: {e}"))
    };
    let ordered: Vec<&Image> = config
        .images
        .iter()
        .filter(|i| matches!(i.kind, ImageKind::Dockerfile(_)))
        .chain(config.images.iter().filter(|i| matches!(i.kind, ImageKind::Stapel(_))))
        .collect();
    let mut chosen = vec![include.is_empty(); ordered.len()];
    for pattern in &include {
        let mut found = false;
        for (k, image) in ordered.iter().enumerate() {
            if matches(pattern, &image.name)? {
                chosen[k] = true;
                found = true;
            }
        }
        if !found {
            anyhow::bail!("no image matches pattern {pattern:?}");
        }
    }
    for (k, image) in ordered.iter().enumerate() {
        if !chosen[k] {
            continue;
        }
        for pattern in &exclude {
            if matches(pattern, &image.name)? && !include.contains(&image.name.as_str()) {
                chosen[k] = false;
            }
        }
    }
    Ok(ordered.into_iter().zip(chosen).filter(|(i, c)| *c && (!final_only || i.final_)).map(|(i, _)| i).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{TemplateInput, parse_rendered, render as render_template};

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    const WERF_YAML: &str = r#"project: demo
configVersion: 1
---
{{ $base := "alpine:3.20" }}
image: base
from: {{ $base }}
---
image: app1
from: base
final: false
---
image: app2
from: base
import:
- image: app1
  add: /out
  to: /app
  after: setup
dependencies:
- image: back
  after: setup
  imports:
  - type: ImageName
    targetEnv: BACK
---
image: back
dockerfile: Dockerfile
"#;

    fn load(text: &str) -> (String, WerfConfig) {
        let rendered = render_template("werf.yaml", text, &TemplateInput::default()).unwrap();
        let config = parse_rendered("werf.yaml", &rendered).unwrap();
        (rendered, config)
    }

    /// Golden output written from werf's code paths: `renderWerfConfig` prints the text,
    /// `renderSpecificImages` joins raw docs with `---\n`, `list` prints names,
    /// `graph` marshals `[]imageGraph` with yaml.v2 and `Println`s it trimmed.
    #[test]
    fn config_commands_print_what_werf_prints() {
        let (rendered, config) = load(WERF_YAML);
        assert_eq!(render(&rendered, &config, &[]).unwrap(), rendered);
        assert!(rendered.starts_with("project: demo\nconfigVersion: 1\n---\n\nimage: base\nfrom: alpine:3.20\n---\n"));
        assert_eq!(
            render(&rendered, &config, &strings(&["app*"])).unwrap(),
            "image: app1\nfrom: base\nfinal: false\n---\nimage: app2\nfrom: base\nimport:\n- image: app1\n  add: /out\n  to: /app\n  after: setup\ndependencies:\n- image: back\n  after: setup\n  imports:\n  - type: ImageName\n    targetEnv: BACK\n"
        );
        assert_eq!(render(&rendered, &config, &strings(&["back"])).unwrap(), "image: back\ndockerfile: Dockerfile\n");
        assert_eq!(list(&config, false).unwrap(), "back\nbase\napp1\napp2\n");
        assert_eq!(list(&config, true).unwrap(), "back\nbase\napp2\n");
        assert_eq!(
            graph(&config, &[], false).unwrap(),
            "- image: back\n- image: base\n- image: app1\n  dependsOn:\n    from: base\n- image: app2\n  dependsOn:\n    from: base\n    import:\n    - app1\n    dependencies:\n    - back\n"
        );
        assert_eq!(
            graph(&config, &strings(&["app2"]), false).unwrap(),
            "- image: app2\n  dependsOn:\n    from: base\n    import:\n    - app1\n    dependencies:\n    - back\n"
        );
        assert_eq!(graph(&config, &strings(&["*", "!app*"]), false).unwrap(), "- image: back\n- image: base\n");
        assert_eq!(
            graph(&config, &strings(&["nope*"]), false).unwrap_err().to_string(),
            "no image matches pattern \"nope*\""
        );
        assert_eq!(
            graph(&config, &strings(&["a/**"]), false).unwrap_err().to_string(),
            "recursive glob (**) not supported"
        );
    }

    #[test]
    fn nameless_and_quoted_names() {
        let (_, config) = load("configVersion: 1.0\nproject: demo\n---\nimage: ~\ndockerfile: Dockerfile\n");
        assert_eq!(list(&config, false).unwrap(), "~\n");
        assert_eq!(graph(&config, &[], false).unwrap(), "- {}\n");
        let (_, config) = load(
            "configVersion: 1\nproject: demo\n---\nimage: \"true\"\nfrom: alpine\n---\nimage: \"123\"\nfrom: \"true\"\n",
        );
        assert_eq!(
            graph(&config, &[], false).unwrap(),
            "- image: \"true\"\n- image: \"123\"\n  dependsOn:\n    from: \"true\"\n"
        );
    }
}
