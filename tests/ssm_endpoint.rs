//! The local SSM endpoint (`tests/ssm/endpoint.py`) is faithful to SSM where a client can tell:
//! the real AWS CLI stores and reads back compliance items and inventory through it (COMPLETE
//! replaces, PARTIAL upserts, an equal content hash is ignored, summaries count by status and
//! severity, long lists page); requests that break botocore's SSM model are refused with a
//! ValidationException naming the member and the constraint, even when the CLI would have let them
//! through; unsigned, mis-signed and mis-scoped requests are refused; Parameter Store operations
//! reach moto; and each injected fault is what a client sees.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::ssm::{Fault, SsmEndpoint};
use serde_json::{json, Value};

const NODE: &str = "i-0123456789abcdef0";
const OTHER_NODE: &str = "i-0fedcba9876543210";
const TYPE: &str = "Custom:Ec2Harden";
const SEVERITIES: [&str; 6] = [
    "CRITICAL",
    "HIGH",
    "MEDIUM",
    "LOW",
    "INFORMATIONAL",
    "UNSPECIFIED",
];

fn item(id: &str, severity: &str, status: &str) -> Value {
    json!({
        "Id": id,
        "Title": format!("rule {id}"),
        "Severity": severity,
        "Status": status,
        "Details": {"Evidence": format!("/etc/ssh/sshd_config:12: {id}"), "Family": "ssh"},
    })
}

/// `aws ssm put-compliance-items` with `items`, plus `extra` members (UploadType, ItemContentHash).
fn put_compliance(ep: &SsmEndpoint, resource: &str, ctype: &str, items: Value, extra: Value) {
    let mut input = json!({
        "ResourceId": resource,
        "ResourceType": "ManagedInstance",
        "ComplianceType": ctype,
        "ExecutionSummary": {"ExecutionTime": 1_735_689_600, "ExecutionId": "cmd-1", "ExecutionType": "Command"},
        "Items": items,
    });
    input
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    ep.aws_json(&[
        "ssm",
        "put-compliance-items",
        "--cli-input-json",
        &input.to_string(),
    ]);
}

