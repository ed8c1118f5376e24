//! The machine-readable report: the whole [`Report`] as pretty-printed JSON with a trailing
//! newline, in the layout `schema/report.schema.json` describes (schema version
//! [`REPORT_SCHEMA_VERSION`](super::REPORT_SCHEMA_VERSION)). Unlike the text summary it is never
//! shortened: every result and every evidence item is kept.

use super::Report;

/// Pretty JSON of `report`, newline-terminated. Serialising this model cannot fail; if it ever
/// did, the output is a JSON object with an `error` field rather than a panic.
pub fn render(report: &Report) -> String {
    match serde_json::to_string_pretty(report) {
        Ok(mut json) => {
            json.push('\n');
            json
        }
        Err(e) => {
            let error = serde_json::json!({
                "error": format!("could not serialise the report: {e}"),
            });
            format!("{error:#}\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::report::testutil::{report_with_findings_of, sample_report};
    use crate::report::REPORT_SCHEMA_VERSION;

    const SCHEMA: &str = include_str!("../../schema/report.schema.json");

    fn schema() -> Value {
        serde_json::from_str(SCHEMA).expect("the schema is valid JSON")
    }

    fn validator() -> jsonschema::Validator {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&schema())
            .expect("the schema compiles")
    }

    fn errors(instance: &Value) -> Vec<String> {
        validator()
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect()
    }

    fn sample_json() -> Value {
        serde_json::from_str(&render(&sample_report())).expect("render produces JSON")
    }

    #[test]
    fn schema_is_a_valid_2020_12_schema() {
        let schema = schema();
        assert!(jsonschema::draft202012::meta::is_valid(&schema));
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(
            schema["properties"]["schema_version"]["const"],
            REPORT_SCHEMA_VERSION
        );
    }

    #[test]
    fn sample_validates() {
        assert_eq!(errors(&sample_json()), Vec::<String>::new());
    }

    #[test]
    fn other_reports_validate() {
        let mut report = report_with_findings_of(20, 50, '漢');
        report.only = vec!["ssh".to_string()];
        report.host.hostname = None;
        report.host.kernel = None;
        report.host.live = false;
        report.host.notes = vec!["os-release: not found".to_string()];
        let json: Value = serde_json::from_str(&render(&report)).unwrap();
        assert_eq!(errors(&json), Vec::<String>::new());
    }

    #[test]
    fn schema_is_not_vacuous() {
        let reject = |mutate: &dyn Fn(&mut Value), what: &str| {
            let mut json = sample_json();
            mutate(&mut json);
            assert!(!validator().is_valid(&json), "schema accepted {what}");
        };
        reject(
            &|j| j["extra"] = Value::from(1),
            "an unknown top-level field",
        );
        reject(
            &|j| j["results"][0]["extra"] = Value::from(1),
            "an unknown result field",
        );
        reject(
            &|j| j["host"]["os"]["codename"] = Value::from("x"),
            "an unknown os field",
        );
        reject(
            &|j| j["results"][0]["evidence"][0]["extra"] = Value::from(1),
            "an unknown evidence field",
        );
        // results[0] is a fail.
        reject(
            &|j| {
                j["results"][0].as_object_mut().unwrap().remove("evidence");
            },
            "a fail without evidence",
        );
        reject(
            &|j| j["results"][0]["reason"] = Value::from("x"),
            "a fail with a reason",
        );
        // results[4] is an error, results[6] not-applicable.
        reject(
            &|j| {
                j["results"][4].as_object_mut().unwrap().remove("cause");
            },
            "an error without a cause",
        );
        reject(
            &|j| {
                j["results"][6].as_object_mut().unwrap().remove("reason");
            },
            "a not-applicable without a reason",
        );
        reject(
            &|j| j["results"][0]["status"] = Value::from("failed"),
            "an unknown status",
        );
        reject(
            &|j| j["results"][0]["severity"] = Value::from("severe"),
            "an unknown severity",
        );
        reject(&|j| j["stage"] = Value::from("build"), "an unknown stage");
        reject(
            &|j| j["baseline"]["digest"] = Value::from("sha256:abc"),
            "a short digest",
        );
        reject(
            &|j| j["generated_at"] = Value::from("yesterday"),
            "a non-date-time generated_at",
        );
        reject(
            &|j| j["schema_version"] = Value::from(2),
            "schema_version 2",
        );
        reject(
            &|j| {
                j["totals"]["by_status"]
                    .as_object_mut()
                    .unwrap()
                    .remove("pass");
            },
            "by_status without pass",
        );
        reject(
            &|j| {
                j.as_object_mut().unwrap().remove("gate");
            },
            "a report without gate",
        );
    }

    #[test]
    fn round_trips() {
        let report = sample_report();
        let json = render(&report);
        assert!(json.ends_with("}\n"));
        let back: Report = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back, report);
    }

    #[test]
    fn sample() {
        insta::assert_snapshot!("sample", render(&sample_report()));
    }
}
