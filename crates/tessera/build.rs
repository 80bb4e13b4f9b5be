//! Decides, when the tests are compiled, whether their PostgreSQL variants run: without a
//! PostgreSQL URL they are compiled as `#[ignore]`d, so the test runner reports them as
//! skipped instead of counting an early return as a pass.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(tessera_postgres_tests)");
    for var in [
        "TESSERA_TEST_POSTGRES_URL",
        "TESSERA_REQUIRE_POSTGRES",
        "CI",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let set = |var: &str| std::env::var(var).is_ok_and(|v| !v.is_empty());
    let required = std::env::var("TESSERA_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v == "true");
    if set("TESSERA_TEST_POSTGRES_URL") || required {
        println!("cargo::rustc-cfg=tessera_postgres_tests");
    }
}
