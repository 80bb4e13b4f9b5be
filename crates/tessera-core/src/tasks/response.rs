//! Labelers' responses: the editor's starting point and the check a submitted response passes
//! before a customer receives it.

use serde_json::{json, Map, Value};

use super::{field_ids, label_name, labels, synthetic_response, TaskType};
use crate::Invalid;

/// Largest response a labeler may submit, as JSON.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The response the labeling editor starts from: the type's shape with nothing chosen
/// (`{"category": null}`, a `null` answer per field, no annotations). Submitting it unchanged
/// is refused, or for an empty annotation list asks for confirmation, so a labeler who presses
/// Submit without looking never sends a label they did not pick.
pub fn response_template(task_type: TaskType, params: &Map<String, Value>) -> Value {
    use TaskType::*;
    let unanswered = || {
        Value::Object(
            field_ids(params)
                .into_iter()
                .map(|id| (id, Value::Null))
                .collect(),
        )
    };
    match task_type {
        ImageAnnotation => json!({ "annotations": [], "global_attributes": {} }),
        Annotation
        | PolygonAnnotation
        | LineAnnotation
        | PointAnnotation
        | CuboidAnnotation
        | NamedEntityRecognition => json!({ "annotations": [] }),
        SegmentAnnotation => {
            let mapping = synthetic_response(task_type, params)
                .get("labelMapping")
                .cloned()
                .unwrap_or_else(|| json!({}));
            json!({ "annotations": null, "labelMapping": mapping })
        }
        Categorization => {
            if labels(params, "categories").is_empty() {
                let taxonomies: Map<String, Value> = params
                    .get("taxonomies")
                    .and_then(Value::as_object)
                    .map(|t| t.keys().map(|name| (name.clone(), json!([]))).collect())
                    .unwrap_or_default();
                json!({ "taxonomies": taxonomies })
            } else {
                json!({ "category": null })
            }
        }
        Transcription => json!({ "fields": unanswered(), "repeatable_fields": [] }),
        DataCollection | TextCollection => json!({ "fields": unanswered() }),
        DocumentTranscription => json!({ "fields": {}, "annotations": [] }),
        Comparison => {
            if labels(params, "choices").is_empty() {
                json!({ "fields": unanswered() })
            } else {
                json!({ "choice": null })
            }
        }
    }
}

/// Whether a response annotates nothing (no boxes, no entities, an empty document): a valid
/// answer when the attachment really holds nothing to annotate, but also what an untouched
/// editor sends, so the labeling page asks the labeler to confirm it.
pub fn annotates_nothing(task_type: TaskType, response: &Value) -> bool {
    use TaskType::*;
    let empty = |key: &str| match response.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(_) => false,
    };
    match task_type {
        ImageAnnotation
        | Annotation
        | PolygonAnnotation
        | LineAnnotation
        | PointAnnotation
        | CuboidAnnotation
        | NamedEntityRecognition => empty("annotations"),
        DocumentTranscription => empty("annotations") && empty("fields"),
        _ => false,
    }
}

/// The top-level fields a response of this type has (scale-api.md §5).
fn response_fields(task_type: TaskType, params: &Map<String, Value>) -> &'static [&'static str] {
    use TaskType::*;
    match task_type {
        ImageAnnotation => &["annotations", "global_attributes"],
        Annotation
        | PolygonAnnotation
        | LineAnnotation
        | PointAnnotation
        | CuboidAnnotation
        | NamedEntityRecognition => &["annotations"],
        SegmentAnnotation => &["annotations", "labelMapping", "instances"],
        Categorization if labels(params, "categories").is_empty() => &["taxonomies"],
        Categorization => &["category"],
        Transcription => &["fields", "repeatable_fields"],
        DataCollection | TextCollection => &["fields"],
        DocumentTranscription => &["fields", "annotations"],
        Comparison if labels(params, "choices").is_empty() => &["fields"],
        Comparison => &["choice"],
    }
}

/// The fields one annotation of a geometry kind may have, beside `label`, `attributes` and
/// `uuid` (and `type`, which names the kind).
fn annotation_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "box" => &["left", "top", "width", "height"],
        "polygon" | "line" => &["vertices"],
        "point" => &["x", "y"],
        "ellipse" => &["x", "y", "rx", "ry", "rotation"],
        "cuboid" => &["points", "vertices", "edges"],
        "entity" => &["start", "end", "text"],
        _ => &[],
    }
}

