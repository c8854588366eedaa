//! Records the commit the operator is built from, for `certpush_build_info`: CERTPUSH_COMMIT when set (an image
//! build without .git), else `git rev-parse`, else "unknown".

fn main() {
    let commit = std::env::var("CERTPUSH_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            let out = std::process::Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=CERTPUSH_COMMIT={commit}");
    println!("cargo:rerun-if-env-changed=CERTPUSH_COMMIT");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
