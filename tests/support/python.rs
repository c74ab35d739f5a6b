//! Python venvs for the checks that drive the daemon with real AWS clients (aws-cli, boto3)
//! or against moto, kept in `target/` between runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn target_dir() -> PathBuf {
    option_env!("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The python of a venv in `target/<name>` holding `packages`, made on first use (and
/// reused while `imports` import and `scripts` are in its `bin/`); `Err` says why it cannot be.
pub fn python_venv(
    name: &str,
    packages: &[&str],
    imports: &str,
    scripts: &[&str],
) -> Result<PathBuf, String> {
    let dir = target_dir().join(name);
    let python = dir.join("bin/python");
    let ready = |python: &Path| {
        python.exists()
            && scripts.iter().all(|s| dir.join("bin").join(s).exists())
            && Command::new(python)
                .args(["-c", &format!("import {imports}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    };
    if ready(&python) {
        return Ok(python);
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .output()
        .map_err(|e| format!("python3 -m venv: {e}"))?;
    if !made.status.success() {
        return Err(format!(
            "python3 -m venv failed: {}",
            String::from_utf8_lossy(&made.stderr).trim()
        ));
    }
    let pip = Command::new(dir.join("bin/pip"))
        .args(["install", "--quiet"])
        .args(packages)
        .output()
        .map_err(|e| format!("pip: {e}"))?;
    if !pip.status.success() {
        return Err(format!(
            "pip install {} failed: {}",
            packages.join(" "),
            String::from_utf8_lossy(&pip.stderr).trim()
        ));
    }
    if ready(&python) {
        Ok(python)
    } else {
        Err(format!(
            "the venv lacks {imports} or {scripts:?} after pip install {}",
            packages.join(" ")
        ))
    }
}
