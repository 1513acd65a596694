//! `schema/job.schema.json` agrees with the parser: every example and valid fixture validates
//! against it, both know the same field names at every level, and an unknown field fails both.
//! `schema/defaults.schema.json` (the jobs directory's `_defaults.yaml`) likewise.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn schema() -> Value {
    let text = std::fs::read_to_string(root().join("schema/job.schema.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&schema()).unwrap()
}

fn yaml_to_json(text: &str) -> Value {
    serde_saphyr::from_str::<Value>(text).unwrap()
}

fn job_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["examples", "tests/data/specs/valid"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn examples_and_valid_fixtures_match_the_schema() {
    let v = validator();
    let files = job_files();
    assert!(files.len() >= 8, "{files:?}");
    for f in files {
        let doc = yaml_to_json(&std::fs::read_to_string(&f).unwrap());
        let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", f.display());
    }
}

/// Follows a local `$ref` (`#/$defs/task`).
fn resolve<'a>(schema: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.trim_start_matches('#');
            schema
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {r}"))
        }
        None => node,
    }
}

/// The object subschema of a node that may be `oneOf` a scalar and an object.
fn object_of<'a>(schema: &'a Value, node: &'a Value) -> &'a Value {
    let node = resolve(schema, node);
    if node.get("properties").is_some() {
        return node;
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alts) = node.get(key).and_then(Value::as_array) {
            if let Some(o) = alts.iter().find(|a| a.get("properties").is_some()) {
                return o;
            }
        }
    }
    if let Some(items) = node.get("items") {
        return object_of(schema, items);
    }
    panic!("no object schema in {node}");
}

