//! The Stapel front end: werf's `from`/`git`/`shell`/`import` images. Not built yet:
//! every Stapel image is refused with one line naming it.

use crate::engine::{Built, Job};

pub fn build(job: &Job<'_>, _image: &crate::config::StapelImage) -> anyhow::Result<Built> {
    anyhow::bail!("image {} (werf.yaml:{}): Stapel images are not supported yet", job.shown, job.image.line)
}