/// "a" or "an", for "an entity annotation", "a box annotation".
fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses fields of `object` outside `allowed`, naming every unknown one, where it is
/// (`place`) and what that thing (`what`) may have.
fn only_fields(
    object: &Map<String, Value>,
    allowed: &[&str],
    place: &str,
    what: &str,
) -> Result<(), Invalid> {
    let unknown: Vec<&str> = object
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let noun = if unknown.len() == 1 {
        "field"
    } else {
        "fields"
    };
    Err(Invalid(format!(
        "Unknown {noun} {} in {place}; {what} has only {}.",
        quoted(&unknown),
        quoted(allowed)
    )))
}

/// Checks one annotation: an object with a label from `allowed` and only the fields its
/// geometry has.
fn check_annotation(i: usize, a: &Value, kind: &str, allowed: &[String]) -> Result<(), Invalid> {
    let object = a
        .as_object()
        .ok_or_else(|| Invalid(format!("Annotation {} must be an object.", i + 1)))?;
    let mut fields = vec!["type", "label", "attributes", "uuid"];
    fields.extend_from_slice(annotation_fields(kind));
    only_fields(
        object,
        &fields,
        &format!("annotation {}", i + 1),
        &format!("{} {kind} annotation", article(kind)),
    )?;
    let label = a
        .get("label")
        .and_then(Value::as_str)
        .ok_or_else(|| Invalid(format!("Annotation {} needs a \"label\".", i + 1)))?;
    if !allowed.is_empty() && !allowed.iter().any(|l| l == label) {
        return Err(Invalid(format!(
            "Annotation {} has the label \"{label}\", which is not one of: {}.",
            i + 1,
            allowed.join(", ")
        )));
    }
    Ok(())
}

/// Checks the `fields` answers: an object with an answer (not `null`) for every field the
/// task asks for and no other field. Documents (`declared` false) may hold any fields.
fn check_field_answers(
    obj: &Map<String, Value>,
    params: &Map<String, Value>,
    declared: bool,
) -> Result<(), Invalid> {
    let fields = obj
        .get("fields")
        .and_then(Value::as_object)
        .ok_or_else(|| Invalid::new("The response needs \"fields\": an object."))?;
    if !declared {
        return Ok(());
    }
    let ids = field_ids(params);
    if let Some(missing) = ids
        .iter()
        .find(|f| fields.get(f.as_str()).is_none_or(Value::is_null))
    {
        return Err(Invalid(format!("The field \"{missing}\" has no answer.")));
    }
    if !ids.is_empty() {
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        only_fields(fields, &ids, "\"fields\"", "this task's \"fields\"")?;
    }
    Ok(())
}

