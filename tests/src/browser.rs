//! Looks at a web page as a person would: headless Chromium (Debian's
//! `chromium`, installed by scripts/install-chromium.sh) loads it and
//! returns the document it rendered, or takes a screenshot.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The Chromium binary: `PARTITA_CHROMIUM`, else `chromium` on the PATH.
pub fn chromium() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("PARTITA_CHROMIUM") {
        return Ok(PathBuf::from(p));
    }
    let out = Command::new("sh")
        .args(["-c", "command -v chromium"])
        .output()
        .context("cannot look for chromium")?;
    if !out.status.success() {
        bail!("chromium is not installed: run scripts/install-chromium.sh (scripts/test.sh does)");
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn headless(url: &str, extra: &[&str]) -> Result<std::process::Output> {
    let profile = tempfile::tempdir().context("cannot create a browser profile folder")?;
    let out = Command::new(chromium()?)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .context("cannot run chromium")?;
    if !out.status.success() {
        bail!(
            "chromium failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// The document Chromium built from `url` (after its scripts ran).
pub fn rendered_dom(url: &str) -> Result<String> {
    let out = headless(url, &["--dump-dom", "--virtual-time-budget=2000"])?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Saves a `width`×`height` screenshot of `url` to `png`.
pub fn screenshot(url: &str, png: &Path, width: u32, height: u32) -> Result<()> {
    headless(
        url,
        &[
            &format!("--screenshot={}", png.display()),
            &format!("--window-size={width},{height}"),
        ],
    )?;
    let bytes =
        std::fs::read(png).with_context(|| format!("no screenshot at {}", png.display()))?;
    if !bytes.starts_with(b"\x89PNG") {
        bail!("{} is not a PNG", png.display());
    }
    Ok(())
}
