//! `partita new NAME --lang rust|js|python`: writes a processor project
//! that builds and passes `partita test` as it is: the processor (it
//! upper-cases values, rejects empty ones and takes a `suffix` from the
//! stage's configuration), a unit test, sample records and a README with
//! the commands to build and try it.
//!
//! The project refers to the Partita checkout for its SDK (a path
//! dependency, the npm package or the Python package) and its build
//! script: by default the checkout this binary was built from, or
//! `--partita DIR`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

/// The language of a new processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust, with the Rust SDK (`partita-sdk`).
    Rust,
    /// JavaScript, with `@partita/processor` (componentize-js).
    Js,
    /// Python, with the `partita` package (componentize-py).
    Python,
}

/// Arguments of `partita new`.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The project's name: a lowercase letter, then lowercase letters,
    /// digits, `-` or `_`. Also its folder's name.
    pub name: String,
    /// The processor's language.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// Where to create the project's folder (default: the current folder).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// The Partita checkout the project takes its SDK and build script from
    /// (default: the one this binary was built from).
    #[arg(long)]
    pub partita: Option<PathBuf>,
}

/// One file of a template: where it goes in the project, and its text.
type File = (&'static str, &'static str);

const RUST: &[File] = &[
    ("Cargo.toml", include_str!("new/rust/Cargo.toml")),
    ("src/lib.rs", include_str!("new/rust/src/lib.rs")),
    ("README.md", include_str!("new/rust/README.md")),
    (".gitignore", include_str!("new/rust/gitignore")),
    ("records.jsonl", include_str!("new/records.jsonl")),
];

const JS: &[File] = &[
    ("processor.js", include_str!("new/js/processor.js")),
    (
        "processor.test.js",
        include_str!("new/js/processor.test.js"),
    ),
    ("package.json", include_str!("new/js/package.json")),
    ("README.md", include_str!("new/js/README.md")),
    (".gitignore", include_str!("new/js/gitignore")),
    ("records.jsonl", include_str!("new/records.jsonl")),
];

const PYTHON: &[File] = &[
    ("processor.py", include_str!("new/python/processor.py")),
    (
        "test_processor.py",
        include_str!("new/python/test_processor.py"),
    ),
    ("README.md", include_str!("new/python/README.md")),
    (".gitignore", include_str!("new/python/gitignore")),
    ("records.jsonl", include_str!("new/records.jsonl")),
];

/// Runs `partita new`.
pub fn main(args: NewArgs) -> anyhow::Result<ExitCode> {
    if let Err(problem) = check_name(&args.name) {
        eprintln!("error: NAME `{}`: {problem}", args.name);
        return Ok(ExitCode::from(2));
    }
    let checkout = match args.partita.clone().or_else(built_from) {
        Some(dir) => dir,
        None => {
            eprintln!(
                "error: --partita: give the Partita checkout to take the SDK from \
                 (this binary does not know where it was built)"
            );
            return Ok(ExitCode::from(2));
        }
    };
    if !checkout.join("guest-sdk/Cargo.toml").is_file() {
        eprintln!(
            "error: --partita: {} is not a Partita checkout (no guest-sdk/Cargo.toml)",
            checkout.display()
        );
        return Ok(ExitCode::from(2));
    }
    let checkout = checkout
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", checkout.display()))?;
    let project = args.dir.join(&args.name);
    if project.exists() {
        eprintln!("error: {} exists already", project.display());
        return Ok(ExitCode::from(2));
    }
    let files = match args.lang {
        Lang::Rust => RUST,
        Lang::Js => JS,
        Lang::Python => PYTHON,
    };
    write(&project, files, &args.name, &checkout)?;
    println!("{}", project.display());
    eprintln!(
        "created {} ({}); its README.md says how to build and try it",
        project.display(),
        match args.lang {
            Lang::Rust => "Rust",
            Lang::Js => "JavaScript",
            Lang::Python => "Python",
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// Refuses a name that cannot be a crate, package and folder name.
fn check_name(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_lowercase()) {
        return Err("must start with a lowercase letter");
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_') {
        return Err("may hold only lowercase letters, digits, `-` and `_`");
    }
    if name.len() > 64 {
        return Err("must be at most 64 characters");
    }
    Ok(())
}

/// The checkout this binary was built from, if it is still there.
fn built_from() -> Option<PathBuf> {
    let host = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = host.parent()?;
    root.join("guest-sdk/Cargo.toml")
        .is_file()
        .then(|| root.to_path_buf())
}

/// Writes `files` under `project`, the placeholders filled in.
fn write(project: &Path, files: &[File], name: &str, checkout: &Path) -> anyhow::Result<()> {
    let sdk = checkout.to_string_lossy();
    let krate = name.replace('-', "_");
    for (path, text) in files {
        let to = project.join(path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let text = text
            .replace("{{name}}", name)
            .replace("{{crate}}", &krate)
            .replace("{{sdk}}", &sdk);
        std::fs::write(&to, text).with_context(|| format!("cannot write {}", to.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("shout").is_ok());
        assert!(check_name("my-proc_2").is_ok());
        assert_eq!(check_name("2x"), Err("must start with a lowercase letter"));
        assert_eq!(check_name(""), Err("must start with a lowercase letter"));
        assert_eq!(
            check_name("a/b"),
            Err("may hold only lowercase letters, digits, `-` and `_`")
        );
        assert_eq!(
            check_name("Shout"),
            Err("must start with a lowercase letter")
        );
    }

    #[test]
    fn every_template_names_its_project_and_the_checkout() {
        let dir = tempfile::tempdir().unwrap();
        for (lang, files) in [("rust", RUST), ("js", JS), ("python", PYTHON)] {
            let project = dir.path().join(lang);
            write(&project, files, "my-proc", Path::new("/opt/partita")).unwrap();
            for (path, _) in files {
                let text = std::fs::read_to_string(project.join(path)).unwrap();
                assert!(!text.contains("{{"), "{lang}/{path}: a placeholder is left");
            }
            let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
            assert!(readme.starts_with("# my-proc\n"), "{readme}");
        }
        let cargo = std::fs::read_to_string(dir.path().join("rust/Cargo.toml")).unwrap();
        assert!(
            cargo.contains("path = \"/opt/partita/guest-sdk\""),
            "{cargo}"
        );
        let readme = std::fs::read_to_string(dir.path().join("rust/README.md")).unwrap();
        assert!(readme.contains("release/my_proc.wasm"), "{readme}");
    }
}
