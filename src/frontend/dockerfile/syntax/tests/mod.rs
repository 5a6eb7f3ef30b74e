//! Whole-Dockerfile tests, a module per topic; the helpers below build
//! expected values tersely.

mod build;
mod errors;
mod forms;
mod shell;

use super::*;

fn s(v: &str) -> String {
    v.to_owned()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| s(x)).collect()
}

fn kv(pairs: &[(&str, &str)]) -> Vec<KeyValue> {
    pairs.iter().map(|(k, v)| KeyValue { key: s(k), value: s(v) }).collect()
}

/// Parses `FROM scratch` followed by `body` and returns the instructions.
fn steps(body: &str) -> Vec<Instruction> {
    let df = parse("Dockerfile", &format!("FROM scratch\n{body}\n")).unwrap_or_else(|e| panic!("{body:?}: {e}"));
    df.stages[0].steps.iter().map(|s| s.instruction.clone()).collect()
}

fn one(body: &str) -> Instruction {
    let mut all = steps(body);
    assert_eq!(all.len(), 1, "{body:?}");
    all.remove(0)
}

fn run(command: CommandLine) -> Run {
    Run { mounts: vec![], network: None, security: None, command, heredocs: vec![] }
}

fn copy(sources: &[&str], dest: &str) -> Copy {
    Copy {
        from: None,
        chown: None,
        chmod: None,
        link: false,
        parents: false,
        excludes: vec![],
        sources: strings(sources),
        dest: s(dest),
        heredocs: vec![],
    }
}

fn add(sources: &[&str], dest: &str) -> Add {
    Add {
        chown: None,
        chmod: None,
        link: false,
        keep_git_dir: false,
        checksum: None,
        unpack: None,
        excludes: vec![],
        sources: strings(sources),
        dest: s(dest),
        heredocs: vec![],
    }
}

fn shell(cmd: &str) -> CommandLine {
    CommandLine::Shell(s(cmd))
}

fn exec(words: &[&str]) -> CommandLine {
    CommandLine::Exec(strings(words))
}

fn check(test: CommandLine) -> HealthcheckCommand {
    HealthcheckCommand { test, interval: None, timeout: None, start_period: None, start_interval: None, retries: None }
}