fn property_names(node: &Value) -> BTreeSet<String> {
    node["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// The field names the parser expects where `doc` has the unknown field `zz_unknown`.
fn parser_fields(doc: &str) -> BTreeSet<String> {
    let Err(e) = petit::jobs::raw::parse(doc) else {
        panic!("{doc:?} must not parse");
    };
    match e.without_snippet() {
        serde_saphyr::Error::SerdeUnknownField {
            field, expected, ..
        } => {
            assert_eq!(field, "zz_unknown");
            expected.iter().map(|s| s.to_string()).collect()
        }
        other => panic!("expected an unknown-field error for {doc:?}, got {other:?}"),
    }
}

#[test]
fn schema_and_parser_know_the_same_fields() {
    let s = schema();
    let task = object_of(&s, &s["properties"]["tasks"]);
    let cases: Vec<(&str, &Value, String)> = vec![
        ("job", &s, "id: a\nzz_unknown: 1\ntasks: [{id: t}]\n".into()),
        (
            "task",
            task,
            "id: a\ntasks: [{id: t, zz_unknown: 1}]\n".into(),
        ),
        (
            "retry",
            object_of(&s, &task["properties"]["retry"]),
            "id: a\ntasks: [{id: t, retry: {zz_unknown: 1}}]\n".into(),
        ),
        (
            "schedule",
            object_of(&s, &s["properties"]["schedule"]),
            "id: a\nschedule: {cron: x, zz_unknown: 1}\ntasks: [{id: t}]\n".into(),
        ),
        (
            "depends_on",
            object_of(&s, &s["properties"]["depends_on"]),
            "id: a\ndepends_on: [{job_id: x, zz_unknown: 1}]\ntasks: [{id: t}]\n".into(),
        ),
        (
            "history",
            object_of(&s, &s["properties"]["history"]),
            "id: a\nhistory: {zz_unknown: 1}\ntasks: [{id: t}]\n".into(),
        ),
        (
            "slurm",
            object_of(&s, &s["properties"]["slurm"]),
            "id: a\nslurm: {zz_unknown: 1}\ntasks: [{id: t}]\n".into(),
        ),
        (
            "task slurm",
            object_of(&s, &task["properties"]["slurm"]),
            "id: a\ntasks: [{id: t, slurm: {zz_unknown: 1}}]\n".into(),
        ),
        (
            "param",
            object_of(&s, &s["properties"]["params"]),
            "id: a\nparams: [{name: x, zz_unknown: 1}]\ntasks: [{id: t}]\n".into(),
        ),
        (
            "notify route",
            object_of(&s, &s["properties"]["notify"]),
            "id: a\nnotify: [{on: [failed], zz_unknown: 1}]\ntasks: [{id: t}]\n".into(),
        ),
    ];
    for (what, node, doc) in cases {
        assert_eq!(property_names(node), parser_fields(&doc), "{what}");
        // The unknown field fails the schema too.
        assert!(!validator().is_valid(&yaml_to_json(&doc)), "{what}: {doc}");
    }
}

/// Every property has an example; a job using each example value parses and matches the
/// schema, so the two also agree on the types of values.
#[test]
fn every_schema_example_is_accepted_by_the_parser() {
    let s = schema();
    let v = validator();
    let example = |node: &Value| -> Value {
        let node = resolve(&s, node);
        node["examples"]
            .get(0)
            .cloned()
            .unwrap_or_else(|| panic!("no example in {node}"))
    };
    let base = || json!({"id": "a", "tasks": [{"id": "t", "command": "echo"}]});
    let task = object_of(&s, &s["properties"]["tasks"]);
    let mut docs = Vec::new();
    for (name, prop) in s["properties"].as_object().unwrap() {
        let mut doc = base();
        doc[name] = example(prop);
        docs.push((format!("job.{name}"), doc));
    }
    for (name, prop) in task["properties"].as_object().unwrap() {
        let mut doc = base();
        doc["tasks"][0][name] = example(prop);
        docs.push((format!("task.{name}"), doc));
    }
    for (what, doc) in docs {
        assert!(v.is_valid(&doc), "{what}: {doc}");
        // JSON is YAML, so the same document goes through the job-file parser.
        let text = doc.to_string();
        if let Err(e) = petit::jobs::raw::parse(&text) {
            panic!("{what}: {text}: {e}");
        }
    }
}

fn defaults_schema() -> Value {
    let text = std::fs::read_to_string(root().join("schema/defaults.schema.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn check_defaults(text: &str) -> bool {
    petit::jobs::parse_defaults(Path::new("_defaults.yaml"), text).is_ok()
}

#[test]
fn defaults_schema_agrees_with_the_parser_and_the_job_schema() {
    let d = defaults_schema();
    let v = jsonschema::validator_for(&d).unwrap();
    // The same route as in a job file.
    assert_eq!(d["$defs"]["route"], schema()["$defs"]["route"]);
    // The same fields as the parser.
    let Err(e) = petit::jobs::raw::parse_defaults("zz_unknown: 1\n") else {
        panic!("an unknown field must not parse");
    };
    let serde_saphyr::Error::SerdeUnknownField { expected, .. } = e.without_snippet() else {
        panic!("expected an unknown-field error, got {e:?}");
    };
    let fields: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    assert_eq!(property_names(&d), fields);
    // Each example is valid for both, and so is a file using all of them.
    let mut all = json!({});
    for (name, prop) in d["properties"].as_object().unwrap() {
        let doc = json!({ name.as_str(): prop["examples"][0].clone() });
        assert!(v.is_valid(&doc), "{name}: {doc}");
        assert!(check_defaults(&doc.to_string()), "{name}: {doc}");
        all[name] = prop["examples"][0].clone();
    }
    assert!(
        v.is_valid(&all) && check_defaults(&all.to_string()),
        "{all}"
    );
    // Problems both see.
    for bad in [
        "zz_unknown: 1\n",
        "ping: 'https://h/${{ job.name }}'\n",
        "ping: file:///x\n",
        "notify: [{on: [failed]}]\n",
        "notify: [{on: [failed], command: [x], webhook: 'https://h/'}]\n",
        "notify: [{on: [failed], command: [x], headers: {A: b}}]\n",
        "notify: [{on: [nope], command: [x]}]\n",
    ] {
        assert!(!v.is_valid(&yaml_to_json(bad)), "schema accepts {bad}");
        assert!(!check_defaults(bad), "parser accepts {bad}");
    }
    assert!(v.is_valid(&yaml_to_json("ping: 'https://h/${{job.id}}/x'\n")));
}

/// `params:` entries the schema refuses are refused by validation too, and the fixture that
/// uses every type passes both.
#[test]
fn params_problems_fail_the_schema_and_the_parser() {
    let v = validator();
    let check = |text: &str| {
        petit::jobs::parse_job_in_zone(
            Path::new("p.yaml"),
            Path::new("."),
            text,
            petit::zone::Zone::UTC,
        )
        .is_ok()
    };
    let doc =
        |params: &str| format!("id: a\nparams: {params}\ntasks: [{{id: t, command: echo}}]\n");
    for bad in [
        "[{name: x, type: choice}]",
        "[{name: x, type: choice, choices: []}]",
        "[{name: x, choices: [a, b]}]",
        "[{name: x, type: int, choices: [a]}]",
        "[{name: 9x}]",
        "[{name: x, type: float}]",
        "[{name: x, type: choice, choices: [a, a], default: a}]",
    ] {
        let text = doc(bad);
        assert!(!v.is_valid(&yaml_to_json(&text)), "schema accepts {bad}");
        assert!(!check(&text), "parser accepts {bad}");
    }
    let good =
        doc("[{name: x, type: choice, choices: [a, b], default: a}, {name: count, type: int}]");
    let errors: Vec<String> = v
        .iter_errors(&yaml_to_json(&good))
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(check(&good));
}
