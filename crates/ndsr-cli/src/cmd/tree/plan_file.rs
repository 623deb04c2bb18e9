//! Plan files: the steps of a plan with the versions they were made
//! against, written by `diff --plan-out` and read by `apply --plan`.

use super::*;

pub(super) fn plan_doc(root: &str, steps: &[Step]) -> Value {
    let steps: Vec<Value> = steps
        .iter()
        .map(|s| {
            let version = if s.op == Op::Acl { "expected_aversion" } else { "expected_version" };
            let mut step = json!({
                "op": s.op,
                "path": relative(root, &s.path),
                version: s.expected_version,
            });
            if let (Value::Object(step), Some(acl)) = (&mut step, &s.acl) {
                step.insert("acl".into(), acl::to_value(acl));
            }
            if matches!(s.op, Op::Create | Op::Update) {
                if let (Value::Object(step), Value::Object(tag)) =
                    (&mut step, tag(&s.bytes, TreeFormat::Json))
                {
                    step.extend(tag);
                }
            }
            step
        })
        .collect();
    json!({"format": "ndsr-plan", "version": 1, "root": root, "steps": steps})
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanDoc {
    format: String,
    version: u32,
    root: String,
    steps: Vec<PlanStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanStep {
    op: Op,
    path: String,
    expected_version: Option<i32>,
    /// An `acl` step's ACL version.
    expected_aversion: Option<i32>,
    #[serde(flatten)]
    data: PlanData,
}

/// A step's data (`deny_unknown_fields` cannot go with `flatten`: the
/// tags are listed here).
#[derive(Deserialize, Default)]
struct PlanData {
    #[serde(default, deserialize_with = "present")]
    json: Option<Value>,
    text: Option<String>,
    base64: Option<String>,
    #[serde(default, deserialize_with = "acl::acl_list")]
    acl: Option<Vec<Acl>>,
}

pub(super) fn read_plan(file: &Path) -> CliResult<(String, Vec<Step>)> {
    let doc: PlanDoc = parse_doc(file)?;
    let bad = |e: String| CliError::new(Exit::InvalidInput, format!("{}: {e}", file.display()));
    if doc.format != "ndsr-plan" || doc.version != 1 {
        return Err(bad(format!(
            "format {:?} version {} is not a plan (format: ndsr-plan, version: 1; `ndsr diff --plan-out` writes one)",
            doc.format, doc.version
        )));
    }
    ndsr::validate_path(&doc.root).map_err(|e| bad(format!("root: {e}")))?;
    let mut steps = Vec::new();
    for step in doc.steps {
        let path = join(&doc.root, &step.path).map_err(|e| bad(format!("step \"{}\" {e}", step.path)))?;
        let bad_step = |e: &str| bad(format!("step \"{}\": {e}", step.path));
        let expected_version = match (step.op, step.expected_version, step.expected_aversion) {
            (Op::Acl, None, Some(v)) => v,
            (Op::Acl, _, _) => return Err(bad_step("an acl step has expected_aversion (only)")),
            (_, Some(v), None) => v,
            _ => {
                return Err(bad_step("expected_version is missing (and expected_aversion is for acl steps)"))
            }
        };
        let acl = step.data.acl;
        let acl_fits = match step.op {
            Op::Acl => acl.is_some(),
            Op::Create => true,
            Op::Update | Op::Delete => acl.is_none(),
        };
        if !acl_fits {
            return Err(bad_step("an acl step needs an acl, and only it and a create have one"));
        }
        let tagged =
            Tagged { json: step.data.json, text: step.data.text, base64: step.data.base64, acl: None };
        let bytes = tagged.bytes().map_err(|e| bad_step(&e))?;
        steps.push(Step {
            op: step.op,
            path,
            expected_version,
            bytes,
            before: Vec::new(),
            acl,
            before_acl: Vec::new(),
        });
    }
    Ok((doc.root, steps))
}
