//! `deploy/`: the container recipe installs every library the binary links
//! (each shared library `ldd` lists, found by `dpkg -S`, is either in
//! Debian's base or installed by the run stage), and the binary runs in a
//! root folder that holds only those libraries. The systemd unit runs the
//! documented command and keeps its sandboxing. No container tool is on the
//! test machines, so the image is not built here.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use partita_tests::partita::partita_binary;
use partita_tests::wasm::repo_root;

/// Packages of `debian:bookworm-slim` that every image has (priority
/// required).
const BASE: &[&str] = &["libc6", "libgcc-s1"];

fn stdout(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The shared libraries `binary` loads, as `ldd` prints their paths.
fn libraries(binary: &Path) -> Vec<String> {
    let text = stdout(Command::new("ldd").arg(binary)).expect("ldd");
    text.lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
        .map(str::to_string)
        .collect()
}

/// The Debian package that holds `path` (by its name, else its target).
fn package_of(path: &str) -> Option<String> {
    let real = std::fs::canonicalize(path).ok()?;
    let found = stdout(Command::new("dpkg").args(["-S", path]))
        .or_else(|| stdout(Command::new("dpkg").arg("-S").arg(&real)))?;
    let name = found.split(':').next()?.trim().to_string();
    Some(name)
}

/// The packages the Containerfile's run stage installs.
fn installed_by_recipe() -> BTreeSet<String> {
    let recipe = std::fs::read_to_string(repo_root().join("deploy/Containerfile")).unwrap();
    let run_stage = recipe
        .split("FROM docker.io/library/debian:bookworm-slim")
        .nth(1)
        .expect("a run stage on debian:bookworm-slim");
    let line = run_stage
        .lines()
        .find(|l| l.contains("apt-get install"))
        .expect("an apt-get install in the run stage");
    line.split_whitespace()
        .skip_while(|w| *w != "--no-install-recommends")
        .skip(1)
        .take_while(|w| !w.starts_with('\\') && !w.starts_with("&&"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_image_installs_every_library_the_binary_links() {
    if Command::new("dpkg").arg("--version").output().is_err() {
        eprintln!("skipped: no dpkg on this machine");
        return;
    }
    let binary = partita_binary().unwrap();
    let installed = installed_by_recipe();
    assert!(installed.contains("ca-certificates"), "{installed:?}");
    for lib in libraries(&binary) {
        let package = package_of(&lib).unwrap_or_else(|| panic!("no package holds {lib}"));
        assert!(
            BASE.contains(&package.as_str()) || installed.contains(&package),
            "{lib} comes from {package}, which the run stage does not install ({installed:?})"
        );
    }
}

#[test]
fn the_binary_runs_in_a_root_holding_only_its_libraries() {
    let root_user = stdout(Command::new("id").arg("-u")).is_some_and(|u| u.trim() == "0");
    if !root_user {
        eprintln!("skipped: chroot needs root");
        return;
    }
    let binary = partita_binary().unwrap();
    let root = tempfile::tempdir().unwrap();
    for lib in libraries(&binary) {
        let to = root.path().join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&lib, &to).unwrap();
    }
    std::fs::copy(&binary, root.path().join("partita")).unwrap();
    let out = Command::new("chroot")
        .arg(root.path())
        .args(["/partita", "--version"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.starts_with("partita "),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And it refuses a missing pipeline file there with its usual error.
    let out = Command::new("chroot")
        .arg(root.path())
        .args(["/partita", "run", "/etc/partita/pipeline.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/etc/partita/pipeline.toml"), "{err}");
}

#[test]
fn the_systemd_unit_runs_the_pipeline_in_a_sandbox() {
    let unit = std::fs::read_to_string(repo_root().join("deploy/partita.service")).unwrap();
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);
    assert!(
        unit.lines()
            .any(|l| l
                .starts_with("ExecStart=/usr/local/bin/partita run /etc/partita/pipeline.toml")),
        "{unit}"
    );
    for line in [
        "User=partita",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateDevices=yes",
        "CapabilityBoundingSet=",
        "StateDirectory=partita",
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(has(line), "missing `{line}`");
    }
    // wasmtime needs executable memory for compiled processors.
    assert!(!has("MemoryDenyWriteExecute=yes"));
}