/// The compliance items of `resource` and `ctype` as the AWS CLI lists them, by Id.
fn listed(ep: &SsmEndpoint, resource: &str, ctype: &str) -> BTreeMap<String, Value> {
    let filter = format!("Key=ComplianceType,Values={ctype},Type=EQUAL");
    let out = ep.aws_json(&[
        "ssm",
        "list-compliance-items",
        "--resource-ids",
        resource,
        "--resource-types",
        "ManagedInstance",
        "--filters",
        &filter,
    ]);
    out["ComplianceItems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["Id"].as_str().unwrap().to_string(), i.clone()))
        .collect()
}

fn ids(items: &BTreeMap<String, Value>) -> Vec<&str> {
    items.keys().map(String::as_str).collect()
}

fn outcomes(ep: &SsmEndpoint, operation: &str) -> Vec<String> {
    ep.requests(operation)
        .iter()
        .map(|e| e["outcome"].as_str().unwrap().to_string())
        .collect()
}

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn compliance_items_round_trip_through_the_aws_cli() {
    let ep = SsmEndpoint::start_with(false, true);
    let sent = vec![
        item("ssh-permit-root-login-no", "HIGH", "NON_COMPLIANT"),
        item("kernel-aslr", "MEDIUM", "COMPLIANT"),
        json!({"Id": "no-title-no-details", "Severity": "UNSPECIFIED", "Status": "COMPLIANT"}),
    ];
    put_compliance(&ep, NODE, TYPE, json!(sent), json!({}));

    let got = listed(&ep, NODE, TYPE);
    assert_eq!(got.len(), sent.len(), "{got:?}");
    for want in &sent {
        let have = &got[want["Id"].as_str().unwrap()];
        for member in ["Id", "Title", "Severity", "Status", "Details"] {
            assert_eq!(have.get(member), want.get(member), "{member} of {want}");
        }
        assert_eq!(have["ComplianceType"], TYPE);
        assert_eq!(have["ResourceId"], NODE);
        assert_eq!(have["ResourceType"], "ManagedInstance");
        assert_eq!(have["ExecutionSummary"]["ExecutionId"], "cmd-1");
        assert_eq!(have["ExecutionSummary"]["ExecutionType"], "Command");
        assert_eq!(have["ExecutionSummary"]["ExecutionTime"], 1_735_689_600);
    }

    // the log has the request as the CLI put it on the wire: timestamps as epoch seconds
    let puts = ep.requests("PutComplianceItems");
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0]["outcome"], "stored");
    assert_eq!(puts[0]["status"], 200);
    assert!(puts[0]["body"]["ExecutionSummary"]["ExecutionTime"].is_number());
    assert_eq!(puts[0]["body"]["Items"], json!(sent));

    // another node has nothing
    assert!(listed(&ep, OTHER_NODE, TYPE).is_empty());
}

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn complete_replaces_partial_upserts_and_an_equal_content_hash_is_ignored() {
    let ep = SsmEndpoint::start_with(false, true);
    let other = "Custom:OtherTool";
    put_compliance(
        &ep,
        NODE,
        other,
        json!([item("z", "LOW", "COMPLIANT")]),
        json!({}),
    );
    put_compliance(
        &ep,
        NODE,
        TYPE,
        json!([
            item("a", "HIGH", "NON_COMPLIANT"),
            item("b", "LOW", "COMPLIANT"),
            item("c", "LOW", "COMPLIANT")
        ]),
        json!({"ItemContentHash": "h1"}),
    );
    assert_eq!(ids(&listed(&ep, NODE, TYPE)), ["a", "b", "c"]);

    // COMPLETE (the default) replaces every item of that type on that node, and nothing else
    put_compliance(
        &ep,
        NODE,
        TYPE,
        json!([
            item("a", "HIGH", "COMPLIANT"),
            item("d", "MEDIUM", "NON_COMPLIANT")
        ]),
        json!({"ItemContentHash": "h2", "UploadType": "COMPLETE"}),
    );
    let got = listed(&ep, NODE, TYPE);
    assert_eq!(ids(&got), ["a", "d"]);
    assert_eq!(got["a"]["Status"], "COMPLIANT");
    assert_eq!(ids(&listed(&ep, NODE, other)), ["z"]);

    // PARTIAL upserts by Id
    put_compliance(
        &ep,
        NODE,
        TYPE,
        json!([
            item("b", "LOW", "NON_COMPLIANT"),
            item("d", "MEDIUM", "COMPLIANT")
        ]),
        json!({"UploadType": "PARTIAL", "ItemContentHash": "h3"}),
    );
    let got = listed(&ep, NODE, TYPE);
    assert_eq!(ids(&got), ["a", "b", "d"]);
    assert_eq!(got["b"]["Status"], "NON_COMPLIANT");
    assert_eq!(got["d"]["Status"], "COMPLIANT");

    // the same content hash again: ignored, still a success
    put_compliance(
        &ep,
        NODE,
        TYPE,
        json!([item("x", "CRITICAL", "NON_COMPLIANT")]),
        json!({"ItemContentHash": "h3"}),
    );
    assert_eq!(ids(&listed(&ep, NODE, TYPE)), ["a", "b", "d"]);
    // a different one is not
    put_compliance(
        &ep,
        NODE,
        TYPE,
        json!([item("x", "CRITICAL", "NON_COMPLIANT")]),
        json!({"ItemContentHash": "h4"}),
    );
    assert_eq!(ids(&listed(&ep, NODE, TYPE)), ["x"]);

    assert_eq!(
        outcomes(&ep, "PutComplianceItems"),
        ["stored", "stored", "stored", "stored", "no-op", "stored"]
    );
}

