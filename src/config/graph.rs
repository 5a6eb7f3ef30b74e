//! Whole-config rules that no single document can check: image names are unique,
//! references to other images resolve, and images do not depend on each other in a loop.

use std::collections::HashMap;

use super::error::ConfigError;
use super::git::{ImageRef, has_tag_or_digest};
use super::stapel::BaseImage;
use super::{Image, ImageKind};

pub(crate) fn check(file: &str, images: &mut [Image]) -> Result<(), ConfigError> {
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for image in images.iter() {
        if let Some(&first) = first_line.get(&image.name) {
            return Err(ConfigError::DuplicateImage {
                file: file.to_owned(),
                line: image.line,
                name: image.name.clone(),
                first,
            });
        }
        first_line.insert(image.name.clone(), image.line);
    }

    // werf's validateConflictBetweenImagesNames: the nameless image must be alone among
    // the final images.
    if let Some(nameless) = images.iter().find(|i| i.name.is_empty())
        && images.iter().filter(|i| i.final_).count() > 1
    {
        return Err(ConfigError::Invalid {
            file: file.to_owned(),
            line: nameless.line,
            context: "nameless image: ".to_owned(),
            message:
                "conflict between images names: a nameless image cannot be specified in the config with multiple images"
                    .to_owned(),
        });
    }

    let defined = |name: &str| first_line.contains_key(name) && !name.is_empty();
    for image in images.iter_mut() {
        let unknown = |line: usize, what: &'static str, name: &str| ConfigError::UnknownReference {
            file: file.to_owned(),
            line,
            image: image.name.clone(),
            what,
            name: name.to_owned(),
        };
        let deps = match &mut image.kind {
            ImageKind::Dockerfile(d) => &d.dependencies,
            ImageKind::Stapel(s) => {
                // `from: NAME` is this config's image when one has that name.
                match &s.from {
                    BaseImage::External(name) if defined(name) => {
                        s.from = BaseImage::Werf(name.clone());
                    }
                    BaseImage::Werf(name) if !defined(name) => {
                        return Err(unknown(image.line, "base image", name));
                    }
                    _ => {}
                }
                for import in &mut s.import {
                    if let ImageRef::Werf(name) = &import.from
                        && !defined(name)
                    {
                        if !has_tag_or_digest(name) {
                            return Err(unknown(import.line, "import source", name));
                        }
                        import.from = ImageRef::External(name.clone());
                    }
                }
                &s.dependencies
            }
        };
        if let Some(dep) = deps.iter().find(|d| !defined(&d.image)) {
            return Err(unknown(dep.line, "dependency", &dep.image));
        }
    }

    check_cycles(file, images)
}

fn check_cycles(file: &str, images: &[Image]) -> Result<(), ConfigError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let index: HashMap<&str, usize> = images.iter().enumerate().map(|(i, img)| (img.name.as_str(), i)).collect();
    let edges: Vec<Vec<usize>> =
        images.iter().map(|img| img.depends_on().iter().filter_map(|n| index.get(n).copied()).collect()).collect();
    let mut marks = vec![Mark::New; images.len()];

    // Iterative DFS keeping the open path, so a back edge yields the cycle itself.
    for root in 0..images.len() {
        if marks[root] != Mark::New {
            continue;
        }
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        marks[root] = Mark::Open;
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            if let Some(&target) = edges[node].get(*next) {
                *next += 1;
                match marks[target] {
                    Mark::New => {
                        marks[target] = Mark::Open;
                        path.push((target, 0));
                    }
                    Mark::Open => {
                        let start = path.iter().position(|&(n, _)| n == target).unwrap_or(0);
                        let mut chain: Vec<String> =
                            path[start..].iter().map(|&(n, _)| images[n].name.clone()).collect();
                        chain.push(images[target].name.clone());
                        return Err(ConfigError::Cycle { file: file.to_owned(), line: images[target].line, chain });
                    }
                    Mark::Done => {}
                }
            } else {
                marks[node] = Mark::Done;
                path.pop();
            }
        }
    }
    Ok(())
}
