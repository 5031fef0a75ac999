//! The engine's scenario suite: every `tests/fixtures/scenarios/*.scn` file, each scenario
//! run on its own; all failures are reported together.

mod scenario;

use std::path::Path;

fn run_file(path: &Path) -> (usize, Vec<String>) {
    let source = std::fs::read_to_string(path).unwrap();
    let label = format!("tests/fixtures/scenarios/{}", path.file_name().unwrap().to_string_lossy());
    let scenarios = match scenario::parse(&source, &label) {
        Ok(scenarios) => scenarios,
        Err(error) => return (0, vec![error]),
    };
    let mut failures = Vec::new();
    for scenario in &scenarios {
        if let Err(error) = scenario.run() {
            failures.push(format!(
                "scenario {:?} ({}:{}):\n    {error}",
                scenario.name, scenario.file, scenario.line
            ));
        }
    }
    (scenarios.len(), failures)
}

#[test]
fn scenario_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "scn"))
        .collect();
    files.sort();
    let mut total = 0;
    let mut failures = Vec::new();
    for file in &files {
        let (count, file_failures) = run_file(file);
        total += count;
        failures.extend(file_failures);
    }
    assert!(
        failures.is_empty(),
        "{} of {total} scenarios failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(total >= 100, "only {total} scenarios; the suite is meant to cover the engine broadly");
}