/// (status, worst non-compliant severity or UNSPECIFIED, per-severity counts) of `items`, the way
/// SSM summarises one node's compliance type.
fn expected_summary(items: &[Value]) -> (String, String, Value, Value) {
    let count = |status: &str| {
        let mut counts = serde_json::Map::new();
        for s in SEVERITIES {
            let n = items
                .iter()
                .filter(|i| i["Status"] == status && i["Severity"] == s)
                .count();
            let key = format!("{}{}Count", &s[..1], s[1..].to_lowercase());
            counts.insert(key, json!(n));
        }
        Value::Object(counts)
    };
    let worst = SEVERITIES
        .iter()
        .find(|s| {
            items
                .iter()
                .any(|i| i["Status"] == "NON_COMPLIANT" && i["Severity"] == **s)
        })
        .unwrap_or(&"UNSPECIFIED");
    let status = if items.iter().any(|i| i["Status"] == "NON_COMPLIANT") {
        "NON_COMPLIANT"
    } else {
        "COMPLIANT"
    };
    (
        status.to_string(),
        worst.to_string(),
        count("COMPLIANT"),
        count("NON_COMPLIANT"),
    )
}

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn resource_compliance_summaries_count_by_status_and_severity() {
    let ep = SsmEndpoint::start_with(false, true);
    let mut mixed = Vec::new();
    for (n, severity) in SEVERITIES.iter().enumerate() {
        for k in 0..=n {
            mixed.push(item(&format!("c-{severity}-{k}"), severity, "COMPLIANT"));
        }
    }
    for (n, severity) in ["MEDIUM", "LOW", "LOW", "INFORMATIONAL"].iter().enumerate() {
        mixed.push(item(&format!("n-{n}"), severity, "NON_COMPLIANT"));
    }
    let clean = vec![
        item("ok-1", "CRITICAL", "COMPLIANT"),
        item("ok-2", "LOW", "COMPLIANT"),
    ];
    put_compliance(&ep, NODE, TYPE, json!(mixed), json!({}));
    put_compliance(&ep, OTHER_NODE, TYPE, json!(clean), json!({}));

    let out = ep.aws_json(&["ssm", "list-resource-compliance-summaries"]);
    let summaries = out["ResourceComplianceSummaryItems"].as_array().unwrap();
    assert_eq!(summaries.len(), 2, "{out}");
    for (node, items) in [(NODE, &mixed), (OTHER_NODE, &clean)] {
        let s = summaries
            .iter()
            .find(|s| s["ResourceId"] == node)
            .unwrap_or_else(|| panic!("no summary for {node}: {out}"));
        let (status, worst, good, bad) = expected_summary(items);
        assert_eq!(s["ComplianceType"], TYPE);
        assert_eq!(s["ResourceType"], "ManagedInstance");
        assert_eq!(s["Status"], status.as_str(), "{node}");
        assert_eq!(s["OverallSeverity"], worst.as_str(), "{node}");
        let compliant = items.iter().filter(|i| i["Status"] == "COMPLIANT").count();
        assert_eq!(s["CompliantSummary"]["CompliantCount"], compliant);
        assert_eq!(s["CompliantSummary"]["SeveritySummary"], good);
        assert_eq!(
            s["NonCompliantSummary"]["NonCompliantCount"],
            items.len() - compliant
        );
        assert_eq!(s["NonCompliantSummary"]["SeveritySummary"], bad);
        assert_eq!(s["ExecutionSummary"]["ExecutionId"], "cmd-1");
    }

    // filters
    let out = ep.aws_json(&[
        "ssm",
        "list-resource-compliance-summaries",
        "--filters",
        "Key=Status,Values=NON_COMPLIANT,Type=EQUAL",
    ]);
    let only: Vec<&Value> = out["ResourceComplianceSummaryItems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["ResourceId"])
        .collect();
    assert_eq!(only, [NODE]);
    let out = ep.aws_json(&[
        "ssm",
        "list-compliance-items",
        "--resource-ids",
        NODE,
        "--filters",
        "Key=Status,Values=NON_COMPLIANT,Type=EQUAL",
        "Key=Severity,Values=LOW,Type=NOT_EQUAL",
    ]);
    let got: BTreeSet<&str> = out["ComplianceItems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["Id"].as_str().unwrap())
        .collect();
    let want: BTreeSet<&str> = mixed
        .iter()
        .filter(|i| i["Status"] == "NON_COMPLIANT" && i["Severity"] != "LOW")
        .map(|i| i["Id"].as_str().unwrap())
        .collect();
    assert_eq!(got, want);

    // per type: one node compliant, one not
    let out = ep.aws_json(&["ssm", "list-compliance-summaries"]);
    let types = out["ComplianceSummaryItems"].as_array().unwrap();
    assert_eq!(types.len(), 1, "{out}");
    assert_eq!(types[0]["CompliantSummary"]["CompliantCount"], 1);
    assert_eq!(types[0]["NonCompliantSummary"]["NonCompliantCount"], 1);
}

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn the_aws_cli_pages_through_long_lists() {
    let ep = SsmEndpoint::start_with(false, true);
    let sent: Vec<Value> = (0..137)
        .map(|n| item(&format!("rule-{n:03}"), "LOW", "COMPLIANT"))
        .collect();
    put_compliance(&ep, NODE, TYPE, json!(sent), json!({}));

    let page_size = 50;
    let out = ep.aws_json(&[
        "ssm",
        "list-compliance-items",
        "--resource-ids",
        NODE,
        "--page-size",
        &page_size.to_string(),
    ]);
    let got: Vec<&str> = out["ComplianceItems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["Id"].as_str().unwrap())
        .collect();
    let want: Vec<&str> = sent.iter().map(|i| i["Id"].as_str().unwrap()).collect();
    assert_eq!(got, want, "every item once, in order");
    let pages = ep.requests("ListComplianceItems");
    assert_eq!(pages.len(), sent.len().div_ceil(page_size));
    assert!(pages[0]["body"].get("NextToken").is_none());
    for page in &pages[1..] {
        assert!(page["body"]["NextToken"].is_string(), "{page}");
        assert_eq!(page["body"]["MaxResults"], page_size);
    }

    // the CLI without --page-size pages too, through the service's default page size
    let out = ep.aws_json(&["ssm", "list-compliance-items", "--resource-ids", NODE]);
    assert_eq!(out["ComplianceItems"].as_array().unwrap().len(), sent.len());

    let bad = ep.send_raw(&json!([
        {"operation": "ListComplianceItems", "body": {"NextToken": "not-a-token-of-ours"}}
    ]));
    assert_eq!(bad[0]["status"], 400, "{bad:?}");
    assert_eq!(bad[0]["body"]["__type"], "InvalidNextToken");
}

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn inventory_round_trip_and_an_equal_content_hash_is_ignored() {
    let ep = SsmEndpoint::start_with(false, true);
    let summary = "Custom:Ec2HardenSummary";
    let put = |node: &str, hash: &str, content: Value| {
        let items = json!([{
            "TypeName": summary,
            "SchemaVersion": "1.0",
            "CaptureTime": "2025-01-02T03:04:05Z",
            "ContentHash": hash,
            "Content": content,
        }]);
        ep.aws_json(&[
            "ssm",
            "put-inventory",
            "--instance-id",
            node,
            "--items",
            &items.to_string(),
        ]);
    };
    let first = json!([{"Baseline": "debian-12", "Failed": "3", "Passed": "200"}]);
    put(NODE, "h1", first.clone());
    put(OTHER_NODE, "h9", json!([{"Baseline": "common"}]));

    let out = ep.aws_json(&[
        "ssm",
        "get-inventory",
        "--filters",
        &format!("Key=AWS:InstanceInformation.InstanceId,Values={NODE},Type=Equal"),
    ]);
    let entities = out["Entities"].as_array().unwrap();
    assert_eq!(entities.len(), 1, "{out}");
    assert_eq!(entities[0]["Id"], NODE);
    let data = &entities[0]["Data"][summary];
    assert_eq!(data["TypeName"], summary);
    assert_eq!(data["SchemaVersion"], "1.0");
    assert_eq!(data["CaptureTime"], "2025-01-02T03:04:05Z");
    assert_eq!(data["Content"], first);

    // a filter on the custom type's own attribute
    let out = ep.aws_json(&[
        "ssm",
        "get-inventory",
        "--filters",
        &format!("Key={summary}.Baseline,Values=common,Type=Equal"),
    ]);
    let found: Vec<&Value> = out["Entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["Id"])
        .collect();
    assert_eq!(found, [OTHER_NODE]);

    let entries = |node: &str| {
        ep.aws_json(&[
            "ssm",
            "list-inventory-entries",
            "--instance-id",
            node,
            "--type-name",
            summary,
        ])
    };
    let out = entries(NODE);
    assert_eq!(out["InstanceId"], NODE);
    assert_eq!(out["TypeName"], summary);
    assert_eq!(out["CaptureTime"], "2025-01-02T03:04:05Z");
    assert_eq!(out["Entries"], first);

    // the same ContentHash: the item is left as it was; a new one replaces it
    put(NODE, "h1", json!([{"Baseline": "changed"}]));
    assert_eq!(entries(NODE)["Entries"], first);
    let second = json!([{"Baseline": "debian-12", "Failed": "0", "Passed": "203"}]);
    put(NODE, "h2", second.clone());
    assert_eq!(entries(NODE)["Entries"], second);
    assert_eq!(
        outcomes(&ep, "PutInventory"),
        ["stored", "stored", "no-op", "stored"]
    );
}

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn inventory_limits_answer_with_the_documented_errors() {
    let ep = SsmEndpoint::start_with(false, true);
    let put = |items: Value| {
        ep.aws(&[
            "ssm",
            "put-inventory",
            "--instance-id",
            NODE,
            "--items",
            &items.to_string(),
        ])
    };
    let entry = |type_name: &str, content: Value| json!({"TypeName": type_name, "SchemaVersion": "1.0", "CaptureTime": "2025-01-02T03:04:05Z", "Content": content});
    let refused = |out: std::process::Output, error: &str| {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(error), "{stderr}");
    };

    refused(
        put(json!([entry("AWS:NoSuchType", json!([]))])),
        "InvalidTypeNameException",
    );

    // 50 attributes per type: each entry within the model's 50, together 51
    let half = |from: usize| -> Value {
        (from..from + 26)
            .map(|n| (format!("Attr{n}"), json!("v")))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    refused(
        put(json!([entry("Custom:Wide", json!([half(0), half(25)]))])),
        "InvalidItemContentException",
    );

    // 20 custom types per account
    let twenty: Vec<Value> = (0..20)
        .map(|n| entry(&format!("Custom:Type{n}"), json!([{"A": "b"}])))
        .collect();
    assert!(put(json!(twenty)).status.success());
    refused(
        put(json!([entry("Custom:OneTooMany", json!([{"A": "b"}]))])),
        "CustomSchemaCountLimitExceededException",
    );
    // a refused request stores nothing
    let out = ep.aws_json(&[
        "ssm",
        "list-inventory-entries",
        "--instance-id",
        NODE,
        "--type-name",
        "Custom:OneTooMany",
    ]);
    assert_eq!(out["Entries"], json!([]));
    assert_eq!(
        outcomes(&ep, "PutInventory"),
        [
            "InvalidTypeNameException",
            "InvalidItemContentException",
            "stored",
            "CustomSchemaCountLimitExceededException"
        ]
    );
}

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn requests_breaking_the_model_are_refused_with_readable_errors() {
    let ep = SsmEndpoint::start();
    let compliance = |patch: Value| {
        let mut body = json!({
            "ResourceId": NODE,
            "ResourceType": "ManagedInstance",
            "ComplianceType": TYPE,
            "ExecutionSummary": {"ExecutionTime": 1_735_689_600},
            "Items": [item("a", "HIGH", "NON_COMPLIANT")],
        });
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        json!({"operation": "PutComplianceItems", "body": body})
    };
    let inventory = |item: Value| {
        let mut one = json!({"TypeName": "Custom:Ec2HardenSummary", "SchemaVersion": "1.0",
                             "CaptureTime": "2025-01-02T03:04:05Z", "Content": [{"A": "b"}]});
        one.as_object_mut()
            .unwrap()
            .extend(item.as_object().unwrap().clone());
        json!({"operation": "PutInventory", "body": {"InstanceId": NODE, "Items": [one]}})
    };
    let mut with_unknown = item("a", "HIGH", "NON_COMPLIANT");
    with_unknown["Remediation"] = json!("edit sshd_config");
    let wide: serde_json::Map<String, Value> =
        (0..51).map(|n| (format!("Attr{n}"), json!("v"))).collect();
    let cases: Vec<(&str, Value, &str, &[&str])> = vec![
        (
            "compliance type outside the pattern",
            compliance(json!({"ComplianceType": "Custom:bad-name!"})),
            "ValidationException",
            &["'ComplianceType'", "regular expression pattern"],
        ),
        (
            "title over 500 characters",
            compliance(
                json!({"Items": [{"Severity": "LOW", "Status": "COMPLIANT", "Title": "t".repeat(501)}]}),
            ),
            "ValidationException",
            &["'Items[0].Title'", "length less than or equal to 500"],
        ),
        (
            "a details value over 4096 characters",
            compliance(
                json!({"Items": [{"Severity": "LOW", "Status": "COMPLIANT", "Details": {"Evidence": "e".repeat(4097)}}]}),
            ),
            "ValidationException",
            &[
                "'Items[0].Details.Evidence'",
                "length less than or equal to 4096",
            ],
        ),
        (
            "severity outside the enum",
            compliance(json!({"Items": [{"Severity": "SEVERE", "Status": "COMPLIANT"}]})),
            "ValidationException",
            &["'Items[0].Severity'", "enum value set"],
        ),
        (
            "a member the model does not have",
            compliance(json!({"Items": [with_unknown]})),
            "ValidationException",
            &["Unknown member 'Remediation'", "'Items[0]'"],
        ),
        (
            "a missing required member",
            compliance(json!({"ExecutionSummary": null})),
            "ValidationException",
            &["'ExecutionSummary'", "must not be null"],
        ),
        (
            "a timestamp as a string on the wire",
            compliance(json!({"ExecutionSummary": {"ExecutionTime": "2025-01-01T00:00:00Z"}})),
            "SerializationException",
            &["'ExecutionSummary.ExecutionTime'", "epoch seconds"],
        ),
        (
            "a number where the model has a string",
            compliance(json!({"Items": [{"Severity": 3, "Status": "COMPLIANT"}]})),
            "SerializationException",
            &["'Items[0].Severity'"],
        ),
        (
            "capture time with fractions of a second",
            inventory(json!({"CaptureTime": "2025-01-02T03:04:05.123Z"})),
            "ValidationException",
            &["'Items[0].CaptureTime'", "regular expression pattern"],
        ),
        (
            "an inventory entry with 51 attributes",
            inventory(json!({"Content": [wide]})),
            "ValidationException",
            &["'Items[0].Content[0]'", "less than or equal to 50 entries"],
        ),
        (
            "an instance id outside the pattern",
            json!({"operation": "PutInventory", "body": {"InstanceId": "i-123", "Items": []}}),
            "ValidationException",
            &[
                "'InstanceId'",
                "regular expression pattern",
                "'Items'",
                "greater than or equal to 1",
            ],
        ),
        (
            "MaxResults over the model's 50",
            json!({"operation": "ListComplianceItems", "body": {"MaxResults": 51}}),
            "ValidationException",
            &["'MaxResults'", "value less than or equal to 50"],
        ),
        (
            "a forwarded operation is held to the model too",
            json!({"operation": "PutParameter", "body": {"Name": "", "Value": "v", "Type": "Plaintext"}}),
            "ValidationException",
            &[
                "'Name'",
                "length greater than or equal to 1",
                "'Type'",
                "enum value set",
            ],
        ),
    ];
    let requests: Vec<Value> = cases.iter().map(|c| c.1.clone()).collect();
    let answers = ep.send_raw(&json!(requests));
    for ((what, _, error, fragments), answer) in cases.iter().zip(&answers) {
        assert_eq!(answer["status"], 400, "{what}: {answer}");
        let kind = answer["body"]["__type"].as_str().unwrap_or_default();
        assert_eq!(kind.rsplit('#').next(), Some(*error), "{what}: {answer}");
        let message = answer["body"]["message"].as_str().unwrap_or_default();
        for fragment in *fragments {
            assert!(
                message.contains(fragment),
                "{what}: {fragment:?} not in {message}"
            );
        }
    }
    // each was logged as refused, in order, and nothing was stored or forwarded
    let log = ep.log();
    assert_eq!(log.len(), cases.len());
    for (entry, (what, request, error, _)) in log.iter().zip(&cases) {
        assert_eq!(entry["operation"], request["operation"], "{what}");
        assert_eq!(entry["outcome"], *error, "{what}");
    }
    let out = ep.aws_json(&["ssm", "list-compliance-items"]);
    assert_eq!(out["ComplianceItems"], json!([]));
}

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn requests_must_be_signed_for_ssm_in_the_region() {
    let ep = SsmEndpoint::start_with(false, true);
    let body = json!({"InstanceId": NODE, "TypeName": "Custom:Ec2HardenSummary"});
    let request = |extra: Value| {
        let mut r = json!({"operation": "ListInventoryEntries", "body": body});
        r.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        r
    };
    let answers = ep.send_raw(&json!([
        request(json!({})),
        request(json!({"sign": false})),
        request(json!({"secret_key": "not-the-secret"})),
        request(json!({"region": "eu-west-1"})),
        request(json!({"service": "ec2"})),
        request(json!({"sign": false, "headers": {"Authorization": "Bearer abc", "X-Amz-Date": "20250101T000000Z"}})),
    ]));
    assert_eq!(answers[0]["status"], 200, "{answers:?}");
    let refused: Vec<(&Value, &str)> = answers[1..]
        .iter()
        .map(|a| {
            (
                &a["status"],
                a["body"]["__type"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        refused,
        [
            (
                &json!(400),
                "com.amazon.coral.service#MissingAuthenticationTokenException"
            ),
            (
                &json!(400),
                "com.amazon.coral.service#InvalidSignatureException"
            ),
            (
                &json!(400),
                "com.amazon.coral.service#InvalidSignatureException"
            ),
            (
                &json!(400),
                "com.amazon.coral.service#InvalidSignatureException"
            ),
            (
                &json!(400),
                "com.amazon.coral.service#IncompleteSignatureException"
            ),
        ]
    );
    assert!(answers[3]["body"]["message"]
        .as_str()
        .unwrap()
        .contains("eu-west-1"));
    assert!(answers[4]["body"]["message"]
        .as_str()
        .unwrap()
        .contains("'ssm'"));

    // the real CLI with the wrong secret is refused, with the right one served
    let out = ep.aws_with(
        &["ssm", "list-compliance-items"],
        &[("AWS_SECRET_ACCESS_KEY", "not-the-secret")],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("InvalidSignatureException"));
    ep.aws_json(&["ssm", "list-compliance-items"]);

    // without the secret, only the form is checked
    let lax = SsmEndpoint::start_with(false, false);
    let answers = lax.send_raw(&json!([
        request(json!({"secret_key": "not-the-secret"})),
        request(json!({"sign": false})),
    ]));
    assert_eq!(answers[0]["status"], 200, "{answers:?}");
    assert_eq!(answers[1]["status"], 400, "{answers:?}");
}

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn other_operations_are_forwarded_to_moto() {
    let ep = SsmEndpoint::start();
    ep.aws_json(&[
        "ssm",
        "put-parameter",
        "--name",
        "/ec2-harden/fim-digest",
        "--value",
        "abc123",
        "--type",
        "String",
    ]);
    let got = ep.aws_json(&["ssm", "get-parameter", "--name", "/ec2-harden/fim-digest"]);
    assert_eq!(got["Parameter"]["Value"], "abc123");
    let missing = ep.aws(&["ssm", "get-parameter", "--name", "/ec2-harden/none"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("ParameterNotFound"));
    assert_eq!(
        ep.log()
            .iter()
            .map(|e| (
                e["operation"].as_str().unwrap(),
                e["outcome"].as_str().unwrap()
            ))
            .collect::<Vec<_>>(),
        [
            ("PutParameter", "forwarded"),
            ("GetParameter", "forwarded"),
            ("GetParameter", "forwarded")
        ]
    );
    // it is moto's store: asked directly, moto has the parameter
    let moto = std::process::Command::new(common::ssm::venv_bin("aws"))
        .envs(ep.env())
        .args(["--endpoint-url", ep.moto_url().unwrap(), "--output", "json"])
        .args(["ssm", "get-parameter", "--name", "/ec2-harden/fim-digest"])
        .output()
        .unwrap();
    let direct: Value = serde_json::from_slice(&moto.stdout).unwrap();
    assert_eq!(direct["Parameter"]["Value"], "abc123");
}

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn injected_faults_are_what_the_client_sees() {
    let ep = SsmEndpoint::start_with(false, true);
    let no_retries = [("AWS_RETRY_MODE", "standard"), ("AWS_MAX_ATTEMPTS", "1")];
    let list = ["ssm", "list-compliance-items"];
    for (fault, seen) in [
        (Fault::Throttle, "ThrottlingException"),
        (Fault::Http500, "InternalServerError"),
        (Fault::Reset, "Connection was closed"),
    ] {
        ep.fault("ListComplianceItems", fault, 1);
        let out = ep.aws_with(&list, &no_retries);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(seen),
            "{fault:?}: {stderr}"
        );
    }
    assert_eq!(
        outcomes(&ep, "ListComplianceItems"),
        ["throttle", "http500", "reset"]
    );

    // faults are consumed in order; the CLI's own retries get through
    ep.reset();
    ep.fault("PutComplianceItems", Fault::Throttle, 1);
    ep.fault("PutComplianceItems", Fault::Http500, 1);
    put_compliance(
        &ep,
        NODE,
        TYPE,
        json!([item("a", "LOW", "COMPLIANT")]),
        json!({}),
    );
    let puts = ep.requests("PutComplianceItems");
    let kinds: Vec<&str> = puts
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["throttle", "http500", "stored"]);
    assert!(puts.iter().all(|e| e["body"] == puts[0]["body"]));
    assert_eq!(ep.queued_faults()["PutComplianceItems"], json!([]));

    // hang: the hung client gives up on its own timeout while others are answered
    ep.fault("ListComplianceItems", Fault::Hang, 1);
    let hung = std::thread::scope(|s| {
        let hung = s.spawn(|| {
            ep.send_raw(&json!([{"operation": "ListComplianceItems", "body": {}, "timeout": 3}]))
        });
        while !outcomes(&ep, "ListComplianceItems").contains(&"hang".to_string()) {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let listed = ep.aws_json(&list);
        assert_eq!(listed["ComplianceItems"].as_array().unwrap().len(), 1);
        hung.join().unwrap()
    });
    assert_eq!(hung[0]["error"], "timeout", "{hung:?}");
    assert_eq!(outcomes(&ep, "ListComplianceItems"), ["hang", "read"]);
}