/// Checks the answer to a categorization task with taxonomies: each taxonomy answered with
/// at least one of its choices (when it lists any), and no taxonomy the task does not have.
fn check_taxonomies(obj: &Map<String, Value>, params: &Map<String, Value>) -> Result<(), Invalid> {
    let answers = obj
        .get("taxonomies")
        .and_then(Value::as_object)
        .ok_or_else(|| Invalid::new("The response needs \"taxonomies\": an object."))?;
    let Some(asked) = params.get("taxonomies").and_then(Value::as_object) else {
        return Ok(());
    };
    let names: Vec<&str> = asked.keys().map(String::as_str).collect();
    only_fields(
        answers,
        &names,
        "\"taxonomies\"",
        "this task's \"taxonomies\"",
    )?;
    for (name, spec) in asked {
        let choices: Vec<String> = spec
            .get("choices")
            .and_then(Value::as_array)
            .map(|c| c.iter().filter_map(label_name).collect())
            .unwrap_or_default();
        if choices.is_empty() {
            continue;
        }
        let picked: Vec<&str> = match answers.get(name) {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let choose = || {
            Invalid(format!(
                "Choose the taxonomy \"{name}\": one or more of {}.",
                choices.join(", ")
            ))
        };
        if picked.is_empty() {
            return Err(choose());
        }
        if let Some(bad) = picked.iter().find(|p| !choices.iter().any(|c| c == *p)) {
            return Err(Invalid(format!(
                "\"{bad}\" is not a choice of the taxonomy \"{name}\": {}.",
                choices.join(", ")
            )));
        }
    }
    Ok(())
}

/// Checks a labeler's response against the task: the shape its type's real response has
/// (annotations, a category from the given ones, a value per field…) and no field that shape
/// lacks, so customers never receive a result their code cannot read, nor one with a label
/// nobody chose. The message names what is wrong. An empty annotation list passes here (see
/// [`annotates_nothing`]).
pub fn check_response(
    task_type: TaskType,
    params: &Map<String, Value>,
    response: &Value,
) -> Result<(), Invalid> {
    use TaskType::*;
    let Value::Object(obj) = response else {
        return Err(Invalid::new("The response must be a JSON object."));
    };
    if response.to_string().len() > MAX_RESPONSE_BYTES {
        return Err(Invalid::new("The response must be at most 1 MiB of JSON."));
    }
    only_fields(
        obj,
        response_fields(task_type, params),
        "the response",
        &format!("{} {task_type} response", article(task_type.as_str())),
    )?;
    let annotations = || -> Result<&Vec<Value>, Invalid> {
        obj.get("annotations")
            .and_then(Value::as_array)
            .ok_or_else(|| Invalid::new("The response needs \"annotations\": a list."))
    };
    let check_all = |kind: &str, allowed: &[String]| -> Result<(), Invalid> {
        annotations()?
            .iter()
            .enumerate()
            .try_for_each(|(i, a)| check_annotation(i, a, kind, allowed))
    };
    match task_type {
        ImageAnnotation => check_image_annotations(annotations()?, params),
        Annotation => check_all("box", &labels(params, "objects_to_annotate")),
        PolygonAnnotation => check_all("polygon", &labels(params, "objects_to_annotate")),
        LineAnnotation => check_all("line", &labels(params, "objects_to_annotate")),
        PointAnnotation => check_all("point", &labels(params, "objects_to_annotate")),
        CuboidAnnotation => check_all("cuboid", &labels(params, "objects_to_annotate")),
        NamedEntityRecognition => check_all("entity", &labels(params, "labels")),
        SegmentAnnotation => obj
            .get("annotations")
            .filter(|a| a.is_object())
            .map(|_| ())
            .ok_or_else(|| Invalid::new("The response needs \"annotations\": an object.")),
        Categorization => check_category(obj, params),
        Transcription | DataCollection | TextCollection => check_field_answers(obj, params, true),
        DocumentTranscription => check_field_answers(obj, params, false),
        Comparison => {
            let choices = labels(params, "choices");
            if choices.is_empty() {
                return check_field_answers(obj, params, true);
            }
            match obj.get("choice").and_then(Value::as_str) {
                Some(c) if choices.iter().any(|x| x == c) => Ok(()),
                _ => Err(Invalid(format!(
                    "Choose one of: {} (the response needs a \"choice\").",
                    choices.join(", ")
                ))),
            }
        }
    }
}

/// Checks an `imageannotation` response: every annotation of a geometry the task asks for,
/// labelled from that geometry's labels, and boxes with numeric coordinates.
fn check_image_annotations(items: &[Value], params: &Map<String, Value>) -> Result<(), Invalid> {
    let geometries = params.get("geometries").and_then(Value::as_object);
    for (i, a) in items.iter().enumerate() {
        let kind = a.get("type").and_then(Value::as_str).ok_or_else(|| {
            Invalid(format!(
                "Annotation {} needs a \"type\" (box, polygon, …).",
                i + 1
            ))
        })?;
        let spec = geometries.and_then(|g| g.get(kind)).ok_or_else(|| {
            Invalid(format!(
                "Annotation {} is a {kind}, which this task does not ask for.",
                i + 1
            ))
        })?;
        let allowed: Vec<String> = spec
            .get("objects_to_annotate")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(label_name).collect())
            .unwrap_or_default();
        check_annotation(i, a, kind, &allowed)?;
        if kind == "box" {
            for key in ["left", "top", "width", "height"] {
                if !a.get(key).is_some_and(Value::is_number) {
                    return Err(Invalid(format!("Box {} needs a number \"{key}\".", i + 1)));
                }
            }
        }
    }
    Ok(())
}

/// Checks a `categorization` response: one category (or several where the task allows
/// multiple) from the task's list, or the taxonomies' answers when it has no flat list.
fn check_category(obj: &Map<String, Value>, params: &Map<String, Value>) -> Result<(), Invalid> {
    let categories = labels(params, "categories");
    if categories.is_empty() {
        return check_taxonomies(obj, params);
    }
    let multiple = params.get("allow_multiple") == Some(&Value::Bool(true));
    let choose = || {
        Invalid(format!(
            "Choose a category: {} of {}.",
            if multiple { "one or more" } else { "one" },
            categories.join(", ")
        ))
    };
    let picked: Vec<&str> = match obj.get("category") {
        Some(Value::String(c)) => vec![c.as_str()],
        Some(Value::Array(a)) if multiple => a
            .iter()
            .map(|c| c.as_str().ok_or_else(choose))
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    if picked.is_empty() {
        return Err(choose());
    }
    match picked.iter().find(|c| !categories.iter().any(|x| x == *c)) {
        Some(c) => Err(Invalid(format!(
            "\"{c}\" is not one of the categories: {}.",
            categories.join(", ")
        ))),
        None => Ok(()),
    }
}
